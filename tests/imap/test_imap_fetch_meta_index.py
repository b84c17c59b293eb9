"""FETCH INTERNALDATE, RFC822.SIZE and MODSEQ from IMAP's per-mailbox index (issue 18,
crates/imap/src/commands/fetch/mod.rs `metas`, crates/imap/src/session/index.rs
`Snapshot::meta_of`) instead of the store's message rows: the answers are the ones the
rows give (EMAILID beside them reads the rows: FETCH's store path), also after another
session (in cluster mode: on the other node) changed flags, expunged and appended
behind this session's back: the index is brought to the mailbox's HIGHESTMODSEQ first
(RFC 7162 3.1.1), so MODSEQ is the message's current one."""

import re

from imap_util import Raw
from test_imap_preload_index import other_node, restart_with

QUERY = "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE MODSEQ)"
EMAILID = re.compile(rb" EMAILID \([^)]*\)")


def message(i):
    return (
        f"From: a{i}@example.org\r\nTo: alice@example.com\r\nSubject: m{i}\r\n"
        f"Date: Tue, 24 Nov 2026 10:0{i}:00 +0100\r\nMessage-ID: <m{i}@example.org>\r\n\r\n"
        + "body line\r\n" * (i * 7 + 1)
    ).encode()


def answers(c, query):
    r = c.cmd(query)
    assert b" OK " in r[-1], r
    return [l for l in r[:-1] if b" FETCH (" in l]


def from_rows(c, query):
    """The same answers read from the store's rows (EMAILID needs them), EMAILID cut out."""
    return [EMAILID.sub(b"", l) for l in answers(c, query[:-1] + " EMAILID)")]


def modseq_of(lines, seq):
    for l in lines:
        if l.startswith(b"* %d FETCH " % seq):
            return int(re.search(rb"MODSEQ \((\d+)\)", l).group(1))
    raise AssertionError(f"no FETCH {seq} in {lines}")


def delivered_and_fetched(server, n):
    """Delivers n messages, selects INBOX; returns the session and its first answers,
    checked against the rows'."""
    for i in range(1, n + 1):
        server.deliver("alice@example.com", message(i))
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    got = answers(c, QUERY)
    assert len(got) == n
    assert got == from_rows(c, QUERY)
    return c, got


def test_fetch_metadata_from_the_index_is_current(server):
    c, first = delivered_and_fetched(server, 6)
    sizes = [int(re.search(rb"RFC822.SIZE (\d+)", l).group(1)) for l in first]
    assert sizes == sorted(sizes) and len(set(sizes)) == 6

    # Another session changes flags, expunges and appends; this one is told nothing yet.
    o = other_node(server)
    assert o.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    stored = o.cmd("STORE 2 +FLAGS (\\Flagged)")
    assert stored[-1].endswith(b"OK STORE completed"), stored
    flagged = modseq_of(answers(o, "FETCH 2 (MODSEQ)"), 2)
    assert flagged > modseq_of(first, 2)
    assert o.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)")[-1].endswith(b"OK STORE completed")
    assert b" OK " in o.cmd("EXPUNGE")[-1]
    new = message(9)
    o.send(b"a1 APPEND INBOX {%d}\r\n" % len(new))
    assert o.line().startswith(b"+")
    o.send(new + b"\r\n")
    assert b"OK" in o.until("a1")[-1]

    # Message 4 is still in this session's view: the store says it is gone.
    r = c.cmd("FETCH 1:6 (INTERNALDATE RFC822.SIZE MODSEQ)")
    assert r[-1].endswith(b"Some messages were expunged"), r
    # (after the news of the other session: EXISTS, its FETCH FLAGS)
    got = [l for l in r[:-1] if b" FETCH (INTERNALDATE" in l]
    assert [l.split(b" ")[1] for l in got] == [b"1", b"2", b"3", b"5", b"6"]
    assert modseq_of(got, 2) == flagged
    assert [re.search(rb"INTERNALDATE \"[^\"]*\" RFC822.SIZE \d+", l).group(0) for l in got] == [
        re.search(rb"INTERNALDATE \"[^\"]*\" RFC822.SIZE \d+", first[i]).group(0)
        for i in (0, 1, 2, 4, 5)
    ]
    assert b" OK " in c.cmd("NOOP")[-1]
    after = answers(c, QUERY)
    assert len(after) == 6
    assert after == from_rows(c, QUERY)
    assert modseq_of(after, 2) == flagged
    assert re.search(rb"RFC822.SIZE %d " % len(new), after[-1]), after[-1]
    # One message at a time, out of order: the same.
    single = [answers(c, f"FETCH {n} (FLAGS INTERNALDATE RFC822.SIZE MODSEQ)")[0] for n in (6, 1, 3)]
    assert single == [after[5], after[0], after[2]]
    o.close()
    c.close()


def test_fetch_metadata_without_an_index_cache(server):
    """`[imap] index_cache_messages = 0` keeps no index: the rows answer."""
    restart_with(server, **{"imap.index_cache_messages": 0})
    c, _ = delivered_and_fetched(server, 3)
    c.close()
