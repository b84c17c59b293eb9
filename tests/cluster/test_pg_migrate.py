"""`letterbox migrate --to postgres://... --blobs s3://...` (issue 17): an embedded store
filled through the real protocols moves into a private PostgreSQL cluster
(`tests/pg_cluster.py`) with large bodies and attachments (stored once, issue 15) in
SeaweedFS S3 (`tests/blobs/seaweed.py`).

- The migration is killed (SIGKILL) in the middle of a big INBOX, then run again: it
  resumes, and every message arrives once (no duplicate, no gap).
- A fresh `serve` node on the cluster (an empty data directory of its own) shows the
  same mailboxes with the same UIDVALIDITY and UIDNEXT, every message byte for byte
  under the same UID with the same flags and internal date, the same POP3 UIDLs; a
  QRESYNC client resumes from what it cached on the old server without VANISHED; the old
  password, the application password, the alias and the active Sieve script work; quota
  usage is what it was; `check --deep` passes.
- The source's database and blob files are left as they were.
- A target holding another store's data is refused (exit 65), a wrong URL is a usage
  error (exit 64), an unreachable database a temporary one (exit 75).
"""

import base64
import hashlib
import imaplib
import os
import poplib
import random
import re
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "blobs"))

from conftest import BIN, Server  # noqa: E402
from pg_cluster import PgCluster, available  # noqa: E402
from seaweed import ACCESS_KEY, SECRET_KEY, Seaweed  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed")

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")
BULK = 400  # INBOX messages: enough that the kill lands in the middle of the copy
FOLDERS = ["INBOX", "Projects", "Sent", "Trash"]
SIEVE = b'require "fileinto";\r\nif header :contains "subject" "sieve-me" { fileinto "Projects"; }\r\n'


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


def small(i):
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: bulk {i}\r\n"
        f"Message-ID: <bulk{i}@example.org>\r\n\r\nmessage {i}\r\n" + "filler line\r\n" * (i % 7)
    ).encode()


def with_attachments():
    rnd = random.Random(17)
    parts = []
    for n, size in (("report.pdf", 180_000), ("photo.jpg", 120_000)):
        data = base64.encodebytes(bytes(rnd.getrandbits(8) for _ in range(size))).replace(b"\n", b"\r\n")
        parts.append(
            b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="' + n.encode() + b'"\r\n\r\n' + data
        )
    return (
        b"From: Carol <carol@example.org>\r\nTo: alice@example.com, bob@example.com\r\n"
        b"Subject: the big one\r\nMessage-ID: <big@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" + b"".join(parts) + b"--b1--\r\n"
    )


def lmtp(server, rcpts, msgs):
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
        for m in msgs:
            assert s.sendmail("carol@example.org", rcpts, m) == {}
            for _ in rcpts[1:]:
                assert s.getreply()[0] == 250


def login(server, who=ALICE):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(*who)
    return c


def snapshot(server, who=ALICE):
    """{folder: (uidvalidity, uidnext, {uid: (flags, internal date, octets)})}."""
    c = login(server, who)
    out = {}
    for f in FOLDERS:
        typ, data = c.status(f, "(UIDVALIDITY UIDNEXT)")
        assert typ == "OK", (f, data)
        s = data[0].decode()
        uv = int(re.search(r"UIDVALIDITY (\d+)", s).group(1))
        un = int(re.search(r"UIDNEXT (\d+)", s).group(1))
        c.select(f, readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        msgs = {}
        for i, item in enumerate(data):
            if isinstance(item, tuple):
                # Items after the literal come in the next element.
                tail = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
                head = (item[0] + tail).decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = frozenset(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
                date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                msgs[uid] = (flags, date, item[1])
        out[f] = (uv, un, msgs)
        c.close()
    c.logout()
    return out


def highestmodseq(c):
    c.untagged_responses.clear()
    typ, data = c._simple_command("SELECT", "INBOX")
    assert typ == "OK", data
    return int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(c.untagged_responses["OK"])).group(1))


