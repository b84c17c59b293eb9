"""The shared mailbox indexes preloaded after a start (issue 18, `[imap]
preload_index_messages`, crates/imap/src/session/index.rs `preload`): the first SELECT
of a preloaded mailbox does not read the store's copy of its index, and answers exactly
as a whole read of the mailbox does (RFC 9051 6.3.2: EXISTS, FLAGS, UIDNEXT, UNSEEN;
RFC 7162 3.1.1: HIGHESTMODSEQ; RFC 3501 2.3.2: \\Recent claimed by one session), whatever
changed between the copy's write and the restart, during the preload or after it (in
cluster mode, on the other node)."""

import re
import socket
import sys
import time
from pathlib import Path

from imap_util import Raw
from test_imap_shared_index import fetch_all, logged, session, store_sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import CLUSTER  # noqa: E402

N = 1_200  # index::SAVE_MIN_MESSAGES (1,000) or more: the store keeps a copy
PRELOADED = r"imap: preloaded the index of (\d+) mailboxes \((\d+) messages\)"
FROM_COPY = "opened from its stored index"


def import_box(server, tmp_path, folder="INBOX", n=N):
    mbox = tmp_path / f"{folder}.mbox"
    with open(mbox, "w") as f:
        for i in range(n):
            seen = "Status: RO\n" if i % 3 == 0 else ""
            f.write(
                f"From a@example.org Tue Nov 14 12:00:00 2023\nFrom: a@example.org\n"
                f"Subject: m{i}\nMessage-ID: <{folder}{i}@x>\n{seen}\nbody {i}\n\n"
            )
    merge = [] if folder == "INBOX" else ["--merge"]
    server.cli("import", "mbox", "alice@example.com", str(mbox), "--folder", folder, *merge)


def preloads(server, timeout=20):
    """Waits for the preload's log line(s) of this start (one per node); returns them
    as (mailboxes, messages)."""
    want = 2 if CLUSTER else 1
    deadline = time.time() + timeout
    while True:
        got = re.findall(PRELOADED, server.read_log()[server.log_start:])
        if len(got) >= want or time.time() > deadline:
            return [(int(a), int(b)) for a, b in got]
        time.sleep(0.05)


def other_node(server):
    """A session on the node that does not serve the test's IMAP port (cluster mode),
    else another session on the one server."""
    if not CLUSTER:
        return session(server)
    import cluster_mode

    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((cluster_mode.OTHER_HOST, server.require("imap")), timeout=10)
    c.buf, c.n = b"", 0
    c.greeting = c.line()
    c.login()
    return c


def copies(server, n, timeout=10):
    """Waits until the store keeps `n` index copies (written lazily, without fsync)."""
    deadline = time.time() + timeout
    while store_sql(server, "SELECT count(*) FROM mailbox_index") != [(n,)]:
        assert time.time() < deadline, "index copies not written"
        time.sleep(0.05)


def recent(lines):
    return [l for l in lines if l.endswith(b" RECENT")]


def restart_with(server, **overrides):
    server.stop()
    server.overrides.update(overrides)
    server.write_config()
    server.start()


