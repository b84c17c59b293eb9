"""Several sessions on one mailbox: IDLE hears of new mail at once, flag changes and
expunges reach the others, and EXPUNGE is never sent during FETCH, STORE or SEARCH."""

import time

import messages
from imap_util import BOB, Raw, login

MSG = messages.SIMPLE


def selected(server):
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    return c


def test_idle_hears_append_from_another_session(server):
    a = selected(server)
    # The appending session has no mailbox selected: \Recent goes to the one session that
    # notices the arrival while selected read-write (RFC 3501 2.3.2), here the IDLE one.
    b = Raw(server)
    b.login()
    a.send(b"i1 IDLE\r\n")
    assert a.line() == b"+ idling"
    t0 = time.monotonic()
    b.cmd(b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
    assert a.line() == b"* 1 EXISTS"
    assert a.line() == b"* 1 RECENT"
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed
    b.cmd("SELECT INBOX")
    # Flag change and expunge by the other session arrive too.
    b.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted \\Recent))"
    b.cmd("EXPUNGE")
    assert a.line() == b"* 1 EXPUNGE"
    a.send(b"DONE\r\n")
    assert a.line() == b"i1 OK IDLE terminated"


def test_idle_latency_for_delivery(server):
    a = selected(server)
    a.send(b"i1 IDLE\r\n")
    assert a.line() == b"+ idling"
    times = []
    for i in range(3):
        t0 = time.monotonic()
        b = Raw(server)
        b.login()
        b.cmd(b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
        t1 = time.monotonic()
        assert a.line() == b"* %d EXISTS" % (i + 1)
        times.append(time.monotonic() - t1)
        a.line()  # RECENT
    # Told within 50 ms of the store's acknowledgement (loopback, debug build: generous).
    assert min(times) < 0.05, times


def test_idle_hears_mail_another_process_delivered(server):
    """`letterbox deliver` runs as its own process; serve notices its commit (and a
    wake-up is the same for any other process's commit) within its poll."""
    a = selected(server)
    a.send(b"i1 IDLE\r\n")
    assert a.line() == b"+ idling"
    a.sock.settimeout(5)
    for i in range(2):
        t0 = time.monotonic()
        server.deliver("alice@example.com", MSG)
        assert a.line() == b"* %d EXISTS" % (i + 1)
        assert a.line() == b"* %d RECENT" % (i + 1)
        # The watcher looks every 500 ms; the CLI process itself takes part of it.
        assert time.monotonic() - t0 < 3.0
    a.send(b"DONE\r\n")
    assert a.line() == b"i1 OK IDLE terminated"
    # Nothing more is pending: the wake-ups announced exactly the two messages.
    assert a.cmd("NOOP") == [b"t3 OK NOOP completed"]


def test_no_expunge_during_fetch_store_search(server):
    for _ in range(3):
        server.deliver("alice@example.com", MSG)
    a = selected(server)
    b = selected(server)
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.cmd("EXPUNGE")
    # FETCH, STORE and SEARCH may not announce the expunge; message 2 stays numbered.
    r = a.cmd("FETCH 1:3 (UID)")
    assert r == [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)", b"t3 OK [EXPUNGEISSUED] Some messages were expunged"]
    r = a.cmd("STORE 3 +FLAGS (\\Seen)")
    assert b"* 2 EXPUNGE" not in r and r[0] == b"* 3 FETCH (FLAGS (\\Seen \\Recent))", r
    r = a.cmd("SEARCH ALL")
    assert r == [b"* SEARCH 1 3", b"t5 OK SEARCH completed"]
    # NOOP (or any UID command) may.
    assert a.cmd("NOOP") == [b"* 2 EXPUNGE", b"t6 OK NOOP completed"]
    assert a.cmd("FETCH 2 (UID)") == [b"* 2 FETCH (UID 3)", b"t7 OK FETCH completed"]


def test_uid_command_may_expunge_and_new_mail_shows(server):
    server.deliver("alice@example.com", MSG)
    server.deliver("alice@example.com", MSG)
    a = selected(server)
    b = selected(server)
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("EXPUNGE")
    b.cmd(b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
    r = a.cmd("UID FETCH 1:* (FLAGS)")
    assert r[0] == b"* 1 EXPUNGE"
    assert r[1] == b"* 2 EXISTS"
    assert r[-1] == b"t3 OK FETCH completed"


def test_three_sessions_and_folders(server):
    a, b, c = selected(server), selected(server), selected(server)
    a.cmd("CREATE Shared/Reports")
    assert b'"/" Shared/Reports' in b"".join(b.cmd('LIST "" Shared/*'))
    a.cmd(b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
    assert b.cmd("NOOP")[0] == b"* 1 EXISTS"
    assert c.cmd("NOOP")[0] == b"* 1 EXISTS"
    b.cmd("MOVE 1 Shared/Reports")
    assert a.cmd("NOOP")[0] == b"* 1 EXPUNGE"
    assert c.cmd("CHECK")[0] == b"* 1 EXPUNGE"
    # Another account never hears of alice's mailbox.
    d = Raw(server)
    d.login(BOB)
    d.cmd("SELECT INBOX")
    assert d.cmd("NOOP") == [b"t3 OK NOOP completed"]


def test_selected_mailbox_deleted_by_other_session(server):
    a = Raw(server)
    a.login()
    a.cmd("CREATE Temp")
    a.cmd("SELECT Temp")
    b = Raw(server)
    b.login()
    b.cmd("DELETE Temp")
    a.send(b"t9 NOOP\r\n")
    assert a.line() == b"* BYE Selected mailbox was deleted"
