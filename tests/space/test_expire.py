"""Trash and Junk expiry (issue 15) through the real binary: `letterbox expire run
--now`, `[expire]` defaults, per-domain and per-account policies, and what IMAP
sessions see (EXPUNGE to a selected/IDLE session, VANISHED to a QRESYNC client, the
quota freed). The age counts from when the message was saved into the folder: a MOVE
into Trash keeps the old internal date, and that must not expunge it early."""

import re
import time

import sys
from pathlib import Path

# The IMAP helpers (Raw, login) live beside the IMAP tests. (Not in a conftest.py here:
# a second conftest module would shadow tests/conftest.py for `from conftest import`.)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))

from imap_util import ALICE, BOB, Raw

DAY = 86400
OLD_DATE = '"01-Jan-2020 10:00:00 +0000"'


def msg(subject, body=b"some text\r\n"):
    return b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: " + subject.encode() + b"\r\n\r\n" + body


def append(c, mailbox, message, date=None):
    d = f" {date}" if date else ""
    r = c.cmd(f"APPEND {mailbox} (\\Seen){d} {{{len(message)}+}}\r\n".encode() + message)
    assert b" OK " in r[-1], r
    return int(re.search(rb"APPENDUID \d+ (\d+)", r[-1]).group(1))


def usage(c):
    r = c.cmd('GETQUOTAROOT INBOX')
    line = next(l for l in r if l.startswith(b"* QUOTA "))
    return int(re.search(rb"STORAGE (\d+) ", line).group(1))


def uids(server, user, mailbox):
    return server.uids(user, mailbox)


def expire(server, days_from_now):
    out = server.cli("expire", "run", "--now", int(time.time()) + days_from_now * DAY).stdout.decode()
    return out


def test_trash_expires_from_the_save_date_and_sessions_see_it(make_server):
    server = make_server(**{"expire.junk": 0})
    c = Raw(server)
    c.login()
    # A message from 2020 moved into Trash today: its internal date stays 2020.
    old = append(c, "INBOX", msg("old, moved to trash", b"x" * 5000 + b"\r\n"), OLD_DATE)
    keep = append(c, "INBOX", msg("stays in inbox"), OLD_DATE)
    c.cmd("SELECT INBOX")
    r = c.cmd(f"UID MOVE {old} Trash")
    assert b" OK " in r[-1], r
    trash_uid = int(re.search(rb"COPYUID \d+ \d+ (\d+)", b"".join(r)).group(1))
    junk_uid = append(c, "Junk", msg("spam"), OLD_DATE)
    r = c.cmd("UID FETCH %d INTERNALDATE" % keep)
    assert b'INTERNALDATE "01-Jan-2020 10:00:00 +0000"' in b"".join(r)
    # The internal date of the message in Trash is 2020, too.
    c.cmd("SELECT Trash")
    r = c.cmd(f"UID FETCH {trash_uid} INTERNALDATE")
    assert b'INTERNALDATE "01-Jan-2020 10:00:00 +0000"' in b"".join(r)
    r = c.cmd("STATUS Trash (HIGHESTMODSEQ UIDVALIDITY)")
    st = b"".join(r)
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", st).group(1))
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", st).group(1))

    # Another session has Trash selected and idles.
    idle = Raw(server)
    idle.login()
    idle.cmd("SELECT Trash")
    idle.send(b"i1 IDLE\r\n")
    assert idle.line() == b"+ idling"

    before = usage(c)
    # 29 days after the move: nothing goes, although the internal date is years old.
    out = expire(server, 29)
    assert out.strip().splitlines()[-1] == "expunged 0 message(s), 0 octets", out
    assert uids(server, ALICE[0], "Trash") == [trash_uid]

    # 31 days: Trash is emptied; Junk (off: 0) and INBOX are untouched.
    size = len(server.message(ALICE[0], "Trash", trash_uid))
    out = expire(server, 31)
    assert f"alice@example.com Trash: expunged 1 message(s), {size} octets" in out, out
    assert out.strip().splitlines()[-1] == f"expunged 1 message(s), {size} octets", out
    assert uids(server, ALICE[0], "Trash") == []
    assert uids(server, ALICE[0], "Junk") == [junk_uid]
    assert uids(server, ALICE[0], "INBOX") == [keep]

    # The IDLE session hears of it (serve notices the CLI's commit within its poll).
    idle.sock.settimeout(10)
    assert idle.line() == b"* 1 EXPUNGE"
    idle.send(b"DONE\r\n")
    assert idle.line() == b"i1 OK IDLE terminated"

    # The quota is freed by the message's size (GETQUOTAROOT reports KiB, RFC 9208).
    after = usage(c)
    assert before - after == (size + 1023) // 1024 or before - after == size // 1024, (before, after, size)
    r = server.cli("quota", "show", ALICE[0]).stdout.decode()
    assert str(sum(len(server.message(ALICE[0], m, u)) for m in ("INBOX", "Junk") for u in uids(server, ALICE[0], m))) in r, r

    # A QRESYNC client resyncing Trash learns the UID vanished (RFC 7162 3.2.5.2).
    q = Raw(server)
    q.login()
    assert b" OK " in q.cmd("ENABLE QRESYNC")[-1]
    r = q.cmd(f"SELECT Trash (QRESYNC ({uidvalidity} {modseq}))")
    assert f"* VANISHED (EARLIER) {trash_uid}".encode() in r, r

    # Much later, still only Trash expires: Junk is off, INBOX never expires.
    expire(server, 3650)
    assert uids(server, ALICE[0], "Junk") == [junk_uid]
    assert uids(server, ALICE[0], "INBOX") == [keep]
    assert server.cli("check").returncode == 0


