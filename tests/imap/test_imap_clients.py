"""Real clients against the real server: isync (mbsync) and offlineimap sync the account
to a local Maildir and back (new mail, flags, deletions and a new folder), and s-nail
reads it."""

import os
import shutil
import subprocess

import pytest

import messages
from imap_util import Raw, login


def need(tool):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed")


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


@need("mbsync")
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


def offlineimap(server, tmp_path, mail):
    rc = tmp_path / "offlineimap.conf"
    rc.write_text(
        f"""[general]
accounts = t
metadata = {tmp_path}/meta
[Account t]
localrepository = local
remoterepository = remote
[Repository local]
type = Maildir
localfolders = {mail}
[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.require('imap')}
remoteuser = alice@example.com
remotepass = alice-Secret1
ssl = no
starttls = no
"""
    )
    r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


@need("offlineimap")
def test_offlineimap_round_trip(server, tmp_path):
    for m in messages.ALL:
        server.deliver("alice@example.com", m)
    mail = tmp_path / "mail"
    mail.mkdir()
    offlineimap(server, tmp_path, mail)
    inbox = mail / "INBOX"
    names = files(inbox)
    assert len(names) == 3
    for uid in (1, 2, 3):
        local = [n for n in names if f",U={uid}," in n][0]
        sub = "new" if (inbox / "new" / local).exists() else "cur"
        # offlineimap stores LF line ends too.
        want = server.message("alice@example.com", "INBOX", uid).replace(b"\r\n", b"\n")
        got = (inbox / sub / local).read_bytes()
        if uid == 3:
            # offlineimap re-serialises MIME with Python's email package (it moves blank
            # lines around closing boundaries); the IMAP octets are checked in test_imap_fetch.
            assert [l for l in got.split(b"\n") if l] == [l for l in want.split(b"\n") if l]
        else:
            assert got == want
    # Offline: flag message 3, write a new message into Sent.
    third = [n for n in names if ",U=3," in n][0]
    sub = "new" if (inbox / "new" / third).exists() else "cur"
    (inbox / sub / third).rename(inbox / "cur" / (third.split(":2,")[0] + ":2,FS"))
    (mail / "Sent" / "cur" / "offline1.host:2,S").write_bytes(b"From: alice@example.com\r\nSubject: sent offline\r\n\r\nx\r\n")
    offlineimap(server, tmp_path, mail)
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    assert c.cmd("UID FETCH 3 FLAGS")[0] == b"* 3 FETCH (UID 3 FLAGS (\\Flagged \\Seen))"
    c.cmd("SELECT Sent")
    r = c.cmd("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: sent offline" in r[0] and b"\\Seen" in r[0], r


@need("s-nail")
def test_s_nail_reads_the_mailbox(server, tmp_path):
    for m in messages.ALL:
        server.deliver("alice@example.com", m)
    port = server.require("imap")
    env = dict(os.environ, HOME=str(tmp_path))
    (tmp_path / ".mailrc").write_text("")
    r = subprocess.run(
        ["s-nail", "-n", "-N", "-#", "-S", "v15-compat", "-S", "password=alice-Secret1", "-S", "imap-auth=login",
         "-S", "headline=%>%a%m %-18f %i%-s", "-R", "-f", f"imap://alice%40example.com@127.0.0.1:{port}"],
        input="headers\nprint 3\nquit\n", capture_output=True, text=True, timeout=60, env=env,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "gray@cac.washingto" in out and "IMAP4rev2 WG mtg summary and minutes" in out
    assert "Grüße \"quoted\"" in out
    assert "Subject: nested" in out and "deep text" in out
