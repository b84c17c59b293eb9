"""FETCH BODYSTRUCTURE (RFC 9051 7.5.2) from the rendered answers the message cache keeps
in memory and in the store (issue 18, crates/imap/src/session/cache.rs): after a
restart, an expunge, arrivals, with UTF8=ACCEPT (RFC 6855) and when the store's copy
does not decode, every answer is the one rendered from the message's MIME tree. The
first read ever of a mailbox reads the answers rendered at delivery
(crates/store/src/bodystructures.rs), for messages delivered over LMTP, APPENDed,
imported and copied, and falls back to the trees without them."""

import re
import smtplib
import time

import messages
import mime_corpus
from imap_util import Raw
from test_imap_shared_index import store_sql

# More than the cache's STORED_MIN (32) messages in one FETCH batch: the copy is kept.
SHAPES = [messages.SIMPLE, messages.GROUPS, messages.NESTED] + [
    v for k, v in sorted(vars(mime_corpus).items()) if k.isupper() and isinstance(v, bytes)
]
UTF8_NAME = (
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain; name=\"Gr\u00fc\u00dfe.txt\"\r\n\r\nhi\r\n--b--\r\n"
).encode()


def session(server, utf8=False):
    c = Raw(server)
    c.login()
    if utf8:
        assert c.cmd("ENABLE UTF8=ACCEPT")[-1].endswith(b"OK ENABLE completed")
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    return c


def append(c, n):
    for i in range(n):
        m = SHAPES[i % len(SHAPES)] if i % 7 else UTF8_NAME
        r = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m)
        assert b" OK " in r[-1], r


def bodystructures(c):
    """`FETCH 1:* (UID BODYSTRUCTURE)`: the answers kept rendered."""
    r = c.cmd("FETCH 1:* (UID BODYSTRUCTURE)")
    assert r[-1].endswith(b"OK FETCH completed"), r[-1]
    return r[:-1]


def from_trees(c):
    """The same answers rendered from the MIME trees (BODY beside BODYSTRUCTURE takes
    the general path), in the form of `bodystructures`."""
    r = c.cmd("FETCH 1:* (UID BODY BODYSTRUCTURE)")
    assert r[-1].endswith(b"OK FETCH completed"), r[-1]
    out = []
    for l in r[:-1]:
        m = re.match(rb"(\* \d+ FETCH \(UID \d+ )BODY \(.*\) (BODYSTRUCTURE \(.*)$", l, re.S)
        assert m, l
        out.append(m.group(1) + m.group(2))
    return out


def stored_chunks(server, kind):
    return store_sql(server, f"SELECT count(*) FROM message_cache WHERE kind = {kind}")[0][0]


def poll_stored_chunks(server, kind, want, timeout=10.0):
    """The store's copy is written after the FETCH's answer (off its path): polls until
    `want` chunks of `kind` are stored, or the timeout passes."""
    end = time.monotonic() + timeout
    while True:
        n = stored_chunks(server, kind)
        if n == want or time.monotonic() > end:
            return n
        time.sleep(0.05)


