"""Users' Sieve scripts (issue 13): stored with `letterbox sieve`, run at SMTP/LMTP
delivery; mail seen where the script put it over IMAP; vacation; a broken or runaway
script never loses mail."""

import imaplib
import re
import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_util import lmtp, lmtp_send, smtp  # noqa: E402

ALICE = "alice@example.com"
BOB = "bob@example.com"


def msg(subject, frm="carol@remote.example", to=ALICE, extra="", body="Hello.\r\n"):
    return (
        f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject + extra))}@remote.example>\r\n{extra}\r\n{body}"
    ).encode()


def put(server, script, name="main", address=ALICE, activate=True):
    args = ["sieve", "put", address, name] + (["--activate"] if activate else [])
    return server.cli(*args, input=script, check=False)


def send(server, rcpts, message, sender="carol@remote.example"):
    with smtp(server) as s:
        s.sendmail(sender, rcpts, message)


def imap_login(server, user=ALICE, password="alice-Secret1"):
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    m.login(user, password)
    return m


def folder(m, name):
    """(subject, flags) of every message in a folder, seen over IMAP."""
    typ, count = m.select(f'"{name}"', readonly=True)
    assert typ == "OK", name
    if int(count[0]) == 0:
        return []
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ != "OK" or data == [None]:
        return []
    out = []
    for item in data:
        if isinstance(item, tuple):
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
            flags = [f for f in flags if f != "\\Recent"]  # session-dependent
            subj = item[1].decode().strip().removeprefix("Subject: ")
            out.append((subj, sorted(flags)))
    return out


def subjects(m, name):
    return [s for s, _ in folder(m, name)]


SCRIPT = r"""require ["fileinto", "envelope", "imap4flags", "copy", "body", "variables",
         "subaddress", "relational", "regex", "mailbox", "comparator-i;ascii-numeric", "date"];
# 1. a mailing list into its own folder, created on first use
if header :regex "List-Id" "<([a-z]+)\.lists\.example>" {
    fileinto :create "Lists/${1}";
    stop;
}
# 2. plus-addressing: alice+news@ into News (which does not exist: no :create -> INBOX)
if envelope :detail "to" "news" {
    fileinto "News";
    stop;
}
# 3. flags, and a copy into Archive
if header :contains "Subject" "invoice" {
    addflag "\\Flagged";
    addflag "$Invoice";
    fileinto :copy "Archive";
}
# 4. body test, discard
if body :text :contains "unsubscribe-me-now" {
    discard;
    stop;
}
# 5. relational on a header count
if header :count "ge" :comparator "i;ascii-numeric" "X-Hop" "3" {
    fileinto "Trash";
    stop;
}
"""


