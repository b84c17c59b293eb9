"""Real POP3 clients against the real binary, for the real use cases of issue 4:
Debian's fetchmail (delivering to an MDA) and getmail6 (delivering to a Maildir).

- download everything and delete: the server is left empty, the local copies are the
  stored octets (fetchmail with `no stripcr`: byte-identical; getmail's Maildir uses LF
  line ends and adds a Return-Path line, so the comparison undoes exactly those);
- leave on server over several runs (UIDL): nothing is downloaded twice;
- the retention policy for clients that never delete: `keep`, `delete`, and `<N>d`
  with `letterbox retention sweep --now`.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import USERS
from pop3_util import ALICE, Raw, deliver, login_when_free, stored

pytestmark = pytest.mark.skipif(
    not (shutil.which("fetchmail") and shutil.which("getmail")),
    reason="fetchmail and getmail6 are installed by scripts/install-test-deps",
)

CORPUS = [
    b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nHi Alice.\r\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
    b"Subject: no final newline\r\n\r\nlast line without CRLF",
    "Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUTF-8 \u2603 body\r\n".encode(),
    b"Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n" * 14_000),
]


def expected(server, uid):
    """What a client gets: the stored octets, with CRLF added when they lack a final one."""
    m = stored(server, uid)
    return m if m.endswith(b"\r\n") else m + b"\r\n"


class Fetchmail:
    """fetchmail with an MDA that writes each message to its own file."""

    def __init__(self, server, home: Path, user=ALICE, keep=False):
        self.server, self.home, self.out = server, home, home / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        save = home / "save.py"
        save.write_text(
            "import os, sys, uuid\n"
            "data = sys.stdin.buffer.read()\n"
            "open(os.path.join(sys.argv[1], uuid.uuid4().hex), 'wb').write(data)\n"
        )
        self.rc = home / "fetchmailrc"
        # invisible: no Received line of its own; no stripcr: the MDA gets CRLF as sent;
        # sslproto '': the test server has no TLS on its pop3 port.
        self.rc.write_text(
            "set no bouncemail\nset no syslog\nset invisible\n"
            f"poll 127.0.0.1 with proto POP3 port {server.require('pop3')} auth password timeout 60\n"
            f'  user "{user}" there with password "{USERS[user]}" is "root" here\n'
            f"  options no rewrite no stripcr sslproto '' {'keep' if keep else 'fetchall'}\n"
            f'  mda "{shutil.which("python3")} {save} {self.out}"\n'
        )
        self.rc.chmod(0o600)

    def run(self):
        """One fetchmail run; returns the messages it delivered."""
        before = set(self.out.iterdir())
        env = dict(os.environ, HOME=str(self.home), FETCHMAILHOME=str(self.home))
        r = subprocess.run(
            ["fetchmail", "-f", str(self.rc), "-N", "-v", "--idfile", str(self.home / "ids"),
             "--pidfile", str(self.home / "pid")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        # 0: mail fetched; 1: no mail.
        assert r.returncode in (0, 1), r.stdout + r.stderr
        self.log = r.stdout + r.stderr
        return sorted(f.read_bytes() for f in set(self.out.iterdir()) - before)


class Getmail:
    """getmail6 with a Maildir destination (delivered as `nobody`: getmail refuses root)."""

    def __init__(self, server, home: Path, user=ALICE, delete=True, read_all=False):
        self.maildir = home / "Maildir"
        for d in ("cur", "new", "tmp"):
            (self.maildir / d).mkdir(parents=True, exist_ok=True)
            shutil.chown(self.maildir / d, "nobody")
        shutil.chown(self.maildir, "nobody")
        self.dir = home / "getmail"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "getmailrc").write_text(
            "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
            f"port = {server.require('pop3')}\nusername = {user}\npassword = {USERS[user]}\n\n"
            f"[destination]\ntype = Maildir\npath = {self.maildir}/\nuser = nobody\n\n"
            f"[options]\ndelete = {str(delete).lower()}\nread_all = {str(read_all).lower()}\n"
            "delivered_to = false\nreceived = false\nverbose = 2\n"
        )

    def run(self):
        before = set((self.maildir / "new").iterdir())
        r = subprocess.run(
            ["getmail", "--getmaildir", str(self.dir), "--rcfile", "getmailrc"],
            capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        self.log = r.stdout + r.stderr
        return sorted(f.read_bytes() for f in set((self.maildir / "new").iterdir()) - before)


@pytest.fixture
def open_tmp():
    """A scratch directory that `nobody` can reach (pytest's own is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="letterbox-pop3-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_maildir(message: bytes) -> bytes:
    """A message as getmail writes it to a Maildir: Return-Path first, LF line ends."""
    return b"Return-Path: <unknown>\n" + message.replace(b"\r\n", b"\n")


def deliver_corpus(server, bodies=CORPUS):
    return [deliver(server, b) for b in bodies]


def test_fetchmail_download_and_delete(server, tmp_path):
    uids = deliver_corpus(server)
    want = sorted(expected(server, u) for u in uids)
    got = Fetchmail(server, tmp_path).run()
    assert len(got) == len(want)
    assert got == want  # byte-identical
    assert server.uids(ALICE) == []
    assert server.cli("check").returncode == 0


def test_fetchmail_leave_on_server_over_several_runs(server, tmp_path):
    first = deliver_corpus(server, CORPUS[:3])
    fm = Fetchmail(server, tmp_path, keep=True)
    assert fm.run() == sorted(expected(server, u) for u in first)
    assert "UIDL" in fm.log
    assert fm.run() == []  # nothing twice
    second = deliver_corpus(server, CORPUS[3:])
    assert fm.run() == sorted(expected(server, u) for u in second)
    assert fm.run() == []
    server.restart()  # UIDLs survive a restart
    assert fm.run() == []
    assert server.uids(ALICE) == first + second


def test_getmail_download_and_delete(server, open_tmp):
    uids = deliver_corpus(server)
    want = sorted(as_maildir(expected(server, u)) for u in uids)
    got = Getmail(server, open_tmp, delete=True).run()
    assert got == want
    assert server.uids(ALICE) == []


def test_getmail_leave_on_server_over_several_runs(server, open_tmp):
    gm = Getmail(server, open_tmp, delete=False, read_all=False)
    first = deliver_corpus(server, CORPUS[:2])
    assert gm.run() == sorted(as_maildir(expected(server, u)) for u in first)
    assert gm.run() == []
    second = deliver_corpus(server, CORPUS[2:])
    assert gm.run() == sorted(as_maildir(expected(server, u)) for u in second)
    assert gm.run() == []
    assert "not retrieved (seen)" in gm.log
    # Deleting some on the server (another client) changes nothing for the rest.
    r = Raw(server)
    r.login()
    r.cmd("DELE 1")
    r.cmd("QUIT")
    assert gm.run() == []
    assert server.uids(ALICE) == (first + second)[1:]


# --- retention: the cure for clients that never delete ---


def test_retention_keep_is_rfc1939(server, open_tmp):
    uids = deliver_corpus(server, CORPUS[:3])
    gm = Getmail(server, open_tmp, delete=False, read_all=True)
    assert len(gm.run()) == 3
    assert len(gm.run()) == 3  # read_all: the same mail again, still there
    assert server.uids(ALICE) == uids
    assert server.cli("retention", "sweep", "--now", str(int(time.time()) + 10 * 365 * 86400)).returncode == 0
    assert server.uids(ALICE) == uids


def test_retention_delete_with_clients_that_never_delete(server, open_tmp):
    server.cli("user", "set", ALICE, "pop3-retention", "delete")
    uids = deliver_corpus(server)
    want = sorted(as_maildir(expected(server, u)) for u in uids)
    assert Getmail(server, open_tmp / "g", delete=False).run() == want
    assert server.uids(ALICE) == []  # deleted in UPDATE, as if DELE'd
    # fetchmail in keep mode, too.
    uids = deliver_corpus(server, CORPUS[:2])
    want = sorted(expected(server, u) for u in uids)
    assert Fetchmail(server, open_tmp / "f", keep=True).run() == want
    assert server.uids(ALICE) == []


def test_retention_delete_only_what_was_retrieved_and_only_on_quit(server):
    server.cli("user", "set", ALICE, "pop3-retention", "delete")
    uids = deliver_corpus(server, CORPUS[:4])
    # A dropped connection deletes nothing, whatever was retrieved.
    r = Raw(server)
    r.login()
    r.cmd("RETR 1")
    r.body()
    r.close()
    r = login_when_free(server)  # the dropped session has ended
    assert server.uids(ALICE) == uids
    # RSET undoes the implied deletions like explicit ones.
    r.cmd("RETR 1")
    r.body()
    assert r.cmd("RSET").startswith("+OK")
    assert r.cmd("QUIT").startswith("+OK")
    assert server.uids(ALICE) == uids
    # TOP is not a retrieval; RETR and DELE are.
    r = Raw(server)
    r.login()
    assert "EXPIRE 0" in r.multi("CAPA")
    r.cmd("TOP 1 5")
    r.body()
    r.cmd("RETR 2")
    r.body()
    assert r.cmd("DELE 2") == "+OK Message 2 deleted"  # a client's own DELE still works
    assert r.cmd("DELE 3") == "+OK Message 3 deleted"
    assert r.cmd("QUIT") == "+OK Letterbox POP3 server signing off (2 messages left)"
    assert server.uids(ALICE) == [uids[0], uids[3]]


def test_retention_default_from_config(make_server, open_tmp):
    s = make_server(**{"pop3.retention": "delete"})
    deliver_corpus(s, CORPUS[:2])
    assert len(Getmail(s, open_tmp / "g", delete=False).run()) == 2
    assert s.uids(ALICE) == []
    # A per-account setting wins over the default.
    s.cli("user", "set", ALICE, "pop3-retention", "keep")
    uids = deliver_corpus(s, CORPUS[:2])
    assert len(Getmail(s, open_tmp / "h", delete=False).run()) == 2
    assert s.uids(ALICE) == uids


def test_retention_days_expunges_after_first_retrieval(server, open_tmp):
    server.cli("user", "set", ALICE, "pop3-retention", "7d")

    def sweep(at):
        server.cli("retention", "sweep", "--now", str(int(at)))

    gm = Getmail(server, open_tmp, delete=False)
    old = deliver_corpus(server, CORPUS[:3])
    t0 = time.time()
    assert len(gm.run()) == 3
    t1 = time.time()
    assert server.uids(ALICE) == old  # left on the server for now
    sweep(t0 + 6 * 86400)
    assert server.uids(ALICE) == old
    # A later retrieval does not restart the clock.
    time.sleep(2)
    r = Raw(server)
    r.login()
    for i in (1, 2, 3):
        r.cmd(f"RETR {i}")
        r.body()
    r.cmd("QUIT")
    new = deliver_corpus(server, CORPUS[3:])  # never retrieved yet
    sweep(t1 + 7 * 86400 + 1)
    assert server.uids(ALICE) == new  # retrieved 7 days ago: gone; never retrieved: kept
    sweep(time.time() + 100 * 86400)
    assert server.uids(ALICE) == new
    # The leave-on-server client gets the new mail once, and nothing twice.
    assert gm.run() == sorted(as_maildir(expected(server, u)) for u in new)
    assert gm.run() == []
    # Retrieved just now: they go 7 days from now, not before.
    sweep(time.time() + 86400)
    assert server.uids(ALICE) == new
    sweep(time.time() + 7 * 86400 + 5)
    assert server.uids(ALICE) == []
    assert server.cli("check").returncode == 0
