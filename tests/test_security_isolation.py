"""Issue 7, isolation: alice can reach none of bob's mail, whatever she sends. Mailbox
names that try to climb or point elsewhere (`../`, `~bob`, `/`, `#users`, wildcards,
modified-UTF-7 and percent encodings, very long names, names with NUL or CR LF sent as
literals) in every command that takes one; UID guessing; COPY/MOVE/APPEND into another's
folder; SASL authorization identities naming bob; POP3. Afterwards bob's folders and
messages are exactly as they were, and nothing alice received mentions them."""

import poplib

from security_util import ALICE, ALICE_PW, BOB, BOB_PW, Conn, b64

SECRET = "BOB-SECRET-7731"

NAMES = [
    "../bob@example.com/INBOX", "../bob@example.com/Private", "../../bob@example.com/INBOX",
    "..", "../", "./INBOX", "/INBOX", "//INBOX", "/bob@example.com/INBOX",
    "~bob/INBOX", "~bob@example.com/INBOX", "~bob@example.com/Private", "~/INBOX", "~",
    "bob@example.com/INBOX", "bob@example.com/Private", "bob/Private",
    "#users/bob/INBOX", "#shared/Private", "Other Users/bob@example.com/INBOX",
    "&AC4ALg-/bob@example.com/INBOX",  # modified UTF-7 for ".."
    "&AC4ALgAv-bob@example.com&AC8-INBOX",
    "%2e%2e/bob@example.com/INBOX", "..%2fbob@example.com%2fINBOX",
    "INBOX/../../bob@example.com/Private", "Private", "*", "%", "INBOX*", "*/Private",
    "x" * 5000, ("a/" * 400) + "Private",
]

# Sent as literals: octets a quoted string cannot carry.
RAW_NAMES = [
    b"INBOX\x00../bob@example.com/INBOX", b"../bob@example.com/Private\x00",
    b"Private\r\nb SELECT INBOX", b"\x00", b"../bob@example.com/INBOX\r\n",
    "../bob@example.com/Privé".encode(), b"\xff\xfe../bob",
]


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Session:
    """alice's raw IMAP session; every octet she receives is kept for the final check."""

    def __init__(self, server, user=ALICE, password=ALICE_PW):
        self.c = Conn(server.require("imap"))
        self.n = 0
        self.seen = [self.c.greeting]
        assert self.cmd(f"LOGIN {user} {quoted(password)}")[-1].split()[1] == "OK"

    def cmd(self, text):
        self.n += 1
        tag = f"t{self.n}"
        lines = self.c.imap(tag, text)
        self.seen += lines
        return lines

    def cmd_literal(self, prefix: str, name: bytes, suffix: str = ""):
        """`prefix {n+}CRLF name suffix` (LITERAL+)."""
        self.n += 1
        tag = f"t{self.n}"
        self.c.send(f"{tag} {prefix} {{{len(name)}+}}\r\n".encode() + name + suffix.encode() + b"\r\n")
        lines = self.c.until_tag(tag)
        self.seen += lines
        return lines

    def close(self):
        try:
            self.cmd("LOGOUT")
        except EOFError:
            pass
        self.c.close()


def bob_state(server):
    lines = Session(server, BOB, BOB_PW).cmd('LIST "" "*"')
    folders = sorted(l for l in lines if l.startswith("* LIST"))
    return folders, {m: server.uids(BOB, m) for m in ("INBOX", "Private")}


def setup(server):
    server.deliver(BOB, f"Subject: {SECRET}\r\n\r\n{SECRET} in the inbox\r\n".encode())
    b = Session(server, BOB, BOB_PW)
    assert b.cmd("CREATE Private")[-1].split()[1] == "OK"
    msg = f"Subject: {SECRET} private\r\n\r\n{SECRET}\r\n".encode()
    assert b.cmd_literal("APPEND Private", msg)[-1].split()[1] == "OK"
    b.close()
    server.deliver(ALICE, b"Subject: alice's own\r\n\r\nhello\r\n")
    return bob_state(server)


