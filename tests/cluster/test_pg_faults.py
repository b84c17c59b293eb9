"""Faults under Letterbox on PostgreSQL and S3 (issue 17), through the real binary: a
private PostgreSQL cluster (`tests/pg_cluster.py`) and SeaweedFS's S3 on loopback
(`tests/blobs/seaweed.py`, the bucket listed with boto3 as an independent client).

- Collection (`letterbox gc`, run over and over from another process) during
  deliveries and expunges that keep taking and dropping the same bodies: nothing
  acknowledged is lost, and afterwards the bucket holds exactly the objects the
  database references (none missing, none leaked); with all mail deleted it ends empty.
  The upload holds of `crates/store/src/pg/objects.rs` are what make this hold.
- `kill -9` of one of two nodes in the middle of deliveries (several LMTP and SMTP
  senders to both nodes): every acknowledged message is there byte for byte, once;
  quota usage equals the sum of the sizes (`letterbox check`); the other node keeps
  serving; the restarted node delivers again; uploads the kill orphaned are collected
  once their hold expires (`[blobs] hold_max`).
- S3 stopped: large deliveries get 4xx (SMTP and LMTP), small ones (inline in the
  database) still 250; S3 back: large ones succeed on the same running node. No message
  row exists that was not acknowledged, and every row's octets are there.
- Two nodes delivering concurrently to one mailbox, while two IMAP sessions on the two
  nodes MULTIAPPEND the same bodies in opposite orders into two accounts (the rules take
  blob rows in message order; the PostgreSQL backend locks them in hash order first, or
  the two would deadlock over and over, beyond what `[store] conflict_retries` runs
  again): UIDs are dense, MODSEQs increase with UIDs (commit order), every acknowledged
  message is there once, nothing else is, and no command fails. (A deadlock that does
  happen is run again: `crates/store/src/pg/tests_faults.rs` makes one on purpose.)
"""

import base64
import imaplib
import random
import re
import smtplib
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "blobs"))

from conftest import Server  # noqa: E402
from pg_cluster import PgCluster, available  # noqa: E402
from seaweed import Seaweed  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed")

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")
INLINE_MAX = 64 * 1024
MSGID = re.compile(rb"^Message-ID: <([^>]+)>", re.M | re.I)


@pytest.fixture
def pg(tmp_path):
    with PgCluster(tmp_path / "pg") as c:
        yield c


@pytest.fixture
def weed(tmp_path):
    w = Seaweed(tmp_path / "weed")
    w.start()
    yield w
    w.stop()


def overrides(pg, weed=None, **extra):
    o = {"store.backend": "postgres", "store.url": pg.url, "store.pool_size": 6}
    if weed is not None:
        o.update(weed.letterbox_config())
    o.update(extra)
    return o


