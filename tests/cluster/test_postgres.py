"""Letterbox on PostgreSQL (issue 17), through the real binary against a private
PostgreSQL cluster (Debian's server, `scripts/pg-test-cluster`, `tests/pg_cluster.py`).

- `letterbox migrate` applies the schema and prints its version (twice: nothing to do
  the second time); an unreachable database exits 75 (EX_TEMPFAIL).
- `serve` on PostgreSQL: an LMTP delivery reads back byte for byte over IMAP FETCH
  BODY[] and POP3 RETR, and as `letterbox message get` shows it.
- Two nodes on one database (and one shared blob directory): an IDLE session on node
  B sees a delivery made over LMTP on node A (LISTEN/NOTIFY).
- PostgreSQL stopped in the middle of traffic: LMTP answers 4xx, IMAP `NO
  [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`, never a permanent error; once it is back the
  same running server delivers and reads again, and nothing acknowledged is lost.
"""

import imaplib
import os
import poplib
import re
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import BIN, Server  # noqa: E402
from pg_cluster import PgCluster, available  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed")

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")


@pytest.fixture
def pg(tmp_path):
    with PgCluster(tmp_path / "pg") as c:
        yield c


def pg_overrides(pg):
    return {"store.backend": "postgres", "store.url": pg.url, "store.pool_size": 4}


def message(n, size=200):
    body = "".join(f"line {i} of message {n}\r\n" for i in range(size // 20 + 1))
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: m{n}\r\n"
        f"Message-ID: <m{n}@example.org>\r\n\r\n{body}"
    ).encode()


def lmtp_send(server, rcpts, msg):
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
        refused = s.sendmail("carol@example.org", rcpts, msg)
        # LMTP answers DATA once per recipient (RFC 2033 4.2); smtplib reads the first.
        for _ in rcpts[1:]:
            assert s.getreply()[0] == 250
        return refused


def imap(server, who=ALICE):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(*who)
    typ, data = c.select("INBOX")
    assert typ == "OK", data
    return c


def fetch_all(c):
    typ, data = c.uid("SEARCH", "ALL")
    assert typ == "OK", data
    out = []
    for u in data[0].split():
        typ, d = c.uid("FETCH", u.decode(), "(BODY.PEEK[])")
        assert typ == "OK", d
        [body] = [x[1] for x in d if isinstance(x, tuple)]
        out.append(body)
    return out


# --- the cluster's server, stopped and started again in place (same port, same data) ---

def pg_bin():
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]


def pg_home(pg):
    f = pg.dir / "home"
    return Path(f.read_text().strip()) if f.exists() else pg.dir


def as_pg():
    return ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []


def pg_stop(pg):
    subprocess.run(
        [*as_pg(), str(pg_bin() / "pg_ctl"), "-D", str(pg_home(pg) / "pgdata"), "-m", "fast", "-w", "stop"],
        check=True, capture_output=True, timeout=60,
    )


def pg_start(pg):
    home = pg_home(pg)
    port = re.search(r":(\d+)/", pg.url).group(1)
    subprocess.run(
        [*as_pg(), str(pg_bin() / "pg_ctl"), "-D", str(home / "pgdata"), "-l", str(home / "pgdata" / "server.log"),
         "-w", "-t", "60", "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {home}/sock", "start"],
        check=True, capture_output=True, timeout=90,
    )


def test_migrate_prints_version_and_tempfails_when_unreachable(pg, tmp_path):
    s = Server(tmp_path / "n", pg_overrides(pg))
    for _ in range(2):
        r = s.cli("migrate")
        assert re.fullmatch(rb"schema version \d+\n", r.stdout), r.stdout
    tables = pg.psql("SELECT count(*) FROM schema_version")
    assert int(tables) >= 1
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        dead = sk.getsockname()[1]
    bad = Server(tmp_path / "bad", {**pg_overrides(pg), "store.url": f"postgres://x@127.0.0.1:{dead}/x"})
    r = bad.cli("migrate", check=False)
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert b"unreachable" in r.stderr