def test_preloaded_index_answers_as_a_whole_read(server, tmp_path):
    server.stop()
    import_box(server, tmp_path)
    import_box(server, tmp_path, "Archive", 1_100)
    server.start()
    c = session(server)
    fetch_all(c)
    c.cmd("EXAMINE Archive")
    copies(server, 2)
    # Changes after the copies were made: flags, a keyword, an expunge, an arrival.
    c.cmd("SELECT INBOX")
    c.cmd("STORE 5:9 +FLAGS.SILENT (\\Seen $Work)")
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)")
    assert c.cmd("EXPUNGE")[-1].endswith(b"OK EXPUNGE completed")
    c.cmd("LOGOUT")
    server.deliver("alice@example.com", b"Subject: before the restart\r\n\r\nx\r\n")

    server.restart()
    # Changes right after the start, while the preload may still run.
    o = other_node(server)
    o.cmd("SELECT INBOX")
    o.cmd("STORE 20:24 +FLAGS.SILENT (\\Flagged $Later)")
    o.cmd("STORE 30 +FLAGS.SILENT (\\Deleted)")
    assert o.cmd("EXPUNGE")[-1].endswith(b"OK EXPUNGE completed")
    o.cmd("LOGOUT")
    loaded = preloads(server)
    # Both mailboxes, unless that SELECT was first for INBOX (then it is left as it is).
    assert loaded and all(m in (1, 2) for m, _ in loaded), loaded
    # After the preload: from another process (the admin command) and (in cluster mode)
    # the other node.
    server.deliver("alice@example.com", b"Subject: after the preload\r\n\r\ny\r\n")
    o = other_node(server)
    o.cmd("EXAMINE INBOX")
    o.cmd("CLOSE")
    o.cmd("SELECT Archive")
    o.cmd("STORE 1:3 +FLAGS.SILENT (\\Answered)")
    o.cmd("LOGOUT")

    mark = len(server.read_log())
    c = session(server)
    head = c.cmd("SELECT INBOX (CONDSTORE)")
    # The delivery no session saw is recent to the first session only (the other one
    # came before the first SELECT after the start).
    assert recent(head) == [b"* 1 RECENT"], head
    got = fetch_all(c)
    got_archive = fetch_all_box(c, "Archive")
    c.cmd("LOGOUT")
    exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(got[0])).group(1))
    assert exists == N
    # These SELECTs read no stored copy: the snapshots were in memory already.
    assert FROM_COPY not in server.read_log()[mark:]
    d = session(server)
    assert recent(d.cmd("SELECT INBOX")) == [b"* 0 RECENT"]
    d.cmd("LOGOUT")

    # Without the preload, the first SELECT reads the copy: the same answers.
    restart_with(server, **{"imap.preload_index_messages": 0})
    c = session(server)
    assert fetch_all(c) == got
    assert fetch_all_box(c, "Archive") == got_archive
    c.cmd("LOGOUT")
    assert not logged(server, "preloaded the index")
    assert logged(server, FROM_COPY)
    # Without any copy (a whole read): the same.
    server.stop()
    store_sql(server, "DELETE FROM mailbox_index")
    server.start()
    c = session(server)
    assert fetch_all(c) == got
    assert fetch_all_box(c, "Archive") == got_archive
    c.cmd("LOGOUT")
    assert not logged(server, FROM_COPY)


def fetch_all_box(c, box):
    r = c.cmd(f"SELECT {box} (CONDSTORE)")
    assert r[-1].endswith(b"OK [READ-WRITE] SELECT completed"), r
    head = [l for l in r[:-1] if not l.endswith(b" RECENT")]
    f = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE MODSEQ)")
    assert f[-1].endswith(b"OK FETCH completed"), f
    return head, [re.sub(rb" \)", b")", re.sub(rb"\\Recent ?", b"", l)) for l in f[:-1]]


def test_preload_budget(server, tmp_path):
    """Past the budget, a copy is not preloaded (largest first); 0 preloads none."""
    server.stop()
    import_box(server, tmp_path)
    import_box(server, tmp_path, "Archive", 1_100)
    server.start()
    c = session(server)
    c.cmd("EXAMINE INBOX")
    c.cmd("EXAMINE Archive")
    c.cmd("LOGOUT")
    copies(server, 2)
    # Room for the smaller one only: the larger is skipped, the smaller loaded; the
    # first SELECT of the one preloaded reads no copy, of the other it does.
    restart_with(server, **{"imap.preload_index_messages": 1_150})
    assert set(preloads(server)) == {(1, 1_100)}
    mark = len(server.read_log())
    c = session(server)
    c.cmd("EXAMINE Archive")
    assert FROM_COPY not in server.read_log()[mark:]
    c.cmd("EXAMINE INBOX")
    assert FROM_COPY in server.read_log()[mark:]
    c.cmd("LOGOUT")
    restart_with(server, **{"imap.preload_index_messages": 0})
    c = session(server)
    c.cmd("LOGOUT")
    assert not logged(server, "preloaded the index")
    # Never past the cache's own bound.
    restart_with(server, **{"imap.preload_index_messages": 1_000_000, "imap.index_cache_messages": 1_250})
    assert set(preloads(server)) == {(1, N)}
