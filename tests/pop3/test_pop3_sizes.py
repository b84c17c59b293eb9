"""POP3 sizes are the exact octets RETR sends (RFC 1939 LIST/STAT; INTERFACE.md: "CRLF
lines, before dot-stuffing"), also for a message stored without a final CRLF and for
one stored with LF-only line ends (IMAP APPEND keeps what the client sent, byte for
byte). RETR sends such messages as CRLF lines; LIST/STAT count exactly that. Checked with
poplib and with fetchmail, which compares the two ("was not the expected length")."""

import os
import poplib
import re
import shutil
import subprocess

import pytest

from conftest import USERS
from pop3_util import ALICE, deliver, stored
from security_util import Conn

NO_FINAL = b"From: a@elsewhere.org\r\nSubject: no final newline\r\n\r\nlast line without CRLF"
BARE_LF = b"From: a@elsewhere.org\nSubject: bare LF\n\nline one\n.dotted\n\nlast line\n"
BARE_NO_FINAL = b"Subject: bare, no end\n\nmixed\r\nline\nend"


def crlf(m: bytes) -> bytes:
    """What POP3 sends (before dot-stuffing): every line ending CRLF."""
    m = re.sub(rb"(?<!\r)\n", b"\r\n", m)
    return m if m.endswith(b"\r\n") else m + b"\r\n"


def imap_append_raw(server, message: bytes) -> int:
    """APPEND with the octets as given (imaplib would rewrite bare LFs)."""
    c = Conn(server.require("imap"))
    assert c.imap("a", f"LOGIN {ALICE} {USERS[ALICE]}")[-1].startswith("a OK")
    c.send(f"b APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
    tagged = c.until_tag("b")[-1]
    assert tagged.startswith("b OK"), tagged
    uid = int(re.search(r"APPENDUID \d+ (\d+)", tagged).group(1))
    assert c.imap("s", "EXAMINE INBOX")[-1].startswith("s OK")
    fetched = c.imap("c", f"UID FETCH {uid} RFC822.SIZE")
    assert f"RFC822.SIZE {len(message)}" in fetched[0], fetched
    c.imap("z", "LOGOUT")
    c.close()
    return uid


def test_list_stat_and_retr_agree(server):
    uids = [deliver(server, NO_FINAL), imap_append_raw(server, BARE_LF), imap_append_raw(server, BARE_NO_FINAL)]
    originals = [NO_FINAL, BARE_LF, BARE_NO_FINAL]
    # Stored byte for byte as given.
    assert [stored(server, u)[-len(o):] for u, o in zip(uids, originals)] == originals
    want = [crlf(stored(server, u)) for u in uids]
    assert [len(w) - len(s) for w, s in zip(want, [stored(server, u) for u in uids])] == [2, 7, 5]

    pop = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
    pop.user(ALICE)
    pop.pass_(USERS[ALICE])
    assert pop.stat() == (3, sum(map(len, want)))
    resp, listing, _ = pop.list()
    assert listing == [f"{i + 1} {len(w)}".encode() for i, w in enumerate(want)]
    for i, w in enumerate(want):
        assert pop.list(i + 1) == f"+OK {i + 1} {len(w)}".encode()
        resp, lines, octets = pop.retr(i + 1)
        assert resp == f"+OK {len(w)} octets".encode()
        assert octets == len(w)  # poplib counts the received lines, CRLF included, unstuffed
        assert b"\r\n".join(lines) + b"\r\n" == w
    # TOP sends the header with CRLF too.
    resp, lines, _ = pop.top(2, 1)
    assert lines == [b"From: a@elsewhere.org", b"Subject: bare LF", b"", b"line one"]
    pop.quit()


@pytest.mark.skipif(not shutil.which("fetchmail"), reason="fetchmail is installed by scripts/install-test-deps")
def test_fetchmail_finds_the_sizes_exact(server, tmp_path):
    uids = [deliver(server, NO_FINAL), imap_append_raw(server, BARE_LF), imap_append_raw(server, BARE_NO_FINAL)]
    want = sorted(crlf(stored(server, u)) for u in uids)
    out = tmp_path / "out"
    out.mkdir()
    save = tmp_path / "save.py"
    save.write_text(
        "import os, sys, uuid\n"
        "open(os.path.join(sys.argv[1], uuid.uuid4().hex), 'wb').write(sys.stdin.buffer.read())\n"
    )
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\nset no syslog\nset invisible\n"
        f"poll 127.0.0.1 with proto POP3 port {server.require('pop3')} auth password timeout 60\n"
        f'  user "{ALICE}" there with password "{USERS[ALICE]}" is "root" here\n'
        "  options no rewrite no stripcr sslproto '' keep fetchall\n"
        f'  mda "{shutil.which("python3")} {save} {out}"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-N", "-v", "--idfile", str(tmp_path / "ids"),
                        "--pidfile", str(tmp_path / "pid")], env=env, capture_output=True, text=True, timeout=120)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    assert "not the expected length" not in log, log
    announced = sorted(int(n) for n in re.findall(r"reading message \S+ of 3 \((\d+) octets\)", log))
    assert announced == sorted(map(len, want)), log
    assert sorted(f.read_bytes() for f in out.iterdir()) == want
