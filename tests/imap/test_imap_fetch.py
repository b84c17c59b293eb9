"""IMAP FETCH: ENVELOPE (groups, encoded words), BODYSTRUCTURE/BODY of nested
multiparts and message/rfc822, BODY[section]<partial>, HEADER.FIELDS(.NOT), MIME,
BINARY and BINARY.SIZE, RFC822.*, macros, and \\Seen handling. Expected answers were
compared with Dovecot 2.3 (differences are listed in crates/imap/src/lib.rs)."""

import re

import messages
from imap_util import Raw


def setup(server, *msgs, flags=b"(\\Seen)"):
    c = Raw(server)
    c.login()
    for m in msgs:
        r = c.cmd(b'APPEND INBOX %s " 1-Jan-2020 00:00:00 +0000" {%d+}\r\n' % (flags, len(m)) + m)
        assert b"OK [APPENDUID" in r[-1], r
    c.cmd("SELECT INBOX")
    return c


def one(c, cmd):
    r = c.cmd(cmd)
    assert r[-1].endswith(b"OK FETCH completed"), r
    return r[:-1]


def test_envelope_simple_and_groups(server):
    c = setup(server, messages.SIMPLE, messages.GROUPS)
    assert one(c, "FETCH 1:2 ENVELOPE") == [
        b'* 1 FETCH (ENVELOPE ("Tue, 1 Feb 1994 21:52:25 -0800" "IMAP4rev2 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>"))',
        b'* 2 FETCH (ENVELOPE ("Sat, 1 Jan 2000 00:00:00 +0000" "=?ISO-8859-1?Q?Gr=FC=DFe?= \\"quoted\\"" '
        b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.org")) '
        b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.org")) '
        b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.org")) '
        b'((NIL NIL "Team" NIL)(NIL NIL "a" "x.org")("B, Jr." NIL "b" "y.org")(NIL NIL NIL NIL)(NIL NIL "solo" "z.org")) '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL "<parent@example.org>" "<child@example.org>"))',
    ]


NESTED_BS = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 1 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 9 1 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL "forwarded" "7bit" 351 ("Sun, 14 Mar 2021 09:00:00 +0000" "inner message" '
    b'((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) NIL NIL NIL NIL NIL) '
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 1 NIL NIL NIL NIL)'
    b'("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 8 NIL ("attachment" ("filename" "a.bin")) NIL NIL) '
    b'"mixed" ("boundary" "deep") NIL NIL NIL) 16 NIL NIL NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)'
)


def test_bodystructure_nested_multipart_and_rfc822(server):
    c = setup(server, messages.SIMPLE, messages.NESTED)
    assert one(c, "FETCH 1 BODYSTRUCTURE") == [
        b'* 1 FETCH (BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 26 2 NIL NIL NIL NIL))'
    ]
    assert one(c, "FETCH 2 BODYSTRUCTURE") == [b"* 2 FETCH (BODYSTRUCTURE " + NESTED_BS + b")"]
    assert one(c, "FETCH 2 BODY") == [
        b'* 2 FETCH (BODY ((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 1)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 9 1) "alternative")'
        b'("message" "rfc822" NIL NIL "forwarded" "7bit" 351 ("Sun, 14 Mar 2021 09:00:00 +0000" "inner message" '
        b'((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) NIL NIL NIL NIL NIL) '
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 1)("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 8) "mixed") 16) "mixed"))'
    ]


def test_sections(server):
    c = setup(server, messages.NESTED)
    n = len(messages.NESTED)
    assert one(c, "FETCH 1 BODY.PEEK[]") == [b"* 1 FETCH (BODY[] {%d}\r\n" % n + messages.NESTED + b")"]
    assert one(c, "FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.1] BODY.PEEK[2.2.MIME] BODY.PEEK[2.2.1] BODY.PEEK[7])") == [
        b"* 1 FETCH (BODY[1.1] {15}\r\nGr=C3=BC=C3=9Fe BODY[1.2.MIME] {42}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b" BODY[2.HEADER] {134}\r\nFrom: c@example.com\r\nSubject: inner message\r\nDate: Sun, 14 Mar 2021 09:00:00 +0000\r\n"
        b'Content-Type: multipart/mixed; boundary="deep"\r\n\r\n BODY[2.1] {9}\r\ndeep text'
        b' BODY[2.2.MIME] {142}\r\nContent-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="a.bin"\r\n\r\n BODY[2.2.1] {8}\r\nAAECAwQ= BODY[7] {0}\r\n)'
    ]
    r = one(c, "FETCH 1 (BODY.PEEK[2.TEXT]<0.7> BINARY.PEEK[2.2] BINARY.SIZE[2.2] BINARY.PEEK[1.1] BINARY.PEEK[1.1]<2.2>)")
    assert r == [
        b"* 1 FETCH (BODY[2.TEXT]<0> {7}\r\n--deep\r BINARY[2.2] ~{5}\r\n\x00\x01\x02\x03\x04 BINARY.SIZE[2.2] 5"
        b" BINARY[1.1] {7}\r\nGr\xc3\xbc\xc3\x9fe BINARY[1.1]<2> {2}\r\n\xc3\xbc)"
    ]


