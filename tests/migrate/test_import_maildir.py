"""`letterbox import maildir` from a real Dovecot 2.3 (issue 16).

Dovecot is filled over LMTP and IMAP (folders with a hierarchy and a non-ASCII name,
flags, keywords, a \\Deleted message left unexpunged, an expunged UID leaving a gap,
subscriptions); a POP3 client records the UIDLs and mbsync syncs a local copy. Then the
Maildir is imported into a running Letterbox, and over the real protocols:
- every folder's UIDVALIDITY and UIDNEXT, every UID and its flags and keywords, and the
  subscriptions equal Dovecot's;
- POP3 UIDL lists the same UIDLs as Dovecot's did;
- mbsync and offlineimap, with the state each made against Dovecot, resync without
  fetching one body (counted on the wire through a logging proxy), their Maildirs
  unchanged;
- a QRESYNC client selecting with its cached UIDVALIDITY gets OK and the same UIDVALIDITY;
- a second run imports nothing twice; a broken file is reported and skipped.
"""

import imaplib
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))
from client_util import Proxy, body_fetches, offlineimap_conf  # noqa: E402
from dovecot_util import DOVECOT, PASSWORD, Dovecot  # noqa: E402

ADDR = "alice@example.com"
ALICE_PW = "alice-Secret1"

pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot not installed")

FOLDERS = ["INBOX", "Sent", "Lists/rust", "Caf&AOk-"]


def message(i, subject):
    return (
        f"From: Sender {i} <s{i}@example.org>\r\nTo: {ADDR}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 7 Dec 2026 10:0{i % 10}:00 +0000\r\nMessage-ID: <m{i}@example.org>\r\n\r\n"
        f"Body of message {i}.\r\nSecond line.\r\n"
    ).encode()


@pytest.fixture
def dovecot():
    if shutil.which("dovecot") is None and DOVECOT is None:
        pytest.skip("no dovecot")
    d = Dovecot()
    yield d
    d.stop()


def imap_login(port, user, password):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(user, password)
    return c


def state(port, user, password, folders=FOLDERS):
    """{folder: (uidvalidity, uidnext, {uid: flags})}, subscriptions."""
    c = imap_login(port, user, password)
    out = {}
    for f in folders:
        typ, data = c.status(f'"{f}"', "(UIDVALIDITY UIDNEXT MESSAGES)")
        assert typ == "OK", (f, data)
        s = data[0].decode()
        uv = int(re.search(r"UIDVALIDITY (\d+)", s).group(1))
        un = int(re.search(r"UIDNEXT (\d+)", s).group(1))
        c.select(f'"{f}"', readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
        msgs = {}
        for item in data:
            if not item:
                continue
            line = item.decode() if isinstance(item, bytes) else item[0].decode()
            m = re.search(r"UID (\d+)", line)
            fl = re.search(r"FLAGS \(([^)]*)\)", line)
            if m and fl:
                msgs[int(m.group(1))] = set(fl.group(1).split()) - {"\\Recent"}
        out[f] = (uv, un, msgs)
        c.close()
    typ, data = c.lsub('""', "*")
    subs = sorted(re.search(rb'"?([^" ]+)"?$', l).group(1).decode() for l in data if l)
    c.logout()
    return out, subs


def bodies(port, user, password):
    """{(folder, uid): (octets, internal date, RFC822.SIZE)} of every message."""
    c = imap_login(port, user, password)
    out = {}
    for f in FOLDERS:
        c.select(f'"{f}"', readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[] INTERNALDATE RFC822.SIZE)")
        for i, item in enumerate(data):
            if isinstance(item, tuple):
                # Items after the literal come in the next element.
                tail = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
                head = (item[0] + tail).decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                size = int(re.search(r"RFC822\.SIZE (\d+)", head).group(1))
                out[(f, uid)] = (item[1], date, size)
        c.close()
    c.logout()
    return out


def pop3_uidls(port, user, password, retrieve=False):
    p = poplib.POP3("127.0.0.1", port)
    p.user(user)
    p.pass_(password)
    uidls = [l.decode() for l in p.uidl()[1]]
    if retrieve:
        for i in range(1, len(uidls) + 1):
            p.retr(i)
    p.quit()
    return uidls


def fill_dovecot(d):
    with smtplib.LMTP("127.0.0.1", d.lmtp) as l:
        for i in range(1, 6):
            l.sendmail("s@example.org", [ADDR], message(i, f"inbox {i}"))
    c = imap_login(d.imap, ADDR, PASSWORD)
    for f in FOLDERS[1:]:
        assert c.create(f'"{f}"')[0] == "OK"
    for i, (f, flags) in enumerate(
        [
            ("Sent", "(\\Seen)"),
            ("Sent", "(\\Seen \\Answered)"),
            ("Lists/rust", "(\\Seen $Label1)"),
            ("Lists/rust", "(\\Flagged project)"),
            ("Lists/rust", "()"),
            ("Lists/rust", "(\\Draft project $Label1)"),
            ("Caf&AOk-", "(\\Seen)"),
        ]
    ):
        assert c.append(f'"{f}"', flags, None, message(10 + i, f"{f} {i}"))[0] == "OK"
    # A gap: UID 2 of Lists/rust expunged.
    c.select('"Lists/rust"')
    c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Answered $Forwarded)")
    c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")  # deleted, never expunged
    c.uid("STORE", "3", "+FLAGS", "(\\Flagged)")
    c.unsubscribe("INBOX")
    for f in ("INBOX", "Lists/rust", "Sent"):
        assert c.subscribe(f'"{f}"')[0] == "OK"
    c.logout()