def message(tag, size, seed=None):
    """A message of about `size` octets (random base64 lines: zstd cannot shrink it)."""
    rnd = random.Random(seed if seed is not None else tag)
    body = base64.encodebytes(rnd.randbytes(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.org>\r\n\r\n"
    ).encode() + body


def msgid(octets):
    m = MSGID.search(octets)
    return m.group(1).decode() if m else None


def lmtp_send(port, rcpts, msg, timeout=60):
    """Sends over LMTP; returns the recipients that got 250 (RFC 2033 4.2: one reply to
    DATA per recipient)."""
    with smtplib.LMTP("127.0.0.1", port, timeout=timeout) as s:
        s.ehlo("client.example.org")
        code, _ = s.mail("carol@example.org")
        assert code == 250, code
        accepted = []
        for r in rcpts:
            code, _ = s.rcpt(r)
            if code == 250:
                accepted.append(r)
        if not accepted:
            return []
        ok = []
        for k, r in enumerate(accepted):
            code, _ = s.data(msg) if k == 0 else s.getreply()
            assert code < 500, (code, r)
            if code == 250:
                ok.append(r)
        return ok


def smtp_send(port, rcpts, msg, timeout=60):
    """Sends over SMTP; returns the recipients acknowledged (all or none: one DATA reply)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
        refused = s.sendmail("carol@example.org", rcpts, msg)
        return [r for r in rcpts if r not in refused]


def imap(server, who=ALICE, mailbox="INBOX"):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(*who)
    typ, data = c.select(mailbox)
    assert typ == "OK", data
    return c


def fetch_all(server, who=ALICE):
    """Every message of the INBOX as {Message-ID: [octets, ...]}."""
    c = imap(server, who)
    typ, data = c.uid("SEARCH", "ALL")
    assert typ == "OK", data
    out = {}
    for u in data[0].split():
        typ, d = c.uid("FETCH", u.decode(), "(BODY.PEEK[])")
        assert typ == "OK", d
        [body] = [x[1] for x in d if isinstance(x, tuple)]
        out.setdefault(msgid(body), []).append(body)
    c.logout()
    return out


def assert_each_once(stored, acked):
    """Every acknowledged message is stored once, byte for byte (after the trace prefix)."""
    for m in acked:
        copies = stored.get(msgid(m), [])
        assert len(copies) == 1, (msgid(m), len(copies))
        assert copies[0].endswith(m), msgid(m)


def referenced_objects(pg):
    """The object keys the database references: bodies above inline_max."""
    rows = pg.psql("SELECT encode(hash, 'hex') FROM blobs WHERE data IS NULL AND refcount > 0")
    return sorted(f"blobs/{h[:2]}/{h}" for h in rows.split())


def expunge_all(server, who):
    c = imap(server, who)
    c.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    c.logout()


def second_node(tmp_path, name, o):
    return Server(tmp_path / name, o)


# --- 1. collection during deliveries -----------------------------------------------------

def test_gc_during_deliveries_loses_nothing_and_leaks_nothing(make_server, pg, weed, tmp_path):
    hold_max = 2
    a = make_server(**overrides(pg, weed, **{"blobs.hold_max": hold_max}))
    lmtp = a.require("lmtp")
    # A few large bodies delivered again and again: to Bob, whose mail is expunged all
    # the time (so their rows drop to zero and their objects are queued for deletion),
    # and now and then to Alice, who keeps hers. Plus unique large and small ones.
    shared = [message(f"shared-{k}", 90_000) for k in range(4)]
    acked_alice = []
    stop = threading.Event()
    errors = []

    def sender(k):
        n = 0
        rnd = random.Random(k)
        while not stop.is_set():
            n += 1
            try:
                if n % 3 == 0:
                    m = message(f"u{k}-{n}", rnd.choice([2_000, 80_000, 120_000]))
                    if lmtp_send(lmtp, [ALICE[0]], m) == [ALICE[0]]:
                        acked_alice.append(m)
                else:
                    body = rnd.choice(shared)
                    ok = lmtp_send(lmtp, [BOB[0]], body)
                    assert ok == [BOB[0]], ok
            except Exception as e:  # any failure fails the test below
                errors.append(repr(e))
                return

    def expunger():
        while not stop.is_set():
            try:
                expunge_all(a, BOB)
            except Exception as e:
                errors.append(repr(e))
                return
            time.sleep(0.1)

    gc_runs = []

    def collector():
        while not stop.is_set():
            r = a.cli("gc", check=False)
            if r.returncode != 0:
                errors.append(r.stderr.decode())
                return
            gc_runs.append(r.stdout.decode())

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(3)]
    threads += [threading.Thread(target=expunger), threading.Thread(target=collector)]
    for t in threads:
        t.start()
    time.sleep(25)
    stop.set()
    for t in threads:
        t.join(120)
    assert errors == [], errors
    assert len(acked_alice) >= 5 and len(gc_runs) >= 5, (len(acked_alice), len(gc_runs))
    deleted = sum(int(re.search(r"deleted (\d+) object", g).group(1)) for g in gc_runs)
    # The churn really made collection delete objects while deliveries went on.
    assert deleted > 0, gc_runs[-3:]
    print(f"gc runs: {len(gc_runs)}, objects deleted meanwhile: {deleted}, "
          f"acknowledged for alice: {len(acked_alice)}")

    # Some shared bodies for Alice too, now that their objects came and went.
    for body in shared:
        assert lmtp_send(lmtp, [ALICE[0]], body) == [ALICE[0]]
        acked_alice.append(body)
    assert_each_once(fetch_all(a), acked_alice)
    assert a.cli("check", "--deep").stdout == b"ok\n"

    # A large delivery refused over quota after its upload leaves an object no row
    # names: its hold expires and collection deletes it.
    a.add_user("dave@example.com", "dave-Secret4", quota="20K")
    refused = message("over-quota", 100_000)
    with smtplib.LMTP("127.0.0.1", lmtp) as s:
        s.ehlo("client.example.org")
        assert s.mail("carol@example.org")[0] == 250  # no SIZE: refused after DATA
        assert s.rcpt("dave@example.com")[0] == 250
        code, _ = s.data(refused)
        assert code in (452, 552), code

    # Once every hold is older than hold_max, the bucket holds exactly what rows name.
    expunge_all(a, BOB)
    time.sleep(hold_max + 1)
    a.cli("gc")
    objects = weed.keys("blobs/")
    assert objects == referenced_objects(pg), "bucket and database disagree"
    assert len(objects) == sum(1 for m in acked_alice if len(m) > INLINE_MAX)
    assert pg.psql("SELECT count(*) FROM object_holds") == "0"
    assert pg.psql("SELECT count(*) FROM object_deletions") == "0"

    expunge_all(a, ALICE)
    a.cli("gc")
    assert weed.keys() == []
    assert a.cli("check", "--deep").stdout == b"ok\n"


# --- 2. kill -9 of one of two nodes --------------------------------------------------------

def test_kill9_one_of_two_nodes_mid_delivery(make_server, pg, weed, tmp_path):
    hold_max = 2
    o = overrides(pg, weed, **{"blobs.hold_max": hold_max})
    a = make_server(**o)
    b = second_node(tmp_path, "b", o)
    b.start()
    try:
        acked = []  # (message, recipients acknowledged)
        lock = threading.Lock()
        stop = threading.Event()
        errors = []
        killed = threading.Event()

        def sender(node, name, k, proto):
            n = 0
            while not stop.is_set():
                n += 1
                m = message(f"{name}{k}{proto}-{n}", 90_000 if n % 2 else 1_500)
                rcpts = [ALICE[0], BOB[0]] if n % 3 == 0 else [ALICE[0]]
                try:
                    if proto == "lmtp":
                        ok = lmtp_send(node.ports["lmtp"], rcpts, m, timeout=30)
                    else:
                        ok = smtp_send(node.ports["smtp"], rcpts, m, timeout=30)
                except Exception as e:
                    # The killed node's senders stop; the other node's never fail.
                    if not (name == "a" and killed.is_set()):
                        errors.append(f"{name}: {e!r}")
                    return
                if ok:
                    with lock:
                        acked.append((m, ok))

        threads = [
            threading.Thread(target=sender, args=(node, name, k, proto))
            for node, name in ((a, "a"), (b, "b"))
            for k, proto in ((0, "lmtp"), (1, "smtp"))
        ]
        for t in threads:
            t.start()
        deadline = time.time() + 90
        while len(acked) < 16 and time.time() < deadline:
            time.sleep(0.05)
        killed.set()
        a.kill9()
        at_kill = len(acked)
        # The surviving node keeps serving.
        time.sleep(3)
        on_b_after = len(acked) - at_kill
        stop.set()
        for t in threads:
            t.join(120)
        assert at_kill >= 16, at_kill
        assert on_b_after > 0, "node b stopped delivering when node a died"
        assert errors == [], errors
        print(f"acknowledged before the kill: {at_kill}, on b in the 3 s after: {on_b_after}, "
              f"holds left by the kill: {pg.psql('SELECT count(*) FROM object_holds')}")

        # The killed node comes back and delivers again.
        a.start()
        m = message("after-restart", 90_000)
        assert lmtp_send(a.require("lmtp"), [ALICE[0]], m) == [ALICE[0]]
        acked.append((m, [ALICE[0]]))

        for who in (ALICE, BOB):
            stored = fetch_all(b, who)
            assert_each_once(stored, [m for m, ok in acked if who[0] in ok])
        assert b.cli("check", "--deep").stdout == b"ok\n"

        # Uploads the kill orphaned (held, never referenced) are collected once their
        # hold expires: then the bucket holds exactly what rows name.
        time.sleep(hold_max + 1)
        b.cli("gc")
        assert weed.keys("blobs/") == referenced_objects(pg)
        assert pg.psql("SELECT count(*) FROM object_holds") == "0"
        assert b.cli("check").stdout == b"ok\n"
    finally:
        b.stop()


# --- 3. S3 down ------------------------------------------------------------------------------

def test_s3_down_large_4xx_small_ok_then_recovers(make_server, pg, weed):
    a = make_server(
        **overrides(pg, weed, **{"blobs.timeout": 4, "blobs.connect_timeout": 1, "blobs.retries": 0})
    )
    acked = []
    large1 = message("large-1", 100_000)
    assert smtp_send(a.require("smtp"), [ALICE[0]], large1) == [ALICE[0]]
    acked.append(large1)

    weed.stop()
    small = message("small-1", 2_000)
    large2 = message("large-2", 100_000)
    assert smtp_send(a.require("smtp"), [ALICE[0]], small) == [ALICE[0]]
    acked.append(small)
    assert lmtp_send(a.require("lmtp"), [ALICE[0], BOB[0]], message("small-2", 3_000)) == [ALICE[0], BOB[0]]
    acked.append(message("small-2", 3_000))
    with smtplib.SMTP("127.0.0.1", a.require("smtp")) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@example.org", [ALICE[0]], large2)
        assert 400 <= e.value.smtp_code < 500, e.value
    with smtplib.LMTP("127.0.0.1", a.require("lmtp")) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@example.org", [ALICE[0]], large2)
        assert 400 <= e.value.smtp_code < 500, e.value
    # Nothing half-stored: only the acknowledged messages have rows.
    assert pg.psql("SELECT count(*) FROM messages") == str(len(acked) + 1)  # + Bob's copy

    weed.start()
    # The same running node stores large messages again.
    assert smtp_send(a.require("smtp"), [ALICE[0]], large2) == [ALICE[0]]
    acked.append(large2)
    large3 = message("large-3", 100_000)
    assert lmtp_send(a.require("lmtp"), [ALICE[0]], large3) == [ALICE[0]]
    acked.append(large3)
    assert a.proc.poll() is None
    assert_each_once(fetch_all(a), acked)
    assert pg.psql("SELECT count(*) FROM messages") == str(len(acked) + 1)
    assert a.cli("check", "--deep").stdout == b"ok\n"


# --- 4. two nodes, one mailbox, lost races run again ---------------------------------------

def multiappend(c, mailbox, bodies):
    """MULTIAPPEND (RFC 3502) of `bodies` in one command, sent at once with
    non-synchronising literals (LITERAL+, RFC 7888); returns the tagged reply."""
    tag = c._new_tag()
    cmd = tag + b" APPEND " + mailbox.encode()
    for body in bodies:
        cmd += b" (\\Seen) {%d+}\r\n" % len(body) + body
    c.sock.sendall(cmd + b"\r\n")
    while True:
        reply = c.file.readline()
        assert reply, "connection closed"
        if reply.startswith(tag):
            return reply


def pg_log(pg):
    """The PostgreSQL server's log (scripts/pg-test-cluster)."""
    f = pg.dir / "home"
    home = Path(f.read_text().strip()) if f.exists() else pg.dir
    return (home / "pgdata" / "server.log").read_text(errors="replace")


def test_two_nodes_one_mailbox_dense_uids_crossed_multiappends(make_server, pg, tmp_path):
    o = overrides(pg)
    a = make_server(**o)
    b = second_node(tmp_path, "b", {**o, "data_dir": str(a.data_dir)})
    b.start()
    try:
        acked = []
        lock = threading.Lock()
        stop = threading.Event()
        errors = []

        def sender(node, name, k):
            n = 0
            while not stop.is_set():
                n += 1
                m = message(f"{name}{k}-{n}", 1_500)
                try:
                    if k % 2:
                        ok = smtp_send(node.ports["smtp"], [ALICE[0]], m)
                    else:
                        ok = lmtp_send(node.ports["lmtp"], [ALICE[0]], m)
                except Exception as e:
                    errors.append(repr(e))
                    return
                if ok != [ALICE[0]]:
                    errors.append(f"not acknowledged: {ok}")
                    return
                with lock:
                    acked.append(m)

        # The same bodies, already stored, MULTIAPPENDed in opposite orders on the two
        # nodes into two accounts: each transaction locks the blob rows one by one.
        shared = [message(f"ma-{k}", 1_000) for k in range(12)]
        appended = {"alice": 0, "bob": 0}

        def appender(node, who, order):
            # Authenticated state: APPEND needs no selected mailbox.
            c = imaplib.IMAP4("127.0.0.1", node.require("imap"))
            c.login(*who)
            while not stop.is_set():
                reply = multiappend(c, "Sent", order)
                if b" OK " not in reply:
                    errors.append(reply.decode(errors="replace"))
                    return
                appended[who[0].split("@")[0]] += 1
            c.logout()

        threads = [threading.Thread(target=sender, args=(n, name, k))
                   for n, name in ((a, "a"), (b, "b")) for k in range(2)]
        threads += [
            threading.Thread(target=appender, args=(a, ALICE, shared)),
            threading.Thread(target=appender, args=(b, BOB, shared[::-1])),
        ]
        for t in threads:
            t.start()
        time.sleep(20)
        stop.set()
        for t in threads:
            t.join(120)
        assert errors == [], errors
        assert len(acked) >= 20 and min(appended.values()) >= 3, (len(acked), appended)

        # The mailbox both nodes delivered to: UIDs 1..N, MODSEQ increasing with UID.
        rows = pg.psql(
            "SELECT m.uid, m.modseq FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id"
            " JOIN accounts ac ON ac.id = x.account_id"
            " WHERE ac.address = 'alice@example.com' AND x.name = 'INBOX' ORDER BY m.uid"
        ).split()
        pairs = [tuple(map(int, r.split("|"))) for r in rows]
        assert [u for u, _ in pairs] == list(range(1, len(acked) + 1))
        mods = [m for _, m in pairs]
        assert all(x < y for x, y in zip(mods, mods[1:])), mods
        assert_each_once(fetch_all(b), acked)
        # Each MULTIAPPEND stored all of its messages.
        for who, name in ((ALICE, "alice"), (BOB, "bob")):
            n = int(pg.psql(
                "SELECT count(*) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id"
                " JOIN accounts ac ON ac.id = x.account_id"
                f" WHERE ac.address = '{who[0]}' AND x.name = 'Sent'"
            ))
            assert n == appended[name] * len(shared), (name, n, appended[name])
        assert a.cli("check").stdout == b"ok\n"
        deadlocks = pg_log(pg).count("deadlock detected")
        again = len(re.findall(r"lost a race", a.read_log() + b.read_log()))
        print(f"deadlocks detected: {deadlocks}, transactions run again: {again}, "
              f"delivered: {len(acked)}, MULTIAPPENDs: {appended}")
    finally:
        b.stop()
