"""FETCH ENVELOPE (RFC 9051 7.5.2) from the answers rendered at delivery (issue 18,
crates/store/src/envelopes.rs) and kept rendered in the message cache
(crates/imap/src/session/cache.rs): for messages delivered over LMTP to two
recipients, APPENDed, copied, moved and imported, with UTF-8 headers (RFC 6532) and
encoded words, with and without UTF8=ACCEPT (RFC 6855), the first
`FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)` after a restart and the next
one answer exactly as rendering every message's decoded envelope does; so do rows
stored before their own copies were kept (through their blob's rendering) and blobs
stored before the renderings (from the decoded envelopes)."""

import hashlib
import smtplib

import messages
import mime_corpus
from imap_util import Raw
from test_imap_shared_index import store_sql

SHAPES = [messages.SIMPLE, messages.GROUPS, messages.NESTED] + [
    v for k, v in sorted(vars(mime_corpus).items()) if k.isupper() and isinstance(v, bytes)
]
# 8-bit headers (RFC 6532): literals without UTF8=ACCEPT, quoted with it.
UTF8_HEADERS = (
    "From: J\u00f6rg M\u00fcller <joerg@example.org>\r\nTo: \u00c5sa <asa@example.net>\r\n"
    "Subject: Gr\u00fc\u00dfe aus K\u00f6ln\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    "Message-ID: <utf8@example.org>\r\n\r\nhallo\r\n"
).encode()
ENCODED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nCc: a@b.example, g: c@d.example;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= \"quoted\" back\\slash\r\n"
    b"In-Reply-To: <parent@example.org>\r\nReply-To: r@example.org\r\n\r\nx\r\n"
)
NO_HEADER = b"no header at all"
MESSAGES = SHAPES + [UTF8_HEADERS, ENCODED, NO_HEADER]
QUERY = "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"
MARKER = b'("Mon, 1 Jan 2024 00:00:00 +0000" "qqmarker" NIL NIL NIL NIL NIL NIL NIL NIL)'
MARKER_8BIT = b'(NIL {5}\r\nqq\xc3\xa9q NIL NIL NIL NIL NIL NIL NIL NIL)'


def session(server, user=None, box="INBOX", utf8=False):
    c = Raw(server)
    if user:
        c.login(("bob@example.com", "bob-Secret2"))
    else:
        c.login()
    if utf8:
        assert c.cmd("ENABLE UTF8=ACCEPT")[-1].endswith(b"OK ENABLE completed")
    assert c.cmd(f"SELECT {box}")[-1].endswith(b"SELECT completed")
    return c


def fetch(c, query=QUERY):
    r = c.cmd(query)
    assert r[-1].endswith(b"OK FETCH completed"), r[-1]
    return r[:-1]


def general(c):
    """The same answers with every envelope rendered from its decoded structure (BODY
    beside ENVELOPE takes FETCH's general path), the BODY item cut out."""
    out = []
    for l in fetch(c, "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE BODY ENVELOPE)"):
        b, e = l.index(b" BODY ("), l.rindex(b" ENVELOPE (")
        out.append(l[:b] + l[e:])
    return out


def deliver_everywhere(server, tmp_path):
    """Stores MESSAGES over LMTP (alice and bob), by APPEND, COPY, MOVE and import;
    returns the mailboxes to read, as (user, name, count)."""
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as l:
        assert l.ehlo()[0] == 250
        for m in MESSAGES:
            # One transaction, two recipients: one reply each after the data (RFC 2033 4.2).
            assert l.mail("s@example.org")[0] == 250
            for rcpt in ("alice@example.com", "bob@example.com"):
                assert l.rcpt(rcpt)[0] == 250
            assert l.data(m)[0] == 250
            assert l.getreply()[0] == 250
    c = session(server)
    for m in MESSAGES:
        r = c.cmd(b"APPEND INBOX (\\Seen) {%d+}\r\n" % len(m) + m)
        assert b" OK " in r[-1], r
    n = 2 * len(MESSAGES)
    for box in ("Copies", "Moved"):
        assert c.cmd(f"CREATE {box}")[-1].endswith(b"CREATE completed")
    assert b" OK " in c.cmd("COPY 1:* Copies")[-1]
    assert c.cmd("SELECT Copies")[-1].endswith(b"SELECT completed")
    assert b" OK " in c.cmd(f"MOVE 1:{len(MESSAGES)} Moved")[-1]
    c.cmd("LOGOUT")
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(
        b"".join(
            b"From a@example.org Tue Nov 14 12:00:00 2023\n"
            + (f"From: Gr\u00fc\u00df <a@example.org>\nSubject: m{i} \u00e9t\u00e9\n".encode()
               if i % 2 else f"From: a@example.org\nSubject: m{i}\n".encode())
            + f"Date: 14 Nov 2023 12:00:00 +0000\n\nbody {i}\n\n".encode()
            for i in range(12)
        )
    )
    server.stop()
    server.cli("import", "mbox", "--merge", "alice@example.com", str(mbox))
    server.start()
    boxes = [
        (None, "INBOX", n + 12),
        (None, "Copies", n - len(MESSAGES)),
        (None, "Moved", len(MESSAGES)),
        ("bob", "INBOX", len(MESSAGES)),
    ]
    # \Recent claimed once here, so that every later answer has the same FLAGS.
    for user, box, _ in boxes:
        session(server, user, box).cmd("LOGOUT")
    return boxes