def test_policies_per_domain_and_account(server):
    for user in (ALICE, BOB):
        c = Raw(server)
        c.login(user)
        append(c, "Trash", msg("deleted"))
        append(c, "Junk", msg("spam"))
    server.cli("domain", "add", "example.net")
    server.cli("expire", "set", "example.com", "trash", "7d")
    server.cli("expire", "set", "bob@example.com", "trash", "0")
    server.cli("expire", "set", "bob@example.com", "junk", "2d")
    out = server.cli("expire", "show").stdout.decode().splitlines()
    assert out == [
        "(config) trash=30d junk=30d",
        "bob@example.com trash=0 junk=2d",
        "example.com trash=7d junk=default",
    ], out

    # Day 3: Bob's Junk (2d) goes; nothing else.
    out = expire(server, 3)
    assert out.splitlines()[:-1] == [l for l in out.splitlines()[:-1] if l.startswith("bob@example.com Junk:")], out
    assert len(out.splitlines()) == 2, out
    assert uids(server, BOB[0], "Junk") == []
    # Day 8: Alice's Trash (the domain's 7d); Bob's Trash is off; Alice's Junk (30d) stays.
    out = expire(server, 8)
    assert [l.split(":")[0] for l in out.splitlines()[:-1]] == ["alice@example.com Trash"], out
    assert uids(server, BOB[0], "Trash") == [1]
    assert uids(server, ALICE[0], "Junk") == [1]
    # Back to the default: Bob's Trash follows the domain again.
    server.cli("expire", "set", "bob@example.com", "trash", "default")
    assert server.cli("expire", "show").stdout.decode().splitlines()[1] == "bob@example.com trash=default junk=2d"
    expire(server, 8)
    assert uids(server, BOB[0], "Trash") == []
    # Day 31: Alice's Junk follows [expire] junk.
    expire(server, 31)
    assert uids(server, ALICE[0], "Junk") == []


def test_bad_settings_are_refused(make_server):
    server = make_server(start=False)
    for args, why in [
        (("expire", "set", "nobody@example.com", "trash", "7d"), "nobody@example.com"),
        (("expire", "set", "example.org", "trash", "7d"), "example.org"),
        (("expire", "set", "example.com", "inbox", "7d"), "trash or junk"),
        (("expire", "set", "example.com", "trash", "7"), "malformed expiry"),
    ]:
        r = server.cli(*args, check=False)
        assert r.returncode != 0, args
        assert why in r.stderr.decode(), r.stderr
    server.config_path.write_text(server.config_path.read_text() + '\n[expire]\ntrash = "1y"\n')
    r = server.cli("expire", "run", check=False)
    assert r.returncode == 78, r
    assert "expire.trash" in r.stderr.decode(), r.stderr