def test_lmtp_imap_pop3_byte_exact(make_server, pg):
    server = make_server(**pg_overrides(pg))
    m1, m2 = message(1), message(2, 150_000)  # inline in the row; a blob file
    assert lmtp_send(server, [ALICE[0], BOB[0]], m1) == {}
    assert lmtp_send(server, [ALICE[0]], m2) == {}
    c = imap(server)
    got = fetch_all(c)
    c.logout()
    assert len(got) == 2
    assert got[0].endswith(m1) and got[1].endswith(m2)
    # The stored octets are exactly what IMAP sent (trace prefix included).
    assert server.message(ALICE[0], "INBOX", 1) == got[0]
    assert server.message(ALICE[0], "INBOX", 2) == got[1]
    p = poplib.POP3("127.0.0.1", server.require("pop3"))
    p.user(BOB[0])
    p.pass_(BOB[1])
    assert p.stat()[0] == 1
    _, lines, _ = p.retr(1)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(m1)
    p.quit()
    assert server.cli("check", "--deep").stdout == b"ok\n"


def test_idle_on_node_b_sees_delivery_on_node_a(make_server, pg, tmp_path):
    a = make_server(**pg_overrides(pg))
    b = Server(tmp_path / "b", {**pg_overrides(pg), "data_dir": str(a.data_dir)})
    b.start()
    try:
        sock = socket.create_connection(("127.0.0.1", b.require("imap")), timeout=10)
        f = sock.makefile("rwb")

        def cmd(line):
            f.write(line + b"\r\n")
            f.flush()

        def until(pred):
            lines = []
            while True:
                line = f.readline()
                assert line, lines
                lines.append(line)
                if pred(line):
                    return lines

        until(lambda l: l.startswith(b"* OK"))
        cmd(b"a LOGIN alice@example.com alice-Secret1")
        until(lambda l: l.startswith(b"a "))
        cmd(b"b SELECT INBOX")
        assert until(lambda l: l.startswith(b"b "))[-1].startswith(b"b OK")
        cmd(b"c IDLE")
        until(lambda l: l.startswith(b"+"))
        time.sleep(1)  # the listener takes the new watcher's baseline
        t0 = time.time()
        assert lmtp_send(a, [ALICE[0]], message(7)) == {}
        lines = until(lambda l: re.match(rb"\* 1 EXISTS", l) is not None)
        took = time.time() - t0
        assert took < 5, took
        cmd(b"DONE")
        until(lambda l: l.startswith(b"c "))
        sock.close()
        assert lines[-1] == b"* 1 EXISTS\r\n"
    finally:
        b.stop()


def test_postgres_down_gives_temporary_errors_then_recovers(make_server, pg):
    server = make_server(**pg_overrides(pg))
    before = message(10)
    assert lmtp_send(server, [ALICE[0]], before) == {}
    c = imap(server)
    pg_stop(pg)
    try:
        # LMTP: a temporary refusal, never 5xx.
        with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
            s.ehlo("client.example.org")
            code, _ = s.mail("carol@example.org")
            if code == 250:
                code, reply = s.rcpt(ALICE[0])
            assert 400 <= code < 500, code
        # IMAP: the selected session's reads fail with NO [UNAVAILABLE].
        typ, data = c.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        # POP3: login cannot be checked: -ERR [SYS/TEMP].
        p = poplib.POP3("127.0.0.1", server.require("pop3"))
        p.user(BOB[0])
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(BOB[1])
        assert b"[SYS/TEMP]" in e.value.args[0], e.value.args
        p.close()
    finally:
        pg_start(pg)
    # The same running server works again: no restart.
    after = message(11)
    deadline = time.time() + 20
    while True:
        try:
            assert lmtp_send(server, [ALICE[0]], after) == {}
            break
        except smtplib.SMTPException:
            assert time.time() < deadline
            time.sleep(0.5)
    c2 = imap(server)
    got = fetch_all(c2)
    c2.logout()
    assert len(got) == 2 and got[0].endswith(before) and got[1].endswith(after)
    assert server.cli("check", "--deep").stdout == b"ok\n"
