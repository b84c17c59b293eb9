"""Single-instance storage of attachments (issue 15) through the real binary.

Twenty messages, delivered over SMTP to two users, share one 5 MB attachment (and each
has its own text): the data directory grows by about one copy of it, yet every message
comes back byte for byte over IMAP (BODY[], a partial fetch across the attachment,
BINARY of the decoded attachment, RFC 3516) and POP3 (RETR, TOP), and through
`letterbox message get`; the quota counts each message whole. Deleting 19 keeps the
stored part, deleting the 20th frees it once `letterbox gc` runs. `letterbox check
--deep` passes, and fails on a corrupted reference or part file."""

import base64
import imaplib
import os
import poplib
import random
import re
import smtplib
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import CLUSTER  # noqa: E402

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")

MB = 1 << 20


def store_sql(server, statement):
    """Runs `statement` on the server's store: its SQLite file, or in cluster mode
    (tests/cluster_mode.py) its PostgreSQL database (the same tables, issue 17)."""
    if CLUSTER:
        import cluster_mode

        cluster_mode.sql(server, statement)
        return
    db = sqlite3.connect(server.data_dir / "store.db")
    try:
        db.execute(statement)
        db.commit()
    finally:
        db.close()


def data_bytes(server):
    """Octets the data directory's files take (apparent sizes, as `du -b`)."""
    total = 0
    for root, _, files in os.walk(server.data_dir):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass
    return total


def part_files(server):
    d = server.data_dir / "parts"
    return sorted(p for p in d.glob("??/*")) if d.exists() else []


def message(n, attachment_b64, kind):
    """Message n: a fresh text (a forward, a reply...) and the shared attachment."""
    subject = {0: "Report", 1: "Fwd: Report", 2: "Re: Report"}[kind]
    text = (f"Message {n}: " + "see the attached report. " * (n + 3)).encode()
    return (
        f"From: Carol <carol{n}@example.org>\r\nTo: alice@example.com, bob@example.com\r\n"
        f"Subject: {subject} #{n}\r\nMessage-ID: <m{n}@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="mix{n}"\r\n\r\n'
        f"--mix{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + text + (
        f"\r\n--mix{n}\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="report.pdf"\r\n\r\n'
    ).encode() + attachment_b64 + f"\r\n--mix{n}--\r\n".encode()


def imap(server, who):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(*who)
    return c


def fetch(c, uid, item):
    typ, data = c.uid("FETCH", str(uid), f"({item})")
    assert typ == "OK", data
    return data[0][1]


def quota_kib(c):
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK", data
    line = next(d for d in data[1] if b"STORAGE" in d)
    return int(re.search(rb"STORAGE (\d+) ", line).group(1))


