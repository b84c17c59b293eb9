"""Letterbox and Dovecot (Debian's dovecot-imapd, started privately on loopback) given
the same messages must give the same answers where the RFC leaves room. Skipped when
Dovecot is not installed. Known, deliberate differences are listed in
crates/imap/src/lib.rs and kept out of the commands compared here."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import messages
from imap_util import Raw

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot-imapd not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dovecot(tmp_path):
    import pwd

    try:
        pw = pwd.getpwnam("dovecot")
    except KeyError:
        pytest.skip("no dovecot user")
    # Outside pytest's private (0700) tree: Dovecot's mail process runs as `dovecot`.
    root = Path(tempfile.mkdtemp(prefix="letterbox-dovecot-"))
    os.chmod(root, 0o755)
    for d in ("run", "state", "home"):
        (root / d).mkdir(parents=True)
    os.chown(root / "home", pw.pw_uid, pw.pw_gid)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/home/%u/Maildir
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
passdb {{
  driver = static
  args = password=pw
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""
    )
    subprocess.run([DOVECOT, "-c", str(conf)], check=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    pidfile = root / "run" / "master.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        time.sleep(0.2)
    shutil.rmtree(root, ignore_errors=True)


class Client(Raw):
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()


def untagged(lines):
    return [l for l in lines if l.startswith(b"* ")]


COMMANDS = [
    "FETCH 1:2 ENVELOPE",
    "FETCH 4 ENVELOPE",
    "FETCH 1:3 BODYSTRUCTURE",
    "FETCH 4 (BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.2.MIME] BODY.PEEK[2.2.1])",
    "FETCH 4 (BINARY.PEEK[2.2] BINARY.SIZE[2.2] BINARY.SIZE[1.1] BODY.PEEK[9])",
    "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT CC)] BODY.PEEK[HEADER.FIELDS.NOT (DATE)] BODY.PEEK[TEXT]<6.7> BODY.PEEK[]<0.4> BODY.PEEK[1] BODY.PEEK[1.MIME])",
    "FETCH 1:4 (FLAGS INTERNALDATE)",
    "SEARCH OR FROM gray NOT SUBJECT nested",
    "SEARCH SENTON 1-Feb-1994",
    "SEARCH SENTBEFORE 1-Jan-2000",
    "SEARCH SENTSINCE 1-Jan-2000",
    "SEARCH TEXT hello",
    "SEARCH BODY deep",
    "SEARCH TO team",
    "SEARCH CC klensin",
    "SEARCH LARGER 500",
    "SEARCH 2:* NOT 3",
    "UID SEARCH UID 2:*",
    "SEARCH ON 1-Jan-2020",
    "STORE 1 +FLAGS (\\Flagged)",
    "SEARCH FLAGGED",
    "SEARCH UNFLAGGED SEEN",
    "FETCH 5 FLAGS",
]


def test_same_answers_as_dovecot(server, dovecot):
    # Messages whose parts all end with a line end (line counts agree, see lib.rs).
    simple2 = messages.SIMPLE.replace(b"Terry Gray", b"Terry Grey")
    nested = messages.NESTED.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"Gr=C3=BC=C3=9Fe\r\n\r\n").replace(
        b"<p>Hi</p>\r\n", b"<p>Hi</p>\r\n\r\n").replace(b"deep text\r\n", b"deep text\r\n\r\n")
    msgs = [messages.SIMPLE, simple2, messages.GROUPS.replace(b' "quoted"', b""), nested]
    ours = Raw(server)
    ours.login()
    theirs = Client(dovecot)
    theirs.cmd("LOGIN alice@example.com pw")
    for c in (ours, theirs):
        for m in msgs:
            r = c.cmd(b'APPEND INBOX (\\Seen) " 1-Jan-2020 00:00:00 +0000" {%d+}\r\n' % len(m) + m)
            assert b" OK " in r[-1], r
        c.cmd("SELECT INBOX")
    for cmd in COMMANDS:
        a, b = ours.cmd(cmd), theirs.cmd(cmd)
        assert untagged(a) == untagged(b), cmd
        status = lambda r: r[-1].split(b" ")[1]
        assert status(a) == status(b), (cmd, a[-1], b[-1])
