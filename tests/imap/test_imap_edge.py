"""Edge cases: renaming the selected mailbox and INBOX while selected, literal8 APPEND,
configured special-use aliases, pipelining, IDLE without a mailbox, \\Recent."""

import re
import time

import messages
from imap_util import Raw



def no_id(lines):
    """Response lines without CREATE's `[MAILBOXID (...)]` code (RFC 8474; its value is
    checked in test_imap_sort_thread.py)."""
    return [re.sub(rb"\[MAILBOXID \([A-Za-z0-9_-]+\)\] ", b"", l) for l in lines]

def test_rename_selected_and_inbox_while_selected(server):
    server.deliver("alice@example.com", messages.SIMPLE)
    server.deliver("alice@example.com", messages.SIMPLE)
    c = Raw(server)
    c.login()
    c.cmd("CREATE Box")
    c.cmd(b"APPEND Box {%d+}\r\n" % len(messages.SIMPLE) + messages.SIMPLE)
    c.cmd("SELECT Box")
    assert c.cmd("RENAME Box Renamed")[-1] == b"t5 OK RENAME completed"
    # Still selected, by identity: the message is there.
    assert c.cmd("FETCH 1 (UID)") == [b"* 1 FETCH (UID 1)", b"t6 OK FETCH completed"]
    c.cmd("SELECT INBOX")
    other = Raw(server)
    other.login()
    assert other.cmd("RENAME INBOX Saved")[-1] == b"t2 OK RENAME completed"
    # The selected INBOX is emptied under this session: it hears of it.
    assert c.cmd("NOOP") == [b"* 1 EXPUNGE", b"* 1 EXPUNGE", b"t8 OK NOOP completed"]
    assert c.cmd("STATUS Saved (MESSAGES)")[0] == b"* STATUS Saved (MESSAGES 2)"


def test_literal8_append_keeps_octets(server):
    msg = b"From: x@y\r\nSubject: bin\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\xff\r\n"
    c = Raw(server)
    c.login()
    r = c.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(msg) + msg)
    assert r[-1].endswith(b"APPEND completed"), r
    c.cmd("SELECT INBOX")
    assert c.cmd("FETCH 1 BINARY.PEEK[]")[0] == b"* 1 FETCH (BINARY[] ~{%d}\r\n" % len(msg) + msg + b")"


def test_special_use_aliases_from_config(make_server):
    # A configured list replaces the default one; each alias leads to the special folder.
    server = make_server(**{"imap.special_use_aliases": [["Sent Items", "\\Sent"], ["Spam", "\\Junk"]]})
    c = Raw(server)
    c.login()
    assert no_id(c.cmd('CREATE "Sent Items"')) == [b"t2 OK CREATE completed: the \\Sent folder"]
    assert c.cmd('LIST "" "Sent Items"') == [b"t3 OK LIST completed"]
    c.cmd(b"APPEND spam {%d+}\r\n" % len(messages.SIMPLE) + messages.SIMPLE)
    assert server.uids("alice@example.com", "Junk") == [1]
    # Not in the configured list: an ordinary folder.
    assert no_id(c.cmd('CREATE "Deleted Items"')) == [b"t5 OK CREATE completed"]
    assert c.cmd('LIST "" "Deleted Items"')[0] == b'* LIST (\\HasNoChildren) "/" "Deleted Items"'


def test_pipelined_commands(server):
    c = Raw(server)
    c.send(b'a LOGIN alice@example.com "alice-Secret1"\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n')
    lines = []
    while True:
        l = c.line()
        lines.append(l)
        if l.startswith(b"d "):
            break
    tags = [l.split(b" ")[0] for l in lines if not l.startswith(b"*")]
    assert tags == [b"a", b"b", b"c", b"d"]
    assert lines[-2:] == [b"* BYE Logging out", b"d OK LOGOUT completed"]


def test_idle_without_mailbox_and_bad_done(server):
    c = Raw(server)
    c.login()
    c.send(b"i IDLE\r\n")
    assert c.line() == b"+ idling"
    server.deliver("alice@example.com", messages.SIMPLE)
    time.sleep(0.2)
    c.send(b"DONE\r\n")
    assert c.line() == b"i OK IDLE terminated"
    c.cmd("SELECT INBOX")
    c.send(b"j IDLE\r\n")
    assert c.line() == b"+ idling"
    c.send(b"NOPE\r\n")
    assert c.line() == b"j BAD Expected DONE"
    assert c.cmd("NOOP") == [b"t3 OK NOOP completed"]


def test_recent_is_claimed_by_one_select(server):
    server.deliver("alice@example.com", messages.SIMPLE)
    a = Raw(server)
    a.login()
    assert a.cmd("SELECT INBOX")[1] == b"* 1 RECENT"
    b = Raw(server)
    b.login()
    assert b.cmd("SELECT INBOX")[1] == b"* 0 RECENT"
    assert b.cmd("SEARCH RECENT") == [b"* SEARCH", b"t3 OK SEARCH completed"]
    assert a.cmd("SEARCH RECENT") == [b"* SEARCH 1", b"t3 OK SEARCH completed"]
    assert a.cmd("STATUS INBOX (RECENT)")[0] == b"* STATUS INBOX (RECENT 0)"


def test_recent_after_examine_claims_and_expunges(server):
    """RFC 3501 2.3.2: what EXAMINE saw as recent stays so for that session, an arrival
    claimed by another session is not recent to it, and marks follow their messages
    across an EXPUNGE (each session keeps its recent UIDs beside the shared list)."""
    for _ in range(2):
        server.deliver("alice@example.com", messages.SIMPLE)
    a, b = Raw(server), Raw(server)
    a.login()
    b.login()
    assert a.cmd("EXAMINE INBOX")[:2] == [b"* 2 EXISTS", b"* 2 RECENT"]
    assert b.cmd("SELECT INBOX")[:2] == [b"* 2 EXISTS", b"* 2 RECENT"]
    server.deliver("alice@example.com", messages.SIMPLE)
    assert b.cmd("NOOP")[:2] == [b"* 3 EXISTS", b"* 3 RECENT"]
    assert a.cmd("NOOP")[:1] == [b"* 3 EXISTS"]
    assert a.cmd("FETCH 1:3 FLAGS")[:3] == [
        b"* 1 FETCH (FLAGS (\\Recent))",
        b"* 2 FETCH (FLAGS (\\Recent))",
        b"* 3 FETCH (FLAGS ())",
    ]
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert b.cmd("EXPUNGE")[0] == b"* 1 EXPUNGE"
    assert b.cmd("FETCH 1:2 FLAGS")[:2] == [
        b"* 1 FETCH (FLAGS (\\Recent))",
        b"* 2 FETCH (FLAGS (\\Recent))",
    ]
    assert b.cmd("SEARCH RECENT")[0] == b"* SEARCH 1 2"
    assert a.cmd("NOOP")[0] == b"* 1 EXPUNGE"
    assert a.cmd("SEARCH RECENT")[0] == b"* SEARCH 1"
    assert a.cmd("SELECT INBOX")[:2] == [b"* 2 EXISTS", b"* 0 RECENT"]


def test_idle_keepalive(make_server):
    server = make_server(**{"imap.idle_keepalive": 1})
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    c.send(b"i IDLE\r\n")
    assert c.line() == b"+ idling"
    t0 = time.monotonic()
    assert c.line() == b"* OK Still here"
    assert 0.5 < time.monotonic() - t0 < 3
    c.send(b"DONE\r\n")
    assert c.line() == b"i OK IDLE terminated"