def test_partial_header_fields_and_rfc822(server):
    c = setup(server, messages.SIMPLE)
    assert one(c, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT CC)] BODY.PEEK[TEXT]<6.7> BODY.PEEK[]<0.4> BODY.PEEK[]<9999.5> BODY.PEEK[1])") == [
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT CC)] {114}\r\nSubject: IMAP4rev2 WG mtg summary and minutes\r\n"
        b'Cc: minutes@CNRI.Reston.VA.US, "John Klensin" <KLENSIN@MIT.EDU>\r\n\r\n'
        b" BODY[TEXT]<6> {7}\r\nworld\r\n BODY[]<0> {4}\r\nDate BODY[]<9999> {0}\r\n BODY[1] {26}\r\nHello world\r\nSecond line\r\n)"
    ]
    r = one(c, "FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Date From Subject To Cc)])")
    assert r == [b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (DATE FROM SUBJECT TO CC)] {51}\r\nMessage-Id: <B27397-0100000@cac.washington.edu>\r\n\r\n)"]
    size = len(messages.SIMPLE)
    r = one(c, "FETCH 1 (RFC822.SIZE RFC822.HEADER)")
    hdr = messages.SIMPLE[: messages.SIMPLE.index(b"\r\n\r\n") + 4]
    assert r == [b"* 1 FETCH (RFC822.SIZE %d RFC822.HEADER {%d}\r\n" % (size, len(hdr)) + hdr + b")"]
    r = one(c, "FETCH 1 RFC822")
    assert r == [b"* 1 FETCH (RFC822 {%d}\r\n" % size + messages.SIMPLE + b")"]


def test_macros_uid_and_internaldate(server):
    c = setup(server, messages.SIMPLE)
    r = one(c, "FETCH 1 FAST")
    assert r == [b'* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "01-Jan-2020 00:00:00 +0000" RFC822.SIZE %d)' % len(messages.SIMPLE)]
    r = one(c, "FETCH 1 ALL")
    assert r[0].startswith(b'* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "01-Jan-2020 00:00:00 +0000" RFC822.SIZE %d ENVELOPE ("Tue' % len(messages.SIMPLE))
    r = one(c, "FETCH 1 FULL")
    assert r[0].endswith(b'BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 26 2))')
    r = c.cmd("UID FETCH 1:* FLAGS")
    assert r == [b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", b"t4 OK FETCH completed"] or r[0] == b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))"
    assert c.cmd("UID FETCH 99 FLAGS")[-1].endswith(b"OK FETCH completed")
    assert c.cmd("FETCH 2 FLAGS")[-1].endswith(b"BAD Invalid message sequence number")


def test_fetching_a_body_sets_seen(server):
    c = setup(server, messages.SIMPLE, flags=b"()")
    assert one(c, "FETCH 1 (BODY.PEEK[TEXT])")[0].startswith(b"* 1 FETCH (BODY[TEXT] {26}")
    assert one(c, "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))"]
    r = one(c, "FETCH 1 (BODY[TEXT]<0.5>)")
    assert r == [b"* 1 FETCH (BODY[TEXT]<0> {5}\r\nHello FLAGS (\\Seen \\Recent))"]
    assert one(c, "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Seen \\Recent))"]
    # EXAMINE never sets \Seen.
    c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)")
    c.cmd("EXAMINE INBOX")
    one(c, "FETCH 1 RFC822.TEXT")
    assert one(c, "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]


def test_unknown_cte_and_utf8_strings(server):
    msg = (b"From: x@y\r\nSubject: =?utf-8?q?caf=C3=A9?= \xc3\xa9t\xc3\xa9\r\nContent-Type: text/plain\r\n"
           b"Content-Transfer-Encoding: x-weird\r\n\r\nbody\r\n")
    c = setup(server, msg)
    assert c.cmd("FETCH 1 BINARY.PEEK[1]")[-1] == b"t4 NO [UNKNOWN-CTE] Unknown content-transfer-encoding"
    # 8-bit header text: a literal for IMAP4rev1, quoted UTF-8 once IMAP4rev2 is on.
    r = one(c, "FETCH 1 ENVELOPE")
    assert b"{27}\r\n=?utf-8?q?caf=C3=A9?= \xc3\xa9t\xc3\xa9" in r[0]
    c.cmd("UNSELECT")
    c.cmd("ENABLE IMAP4rev2")
    c.cmd("SELECT INBOX")
    r = one(c, "FETCH 1 ENVELOPE")
    assert b'"=?utf-8?q?caf=C3=A9?= \xc3\xa9t\xc3\xa9"' in r[0]
