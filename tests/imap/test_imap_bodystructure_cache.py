"""FETCH BODYSTRUCTURE (RFC 9051 7.5.2) from the rendered answers the message cache keeps
in memory and in the store (issue 18, crates/imap/src/session/cache.rs): after a
restart, an expunge, arrivals, with UTF8=ACCEPT (RFC 6855) and when the store's copy
does not decode, every answer is the one rendered from the message's MIME tree."""

import re
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
    c.cmd("NOOP")
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
    # Expunged messages and arrivals (more than STORED_MIN: the copy is written again).
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
