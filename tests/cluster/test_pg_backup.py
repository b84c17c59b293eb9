"""`letterbox backup DEST` and `letterbox restore SRC` on PostgreSQL (issue 17), through
the real binary: a private PostgreSQL cluster (`tests/pg_cluster.py`), large bodies in
SeaweedFS's S3 on loopback (`tests/blobs/seaweed.py`), two `serve` nodes.

- A backup taken with node A's configuration while LMTP deliveries go on through node B
  holds every message acknowledged (250) before it began; it is one snapshot: each
  mailbox's UIDs are exactly the live ones up to some UID (commit order is UID order),
  and every message in it is byte for byte the live one under the same UID, with the
  same flags (nothing half-written).
- The backup restores into a fresh PostgreSQL database (bodies then in that node's blob
  files: they come from the backup, not from the bucket) and into an empty embedded data
  directory: both serve the same folders, UIDVALIDITY, UIDNEXT, UIDs, flags and octets,
  and pass `check --deep`.
- A second backup into the same DEST (from node B) writes only the new mail's blob
  files; a third with nothing new writes none.
- The quota warnings already sent go with the backup: a restored account (PostgreSQL
  or embedded) over a threshold is not warned again.
- Exit codes as `letterbox migrate --to`'s: a restore into a database holding other
  data 65, no backup in SRC 64, a wrong URL 64, an unreachable database 75.
"""

import base64
import imaplib
import random
import re
import smtplib
import socket
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
FOLDERS = ["INBOX", "Projects"]
BIG = 100_000  # above [store] inline_max: an object in the bucket, a blob file in a backup
MSGID = re.compile(rb"^Message-ID: <([^>]+)>", re.M | re.I)
SUMMARY = re.compile(r"backup in .+: database (\d+) bytes, (\d+) blob files \((\d+) copied now\)")


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


def overrides(url, weed=None):
    o = {"store.backend": "postgres", "store.url": url, "store.pool_size": 6}
    if weed is not None:
        o.update(weed.letterbox_config())
    return o