def qresync(server, uidvalidity, modseq):
    """SELECT INBOX (QRESYNC (UIDVALIDITY MODSEQ)) on a fresh connection: its untagged
    responses."""
    c = login(server)
    assert c._simple_command("ENABLE", "QRESYNC")[0] == "OK"
    c.untagged_responses.clear()
    typ, data = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {modseq}))")
    assert typ == "OK", data
    got = dict(c.untagged_responses)
    c.logout()
    return got


def pop3(server, who):
    p = poplib.POP3("127.0.0.1", server.require("pop3"))
    p.user(who[0])
    p.pass_(who[1])
    uidls = [l.decode() for l in p.uidl()[1]]
    first = b"\r\n".join(p.retr(1)[1]) + b"\r\n"
    p.quit()
    return uidls, first


def files(data_dir):
    """{path: SHA-256} of the embedded store's database and blob files."""
    out = {}
    for p in sorted(data_dir.rglob("*")):
        rel = p.relative_to(data_dir).as_posix()
        if p.is_file() and (rel == "store.db" or rel.startswith(("blobs/", "parts/"))) and "/tmp/" not in rel:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def migrate(server, pg, weed):
    return [str(BIN), "--config", str(server.config_path), "migrate", "--to", pg.url, "--blobs", weed.url()]


