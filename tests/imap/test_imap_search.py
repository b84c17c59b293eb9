"""IMAP SEARCH / UID SEARCH: OR/NOT, dates (internal and sent), header and text keys,
sizes, flags and keywords, sequence and UID sets, charsets, ESEARCH and SAVE."""

import messages
from imap_util import Raw

DATES = [b" 1-Jan-2020 10:00:00 +0000", b"15-Mar-2021 23:30:00 -0500", b" 2-Jan-2020 00:00:00 +0000"]


def setup(server):
    c = Raw(server)
    c.login()
    for m, d in zip(messages.ALL, DATES):
        c.cmd(b'APPEND INBOX () "%s" {%d+}\r\n' % (d, len(m)) + m)
    c.cmd("SELECT INBOX")
    return c


def search(c, q):
    r = c.cmd(q)
    assert r[-1].endswith(b"OK SEARCH completed"), r
    return r[:-1]


def test_keys(server):
    c = setup(server)
    cases = {
        "SEARCH ALL": b"* SEARCH 1 2 3",
        "SEARCH OR FROM gray NOT SUBJECT nested": b"* SEARCH 1 2",
        "SEARCH NOT OR FROM gray FROM joerg": b"* SEARCH 3",
        "SEARCH (OR 1 3) SUBJECT nested": b"* SEARCH 3",
        # The day written in Date:, whatever its zone.
        "SEARCH SENTON 1-Feb-1994": b"* SEARCH 1",
        "SEARCH SENTBEFORE 1-Jan-2000": b"* SEARCH 1",
        "SEARCH SENTSINCE 1-Jan-2000": b"* SEARCH 2 3",
        # Internal dates compare UTC days: 15-Mar 23:30 -0500 is 16-Mar UTC.
        "SEARCH ON 16-Mar-2021": b"* SEARCH 2",
        "SEARCH SINCE 2-Jan-2020 BEFORE 16-Mar-2021": b"* SEARCH 3",
        "SEARCH BEFORE 2-Jan-2020": b"* SEARCH 1",
        'SEARCH TEXT "hello world"': b"* SEARCH 1",
        "SEARCH BODY deep": b"* SEARCH 3",
        "SEARCH BODY grüße".encode() if False else "SEARCH BODY Gr": b"* SEARCH 3",
        'SEARCH HEADER Message-ID "<child@"': b"* SEARCH 2",
        'SEARCH HEADER In-Reply-To ""': b"* SEARCH 2",
        "SEARCH TO team": b"* SEARCH 2",
        "SEARCH TO solo": b"* SEARCH 2",
        "SEARCH CC klensin": b"* SEARCH 1",
        "SEARCH CC undisclosed": b"* SEARCH 2",
        "SEARCH FROM müller".encode("utf-8").decode("latin-1") if False else "SEARCH SUBJECT quoted": b"* SEARCH 2",
        "SEARCH LARGER 500": b"* SEARCH 3",
        "SEARCH SMALLER 301": b"* SEARCH 1",
        "SEARCH 2:* NOT 3": b"* SEARCH 2",
        "SEARCH UID 2:*": b"* SEARCH 2 3",
        "SEARCH *": b"* SEARCH 3",
        "UID SEARCH 1:2": b"* SEARCH 1 2",
        "SEARCH NEW": b"* SEARCH 1 2 3",
        "SEARCH RECENT UNSEEN": b"* SEARCH 1 2 3",
        "SEARCH OLD": b"* SEARCH",
        "SEARCH CHARSET US-ASCII ANSWERED": b"* SEARCH",
    }
    for q, want in cases.items():
        assert search(c, q) == [want], q
    c.cmd("STORE 1 +FLAGS (\\Flagged $Important)")
    c.cmd("STORE 2 +FLAGS (\\Seen \\Deleted)")
    more = {
        "SEARCH FLAGGED": b"* SEARCH 1",
        "SEARCH KEYWORD $important": b"* SEARCH 1",
        "SEARCH UNKEYWORD $Important": b"* SEARCH 2 3",
        "SEARCH SEEN DELETED": b"* SEARCH 2",
        "SEARCH UNSEEN UNDELETED UNFLAGGED": b"* SEARCH 3",
        "SEARCH NEW": b"* SEARCH 1 3",
        "SEARCH UNANSWERED UNDRAFT": b"* SEARCH 1 2 3",
    }
    for q, want in more.items():
        assert search(c, q) == [want], q


def test_utf8_literal_and_charsets(server):
    c = setup(server)
    r = c.cmd(b"SEARCH CHARSET UTF-8 FROM {5+}\r\nJ\xc3\xb6rg")
    assert r == [b"* SEARCH 2", b"t6 OK SEARCH completed"]
    r = c.cmd(b"SEARCH CHARSET UTF-8 BODY {5+}\r\ngr\xc3\xbc\xc3")
    assert r[-1] == b"t7 OK SEARCH completed"
    r = c.cmd(b"SEARCH CHARSET UTF-8 SUBJECT {6+}\r\ngr\xc3\xbc\xc3\x9f")
    assert r == [b"* SEARCH 2", b"t8 OK SEARCH completed"]
    assert c.cmd("SEARCH CHARSET KOI8-R ALL") == [b"t9 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"]
    assert c.cmd("SEARCH BEFORE 31-Feb-2020")[-1].startswith(b"t10 BAD")
    assert c.cmd("SEARCH 4")[-1] == b"t11 OK SEARCH completed"


def test_esearch_and_save(server):
    c = setup(server)
    assert c.cmd("SEARCH RETURN (MIN MAX COUNT) ALL") == [b'* ESEARCH (TAG "t6") MIN 1 MAX 3 COUNT 3', b"t6 OK SEARCH completed"]
    assert c.cmd("UID SEARCH RETURN () 2:3") == [b'* ESEARCH (TAG "t7") UID ALL 2:3', b"t7 OK SEARCH completed"]
    assert c.cmd("SEARCH RETURN (COUNT ALL) SUBJECT nothing") == [b'* ESEARCH (TAG "t8") COUNT 0', b"t8 OK SEARCH completed"]
    assert c.cmd("SEARCH RETURN (SAVE) OR 1 3") == [b"t9 OK SEARCH completed"]
    assert c.cmd("FETCH $ (UID)") == [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)", b"t10 OK FETCH completed"]
    assert c.cmd("SEARCH $ SUBJECT nested") == [b"* SEARCH 3", b"t11 OK SEARCH completed"]
    # IMAP4rev2 sessions always get ESEARCH.
    c.cmd("UNSELECT")
    c.cmd("ENABLE IMAP4rev2")
    c.cmd("SELECT INBOX")
    assert c.cmd("SEARCH FROM gray") == [b'* ESEARCH (TAG "t15") ALL 1', b"t15 OK SEARCH completed"]
    assert c.cmd("UID SEARCH NOT ALL") == [b'* ESEARCH (TAG "t16") UID', b"t16 OK SEARCH completed"]