def test_twenty_messages_share_one_stored_attachment(make_server):
    server = make_server()
    rnd = random.Random(15)
    raw = bytes(rnd.getrandbits(8) for _ in range(5 * MB))
    att = base64.encodebytes(raw).replace(b"\n", b"\r\n").rstrip(b"\r\n")

    before = data_bytes(server)
    msgs = [message(n, att, n % 3) for n in range(20)]
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        s.sendmail("carol@example.org", [ALICE[0]], msgs[0])
    one = data_bytes(server) - before
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        for m in msgs[1:]:
            # Ten go to both users: one body each, shared between them as before.
            rcpts = [ALICE[0], BOB[0]] if msgs.index(m) % 2 else [ALICE[0]]
            s.sendmail("carol@example.org", rcpts, m)
    grown = data_bytes(server) - before
    logical = sum(len(m) for m in msgs)
    print(f"one message grew the store by {one}, twenty by {grown} (logical {logical})")
    # The first message stores the attachment (zstd brings base64 back near 5 MB);
    # the other nineteen add their text and a few rows, never another copy.
    assert one > 4 * MB
    assert grown < one + 2 * MB, (one, grown)
    assert len(part_files(server)) == 1
    assert server.cli("check", "--deep").stdout == b"ok\n"

    c = imap(server, ALICE)
    c.select("INBOX")
    typ, data = c.uid("SEARCH", "ALL")
    uids = [int(u) for u in data[0].split()]
    assert len(uids) == 20
    # The quota counts every message whole: the user pays for what they keep.
    sizes = []
    for uid, m in zip(uids, msgs):
        size = int(re.search(rb"RFC822\.SIZE (\d+)", c.uid("FETCH", str(uid), "(RFC822.SIZE)")[1][0]).group(1))
        sizes.append(size)
        assert size >= len(m)
    # STORAGE is in KiB, rounded up (RFC 9208; as Dovecot).
    assert quota_kib(c) == (sum(sizes) + 1023) // 1024
    assert sum(sizes) > 20 * 6 * MB
    for uid, m in zip(uids, msgs):
        body = fetch(c, uid, "BODY.PEEK[]")
        # The delivery added its trace header in front; the rest is the original.
        assert body.endswith(m) and len(body) == sizes[uids.index(uid)]
        cut = body.index(m)
        s0 = cut + m.index(att) - 100
        part = fetch(c, uid, f"BODY.PEEK[]<{s0}.300000>")
        assert part == body[s0 : s0 + 300000]
        tail = fetch(c, uid, f"BODY.PEEK[]<{len(body) - 5000}.9000>")
        assert tail == body[-5000:]
        assert fetch(c, uid, "BINARY.PEEK[2]") == raw
        assert fetch(c, uid, "BODY.PEEK[2]") == att
    # `letterbox message get` gives the same octets.
    assert server.message(ALICE[0], "INBOX", uids[7]) == fetch(c, uids[7], "BODY.PEEK[]")

    # POP3: RETR and TOP give the stored octets (as CRLF lines, dot-stuffed on the wire).
    p = poplib.POP3("127.0.0.1", server.require("pop3"))
    p.user(BOB[0])
    p.pass_(BOB[1])
    count, _ = p.stat()
    assert count == 10
    bob_msgs = [m for i, m in enumerate(msgs) if i % 2]
    for i, m in enumerate(bob_msgs, start=1):
        _, lines, octets = p.retr(i)
        got = b"\r\n".join(lines) + b"\r\n"
        assert got.endswith(m), i
        assert int(p.list(i).split()[2]) == len(got)
        _, top, _ = p.top(i, 3)
        header = got[: got.index(b"\r\n\r\n")]
        assert b"\r\n".join(top).startswith(header)
    p.quit()

    # A corrupted reference or part file is found.
    store_sql(server, "UPDATE parts SET refcount = refcount + 1")
    r = server.cli("check", check=False)
    assert r.returncode != 0 and b"part " in r.stdout + r.stderr, r
    store_sql(server, "UPDATE parts SET refcount = refcount - 1")
    assert server.cli("check", "--deep").stdout == b"ok\n"
    path = part_files(server)[0]
    good = path.read_bytes()
    path.write_bytes(good[:-10] + bytes(10))
    assert server.cli("check").stdout == b"ok\n"
    r = server.cli("check", "--deep", check=False)
    assert r.returncode != 0 and b"part " in r.stdout + r.stderr, r
    path.write_bytes(good)
    assert server.cli("check", "--deep").stdout == b"ok\n"

    # Deleting 19 of alice's and all of bob's keeps the part for the 20th.
    c.uid("STORE", ",".join(map(str, uids[:19])), "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    b = imap(server, BOB)
    b.select("INBOX")
    b.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
    b.expunge()
    b.logout()
    server.cli("gc")
    assert len(part_files(server)) == 1
    assert fetch(c, uids[19], "BODY.PEEK[]").endswith(msgs[19])
    assert fetch(c, uids[19], "BINARY.PEEK[2]") == raw
    assert server.cli("check", "--deep").stdout == b"ok\n"
    # The 20th frees it, once collected.
    c.uid("STORE", str(uids[19]), "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    assert quota_kib(c) == 0
    c.logout()
    assert len(part_files(server)) == 1
    server.cli("gc")
    assert part_files(server) == []
    assert data_bytes(server) < before + 2 * MB
    assert server.cli("check", "--deep").stdout == b"ok\n"


def test_part_dedup_off_stores_whole_bodies(make_server):
    server = make_server(**{"store.part_dedup_min": 0})
    raw = os.urandom(200_000)
    att = base64.encodebytes(raw).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    msgs = [message(n, att, 0) for n in range(2)]
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        for m in msgs:
            s.sendmail("carol@example.org", [ALICE[0]], m)
    assert part_files(server) == []
    assert len(list((server.data_dir / "blobs").glob("??/*"))) == 2
    c = imap(server, ALICE)
    c.select("INBOX")
    for uid, m in zip((1, 2), msgs):
        assert fetch(c, uid, "BODY.PEEK[]").endswith(m)
        assert fetch(c, uid, "BINARY.PEEK[2]") == raw
    c.logout()
    assert server.cli("check", "--deep").stdout == b"ok\n"


def test_kill9_and_concurrent_gc_lose_nothing_and_leak_nothing(make_server):
    """`letterbox deliver` processes storing messages that share three attachments are
    killed at random moments while `letterbox gc` runs over and over beside them (it
    removes part files no committed row names, which is what a delivery's freshly
    written, not yet committed part is): every acknowledged message reads back exact,
    a killed one is whole or absent, and after a last gc `check --deep` finds every
    part referenced and nothing left over."""
    import signal
    import subprocess
    import threading
    import time

    from conftest import BIN

    s = make_server(start=False)
    s.cli("quota", "set", ALICE[0], "unlimited")
    rnd = random.Random(7)
    atts = [
        base64.encodebytes(bytes(rnd.getrandbits(8) for _ in range(120_000 + 50_000 * k))).replace(b"\n", b"\r\n").rstrip(b"\r\n")
        for k in range(3)
    ]
    acked, killed = [], []
    live, lock = {}, threading.Lock()
    stop = time.time() + 10

    def deliverer(t):
        i = 0
        while time.time() < stop:
            i += 1
            msg = message(1000 * t + i, atts[(t + i) % 3], i % 3)
            p = subprocess.Popen(
                [str(BIN), "--config", str(s.config_path), "deliver", ALICE[0]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            with lock:
                live[p.pid] = p
            out, err = p.communicate(msg)
            with lock:
                live.pop(p.pid, None)
            if p.returncode == 0:
                acked.append((msg, int(out.split()[2])))
            elif p.returncode == -signal.SIGKILL:
                killed.append(msg)
            else:
                raise AssertionError(f"deliver failed: {p.returncode} {err!r}")

    def killer():
        while time.time() < stop:
            time.sleep(random.uniform(0.01, 0.1))
            with lock:
                victims = list(live.values())
            if victims:
                try:
                    random.choice(victims).send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def collector():
        while time.time() < stop:
            s.cli("gc")
            time.sleep(0.05)

    threads = [threading.Thread(target=deliverer, args=(t,)) for t in range(3)]
    threads += [threading.Thread(target=killer), threading.Thread(target=collector)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) > 10 and len(killed) > 2, (len(acked), len(killed))
    prefix = f"Delivered-To: {ALICE[0]}\r\n".encode()
    s.start()
    c = imap(s, ALICE)
    c.select("INBOX", readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK", data
    stored = {
        int(re.search(rb"UID (\d+)", item[0]).group(1)): item[1]
        for item in data
        if isinstance(item, tuple)
    }
    c.logout()
    for msg, uid in acked:
        assert stored.get(uid) == prefix + msg, f"acknowledged UID {uid} lost or altered"
    whole = {prefix + m for m in killed}
    acked_uids = {uid for _, uid in acked}
    for uid, data in stored.items():
        if uid not in acked_uids:
            assert data in whole, f"UID {uid} is not a whole message"
    s.cli("gc")
    assert s.cli("check", "--deep").stdout == b"ok\n"
    # One stored part per attachment at most (a killed delivery's part is either
    # referenced by its stored message or collected).
    assert 1 <= len(part_files(s)) <= len(atts)
    for msg, uid in acked[:3]:
        assert s.message(ALICE[0], "INBOX", uid) == prefix + msg