def s3_env():
    return {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


@pytest.mark.embedded_only("its source is an embedded store; it starts its own PostgreSQL cluster as the target")
def test_migrate_killed_resumed_then_served_by_the_cluster(make_server, pg, weed, tmp_path):
    src = make_server()
    # --- fill the embedded store through the protocols ---
    lmtp(src, [ALICE[0]], [small(i) for i in range(BULK)])
    big = with_attachments()
    lmtp(src, [ALICE[0], BOB[0]], [big])
    lmtp(src, [BOB[0]], [small(1000), small(1001)])
    src.cli("alias", "add", "sales@example.com", ALICE[0])
    app_pw = src.cli("user", "app-password", "add", ALICE[0], "phone", "--protocols", "imap").stdout.decode().strip()
    src.cli("sieve", "put", ALICE[0], "rules", "--activate", input=SIEVE)
    src.cli("sieve", "put", ALICE[0], "spare", input=b"keep;\r\n")
    c = login(src)
    assert c.create("Projects")[0] == "OK"
    assert c.subscribe("Projects")[0] == "OK"
    for i in range(2):
        m = small(2000 + i)
        assert c.append("Projects", r"(\Flagged $Work)", '"07-Jan-2024 10:2%d:00 +0100"' % i, m)[0] == "OK"
    assert c._simple_command("ENABLE", "QRESYNC")[0] == "OK"
    c.select("INBOX")
    assert c.uid("STORE", "1:50", "+FLAGS", r"(\Seen)")[0] == "OK"
    assert c.uid("STORE", "7", "+FLAGS", r"(\Answered $Label1)")[0] == "OK"
    # The state an IMAP client caches (QRESYNC: UIDVALIDITY and HIGHESTMODSEQ): one
    # client before an expunge, one after.
    early = highestmodseq(c)
    assert c.uid("STORE", "3,5", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    hms = highestmodseq(c)
    assert hms > early
    c.logout()
    before = snapshot(src)
    bob_before = pop3(src, BOB)
    assert bob_before[1].endswith(big)
    quota_before = src.cli("quota", "show").stdout
    total = sum(len(v[2]) for v in before.values()) + len(bob_before[0])
    assert len(before["INBOX"][2]) == BULK - 2 + 1
    src.stop()
    untouched = files(src.data_dir)

    # --- usage errors, then the migration, killed in the middle ---
    r = src.cli("migrate", "--to", "mysql://x/y", check=False)
    assert r.returncode == 64, r.stderr
    r = src.cli("migrate", "--blobs", weed.url(), check=False)
    assert r.returncode == 64, r.stderr
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        dead = sk.getsockname()[1]
    r = src.cli("migrate", "--to", f"postgres://x@127.0.0.1:{dead}/x", check=False)
    assert r.returncode == 75 and b"unreachable" in r.stderr, (r.returncode, r.stderr)
    p = subprocess.Popen(migrate(src, pg, weed), env=s3_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if re.search(rb"INBOX: \d+/\d+ messages", line):
            p.kill()
            break
    p.wait()
    assert p.returncode == -9, (p.returncode, seen, p.stdout.read())
    copied = int(pg.psql("SELECT count(*) FROM messages"))
    assert 0 < copied < total, (copied, total)

    r = subprocess.run(migrate(src, pg, weed), env=s3_env(), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.search(rb"^resumed: \d+ accounts, \d+ mailboxes: (\d+) messages copied \(\d+ octets\), (\d+) already there", r.stdout, re.M)
    assert m, r.stdout
    assert int(m.group(2)) == copied and int(m.group(1)) + copied == total, (r.stdout, copied, total)
    assert int(pg.psql("SELECT count(*) FROM messages")) == total
    # The big message's two attachments are objects in the bucket, once for both
    # recipients (the target cuts the whole bodies it is given, issue 15); the rest of
    # it and the small messages are in the database. The source is untouched.
    keys = weed.keys()
    assert len([k for k in keys if k.startswith("parts/")]) == 2, keys
    assert not [k for k in keys if k.startswith("blobs/")], keys
    assert files(src.data_dir) == untouched
    # Once done, a rerun copies nothing.
    r = subprocess.run(migrate(src, pg, weed), env=s3_env(), capture_output=True, timeout=600)
    assert r.returncode == 0 and b": 0 messages copied" in r.stdout, (r.stdout, r.stderr)

    # Another store cannot be poured into this cluster.
    other = Server(tmp_path / "other")
    other.cli("domain", "add", "other.example")
    r = subprocess.run(migrate(other, pg, weed), env=s3_env(), capture_output=True, timeout=120)
    assert r.returncode == 65, (r.returncode, r.stderr)
    assert b"holds" in r.stderr
    assert pg.psql("SELECT count(*) FROM domains WHERE name = 'other.example'") == "0"

    # --- a fresh node on the cluster serves the same mail ---
    node = Server(tmp_path / "node", {
        "store.backend": "postgres", "store.url": pg.url, "store.pool_size": 4,
        **weed.letterbox_config(),
    })
    node.start()
    try:
        assert snapshot(node) == before
        assert pop3(node, BOB) == bob_before
        assert node.cli("quota", "show").stdout == quota_before
        # A QRESYNC client resumes: same UIDVALIDITY, no VANISHED, flags sent again
        # (never bodies); one that cached the mailbox before the expunge hears of it.
        uv = before["INBOX"][0]
        got = qresync(node, uv, hms)
        assert "VANISHED" not in got, got.get("VANISHED")
        assert any(f"UIDVALIDITY {uv}".encode() in x for x in got["OK"])
        assert len(got["FETCH"]) == len(before["INBOX"][2])
        assert all(b"BODY" not in x for x in got["FETCH"])
        got = qresync(node, uv, early)
        assert got.get("VANISHED") == [b"(EARLIER) 3,5"], got.get("VANISHED")
        # The application password, the alias and the active Sieve script.
        login(node, (ALICE[0], app_pw)).logout()
        lmtp(node, ["sales@example.com"], [small(3000).replace(b"bulk 3000", b"sieve-me")])
        c = login(node)
        c.select("Projects", readonly=True)
        typ, data = c.uid("SEARCH", "SUBJECT", "sieve-me")
        assert data[0].split() == [str(before["Projects"][1]).encode()], data
        c.logout()
        lines = node.cli("sieve", "list", ALICE[0]).stdout.decode()
        assert re.search(r"^rules\t\d+\tactive$", lines, re.M), lines
        assert node.cli("check", "--deep").stdout == b"ok\n"
        usage = int(pg.psql(
            "SELECT quota_used FROM accounts WHERE address = 'alice@example.com'"))
        assert usage == int(pg.psql(
            "SELECT sum(m.size) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id "
            "JOIN accounts a ON a.id = x.account_id WHERE a.address = 'alice@example.com'"))
    finally:
        node.stop()
