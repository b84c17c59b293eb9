"""Real clients against the real server: isync (mbsync) syncs the account to a local
Maildir and back (new mail, flags, deletions and a new folder both ways)."""

import os
import shutil
import subprocess

import pytest

import messages
from imap_util import Raw, login

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) not installed")


def mbsync(server, tmp_path, mail):
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount t
Host 127.0.0.1
Port {server.require('imap')}
User alice@example.com
Pass alice-Secret1
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account t

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel ch
Far :remote:
Near :local:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
"""
    )
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def files(d):
    return sorted(os.listdir(d / "cur") + os.listdir(d / "new"))


def test_mbsync_round_trip(server, tmp_path):
    for m in messages.ALL:
        server.deliver("alice@example.com", m)
    mail = tmp_path / "mail"
    mail.mkdir()
    mbsync(server, tmp_path, mail)
    inbox = mail / "INBOX"
    names = files(inbox)
    assert len(names) == 3
    for uid in (1, 2, 3):
        local = [n for n in names if f",U={uid}:" in n][0]
        sub = "new" if (inbox / "new" / local).exists() else "cur"
        # mbsync stores LF line ends in the Maildir.
        want = server.message("alice@example.com", "INBOX", uid).replace(b"\r\n", b"\n")
        got = b"".join(l for l in (inbox / sub / local).read_bytes().splitlines(True) if not l.startswith(b"X-TUID:"))
        assert got == want
    for folder in ["Archive", "Drafts", "Junk", "Sent", "Trash"]:
        assert (mail / folder / "cur").is_dir()

    # Locally: read message 1, delete message 2, write a new one, create a folder.
    first = [n for n in names if ",U=1:" in n][0]
    src = inbox / ("new" if (inbox / "new" / first).exists() else "cur") / first
    src.rename(inbox / "cur" / (first.split(":2,")[0] + ":2,S"))
    second = [n for n in names if ",U=2:" in n][0]
    for sub in ("new", "cur"):
        if (inbox / sub / second).exists():
            (inbox / sub / second).unlink()
    (inbox / "new" / "local1.host").write_bytes(b"From: me@example.com\r\nSubject: written offline\r\n\r\nhi\r\n")
    for sub in ("cur", "new", "tmp"):
        (mail / "Projects" / sub).mkdir(parents=True)
    (mail / "Projects" / "new" / "p1.host").write_bytes(b"Subject: project\r\n\r\nplan\r\n")
    mbsync(server, tmp_path, mail)

    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    r = c.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"\n".join(r)
    assert b"UID 2 " not in text
    assert b"* 1 FETCH (UID 1 FLAGS (\\Seen" in text
    assert b"Subject: written offline" in text
    assert c.cmd("STATUS Projects (MESSAGES)")[0] == b"* STATUS Projects (MESSAGES 1)"

    # And back: a flag set on the server reaches the Maildir.
    c.cmd("UID STORE 3 +FLAGS (\\Flagged)")
    c.cmd("LOGOUT")
    mbsync(server, tmp_path, mail)
    assert any(",U=3:" in n and n.endswith("F") for n in files(inbox)), files(inbox)