def test_mailbox_names_cannot_reach_another_account(server):
    before = setup(server)
    a = Session(server)
    for ref, pat in [("", "*"), ("", "%"), ("", "~bob*"), ("../", "*"), ("/", "*"), ("~bob/", "*"),
                     ("../bob@example.com/", "*"), ("#users/", "*"), ("", "*Private*"),
                     ("", "../*"), ("", "bob@example.com/*"), ("", "&AC4ALg-/*")]:
        lines = a.cmd(f"LIST {quoted(ref)} {quoted(pat)}")
        assert lines[-1].split()[1] in ("OK", "NO", "BAD"), lines
        assert not any("Private" in l or "bob" in l.lower() for l in lines[:-1]), (ref, pat, lines)
    for name in NAMES:
        q = quoted(name)
        for command in (f"SELECT {q}", f"EXAMINE {q}", f"STATUS {q} (MESSAGES UIDNEXT)",
                        f"SUBSCRIBE {q}", f"UNSUBSCRIBE {q}", f"DELETE {q}", f"RENAME {q} Stolen"):
            a.cmd(command)
            a.cmd("UNSELECT")
        a.cmd("SELECT INBOX")
        a.cmd(f"COPY 1 {q}")
        a.cmd(f"UID COPY 1:* {q}")
        a.cmd_literal(f"APPEND {q}", b"Subject: planted\r\n\r\nx\r\n")
        a.cmd(f"CREATE {q}")
        a.cmd(f"RENAME {q} Stolen2")
        a.cmd("UNSELECT")
    for raw in RAW_NAMES:
        for prefix in ("SELECT", "EXAMINE", "DELETE", "CREATE"):
            a.cmd_literal(prefix, raw)
            a.cmd("UNSELECT")
        a.cmd_literal("STATUS", raw, " (MESSAGES)")
        a.cmd("SELECT INBOX")
        a.cmd_literal("COPY 1", raw)
        a.cmd("UNSELECT")
    # Whatever alice created is hers: listed in her account, nothing of bob's inside.
    for l in a.cmd('LIST "" "*"'):
        if l.startswith("* LIST"):
            a.cmd(f"STATUS {l.split(') ', 1)[1].split(' ', 1)[1]} (MESSAGES)")
    a.close()
    text = "\n".join(a.seen)
    assert SECRET not in text, [l for l in a.seen if SECRET in l][:5]
    assert bob_state(server) == before


def test_uid_guessing_and_search_stay_in_the_account(server):
    before = setup(server)
    a = Session(server)
    a.cmd("SELECT INBOX")
    lines = a.cmd("UID FETCH 1:4294967295 (UID BODY.PEEK[])")
    fetched = [l for l in lines if l.startswith("* ") and " FETCH " in l]
    assert len(fetched) == 1, lines
    for uid in (1, 2, 3, 4, 5, 10, 100, 4294967295):
        a.cmd(f"UID FETCH {uid} (BODY.PEEK[] FLAGS)")
        a.cmd(f"UID STORE {uid} +FLAGS (\\Deleted)")
        a.cmd(f"UID COPY {uid} Archive")
        a.cmd(f"UID MOVE {uid} Trash")
    a.cmd("SELECT INBOX")
    lines = a.cmd(f"SEARCH TEXT {SECRET}")
    assert lines[0] in ("* SEARCH", "* SEARCH ") or "ESEARCH" in lines[0], lines
    a.cmd("EXPUNGE")
    for box in ("Archive", "Trash"):
        a.cmd(f"SELECT {box}")
        a.cmd("FETCH 1:* (BODY.PEEK[])")
    a.close()
    assert SECRET not in "\n".join(a.seen)
    assert bob_state(server) == before


def test_authorization_identity_and_pop3(server):
    before = setup(server)
    # SASL PLAIN with authzid bob and alice's credentials: refused on IMAP and POP3.
    c = Conn(server.require("imap"))
    lines = c.imap("a", "AUTHENTICATE PLAIN " + b64(f"{BOB}\0{ALICE}\0{ALICE_PW}"))
    assert lines[-1].startswith("a NO") or lines[-1].startswith("a BAD"), lines
    assert c.imap("b", "SELECT INBOX")[-1].startswith("b BAD")  # not logged in
    c.close()
    c = Conn(server.require("pop3"))
    assert c.pop("AUTH PLAIN " + b64(f"{BOB}\0{ALICE}\0{ALICE_PW}")).startswith("-ERR")
    assert c.pop(f"USER {BOB}").startswith("+OK")
    assert c.pop(f"PASS {ALICE_PW}").startswith("-ERR")
    assert c.pop("STAT").startswith("-ERR")
    c.close()
    # POP3 as alice: her INBOX only; message numbers beyond it do not exist.
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
    p.user(ALICE)
    p.pass_(ALICE_PW)
    assert p.stat()[0] == 1
    seen = b"\n".join(p.retr(1)[1])
    for n in ("2", "3", "100", "0", "-1", "4294967297"):
        for cmd in ("RETR", "TOP", "LIST", "UIDL", "DELE"):
            try:
                r = p._shortcmd(f"{cmd} {n}" + (" 0" if cmd == "TOP" else ""))
                seen += r
            except poplib.error_proto as e:
                assert e.args[0].startswith(b"-ERR"), e
    p.quit()
    assert SECRET.encode() not in seen
    assert bob_state(server) == before
