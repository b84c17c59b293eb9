"""SELECT and STATUS answered from the per-mailbox index the sessions of one server share
(issue 18): whatever changed while the index was cached (flags, keywords, arrivals,
expunges, a mailbox deleted and created again) shows in the next SELECT and STATUS
exactly as a fresh read of the store would give it (RFC 9051 6.3.2, 6.3.11; RFC 3501
2.3.2 for \\Recent)."""

import re
import sqlite3
import sys
from pathlib import Path

import messages
from imap_util import Raw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import CLUSTER  # noqa: E402

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


def fetch_all(c):
    """SELECT's answer (without what differs between sessions: RECENT) and every
    message's UID, flags, size, INTERNALDATE and MODSEQ."""
    r = c.cmd("SELECT INBOX (CONDSTORE)")
    assert r[-1].endswith(b"OK [READ-WRITE] SELECT completed"), r
    head = [l for l in r[:-1] if not l.endswith(b" RECENT")]
    f = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE MODSEQ)")
    assert f[-1].endswith(b"OK FETCH completed"), f
    # \Recent belongs to one session.
    return head, [re.sub(rb" \)", b")", re.sub(rb"\\Recent ?", b"", l)) for l in f[:-1]]


def store_sql(server, query, pg=None):
    """Runs `query` on the server's store: its SQLite file, or in cluster mode
    (tests/cluster_mode.py) its PostgreSQL database (`pg`, where the dialects differ).
    Returns the rows, numbers as ints."""
    if CLUSTER:
        import cluster_mode

        out = cluster_mode.sql(server, pg or query)
        if query.split()[0].upper() != "SELECT":
            return []
        return [tuple(int(x) if x.isdigit() else x for x in l.split("|")) for l in out.splitlines() if l]
    db = sqlite3.connect(server.data_dir / "store.db")
    try:
        rows = db.execute(query).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def logged(server, pattern):
    """The server logged `pattern` since its last start."""
    return re.search(pattern, server.read_log()[server.log_start:]) is not None


def test_index_stored_for_the_next_start(server, tmp_path):
    """The first SELECT after a start reads the copy of the index the store keeps and
    what changed since it was made (flags, keywords, arrivals, expunges), and answers
    exactly as a whole read of the mailbox does."""
    n = 1_200  # index::SAVE_MIN_MESSAGES (1,000) or more: the copy is kept
    mbox = tmp_path / "big.mbox"
    with open(mbox, "w") as f:
        for i in range(n):
            f.write(
                f"From a@example.org Tue Nov 14 12:00:00 2023\nFrom: a@example.org\n"
                f"Subject: m{i}\nMessage-ID: <{i}@x>\n{'Status: RO' + chr(10) if i % 3 == 0 else ''}\nbody {i}\n\n"
            )
    server.stop()
    server.cli("import", "mbox", "alice@example.com", str(mbox))
    server.start()
    c = session(server)
    first = fetch_all(c)
    assert b"* %d EXISTS" % n in first[0]
    ((kept,),) = store_sql(server, "SELECT modseq FROM mailbox_index")
    # Changes after the copy was made: flags, a keyword, an expunge, an arrival.
    c.cmd("STORE 5:9 +FLAGS.SILENT (\\Seen $Work)")
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)")
    assert c.cmd("EXPUNGE")[-1].endswith(b"OK EXPUNGE completed")
    append(c)
    c.cmd("STORE 10 +FLAGS.SILENT (\\Deleted)")
    want = fetch_all(c)
    assert want != first and b"* %d EXISTS" % n in want[0]
    c.cmd("LOGOUT")
    ((still,),) = store_sql(server, "SELECT modseq FROM mailbox_index")
    assert still == kept, "the copy is not rewritten for a few changes"
    assert not logged(server, "from its stored index")
    # From the copy and the changes since.
    server.restart()
    c = session(server)
    assert fetch_all(c) == want
    assert logged(server, r"opened from its stored index and \d+ changes since")
    c.cmd("LOGOUT")
    # Without the copy (a whole read): the same.
    server.stop()
    store_sql(server, "DELETE FROM mailbox_index")
    server.start()
    c = session(server)
    assert fetch_all(c) == want
    assert not logged(server, "from its stored index")
    c.cmd("LOGOUT")
    # A copy that does not decode is ignored.
    server.stop()
    store_sql(server, "UPDATE mailbox_index SET data = x'00'", pg="UPDATE mailbox_index SET data = '\\x00'::bytea")
    assert store_sql(server, "SELECT count(*) FROM mailbox_index") == [(1,)]
    server.start()
    c = session(server)
    assert fetch_all(c) == want
    assert logged(server, "does not decode") and not logged(server, "from its stored index")
    c.cmd("LOGOUT")
    # A copy of the older form without counters (LBI2, written before the counters were
    # kept) is read whole once, logged as such, not as a copy that does not decode.
    server.stop()
    store_sql(server, "UPDATE mailbox_index SET data = x'4c424932'", pg="UPDATE mailbox_index SET data = '\\x4c424932'::bytea")
    server.start()
    c = session(server)
    assert fetch_all(c) == want
    assert logged(server, "of an older form") and not logged(server, "does not decode")