def test_bodystructure_kept_rendered_across_restarts(server):
    c = session(server)
    append(c, 60)
    c.cmd("LOGOUT")
    # As messages stored before the renderings kept at delivery (those are read first
    # and never repeated in IMAP's chunks): rendered from the trees, kept in chunks.
    set_rendered(server, None)
    c = session(server)
    want = from_trees(c)
    assert len(want) == 60
    assert bodystructures(c) == want
    assert bodystructures(c) == want, "from memory"
    assert poll_stored_chunks(server, 1, 1) == 1
    u = session(server, utf8=True)
    want8 = from_trees(u)
    assert want8 != want, "a UTF-8 parameter is written as a quoted string, not a literal"
    assert bodystructures(u) == want8
    c.cmd("LOGOUT")
    u.cmd("LOGOUT")
    # A new process: the store's copy, the same answers.
    server.restart()
    c = session(server)
    assert bodystructures(c) == want
    assert bodystructures(session(server, utf8=True)) == want8
    # Expunged messages and arrivals (rendered at delivery: read from their copies).
    c.cmd("STORE 2:5,20 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("EXPUNGE")[-1].endswith(b"OK EXPUNGE completed")
    append(c, 40)
    c.cmd("NOOP")
    want = from_trees(c)
    assert len(want) == 95
    assert bodystructures(c) == want
    c.cmd("LOGOUT")
    server.restart()
    assert bodystructures(session(server)) == want
    # A copy that does not decode is ignored (and written again).
    server.stop()
    store_sql(
        server,
        "UPDATE message_cache SET data = x'4c424231ff'",
        pg="UPDATE message_cache SET data = '\\x4c424231ff'::bytea",
    )
    server.start()
    c = session(server)
    assert bodystructures(c) == want
    assert bodystructures(c) == from_trees(c)
    server.restart()
    assert bodystructures(session(server)) == want


def rendered_at_delivery(server):
    """Blobs whose BODYSTRUCTURE the store keeps rendered."""
    return store_sql(
        server,
        "SELECT count(*) FROM blob_bodystructure",
        pg="SELECT count(*) FROM blobs WHERE bodystructure IS NOT NULL",
    )[0][0]


def set_rendered(server, octets, rows=True):
    """Replaces every blob's kept rendering (version and octets) and, with `rows`, every
    message row's copy of it (without: the rows have none, as rows inserted before the
    column), while stopped, and drops IMAP's stored chunks, so that the next first read
    takes what this wrote."""
    server.stop()
    store_sql(server, "DELETE FROM message_cache")
    if octets is None:
        store_sql(server, "DELETE FROM blob_bodystructure", pg="UPDATE blobs SET bodystructure = NULL")
        store_sql(server, "DELETE FROM message_bodystructure")
    else:
        store_sql(
            server,
            f"UPDATE blob_bodystructure SET data = x'{octets.hex()}'",
            pg=f"UPDATE blobs SET bodystructure = '\\x{octets.hex()}'::bytea",
        )
        store_sql(
            server,
            f"UPDATE message_bodystructure SET data = x'{octets.hex()}'" if rows
            else "DELETE FROM message_bodystructure",
            pg=f"UPDATE message_bodystructure SET data = '\\x{octets.hex()}'::bytea" if rows
            else "DELETE FROM message_bodystructure",
        )
    server.start()


def test_first_read_ever_from_renderings_kept_at_delivery(server, tmp_path):
    """A mailbox never read by IMAP (delivered over LMTP to two recipients, APPENDed,
    imported, copied; the server restarted): the first FETCH BODYSTRUCTURE reads the
    renderings kept at delivery and answers exactly as rendering the trees does, with
    and without UTF8=ACCEPT; without them (messages stored before, or another
    rendering's version) it renders the trees."""
    lmtp = SHAPES + [UTF8_NAME]
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as l:
        assert l.ehlo()[0] == 250
        for m in lmtp:
            # One transaction, two recipients: one reply each after the data (RFC 2033 4.2).
            assert l.mail("s@example.org")[0] == 250
            for rcpt in ("alice@example.com", "bob@example.com"):
                assert l.rcpt(rcpt)[0] == 250
            assert l.data(m)[0] == 250
            assert l.getreply()[0] == 250
    c = session(server)
    append(c, 14)
    assert c.cmd("CREATE Copies")[-1].endswith(b"CREATE completed")
    assert b" OK " in c.cmd("COPY 1:* Copies")[-1]
    c.cmd("LOGOUT")
    mbox = tmp_path / "in.mbox"
    mbox.write_text(
        "".join(
            f"From a@example.org Tue Nov 14 12:00:00 2023\nFrom: a@example.org\nSubject: m{i}\n"
            f"Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain\n\nbody {i}\n--z--\n\n"
            for i in range(12)
        )
    )
    server.stop()
    server.cli("import", "mbox", "--merge", "alice@example.com", str(mbox))
    server.start()
    n = len(lmtp) + 14 + 12
    assert stored_chunks(server, 1) == 0 and stored_chunks(server, 2) == 0, "never read"
    # One rendering per blob: the two recipients and the copies share theirs.
    distinct = store_sql(server, "SELECT count(DISTINCT blob) FROM messages")[0][0]
    assert rendered_at_delivery(server) == distinct

    def first_reads():
        """Each mailbox's first FETCH BODYSTRUCTURE in a new process, and the same
        answers rendered from the trees, with and without UTF8=ACCEPT."""
        got, want = [], []
        for user, box in [(None, "INBOX"), (None, "Copies"), ("bob", "INBOX")]:
            for utf8 in (False, True):
                c = Raw(server)
                if user:
                    c.login(("bob@example.com", "bob-Secret2"))
                else:
                    c.login()
                if utf8:
                    assert c.cmd("ENABLE UTF8=ACCEPT")[-1].endswith(b"OK ENABLE completed")
                assert c.cmd(f"SELECT {box}")[-1].endswith(b"SELECT completed")
                got.append(bodystructures(c))
                want.append(from_trees(c))
                c.cmd("LOGOUT")
        return got, want

    server.restart()
    got, want = first_reads()
    assert [len(g) for g in got] == [n, n, n - 12, n - 12, len(lmtp), len(lmtp)]
    assert got == want
    assert want[0] != want[1], "a UTF-8 parameter is quoted with UTF8=ACCEPT"
    # Every message row carries a copy of its blob's rendering (LMTP, APPEND, import,
    # COPY), read in one pass over the mailbox's rows.
    assert store_sql(
        server,
        "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_bodystructure c"
        " WHERE c.mailbox_id = m.mailbox_id AND c.uid = m.uid)",
    )[0][0] == 0
    assert stored_chunks(server, 1) == 0, "the renderings kept at delivery are not repeated"
    # The answers are those kept at delivery: a rendering put in their place is answered,
    # from the rows, or through the blob for rows without their own (inserted before).
    marker = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 1 NIL NIL NIL NIL)'
    for rows in (True, False):
        set_rendered(server, b"LBB1" + marker, rows)
        c = session(server)
        r = bodystructures(c)
        assert len(r) == n and all(l.endswith(b" BODYSTRUCTURE " + marker + b")") for l in r), r[0]
        c.cmd("LOGOUT")
    # Another rendering's version, or none (stored before): rendered from the trees.
    for octets in (b"LBB0" + marker, None):
        set_rendered(server, octets)
        got2, _ = first_reads()
        assert got2 == want
