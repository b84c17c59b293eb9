"""`letterbox import mbox --variant`: mboxcl2, mboxcl and mboxo beside the default mboxrd
(issue 16). Each file is written here byte by byte as those formats define it (qmail's
mbox(5), RFC 4155); what IMAP then serves is compared octet for octet, with the flags
from Status:/X-Status: and the internal date from the From_ line."""

import imaplib
import re

ADDR = "alice@example.com"
PW = "alice-Secret1"


def fetch_all(server, folder="INBOX"):
    """[(octets, flags, internal date)] in UID order."""
    c = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    c.login(ADDR, PW)
    c.select(folder, readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            head = item[0].decode()
            flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            out.append((item[1], flags, date))
    c.logout()
    return out


def crlf(b):
    return b.replace(b"\n", b"\r\n")


BODY1 = b"First line.\nFrom the start of a line, unquoted in mboxcl2.\n>From quoted stays.\n\n"
HEAD1 = b"From: a@example.org\nSubject: one\n"
BODY2 = b"no final line end"
HEAD2 = b"From: b@example.org\nSubject: two\n"


def test_mboxcl2_content_length_delimits_and_nothing_is_unquoted(server, tmp_path):
    f = tmp_path / "cl2.mbox"
    f.write_bytes(
        b"From a@example.org Mon Dec  7 10:00:00 2026\n"
        + HEAD1 + b"Status: RO\nX-Status: F\nContent-Length: %d\n\n" % len(BODY1) + BODY1
        + b"\n"
        + b"From b@example.org Tue Dec  8 11:30:00 2026\n"
        + HEAD2 + b"Content-Length: %d\n\n" % len(BODY2) + BODY2
        # A wrong Content-Length: that message is read up to the next From_ line.
        + b"\nFrom c@example.org Wed Dec  9 12:00:00 2026\n"
        + b"Subject: three\nContent-Length: 3\n\nlonger than three\n\n"
    )
    r = server.cli("import", "mbox", ADDR, f, "--variant", "mboxcl2")
    assert "3 messages imported" in r.stdout.decode(), r.stdout
    got = fetch_all(server)
    assert got[0] == (
        crlf(HEAD1 + b"Content-Length: %d\n\n" % len(BODY1) + BODY1),
        {"\\Seen", "\\Flagged"},
        "07-Dec-2026 10:00:00 +0000",
    )
    assert got[1] == (crlf(HEAD2 + b"Content-Length: %d\n\n" % len(BODY2) + BODY2), set(), "08-Dec-2026 11:30:00 +0000")
    assert got[2][0] == crlf(b"Subject: three\nContent-Length: 3\n\nlonger than three\n")
    # The same file read as mboxrd splits at the unquoted From line: a different result,
    # so the variant really changes the reading.
    r = server.cli("import", "mbox", ADDR, f, "--folder", "asrd", "--merge")
    assert "4 messages imported" in r.stdout.decode(), r.stdout


def test_mboxcl_unquotes_from_and_mboxo_unquotes_one_level(server, tmp_path):
    body = b"x\n>From quoted once\n>>From quoted twice\n"
    f = tmp_path / "cl.mbox"
    f.write_bytes(
        b"From a@example.org Mon Dec  7 10:00:00 2026\nSubject: cl\nContent-Length: %d\n\n" % len(body)
        + body + b"\n"
    )
    server.cli("import", "mbox", ADDR, f, "--variant", "mboxcl", "--folder", "cl")
    assert fetch_all(server, "cl")[0][0] == crlf(
        b"Subject: cl\nContent-Length: %d\n\nx\nFrom quoted once\n>>From quoted twice\n" % len(body)
    )
    f = tmp_path / "o.mbox"
    f.write_bytes(b"From a@example.org Mon Dec  7 10:00:00 2026\nSubject: o\n\n" + body + b"\n")
    server.cli("import", "mbox", ADDR, f, "--variant", "mboxo", "--folder", "o", "--merge")
    assert fetch_all(server, "o")[0][0] == crlf(b"Subject: o\n\nx\nFrom quoted once\n>>From quoted twice\n")
    # mboxrd (the default) takes one '>' off each.
    server.cli("import", "mbox", ADDR, f, "--folder", "rd", "--merge")
    assert fetch_all(server, "rd")[0][0] == crlf(b"Subject: o\n\nx\nFrom quoted once\n>From quoted twice\n")