def message(tag, big):
    """A message; a big one is random base64 (zstd cannot shrink it below inline_max)."""
    if big:
        body = base64.encodebytes(random.Random(tag).randbytes(BIG * 3 // 4)).replace(b"\n", b"\r\n")
    else:
        body = f"small body {tag}\r\n".encode()
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.org>\r\n\r\n"
    ).encode() + body


def lmtp(port, rcpts, msgs):
    with smtplib.LMTP("127.0.0.1", port, timeout=60) as s:
        for m in msgs:
            assert s.sendmail("carol@example.org", rcpts, m) == {}
            for _ in rcpts[1:]:
                assert s.getreply()[0] == 250


class Load(threading.Thread):
    """LMTP deliveries to Alice until stopped; `acked` lists the tags answered 250, in
    order; every third message is big."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = []
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            with smtplib.LMTP("127.0.0.1", self.port, timeout=60) as s:
                n = 0
                while not self.stop_flag.is_set():
                    n += 1
                    tag = f"load{n}"
                    if s.sendmail("carol@example.org", [ALICE[0]], message(tag, n % 3 == 0)) == {}:
                        self.acked.append(tag)
        except Exception as e:  # reported by the test
            self.error = e


class Mover(threading.Thread):
    """Moves all of Bob's mail from INBOX to Archive (a default folder) and back (UID MOVE, RFC 6851),
    over and over, until stopped: at any one instant each message is in one folder."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.moves = 0
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            c = imaplib.IMAP4("127.0.0.1", self.port)
            c.login(*BOB)
            while not self.stop_flag.is_set():
                for src, dst in (("INBOX", "Archive"), ("Archive", "INBOX")):
                    typ, data = c.select(src)
                    assert typ == "OK", data
                    if int(data[0]) > 0:
                        typ, data = c.uid("MOVE", "1:*", dst)
                        assert typ == "OK", data
                        self.moves += 1
            c.logout()
        except Exception as e:  # reported by the test
            self.error = e


def state(port, who=ALICE, folders=FOLDERS):
    """{folder: (uidvalidity, uidnext, {uid: (flags, octets)})}."""
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(*who)
    out = {}
    for f in folders:
        typ, data = c.status(f, "(UIDVALIDITY UIDNEXT)")
        assert typ == "OK", (f, data)
        s = data[0].decode()
        uv = int(re.search(r"UIDVALIDITY (\d+)", s).group(1))
        un = int(re.search(r"UIDNEXT (\d+)", s).group(1))
        typ, data = c.select(f, readonly=True)
        assert typ == "OK", data
        msgs = {}
        if int(data[0]) > 0:
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            for i, item in enumerate(data):
                if isinstance(item, tuple):
                    tail = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
                    head = (item[0] + tail).decode()
                    uid = int(re.search(r"UID (\d+)", head).group(1))
                    flags = frozenset(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
                    msgs[uid] = (flags, item[1])
        out[f] = (uv, un, msgs)
        c.close()
    c.logout()
    return out


def tags(st, folder="INBOX"):
    return {MSGID.search(octets).group(1).decode().split("@")[0] for _, octets in st[folder][2].values()}


def summary(r):
    m = SUMMARY.search(r.stdout.decode())
    assert m, (r.stdout, r.stderr)
    return tuple(map(int, m.groups()))


def dead_port():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def test_backup_under_load_restores_into_postgres_and_embedded(make_server, pg, weed, tmp_path):
    o = overrides(pg.url, weed)
    a = make_server(**o)
    b = Server(tmp_path / "b", o)
    b.start()
    try:
        # Mail with folders, flags, an expunge (UIDNEXT above the last UID), Bob too.
        lmtp(b.require("lmtp"), [ALICE[0], BOB[0]], [message("pre0", True), message("pre1", False)])
        lmtp(a.require("lmtp"), [ALICE[0]], [message(f"pre{i}", i % 2 == 0) for i in range(2, 8)])
        c = imaplib.IMAP4("127.0.0.1", a.require("imap"))
        c.login(*ALICE)
        assert c.create("Projects")[0] == "OK"
        for i in range(3):
            m = message(f"proj{i}", i == 1)
            assert c.append("Projects", r"(\Flagged $Work)", '"07-Jan-2024 10:2%d:00 +0100"' % i, m)[0] == "OK"
        c.select("INBOX")
        assert c.uid("STORE", "1:4", "+FLAGS", r"(\Seen)")[0] == "OK"
        assert c.uid("STORE", "2", "+FLAGS", r"(\Answered $Label1)")[0] == "OK"
        assert c.uid("STORE", "5", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
        c.logout()
        lmtp(a.require("lmtp"), [BOB[0]], [message(f"mv{i}", False) for i in range(20)])
        bob_tags = {"pre0", "pre1"} | {f"mv{i}" for i in range(20)}

        # --- the backup from node A while node B takes deliveries and moves Bob's mail ---
        load = Load(b.require("lmtp"))
        load.start()
        mover = Mover(b.require("imap"))
        mover.start()
        while len(load.acked) < 15 and load.is_alive():
            time.sleep(0.05)
        acked_before = set(load.acked)
        dest = tmp_path / "backup"
        r = a.cli("backup", dest)
        during = len(load.acked)
        moves = mover.moves
        time.sleep(0.5)
        load.stop_flag.set()
        mover.stop_flag.set()
        load.join(60)
        mover.join(60)
        assert load.error is None, load.error
        assert mover.error is None, mover.error
        assert mover.moves > moves > 0, "Bob's mail did not move during the backup"
        assert len(load.acked) > len(acked_before), "the deliveries did not go on during the backup"
        _, first_files, first_copied = summary(r)
        assert first_copied == first_files > 0, r.stdout
        assert (dest / "store.db").is_file()
        assert not list(dest.glob("store.db.*")), list(dest.iterdir())
        live = state(a.require("imap"))

        # --- restore into a fresh PostgreSQL database (bodies as blob files there) ---
        r_pg = Server(tmp_path / "rpg", overrides(pg.new_database("restored")))
        r = r_pg.cli("restore", dest)
        assert "check --deep: ok" in r.stdout.decode(), (r.stdout, r.stderr)
        r_pg.start()
        restored = state(r_pg.require("imap"))
        # Bob's mail was moving between two folders: at one snapshot each message is in
        # exactly one of them (reads at different instants lose or double some).
        restored_bob = state(r_pg.require("imap"), BOB, ["Archive", "INBOX"])
        seen = [t for f in ("Archive", "INBOX") for t in tags(restored_bob, f)]
        held = {f: len(restored_bob[f][2]) for f in ("Archive", "INBOX")}
        assert sorted(seen) == sorted(bob_tags), (held, sorted(seen))
        assert r_pg.cli("check", "--deep").stdout == b"ok\n"
        # Bodies came from the backup into this node's blob files, not from the bucket.
        assert any((r_pg.data_dir / "blobs").rglob("*")), "no blob file written by the restore"

        # One snapshot: everything acknowledged before the backup; each folder's UIDs are
        # the live ones up to one UID, each message byte for byte the live one.
        got = tags(restored)
        assert acked_before <= got, sorted(acked_before - got)
        assert {f"pre{i}" for i in range(8)} - {"pre4"} <= got and "pre4" not in got  # UID 5: expunged
        for f in FOLDERS:
            uv, un, msgs = restored[f]
            luv, lun, lmsgs = live[f]
            assert uv == luv, f
            top = max(msgs)
            assert sorted(msgs) == [u for u in sorted(lmsgs) if u <= top], f
            for uid, (flags, octets) in msgs.items():
                assert lmsgs[uid] == (flags, octets), (f, uid)
        assert restored["Projects"] == live["Projects"]
        assert restored["INBOX"][1] > max(restored["INBOX"][2])
        # Deliveries acknowledged after the backup finished are not in it.
        assert not set(load.acked[during + 1 :]) & got

        # --- restore into an empty embedded data directory: the same store ---
        emb = Server(tmp_path / "remb")
        r = emb.cli("restore", dest)
        assert "check --deep: ok" in r.stdout.decode(), (r.stdout, r.stderr)
        emb.start()
        assert state(emb.require("imap")) == restored
        assert state(emb.require("imap"), BOB, ["Archive", "INBOX"]) == restored_bob
        emb.stop()

        # --- incremental: a second backup (from node B) writes only new mail's files ---
        in_first = got
        big_live = {t for t in tags(live) if t.startswith("load") and int(t[4:]) % 3 == 0}
        big_new = big_live - in_first
        lmtp(b.require("lmtp"), [ALICE[0]], [message("after0", True), message("after1", False)])
        r = b.cli("backup", dest)
        _, files2, copied2 = summary(r)
        assert copied2 == len(big_new) + 1, (r.stdout, sorted(big_new))
        assert files2 == first_files + copied2, r.stdout
        r = a.cli("backup", dest)
        assert summary(r)[1:] == (files2, 0), r.stdout
        emb2 = Server(tmp_path / "remb2")
        emb2.cli("restore", dest)
        emb2.start()
        assert state(emb2.require("imap")) == state(a.require("imap"))
        emb2.stop()

        # --- exit codes ---
        # A database holding other data (the live cluster's) is refused.
        r = a.cli("restore", dest, check=False)
        assert r.returncode == 65 and b"empty" in r.stderr, (r.returncode, r.stderr)
        r = a.cli("restore", tmp_path / "nothing-here", check=False)
        assert r.returncode == 64 and b"no store.db" in r.stderr, (r.returncode, r.stderr)
        for cmd in ("backup", "restore"):
            dead = Server(tmp_path / f"dead-{cmd}", overrides(f"postgres://x@127.0.0.1:{dead_port()}/x"))
            r = dead.cli(cmd, dest, check=False)
            assert r.returncode == 75 and b"unreachable" in r.stderr, (cmd, r.returncode, r.stderr)
            bad = Server(tmp_path / f"bad-{cmd}", overrides("postgres://x@127.0.0.1:notaport/x"))
            r = bad.cli(cmd, dest, check=False)
            assert r.returncode == 64, (cmd, r.returncode, r.stderr)
        r_pg.stop()
    finally:
        b.stop()


def test_restore_does_not_warn_again_about_quota(make_server, pg, tmp_path):
    """The quota warnings already sent go with the backup: a restored account over a
    threshold is not warned again (its messages cross the thresholds anew as they are
    stored on the target)."""
    from test_quota_warnings import warnings_in

    quota = {"quota.warning_interval": 1, "quota.warn_at": [80, 95]}
    carol = "carol@example.com"
    s = make_server(users={}, start=False, **overrides(pg.url), **quota)
    s.add_user(carol, "carol-pw", quota="20K")
    s.start()
    lmtp(s.require("lmtp"), [carol], [b"Subject: big one\r\n\r\n" + b"c" * 19000 + b"\r\n"])
    time.sleep(3)  # the sweep runs every second: a few rounds to send a second warning
    assert len(warnings_in(s, carol)) == 1
    dest = tmp_path / "backup"
    s.cli("backup", dest)
    targets = {
        "postgres": Server(tmp_path / "rpg", {**overrides(pg.new_database("warned")), **quota}),
        "embedded": Server(tmp_path / "remb", quota),
    }
    for name, t in targets.items():
        r = t.cli("restore", dest)
        assert "check --deep: ok" in r.stdout.decode(), (name, r.stdout)
        t.start()
        try:
            time.sleep(3)
            assert len(warnings_in(t, carol)) == 1, (name, t.cli("message", "list", carol, "INBOX").stdout)
        finally:
            t.stop()