def test_cli_manages_scripts_and_refuses_bad_ones(server):
    r = put(server, SCRIPT, activate=False)
    assert r.returncode == 0, r.stderr
    r = put(server, "keep;\n", name="second", activate=False)
    assert r.returncode == 0, r.stderr
    assert server.cli("sieve", "list", ALICE).stdout.decode() == f"main\t{len(SCRIPT.encode())}\nsecond\t6\n"
    server.cli("sieve", "activate", ALICE, "second")
    assert server.cli("sieve", "list", ALICE).stdout.decode() == f"main\t{len(SCRIPT.encode())}\nsecond\t6\tactive\n"
    assert server.cli("sieve", "get", ALICE, "main").stdout == SCRIPT.encode()
    # Malformed: refused with the line and the column; nothing stored.
    bad = 'require "fileinto";\nif header :contains "Subject" "x" {\n  fileinto "A"\n}\n'
    r = put(server, bad, name="bad")
    assert r.returncode != 0
    err = r.stderr.decode()
    assert re.search(r"script 'bad' refused: line 4, column \d+: ", err), err
    # An extension the server does not offer (reject needs outbound delivery).
    r = put(server, 'require "reject";\nreject "go away";\n', name="bad")
    assert r.returncode != 0 and 'extension "reject" is not supported' in r.stderr.decode()
    # Too large for filter.sieve_max_script_size (64K by default).
    r = put(server, "#" * (65 * 1024) + "\nkeep;\n", name="bad")
    assert r.returncode != 0 and "too large" in r.stderr.decode()
    assert "bad" not in server.cli("sieve", "list", ALICE).stdout.decode()
    # Unknown account, unknown script: one clear line, non-zero.
    r = server.cli("sieve", "activate", ALICE, "nope", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr.decode()
    r = server.cli("sieve", "list", "nobody@example.com", check=False)
    assert r.returncode != 0
    server.cli("sieve", "deactivate", ALICE)
    assert "active" not in server.cli("sieve", "list", ALICE).stdout.decode()
    server.cli("sieve", "remove", ALICE, "second")
    assert server.cli("sieve", "list", ALICE).stdout.decode() == f"main\t{len(SCRIPT.encode())}\n"


def test_script_files_mail_into_folders_seen_over_imap(server):
    assert put(server, SCRIPT).returncode == 0
    send(server, [ALICE], msg("rust weekly", extra="List-Id: Rust <rust.lists.example>\r\n"))
    send(server, ["alice+news@example.com"], msg("news of the day", to="alice+news@example.com"))
    send(server, [ALICE], msg("your invoice 42"))
    send(server, [ALICE], msg("plain hello"))
    send(server, [ALICE], msg("bye", body="please unsubscribe-me-now thanks\r\n"))
    send(server, [ALICE], msg("hops", extra="X-Hop: 1\r\nX-Hop: 2\r\nX-Hop: 3\r\n"))
    # Bob has no script: his copy of the invoice goes to INBOX unflagged.
    send(server, [ALICE, BOB], msg("shared invoice", to=f"{ALICE}, {BOB}"))

    a1, a2 = imap_login(server), imap_login(server)
    try:
        for m in (a1, a2):  # two clients see the same server-side folders
            typ, lst = m.list()
            names = [l.decode().rsplit(" ", 1)[1].strip('"') for l in lst]
            assert "Lists/rust" in names and "Lists" in names
            assert "News" not in names  # fileinto without :create does not create
            assert subjects(m, "Lists/rust") == ["rust weekly"]
            assert folder(m, "INBOX") == [
                ("news of the day", []),
                ("your invoice 42", ["$Invoice", "\\Flagged"]),
                ("plain hello", []),
                ("shared invoice", ["$Invoice", "\\Flagged"]),
            ]
            assert folder(m, "Archive") == [
                ("your invoice 42", ["$Invoice", "\\Flagged"]),
                ("shared invoice", ["$Invoice", "\\Flagged"]),
            ]
            assert subjects(m, "Trash") == ["hops"]
    finally:
        a1.logout()
        a2.logout()
    b = imap_login(server, BOB, "bob-Secret2")
    try:
        assert folder(b, "INBOX") == [("shared invoice", [])]
        assert subjects(b, "Archive") == []
    finally:
        b.logout()
    # Quota usage is still the sum of what is stored (the Archive copy counts).
    assert server.cli("check").stdout.decode().strip() == "ok"


def test_lmtp_runs_the_script_per_recipient(server):
    assert put(server, 'require "fileinto";\nfileinto "Archive";\n').returncode == 0
    with lmtp(server) as c:
        c.ehlo("mx.example.com")
        r = lmtp_send(c, "carol@remote.example", [ALICE, BOB], msg("via lmtp"))
    assert {k: v[0] for k, v in r.items()} == {ALICE: 250, BOB: 250}
    m = imap_login(server)
    try:
        assert subjects(m, "Archive") == ["via lmtp"]
        assert subjects(m, "INBOX") == []
    finally:
        m.logout()
    assert len(server.uids(BOB)) == 1


VACATION = """require ["vacation"];
vacation :days 3 :subject "Out of office" "I am away until Monday.";
"""


def replies(server, address=BOB):
    out = []
    for uid in server.uids(address):
        m = server.message(address, "INBOX", uid)
        if b"Auto-Submitted: auto-replied" in m and b"Subject: Out of office" in m:
            out.append(m)
    return out


def test_vacation_replies_once_per_sender(server):
    assert put(server, VACATION).returncode == 0
    first = msg("lunch?", frm=BOB)
    send(server, [ALICE], first, sender=BOB)
    send(server, [ALICE], msg("lunch again?", frm=BOB), sender=BOB)
    got = replies(server)
    assert len(got) == 1, [g[:300] for g in got]
    reply = got[0]
    assert reply.startswith(b"Return-Path: <>\r\n"), reply[:200]
    assert re.search(rb"(?m)^Subject: Out of office\r$", reply)
    assert re.search(rb"(?m)^To: bob@example.com\r$", reply)
    assert re.search(rb"(?m)^In-Reply-To: <\d+@remote.example>\r$", reply)
    assert reply.rstrip().endswith(b"I am away until Monday.")
    # Both messages were delivered to Alice regardless.
    assert len(server.uids(ALICE)) == 2
    # No reply to lists, bulk mail, auto-replies or the null sender, nor to herself.
    send(server, [ALICE], msg("list", frm=BOB, extra="List-Id: <x.lists.example>\r\n"), sender="carol@example.com")
    send(server, [ALICE], msg("bulk", frm=BOB, extra="Precedence: bulk\r\n"), sender="dave@example.com")
    send(server, [ALICE], msg("auto", frm=BOB, extra="Auto-Submitted: auto-replied\r\n"), sender="erin@example.com")
    send(server, [ALICE], msg("bounce", frm=BOB), sender="")
    send(server, [ALICE], msg("self", frm=ALICE), sender=ALICE)
    assert len(replies(server)) == 1
    assert len(replies(server, ALICE)) == 0
    assert len(server.uids(ALICE)) == 7


def test_broken_and_runaway_scripts_deliver_to_inbox(make_server):
    s = make_server(**{"filter.sieve_max_instructions": 200})
    # Many tests on every message: cut off by the instruction limit.
    runaway = 'require "fileinto";\n' + "".join(
        f'if header :contains "Subject" "never{i}" {{ fileinto "Trash"; }}\n' for i in range(400)
    ) + 'fileinto "Trash";\n'
    assert put(s, runaway).returncode == 0
    send(s, [ALICE], msg("runaway"))
    assert len(s.uids(ALICE)) == 1
    assert s.uids(ALICE, "Trash") == []
    assert "sieve: script cut off: it reached filter.sieve_max_instructions; delivered to INBOX" in s.read_log()
    # A script that fails at run time (an include that is not there).
    assert put(s, 'require "include";\ninclude :personal "missing";\n').returncode == 0
    send(s, [ALICE], msg("broken"))
    assert len(s.uids(ALICE)) == 2
    assert "sieve: included script 'missing' not found; delivered to INBOX" in s.read_log()


def test_vacation_reply_to_another_domain_is_queued(server):
    """A reply to a sender outside the local domains goes into the outbound queue, from
    the null sender, once per sender (the queue delivers it like submitted mail)."""
    assert put(server, VACATION).returncode == 0
    carol = "carol@remote.example"
    send(server, [ALICE], msg("hello from afar", frm=carol), sender=carol)
    send(server, [ALICE], msg("hello again", frm=carol), sender=carol)
    out = server.cli("queue", "list").stdout.decode()
    entries = [l for l in out.splitlines() if l and not l.startswith(" ")]
    assert len(entries) == 1, out
    qid = entries[0].split("\t")[0]
    show = server.cli("queue", "show", qid).stdout.decode()
    assert "sender: <>" in show, show
    assert re.search(r"(?m)^rcpt: <carol@remote\.example>\t", show), show
    assert "sieve: vacation reply queued" in server.read_log()
    # Alice has both messages; no local reply was made.
    assert len(server.uids(ALICE)) == 2