def set_rendered(server, octets, rows=True):
    """Replaces every blob's kept rendering (version and octets) while stopped, and every
    message row's copy of it (with `rows`; else the copies are dropped, as for rows
    stored before them, read through their blobs then); None drops them all (blobs
    stored before the renderings)."""
    server.stop()
    if octets is None:
        store_sql(server, "DELETE FROM blob_envelope", pg="UPDATE blobs SET envelope = NULL")
    else:
        store_sql(
            server,
            f"UPDATE blob_envelope SET data = x'{octets.hex()}'",
            pg=f"UPDATE blobs SET envelope = '\\x{octets.hex()}'::bytea",
        )
    if octets is None or not rows:
        store_sql(server, "DELETE FROM message_envelope")
    else:
        store_sql(
            server,
            f"UPDATE message_envelope SET data = x'{octets.hex()}'",
            pg=f"UPDATE message_envelope SET data = '\\x{octets.hex()}'::bytea",
        )
    server.start()


def answers(server, boxes):
    """Per mailbox and UTF8=ACCEPT state, in a new process: the first FETCH (cold), the
    second (from memory), and the answers rendered from the decoded envelopes."""
    server.restart()
    out = []
    for user, box, n in boxes:
        for utf8 in (False, True):
            c = session(server, user, box, utf8)
            cold, warm, want = fetch(c), fetch(c), general(c)
            assert len(cold) == n, (box, len(cold))
            out.append((cold, warm, want))
            c.cmd("LOGOUT")
    return out


def digest(lines):
    return hashlib.sha1(b"\r\n".join(lines)).hexdigest()


def test_envelopes_rendered_at_delivery_answer_as_decoded(server, tmp_path):
    boxes = deliver_everywhere(server, tmp_path)
    # One rendering per blob (the recipients, copies and moves share theirs), and a
    # copy per message row.
    distinct = store_sql(server, "SELECT count(DISTINCT blob) FROM messages")[0][0]
    assert store_sql(
        server, "SELECT count(*) FROM blob_envelope",
        pg="SELECT count(*) FROM blobs WHERE envelope IS NOT NULL",
    )[0][0] == distinct
    assert store_sql(server, "SELECT count(*) FROM message_envelope")[0][0] == store_sql(
        server, "SELECT count(*) FROM messages"
    )[0][0] == sum(n for _, _, n in boxes)
    first = answers(server, boxes)
    for cold, warm, want in first:
        assert cold == warm == want
    # UTF-8 headers: a literal without UTF8=ACCEPT, quoted with it.
    plain, utf8 = first[0][0], first[1][0]
    i = len(SHAPES)
    assert b"{17}\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln" in plain[i], plain[i]
    assert b'"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln"' in utf8[i], utf8[i]
    assert b'"=?utf-8?q?Gr=C3=BC=C3=9Fe?= \\"quoted\\" back\\\\slash"' in plain[i + 1]
    assert plain[i + 2].endswith(b"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))")
    # The answers are those kept at delivery: a rendering put in their place is
    # answered, from the rows' copies or, for rows without one (stored before them),
    # through their blob; with UTF8=ACCEPT too, being 7-bit.
    for rows in (True, False):
        set_rendered(server, b"LBB1" + MARKER, rows)
        for utf8 in (False, True):
            c = session(server, utf8=utf8)
            r = fetch(c)
            assert all(l.endswith(b" ENVELOPE " + MARKER + b")") for l in r), r[0]
            c.cmd("LOGOUT")
    # An 8-bit rendering is not the one for UTF8=ACCEPT: rendered from the envelope.
    set_rendered(server, b"LBB1" + MARKER_8BIT)
    c = session(server)
    assert all(l.endswith(b" ENVELOPE " + MARKER_8BIT + b")") for l in fetch(c))
    c.cmd("LOGOUT")
    c = session(server, utf8=True)
    assert fetch(c) == general(c) == first[1][2]
    c.cmd("LOGOUT")
    # Another rendering's version, or none (blobs stored before): every answer as
    # before, byte for byte.
    for octets in (b"LBB0" + MARKER, None):
        set_rendered(server, octets)
        again = answers(server, boxes)
        assert [digest(w) for _, w, _ in again] == [digest(c) for c, _, _ in first]
        assert again == first
