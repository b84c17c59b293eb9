"""SELECT and STATUS answered from the per-mailbox index the sessions of one server share
(issue 18): whatever changed while the index was cached (flags, keywords, arrivals,
expunges, a mailbox deleted and created again) shows in the next SELECT and STATUS
exactly as a fresh read of the store would give it (RFC 9051 6.3.2, 6.3.11; RFC 3501
2.3.2 for \\Recent)."""

import messages
from imap_util import Raw

MSG = messages.SIMPLE


def session(server):
    c = Raw(server)
    c.login()
    return c


def append(c, box="INBOX", n=1):
    for _ in range(n):
        r = c.cmd(b"APPEND %s {%d+}\r\n" % (box.encode(), len(MSG)) + MSG)
        assert b" OK " in r[-1], r


def untagged(lines, prefix):
    return [l for l in lines if l.startswith(prefix)]


def test_select_follows_changes_made_while_cached(server):
    a = session(server)
    append(a, n=5)
    r = a.cmd("SELECT INBOX")
    assert b"* 5 EXISTS" in r and b"* 5 RECENT" in r
    assert b"* OK [UNSEEN 1] First unseen" in r
    a.cmd("STORE 1:2 +FLAGS.SILENT (\\Seen)")
    a.cmd("STORE 3 +FLAGS.SILENT ($Work)")
    # A second session opens the state the first one left: \Recent was the first's.
    b = session(server)
    r = b.cmd("SELECT INBOX")
    assert b"* 5 EXISTS" in r and b"* 0 RECENT" in r
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)" in r
    assert b"* OK [UNSEEN 3] First unseen" in r
    assert b"* OK [UIDNEXT 6] Predicted next UID" in r
    # While both have it selected: an arrival, and message 3 expunged.
    append(session(server))
    a.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)")
    r = a.cmd("EXPUNGE")
    assert untagged(r, b"* 3 EXPUNGE"), r
    r = b.cmd("NOOP")
    assert r[:2] == [b"* 3 EXPUNGE", b"* 5 EXISTS"], r
    # A new session: UIDs 1 2 4 5 6, 4 the first unseen, $Work gone with message 3, and
    # the arrival recent to the session that noticed it first (a, at its EXPUNGE).
    c = session(server)
    r = c.cmd("SELECT INBOX")
    assert b"* 5 EXISTS" in r and b"* 0 RECENT" in r
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in r
    assert b"* OK [UNSEEN 3] First unseen" in r
    assert b"* OK [UIDNEXT 7] Predicted next UID" in r
    r = c.cmd("FETCH 1:* (UID FLAGS)")
    assert r[:-1] == [
        b"* 1 FETCH (UID 1 FLAGS (\\Seen))",
        b"* 2 FETCH (UID 2 FLAGS (\\Seen))",
        b"* 3 FETCH (UID 4 FLAGS ())",
        b"* 4 FETCH (UID 5 FLAGS ())",
        b"* 5 FETCH (UID 6 FLAGS ())",
    ], r
    # Changed by another session while cached: all seen now, no UNSEEN.
    b.cmd("STORE 3:5 +FLAGS.SILENT (\\Seen \\Flagged)")
    e = session(server)
    r = e.cmd("EXAMINE INBOX")
    assert not untagged(r, b"* OK [UNSEEN"), r
    r = e.cmd("FETCH 1:* (FLAGS)")
    assert r[2] == b"* 3 FETCH (FLAGS (\\Flagged \\Seen))", r


def test_status_from_index_equals_store_count(server):
    a = session(server)
    a.cmd("CREATE Box")
    append(a, "Box", 4)
    a.cmd("SELECT INBOX")
    # Box has no index yet: counted by the store.
    items = "(MESSAGES UIDNEXT UNSEEN RECENT SIZE DELETED DELETED-STORAGE HIGHESTMODSEQ)"
    before = untagged(a.cmd(f"STATUS Box {items}"), b"* STATUS")
    b = session(server)
    b.cmd("EXAMINE Box")
    # Now it has one (EXAMINE claims no \Recent: the four stay recent).
    after = untagged(a.cmd(f"STATUS Box {items}"), b"* STATUS")
    assert before == after, (before, after)
    assert b"MESSAGES 4 " in after[0] and b"RECENT 4 " in after[0], after
    # Changed while the index is cached: the same answer as a count.
    c = session(server)
    c.cmd("SELECT Box")
    c.cmd("STORE 1 +FLAGS.SILENT (\\Seen)")
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    append(a, "Box")
    r = untagged(a.cmd(f"STATUS Box {items}"), b"* STATUS")
    size = len(MSG)
    kib = (size + 1023) // 1024
    assert r[0].startswith(
        b"* STATUS Box (MESSAGES 5 UIDNEXT 6 UNSEEN 4 RECENT 1 SIZE %d DELETED 1 DELETED-STORAGE %d HIGHESTMODSEQ "
        % (5 * size, kib)
    ), r


def test_recreated_mailbox_is_read_anew(server):
    a = session(server)
    a.cmd("CREATE Box")
    append(a, "Box", 3)
    r = a.cmd("SELECT Box")
    assert b"* 3 EXISTS" in r
    a.cmd("UNSELECT")
    assert b" OK " in a.cmd("DELETE Box")[-1]
    a.cmd("CREATE Box")
    append(a, "Box")
    r = a.cmd("SELECT Box")
    assert b"* 1 EXISTS" in r and b"* OK [UIDNEXT 2] Predicted next UID" in r, r
    r = a.cmd("FETCH 1:* (UID)")
    assert r[:-1] == [b"* 1 FETCH (UID 1)"], r