def mbsync(port, user, password, tmp_path, mail):
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""FSync no

IMAPAccount t
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
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
Create Near
Expunge None
SyncState *
"""
    )
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def offlineimap(port, password, tmp_path, mail):
    rc = offlineimap_conf(tmp_path, port, mail, (ADDR, password))
    r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr


def offlineimap_files(mail):
    """offlineimap's files with their names (which hold the UID, U=) and octets."""
    return sorted((str(p.relative_to(mail)), p.read_bytes()) for p in mail.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def local_files(mail):
    return sorted(str(p.relative_to(mail)).split(",U=")[0] for p in mail.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def test_import_keeps_uids_flags_keywords_subscriptions_and_uidls(dovecot, server, tmp_path):
    fill_dovecot(dovecot)
    # The POP3 client downloads and keeps everything (leave on server).
    before_uidls = pop3_uidls(dovecot.pop3, ADDR, PASSWORD, retrieve=True)
    assert len(before_uidls) == 5
    mail = tmp_path / "mail"
    mail.mkdir()
    has_mbsync = shutil.which("mbsync") is not None
    if has_mbsync:
        mbsync(dovecot.imap, ADDR, PASSWORD, tmp_path, mail)
        synced = local_files(mail)
        assert len(synced) == 5 + 2 + 3 + 1
    has_offlineimap = shutil.which("offlineimap") is not None
    omail = tmp_path / "omail"
    omail.mkdir()
    if has_offlineimap:
        offlineimap(dovecot.imap, PASSWORD, tmp_path, omail)
        osynced = offlineimap_files(omail)
        assert len(osynced) == 5 + 2 + 3 + 1
    before, before_subs = state(dovecot.imap, ADDR, PASSWORD)
    before_bodies = bodies(dovecot.imap, ADDR, PASSWORD)
    # The source really has what the test claims: a gap, a \Deleted message, keywords.
    assert 2 not in before["Lists/rust"][2] and before["Lists/rust"][1] == 5
    assert "\\Deleted" in before["INBOX"][2][2]
    assert "$Forwarded" in before["INBOX"][2][1]
    assert before_subs == ["INBOX", "Lists/rust", "Sent"]

    home = dovecot.maildir(ADDR)
    # A broken file: reported and skipped, the rest imported.
    (home / "cur" / "1700000000.broken.host:2,S").write_bytes(b"")
    r = server.cli("import", "maildir", ADDR, home)
    out = r.stdout.decode()
    assert "4 folders, 11 messages imported" in out, out
    assert "0 with new UIDs, 1 skipped" in out, out
    assert re.search(r"skipped INBOX/1700000000\.broken\.host:2,S: empty file", out), out

    after, after_subs = state(server.ports["imap"], ADDR, ALICE_PW)
    assert after == before
    assert after_subs == before_subs
    # The well-known name landed in the account's special-use folder.
    c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
    typ, data = c.list('""', "Sent")
    assert b"\\Sent" in data[0], data
    c.logout()

    assert pop3_uidls(server.ports["pop3"], ADDR, ALICE_PW) == before_uidls

    # Octets and internal dates: what Dovecot served is what Letterbox serves.
    assert bodies(server.ports["imap"], ADDR, ALICE_PW) == before_bodies

    if has_mbsync:
        proxy = Proxy(server.ports["imap"])
        try:
            mbsync(proxy.port, ADDR, ALICE_PW, tmp_path, mail)
            assert body_fetches(proxy.commands()) == []
        finally:
            proxy.close()
        assert local_files(mail) == synced
    if has_offlineimap:
        # offlineimap keeps its own state (UIDVALIDITY and UIDs per folder) from Dovecot.
        proxy = Proxy(server.ports["imap"])
        try:
            offlineimap(proxy.port, ALICE_PW, tmp_path, omail)
            cmds = proxy.commands()
        finally:
            proxy.close()
        assert sum(1 for c in cmds if re.search(rb"(?i)^\S+ (UID )?FETCH 1:\* \(FLAGS UID", c)) >= 4, cmds
        assert body_fetches(cmds) == []
        assert offlineimap_files(omail) == osynced

    # A QRESYNC client resumes with what it cached from Dovecot.
    uv = before["INBOX"][0]
    c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
    typ, _ = c._simple_command("ENABLE", "QRESYNC")
    assert typ == "OK"
    typ, data = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({uv} 1))")
    assert typ == "OK", data
    assert c.untagged_responses.get("OK") and any(
        f"UIDVALIDITY {uv}".encode() in x for x in c.untagged_responses["OK"]
    ), c.untagged_responses
    c.logout()

    # Nothing twice: without --merge refused, with it nothing new.
    r = server.cli("import", "maildir", ADDR, home, check=False)
    assert r.returncode != 0 and b"--merge" in r.stderr, r.stderr
    r = server.cli("import", "maildir", ADDR, home, "--merge")
    assert "0 messages imported (0 bytes), 11 already imported" in r.stdout.decode(), r.stdout
    assert state(server.ports["imap"], ADDR, ALICE_PW)[0] == before
    assert server.cli("check", "--deep").stdout.decode().strip() == "ok"
    # Usage is the sum of the sizes Dovecot reported.
    total = sum(before_bodies[k][2] for k in before_bodies)
    assert re.search(rf"quota: {total} bytes used", r.stdout.decode()), (total, r.stdout)


def test_import_resumes_after_interruption(dovecot, server, tmp_path):
    """An import killed (SIGKILL) part way: the rerun, without --merge since it resumes
    the same source, stores the rest, and no message twice."""
    n = 300
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp) as l:
        for i in range(1, n + 1):
            l.sendmail("s@example.org", [ADDR], message(i, f"inbox {i}"))
    c = imap_login(dovecot.imap, ADDR, PASSWORD)
    c.select("INBOX")  # Dovecot assigns UIDs when a client looks
    c.logout()
    before, _ = state(dovecot.imap, ADDR, PASSWORD, ["INBOX"])
    assert len(before["INBOX"][2]) == n
    home = dovecot.maildir(ADDR)
    from conftest import BIN

    p = subprocess.Popen(
        [str(BIN), "--config", str(server.config_path), "import", "maildir", ADDR, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while True:
        line = p.stderr.readline()
        assert line, "import ended without progress"
        if line.startswith(b"INBOX -> INBOX"):
            break
    p.kill()
    p.wait()
    partial, _ = state(server.ports["imap"], ADDR, ALICE_PW, ["INBOX"])
    got = len(partial["INBOX"][2])
    assert got < n, "the import finished before it could be interrupted"
    r = server.cli("import", "maildir", ADDR, home)
    out = r.stdout.decode()
    assert f"{n - got} messages imported" in out and f"{got} already imported" in out, out
    after, _ = state(server.ports["imap"], ADDR, ALICE_PW, ["INBOX"])
    assert after["INBOX"] == before["INBOX"]
    assert server.cli("check").stdout.decode().strip() == "ok"
