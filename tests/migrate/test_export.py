"""`letterbox export` and `letterbox import mbox` (issue 16), through the real binary:
- mbox round trip: alice's folders exported as mboxrd, imported into bob's fresh
  account, give byte-identical messages (a body line starting with `From ` included),
  the same flags, keywords and internal dates;
- Maildir round trip: exported as a Dovecot Maildir++ home and imported back with
  `import maildir`, the UIDVALIDITY and UIDs come back too.
"""

import imaplib
import re

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")

FOLDERS = {
    "INBOX": [("(\\Seen)", "plain"), ("(\\Flagged $Label1)", "from-line"), ("()", "unread")],
    "Lists/rust": [("(\\Seen \\Answered project)", "list"), ("(\\Deleted)", "deleted")],
    "Caf&AOk-": [("(\\Draft)", "draft")],
}


def body(kind, i):
    text = f"Subject: {kind} {i}\r\nFrom: a@example.org\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n"
    if kind == "from-line":
        text += "From here on, a line mbox must quote.\r\n>From an already quoted one.\r\n"
    text += f"body {i}\r\n"
    return text.encode()


def login(server, user):
    c = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    c.login(*user)
    return c


def fill(server):
    c = login(server, ALICE)
    i = 0
    for f, msgs in FOLDERS.items():
        if f != "INBOX":
            assert c.create(f'"{f}"')[0] == "OK"
        for flags, kind in msgs:
            i += 1
            date = imaplib.Time2Internaldate(1_700_000_000 + i * 3600)
            assert c.append(f'"{f}"', flags, date, body(kind, i))[0] == "OK"
    c.logout()


def contents(server, user, with_uids):
    """{folder: [(uid or index, flags, internaldate, octets)]}, and UIDVALIDITYs."""
    c = login(server, user)
    out, uvs = {}, {}
    for f in FOLDERS:
        typ, data = c.select(f'"{f}"', readonly=True)
        assert typ == "OK", (f, data)
        uvs[f] = c.untagged_responses["UIDVALIDITY"][0]
        typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        rows = []
        for n, item in enumerate(data):
            if not isinstance(item, tuple):
                continue
            tail = data[n + 1] if n + 1 < len(data) and isinstance(data[n + 1], bytes) else b""
            head = (item[0] + tail).decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            rows.append((uid if with_uids else None, flags, date, item[1]))
        out[f] = rows
        c.close()
    c.logout()
    return out, uvs


def test_mbox_round_trip(server, tmp_path):
    fill(server)
    before, _ = contents(server, ALICE, with_uids=False)
    dest = tmp_path / "mbox"
    r = server.cli("export", "alice@example.com", "--format", "mbox", dest)
    assert "6 messages" in r.stdout.decode(), r.stdout
    raw = (dest / "INBOX.mbox").read_bytes()
    assert b"\n>From here on" in raw and b"\n>>From an already" in raw and b"\r\n" not in raw
    assert (dest / "Lists" / "rust.mbox").is_file()
    for f in FOLDERS:
        name = f.replace("&AOk-", "\u00e9")  # the folder's UTF-8 name, as files carry it
        server.cli("import", "mbox", "bob@example.com", dest / (name + ".mbox"), "--folder", name, "--merge")
    after, _ = contents(server, BOB, with_uids=False)
    assert after == before
    # Nothing twice on a rerun.
    r = server.cli("import", "mbox", "bob@example.com", dest / "INBOX.mbox", "--merge")
    assert "0 messages imported (0 bytes), 3 already imported" in r.stdout.decode(), r.stdout
    assert server.cli("check", "--deep").stdout.decode().strip() == "ok"


def test_maildir_round_trip_keeps_uids(server, tmp_path):
    fill(server)
    # A gap in the UIDs, so that keeping them is visible.
    c = login(server, ALICE)
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    before, uvs = contents(server, ALICE, with_uids=True)
    dest = tmp_path / "Maildir"
    server.cli("export", "alice@example.com", "--format", "maildir", dest)
    assert (dest / ".Lists.rust" / "dovecot-uidlist").is_file()
    r = server.cli("import", "maildir", "bob@example.com", dest)
    assert "0 with new UIDs, 0 skipped" in r.stdout.decode(), r.stdout
    after, uvs_after = contents(server, BOB, with_uids=True)
    assert after == before
    assert uvs_after == uvs
