"""Part sections of a forwarded message (message/rfc822 inside multipart/mixed, itself
multipart with a nested multipart/alternative), numbered as RFC 9051 6.4.5 asks: `2` is
the whole encapsulated message, `2.HEADER`/`2.TEXT` its header and body, `2.1.2` a part
inside it. BINARY and BINARY.SIZE of quoted-printable (RFC 3516, RFC 2045 6.7) with
partial ranges over the decoded octets. ENVELOPE names from comments, also inside the
forwarded message. Expected bytes are cut from the appended message itself."""

import mime_corpus
from imap_sexp import fetch_items
from imap_util import Raw

FWD = mime_corpus.FORWARD


def setup(server, *msgs):
    c = Raw(server)
    c.login()
    for m in msgs:
        r = c.cmd(b'APPEND INBOX (\\Seen) {%d+}\r\n' % len(m) + m)
        assert b" OK " in r[-1], r
    c.cmd("SELECT INBOX")
    return c


def between(data: bytes, start: bytes, end: bytes, include_end=False) -> bytes:
    i = data.index(start)
    j = data.index(end, i)
    return data[i:j + (len(end) if include_end else 0)]


def fetch(c, seq, items):
    r = c.cmd(f"FETCH {seq} ({items})")
    assert r[-1].endswith(b"OK FETCH completed"), r
    return fetch_items(r[0])[1]


def test_forwarded_message_parts(server):
    c = setup(server, FWD)
    inner = between(FWD, b"Date: Wed, 3 Mar 2004", b"\r\n--outer-b--")
    inner_header = between(FWD, b"Date: Wed, 3 Mar 2004", b"\r\n\r\n--inner-b", include_end=False) + b"\r\n\r\n"
    inner_text = inner[len(inner_header):]
    assert inner_text.startswith(b"--inner-b\r\n") and inner_text.endswith(b"--inner-b--\r\n")
    r = fetch(c, 1, "BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.MIME] "
                    "BODY.PEEK[2.HEADER.FIELDS (From Subject)] BODY.PEEK[2.1.1] BODY.PEEK[2.1.2.MIME] "
                    "BODY.PEEK[2.2] BODY.PEEK[2.2.MIME] BODY.PEEK[2.3] BODY.PEEK[2.1.2]<3.12>")
    assert r[b"BODY[2]"] == inner
    assert r[b"BODY[2.HEADER]"] == inner_header
    assert r[b"BODY[2.TEXT]"] == inner_text
    assert r[b"BODY[2.MIME]"] == b'Content-Type: message/rfc822; name="the report.eml"\r\nContent-Disposition: attachment; filename="the report.eml"\r\n\r\n'
    assert r[b"BODY[2.HEADER.FIELDS (FROM SUBJECT)]"] == b"From: carol@example.org (Carol Q. Public)\r\nSubject: the report\r\n\r\n"
    assert r[b"BODY[2.1.1]"] == b"Here is the report.\r\n"
    assert r[b"BODY[2.1.2.MIME]"] == b"Content-Type: text/html; charset=us-ascii\r\n\r\n"
    assert r[b"BODY[2.1.2]<3>"] == b"<p>Here is the <b>report</b>.</p>\r\n"[3:15]
    assert r[b"BODY[2.2]"] == between(FWD, b"JVBERi0x", b"\r\n--inner-b--")
    assert r[b"BODY[2.2.MIME]"] == between(FWD, b"Content-Type: application/pdf", b"JVBERi0x")
    assert r[b"BODY[2.3]"] == b""
    # BINARY of the attachment inside the forwarded message: the decoded PDF octets.
    r = fetch(c, 1, "BINARY.PEEK[2.2] BINARY.SIZE[2.2] BINARY.PEEK[1]")
    import base64
    pdf = base64.b64decode(between(FWD, b"JVBERi0x", b"\r\n--inner-b--").replace(b"\r\n", b""))
    assert r[b"BINARY[2.2]"] == pdf and r[b"BINARY.SIZE[2.2]"] == b"%d" % len(pdf)
    assert r[b"BINARY[1]"] == "See the forwarded message below. Grüße,\r\nAlice\r\n".encode()


def test_message_rfc822_at_the_top(server):
    m = mime_corpus.RFC822_TOP
    c = setup(server, m)
    body = m[m.index(b"\r\n\r\n") + 4:]
    r = fetch(c, 1, "BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[1.2.MIME] BINARY.PEEK[1.2]")
    assert r[b"BODY[1]"] == body
    assert r[b"BODY[1.HEADER]"] == body[:body.index(b"\r\n\r\n") + 4]
    assert r[b"BODY[1.1]"] == b"part one\r\n"
    assert r[b"BODY[1.2]"] == b"caf=C3=A9 =\r\nsoft\r\n"
    assert r[b"BODY[1.2.MIME]"] == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    assert r[b"BINARY[1.2]"] == "café soft\r\n".encode()


QP = (b"From: qp@example.com\r\nSubject: qp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n"
      b"--q\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\ncaf=C3=A9 =3D x=4\r\nend=\r\n"
      b"\r\n--q--\r\n")
QP_DECODED = b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\ncaf\xc3\xa9 = x=4\r\nend"


def test_binary_of_quoted_printable_and_partial_ranges(server):
    c = setup(server, QP)
    n = len(QP_DECODED)
    r = fetch(c, 1, "BINARY.SIZE[1] BINARY.PEEK[1]")
    assert r == {b"BINARY.SIZE[1]": b"%d" % n, b"BINARY[1]": QP_DECODED}
    for start, length in [(0, 10), (10, 10), (15, 10), (20, 9), (n - 3, 100), (n, 5), (n + 7, 5)]:
        r = c.cmd(f"FETCH 1 BINARY.PEEK[1]<{start}.{length}>")
        want = QP_DECODED[start:start + length]
        assert r[0] == b"* 1 FETCH (BINARY[1]<%d> {%d}\r\n" % (start, len(want)) + want + b")", (start, r)
    # BODY[1] stays as sent.
    assert fetch(c, 1, "BODY.PEEK[1]")[b"BODY[1]"] == between(QP, b"hello  ", b"\r\n\r\n--q--") + b"\r\n"


def test_envelope_names_from_comments(server):
    c = setup(server, mime_corpus.COMMENT_NAMES, FWD)
    env = fetch(c, 1, "ENVELOPE")[b"ENVELOPE"]
    assert env[2] == [[b"John Doe", None, b"john", b"example.com"]]
    assert env[3] == [[b"Example List", None, b"list-bounces", b"lists.example.org"]]
    assert env[4] == [[b"=?ISO-8859-1?Q?J=F6rg?=", None, b"reply", b"example.org"]]
    assert env[5] == [[b"Jane (the boss) Roe", None, b"jane", b"example.net"],
                      [b"Quoted", None, b"q", b"example.net"],
                      [None, None, b"plain", b"example.net"], [None, None, b"other", b"example.net"]]
    assert env[6] == [[None, None, b"cc", b"example.net"], [b"inner", None, b"odd", b"example.net"]]
    assert env[7] == [[b"two", None, b"b", b"example.net"]]
    # Inside the forwarded message too.
    bs = fetch(c, 2, "BODYSTRUCTURE")[b"BODYSTRUCTURE"]
    inner_env = bs[1][7]
    assert inner_env[2] == [[b"Carol Q. Public", None, b"carol", b"example.org"]]
    assert inner_env[5] == [[b"Alice", None, b"alice", b"example.com"]]
    assert fetch(c, 2, "ENVELOPE")[b"ENVELOPE"][5] == [[b"Bob B.", None, b"bob", b"example.com"]]
