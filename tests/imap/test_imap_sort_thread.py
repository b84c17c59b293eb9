"""SORT (RFC 5256, with RFC 5957 DISPLAYFROM/DISPLAYTO), THREAD=ORDEREDSUBJECT and
THREAD=REFERENCES (RFC 5256), WITHIN (RFC 5032), OBJECTID (RFC 8474) and PREVIEW
(RFC 8970), end to end with exact answers; SORT and THREAD are also compared with a
private Dovecot given the same messages (differences: crates/imap/src/lib.rs)."""

import re
import time

import pytest

from imap_util import Raw
from test_imap_dovecot import DOVECOT, Client, dovecot  # noqa: F401 (fixture)


def msg(subject=None, frm=None, to=None, cc=None, date=None, mid=None, refs=None, irt=None, body="text"):
    h = []
    for name, value in (("From", frm), ("To", to), ("Cc", cc), ("Subject", subject), ("Date", date),
                        ("Message-ID", mid), ("References", refs), ("In-Reply-To", irt)):
        if value is not None:
            h.append(f"{name}: {value}")
    return ("\r\n".join(h) + "\r\n\r\n" + body + "\r\n").encode()


# (message, INTERNALDATE): a crafted set for SORT and THREAD.
MESSAGES = [
    # 1: a thread root.
    (msg("Hello world", "Zed Alpha <zed@a.example>", "bob@b.example", "carol@c.example",
         "Mon, 3 Feb 2020 10:00:00 +0000", "<m1@x>", body="first message, a bit longer"),
     "05-Feb-2020 00:00:00 +0000"),
    # 2: a reply to 1 with the same sent date in another zone (a DATE tie with 1).
    (msg("Re: Hello world", "Adam Young <adam@b.example>", '"Yvonne" <yv@c.example>', None,
         "Mon, 3 Feb 2020 12:00:00 +0200", "<m2@x>", refs="<m1@x>"),
     "01-Feb-2020 00:00:00 +0000"),
    # 3: a reply to 2 by In-Reply-To only, no Date (sent date = INTERNALDATE), a blob,
    # Re: after it and a (fwd) trailer; an encoded display name.
    (msg("[list] Re: hello WORLD (fwd)", "=?utf-8?q?=C3=84rger?= <mike@x.example>", None, "Bea <bea@x.example>",
         None, "<m3@x>", irt="<m2@x>", body="third"),
     "06-Feb-2020 00:00:00 +0000"),
    # 4, 5: replies to a message that is not here (a dummy parent).
    (msg("Fwd: Another topic", "bob@b.example", "Alpha <alpha@x.example>", "aaron@x.example",
         "Wed, 1 Jan 2020 00:00:00 +0000", "<m4@x>", refs="<missing@x>", body="4"),
     "02-Jan-2020 00:00:00 +0000"),
    (msg("Another topic", "Carol <carol@c.example>", "zoe@z.example", None,
         "Thu, 2 Jan 2020 00:00:00 +0000", "<m5@x>", refs="<missing@x>", body="fifth message"),
     "03-Jan-2020 00:00:00 +0000"),
    # 6, 7: References that loop.
    (msg("Loop A", "loop@x.example", None, None, "Fri, 10 Jan 2020 00:00:00 +0000", "<m6@x>", refs="<m7@x>"),
     "10-Jan-2020 00:00:00 +0000"),
    (msg("Loop B", "loop@x.example", None, None, "Sat, 11 Jan 2020 00:00:00 +0000", "<m7@x>", refs="<m6@x>"),
     "11-Jan-2020 00:00:00 +0000"),
    # 8: a forward by subject only, no Message-ID.
    (msg("[Fwd: Hello world]", "fwd@x.example", "bob@b.example", None, "Tue, 4 Feb 2020 00:00:00 +0000",
         body="forwarded"),
     "04-Feb-2020 00:00:00 +0000"),
    # 9: no subject, an invalid date, a duplicate Message-ID.
    (msg(None, None, None, None, "not a date", "<m1@x>", body="nine"),
     "07-Jan-2020 00:00:00 +0000"),
    # 10: a reply to 4 by In-Reply-To, with an unrelated subject.
    (msg("Re: Re: unrelated", "Bob Z <bob@b.example>", None, None, "Sun, 5 Jan 2020 00:00:00 +0000", "<m10@x>",
         irt="<m4@x> (Bob's message)"),
     "05-Jan-2020 00:00:00 +0000"),
]

SORTS = [
    "SORT (ARRIVAL) UTF-8 ALL",
    "SORT (REVERSE ARRIVAL) UTF-8 ALL",
    "SORT (DATE) UTF-8 ALL",
    "SORT (REVERSE DATE) UTF-8 ALL",
    "SORT (SIZE) UTF-8 ALL",
    "SORT (REVERSE SIZE) US-ASCII ALL",
    "SORT (SUBJECT) UTF-8 ALL",
    "SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
    "SORT (FROM) UTF-8 ALL",
    "SORT (REVERSE FROM) UTF-8 ALL",
    "SORT (TO) UTF-8 ALL",
    "SORT (CC) UTF-8 ALL",
    "SORT (DISPLAYFROM) UTF-8 ALL",
    "SORT (DISPLAYTO) UTF-8 ALL",
    "SORT (SUBJECT) UTF-8 FROM bob",
    "SORT (DATE) UTF-8 2:5",
    "UID SORT (REVERSE SUBJECT ARRIVAL) UTF-8 UNDELETED",
]

THREADS = [
    "THREAD REFERENCES UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "UID THREAD REFERENCES US-ASCII ALL",
    "THREAD REFERENCES UTF-8 NOT SUBJECT loop",
    "THREAD ORDEREDSUBJECT UTF-8 1:5",
]


def load(c):
    for m, date in MESSAGES:
        r = c.cmd(b'APPEND INBOX "%s" {%d+}\r\n' % (date.encode(), len(m)) + m)
        assert b" OK " in r[-1], r
    assert b" OK " in c.cmd("SELECT INBOX")[-1]


def ours(server):
    c = Raw(server)
    c.login()
    load(c)
    return c



SORT_ANSWERS = {
    "SORT (ARRIVAL) UTF-8 ALL": "4 5 10 9 6 7 2 8 1 3",
    "SORT (REVERSE ARRIVAL) UTF-8 ALL": "3 1 8 2 7 6 9 10 5 4",
    # 1 and 2 were sent at the same instant: the lower sequence number first, also
    # under REVERSE; 9's date is invalid and 3 has none: their INTERNALDATE counts.
    "SORT (DATE) UTF-8 ALL": "4 5 10 9 6 7 1 2 8 3",
    "SORT (REVERSE DATE) UTF-8 ALL": "3 8 1 2 7 6 9 10 5 4",
    "SORT (SIZE) UTF-8 ALL": "9 8 6 7 3 10 5 2 1 4",
    "SORT (REVERSE SIZE) US-ASCII ALL": "4 1 2 5 3 10 6 7 8 9",
    # Base subjects: "" (9), ANOTHER TOPIC (4 5), HELLO WORLD (1 2 3 8), LOOP A, LOOP B,
    # UNRELATED.
    "SORT (SUBJECT) UTF-8 ALL": "9 4 5 1 2 3 8 6 7 10",
    "SORT (SUBJECT REVERSE DATE) UTF-8 ALL": "9 5 4 3 8 1 2 6 7 10",
    # addr-mailbox: "" adam bob bob carol fwd loop loop mike zed.
    "SORT (FROM) UTF-8 ALL": "9 2 4 10 5 8 6 7 3 1",
    "SORT (REVERSE FROM) UTF-8 ALL": "1 3 6 7 8 5 4 10 2 9",
    "SORT (TO) UTF-8 ALL": "3 6 7 9 10 4 1 8 2 5",
    "SORT (CC) UTF-8 ALL": "2 5 6 7 8 9 10 4 3 1",
    # Display names: "" ADAM YOUNG A\u0308RGER BOB Z bob@b.example CAROL fwd@... loop@...
    # ZED ALPHA.
    "SORT (DISPLAYFROM) UTF-8 ALL": "9 2 3 10 4 5 8 6 7 1",
    "SORT (DISPLAYTO) UTF-8 ALL": "3 6 7 9 10 4 1 8 2 5",
    "SORT (SUBJECT) UTF-8 FROM bob": "4 10",
    "SORT (DATE) UTF-8 2:5": "4 5 2 3",
    "UID SORT (REVERSE SUBJECT ARRIVAL) UTF-8 UNDELETED": "10 7 6 2 8 1 3 4 5 9",
}

THREAD_ANSWERS = {
    # 4 and 5 answer a missing message (a dummy), 10 answers 4 by In-Reply-To; 9 has no
    # subject and a Message-ID already taken by 1; 6 and 7 name each other (the loop is
    # refused: 7 <- 6 as 6 came first); 8 joins 1 by subject only ([Fwd: ...]).
    "THREAD REFERENCES UTF-8 ALL": "((4 10)(5))(9)(7 6)(1 (2 3)(8))",
    "THREAD ORDEREDSUBJECT UTF-8 ALL": "(4 5)(10)(9)(6)(7)(1 (2)(8)(3))",
    "UID THREAD REFERENCES US-ASCII ALL": "((4 10)(5))(9)(7 6)(1 (2 3)(8))",
    "THREAD REFERENCES UTF-8 NOT SUBJECT loop": "((4 10)(5))(9)(1 (2 3)(8))",
    "THREAD ORDEREDSUBJECT UTF-8 1:5": "(4 5)(1 (2)(3))",
}


def test_sort_exact_answers(server):
    c = ours(server)
    for cmd, want in SORT_ANSWERS.items():
        r = c.cmd(cmd)
        assert r == [b"* SORT " + want.encode(), r[-1]], cmd
        assert r[-1].endswith(b" OK SORT completed"), r
    # Nothing matches: an empty SORT response.
    assert c.cmd("SORT (DATE) UTF-8 SUBJECT nothing-like-this")[0] == b"* SORT"


def test_thread_exact_answers(server):
    c = ours(server)
    for cmd, want in THREAD_ANSWERS.items():
        r = c.cmd(cmd)
        assert r == [b"* THREAD " + want.encode(), r[-1]], cmd
        assert r[-1].endswith(b" OK THREAD completed"), r
    # RFC 5256: `"THREAD" [SP 1*thread-list]` (Dovecot sends "* THREAD ").
    assert c.cmd("THREAD REFERENCES UTF-8 SUBJECT nothing-like-this")[0] == b"* THREAD"
    assert c.cmd("THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing-like-this")[0] == b"* THREAD"
    # UIDs after an expunge differ from sequence numbers.
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.cmd("EXPUNGE")
    # 9 is now the first message with Message-ID <m1@x>: 2 (References: <m1@x>) answers it.
    assert c.cmd("UID THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD ((4 10)(5))(9 2 3)(7 6)(8)"
    assert c.cmd("THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD ((3 9)(4))(8 1 2)(6 5)(7)"
    assert c.cmd("UID SORT (DATE) UTF-8 ALL")[0] == b"* SORT 4 5 10 9 6 7 2 8 3"


ESORTS = {
    "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL": 'MIN 4 MAX 3 ALL 4:5,10,9,6:7,1:2,8,3 COUNT 10',
    "SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL": "ALL 3,1,8,2,7,6,9:10,5,4",
    "SORT RETURN (COUNT MIN) (SIZE) UTF-8 ALL": "MIN 9 COUNT 10",
    "UID SORT RETURN () (SUBJECT) UTF-8 ALL": "UID ALL 9,4:5,1:3,8,6:7,10",
    "SORT RETURN (MAX) (SUBJECT) UTF-8 SUBJECT nothing": "",
    "SORT RETURN (ALL) (ARRIVAL) UTF-8 1,2,3,5:7": "ALL 5:7,2,1,3",
}


def test_esort(server):
    c = ours(server)
    assert b" ESORT" in c.cmd("CAPABILITY")[0]
    for cmd, want in ESORTS.items():
        r = c.cmd(cmd)
        tag = r[-1].split(b" ")[0]
        assert r == [b'* ESEARCH (TAG "' + tag + b'")' + (b" " + want.encode() if want else b""),
                     tag + b" OK SORT completed"], cmd
    # SAVE keeps every match, or only MIN/MAX when asked for.
    r = c.cmd("SORT RETURN (SAVE) (DATE) UTF-8 1:3")
    assert r == [r[-1]] and r[-1].endswith(b" OK SORT completed")
    assert c.cmd("SEARCH $")[0] == b"* SEARCH 1 2 3"
    assert c.cmd("SORT RETURN (SAVE MIN) (DATE) UTF-8 4:6")[0] == b'* ESEARCH (TAG "t%d") MIN 4' % (c.n)
    assert c.cmd("SEARCH $")[0] == b"* SEARCH 4"
    assert c.cmd("SORT RETURN (SAVE MIN MAX) (REVERSE DATE) UTF-8 ALL")[0].endswith(b"MIN 3 MAX 4")
    assert c.cmd("UID SEARCH $")[0] == b"* SEARCH 3 4"
    assert c.cmd("SORT (SUBJECT) UTF-8 $")[0] == b"* SORT 4 3"
    # A MODSEQ key turns CONDSTORE on and adds the highest MODSEQ returned (RFC 7162
    # 3.1.5); the ten APPENDs took MODSEQs 2 to 11 in order.
    modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", l).group(1)) for l in c.cmd("FETCH 1:* MODSEQ")[:-1]
               if b"FETCH" in l]
    assert modseqs == list(range(2, 12))
    r = c.cmd("SORT (DATE) UTF-8 MODSEQ 1")
    assert r[:-1] == [b"* SORT 4 5 10 9 6 7 1 2 8 3 (MODSEQ 11)"]
    assert c.cmd("SORT (DATE) UTF-8 MODSEQ 7 NOT 10")[0] == b"* SORT 9 6 7 8 (MODSEQ 10)"
    r = c.cmd("SORT RETURN (MIN MAX) (DATE) UTF-8 MODSEQ 1")
    assert r[0] == b'* ESEARCH (TAG "t%d") MIN 4 MAX 3 MODSEQ 5' % c.n
    assert c.cmd("SORT RETURN (COUNT) (DATE) UTF-8 MODSEQ 1")[0].endswith(b" COUNT 10 MODSEQ 11")
    assert c.cmd("SORT (DATE) UTF-8 MODSEQ 100")[0] == b"* SORT"


def test_esort_like_dovecot(server, dovecot):
    a = ours(server)
    b = Client(dovecot)
    b.cmd("LOGIN alice@example.com pw")
    load(b)
    for cmd in list(ESORTS) + ["SORT RETURN (SAVE MIN) (DATE) UTF-8 4:6", "SEARCH $",
                               "SORT RETURN (SAVE) (DATE) UTF-8 2:3", "SORT (ARRIVAL) UTF-8 $",
                               "SORT (REVERSE SIZE) UTF-8 MODSEQ 1", "SORT RETURN (ALL COUNT) (DATE) UTF-8 MODSEQ 1"]:
        ra, rb = a.cmd(cmd), b.cmd(cmd)
        assert ra[:-1] == rb[:-1], cmd


def test_bad_input_keeps_the_session(server):
    c = Raw(server)
    c.login()
    assert c.cmd("SORT (DATE) UTF-8 ALL")[-1].startswith(b"t2 BAD")
    load(c)
    n = c.n
    cases = [
        ("SORT (DATE) KOI8-R ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)]"),
        ("UID SORT (DATE) ISO-8859-1 ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)]"),
        ("THREAD REFERENCES X-UNKNOWN ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)]"),
        ("SORT () UTF-8 ALL", b"BAD"),
        ("SORT (SENDER) UTF-8 ALL", b"BAD"),
        ("SORT (REVERSE) UTF-8 ALL", b"BAD"),
        ("SORT (DATE) UTF-8", b"BAD"),
        ("SORT (DATE)", b"BAD"),
        ("SORT DATE UTF-8 ALL", b"BAD"),
        ("SORT (DATE) UTF-8 NOSUCHKEY", b"BAD"),
        ("THREAD REFS UTF-8 ALL", b"BAD"),
        ("THREAD REFERENCES UTF-8", b"BAD"),
        ("THREAD", b"BAD"),
        ("SORT (DATE) UTF-8 OLDER 0", b"BAD"),
        ("SEARCH EMAILID (x)", b"BAD"),
        ("FETCH 1 (PREVIEW (FUZZY))", b"BAD"),
    ]
    for i, (cmd, want) in enumerate(cases):
        r = c.cmd(cmd)
        assert r[-1].startswith(b"t%d " % (n + 2 * i + 1) + want), (cmd, r)
        # The session lives (and a good command resets the count of bad ones in a row).
        assert c.cmd("NOOP")[-1].endswith(b"OK NOOP completed")
    assert c.cmd("SORT (DATE) UTF-8 1:2")[0] == b"* SORT 1 2"
    assert c.cmd("NOOP")[-1].endswith(b"OK NOOP completed")


def test_same_answers_as_dovecot(server, dovecot):
    a = ours(server)
    b = Client(dovecot)
    b.cmd("LOGIN alice@example.com pw")
    load(b)
    for cmd in list(SORT_ANSWERS) + list(THREAD_ANSWERS):
        ra, rb = a.cmd(cmd), b.cmd(cmd)
        assert ra[:-1] == rb[:-1], cmd
    for c in (a, b):
        c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.cmd("EXPUNGE")
    for cmd in ["UID THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL"]:
        ra, rb = a.cmd(cmd), b.cmd(cmd)
        assert ra[:-1] == rb[:-1], cmd


def random_corpus(n, seed):
    """Messages with random subjects (Re:, Fwd:, blobs, trailers), dates (some equal,
    some missing or in other zones) and references (to present, missing and later
    messages, sometimes looping)."""
    import random

    rnd = random.Random(seed)
    bases = ["alpha", "Beta news", "gamma", "[list] delta", "epsilon", "", "=?utf-8?q?=C3=A9t=C3=A9?=",
             "\u00c9t\u00e9 indien", "Zebra", "=?iso-8859-1?q?=C4rger?="]
    senders = ["u1@x.example", "Zed <z@x.example>", "=?utf-8?q?=C3=84rger?= <a@x.example>",
               '"Bob, Jr." <bob@x.example>', "ann@x.example (Ann)", "Group: g1@x.example, g2@x.example;"]
    out = []
    for i in range(1, n + 1):
        base = rnd.choice(bases)
        prefix = rnd.choice(["", "", "Re: ", "RE: Re: ", "Fwd: ", "Re[2]: ", "[x] Re: "])
        subject = prefix + base + rnd.choice(["", "", " (fwd)", "  "])
        if rnd.random() < 0.1:
            subject = "[Fwd: " + subject + "]"
        day = rnd.randint(1, 20)
        date = None if rnd.random() < 0.1 else \
            f"{day} Mar 2021 {rnd.randint(0, 23):02d}:00:00 {rnd.choice(['+0000', '+0200', '-0500'])}"
        refs = []
        for _ in range(rnd.choice([0, 0, 1, 2, 3])):
            refs.append(f"<r{rnd.randint(1, n + 5)}@x>")
        mid = None if rnd.random() < 0.05 else f"<r{i}@x>"
        if i > 1 and rnd.random() < 0.05:
            mid = f"<r{rnd.randint(1, i - 1)}@x>"  # a duplicate
        use_irt = refs and rnd.random() < 0.3
        out.append((msg(subject, rnd.choice(senders), rnd.choice(senders), None, date, mid,
                        None if use_irt else (" ".join(refs) or None),
                        refs[-1] if use_irt else None, body="x" * rnd.randint(1, 50)),
                    f"{rnd.randint(1, 28):02d}-Feb-2021 {rnd.randint(0, 23):02d}:00:00 +0000"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_corpus_like_dovecot(server, dovecot, seed):
    corpus = random_corpus(120, seed)
    a = Raw(server)
    a.login()
    b = Client(dovecot)
    b.cmd("LOGIN alice@example.com pw")
    for c in (a, b):
        for m, date in corpus:
            assert b" OK " in c.cmd(b'APPEND INBOX "%s" {%d+}\r\n' % (date.encode(), len(m)) + m)[-1]
        c.cmd("SELECT INBOX")
    for cmd in ["THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
                "SORT (SUBJECT) UTF-8 ALL", "SORT (DATE) UTF-8 ALL", "SORT (REVERSE FROM SIZE) UTF-8 ALL",
                "THREAD REFERENCES UTF-8 NOT SUBJECT gamma", "UID SORT (ARRIVAL) UTF-8 ALL",
                "SORT (DISPLAYFROM DATE) UTF-8 ALL", "SORT (REVERSE DISPLAYTO) UTF-8 ALL", "SORT (TO FROM) UTF-8 ALL"]:
        ra, rb = a.cmd(cmd), b.cmd(cmd)
        assert ra[:-1] == rb[:-1], (seed, cmd)


def imap_date(t):
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(t))


def test_within_older_younger(server):
    c = Raw(server)
    c.login()
    now = time.time()
    for age in (7200, 60, 3 * 86400, 100):
        m = msg(f"age {age}", "a@x.example", body=str(age))
        c.cmd(b'APPEND INBOX "%s" {%d+}\r\n' % (imap_date(now - age).encode(), len(m)) + m)
    c.cmd("SELECT INBOX")
    assert c.cmd("SEARCH YOUNGER 3600")[0] == b"* SEARCH 2 4"
    assert c.cmd("SEARCH OLDER 3600")[0] == b"* SEARCH 1 3"
    assert c.cmd("SEARCH OLDER 80 YOUNGER 86400")[0] == b"* SEARCH 1 4"
    assert c.cmd("SEARCH NOT YOUNGER 86400")[0] == b"* SEARCH 3"
    assert c.cmd("SEARCH OLDER 1000000")[0] == b"* SEARCH"
    assert c.cmd("UID SORT (ARRIVAL) UTF-8 YOUNGER 10000")[0] == b"* SORT 1 4 2"
    assert c.cmd("THREAD ORDEREDSUBJECT UTF-8 OLDER 3600")[0] == b"* THREAD (3)(1)"
    assert b"WITHIN" in c.cmd("CAPABILITY")[0]


def fetch_ids(c, cmd):
    out = {}
    for line in c.cmd(cmd)[:-1]:
        m = re.match(rb"\* (\d+) FETCH \(.*EMAILID \(([A-Za-z0-9_-]+)\) THREADID \(([A-Za-z0-9_-]+)\)", line)
        assert m, line
        out[int(m.group(1))] = (m.group(2), m.group(3))
    return out


def test_objectid(server):
    c = Raw(server)
    c.login()
    assert b" OBJECTID" in c.cmd("CAPABILITY")[0]
    r = c.cmd("CREATE Work")[-1]
    m = re.fullmatch(rb"t3 OK \[MAILBOXID \((F[0-9]+-[0-9]+)\)\] CREATE completed", r)
    assert m, r
    work = m.group(1)
    assert c.cmd("STATUS Work (MAILBOXID MESSAGES)")[0] == b"* STATUS Work (MAILBOXID (" + work + b") MESSAGES 0)"
    inbox = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", c.cmd("STATUS INBOX (MAILBOXID)")[0]).group(1)
    assert inbox != work
    # RENAME keeps the MAILBOXID; a new mailbox of the old name gets another one.
    c.cmd("RENAME Work Play")
    assert c.cmd("STATUS Play (MAILBOXID)")[0] == b"* STATUS Play (MAILBOXID (" + work + b"))"
    assert b"* OK [MAILBOXID (" + work + b")] Ok" in c.cmd("EXAMINE Play")
    r = c.cmd('LIST "" Play RETURN (STATUS (MAILBOXID))')
    assert b"* STATUS Play (MAILBOXID (" + work + b"))" in r, r
    c.cmd("CLOSE")
    c.cmd("DELETE Play")
    again = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", c.cmd("CREATE Play")[-1]).group(1)
    assert again not in (work, inbox)
    # CREATE of a special-folder alias names the folder it stands for.
    sent = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", c.cmd("STATUS Sent (MAILBOXID)")[0]).group(1)
    r = c.cmd('CREATE "Sent Items"')[-1]
    assert r == b"t%d OK [MAILBOXID (%s)] CREATE completed: the \\Sent folder" % (c.n, sent), r

    server.deliver("alice@example.com", msg("root", "a@x.example", mid="<a@x>", body="root"))
    server.deliver("alice@example.com", msg("Re: root", "b@x.example", mid="<b@x>", refs="<a@x>", irt="<a@x>"))
    server.deliver("alice@example.com", msg("other", "c@x.example", mid="<c@x>"))
    server.deliver("alice@example.com", msg("Re: root", "d@x.example", mid="<d@x>", irt="<a@x>"))
    server.deliver("alice@example.com", msg("Re: Re: root", "e@x.example", mid="<e@x>", refs="<a@x> <b@x>"))
    c.cmd("SELECT INBOX")
    ids = fetch_ids(c, "FETCH 1:5 (EMAILID THREADID)")
    assert len({v[0] for v in ids.values()}) == 5
    assert ids[1][1] == ids[2][1] == ids[4][1] == ids[5][1] != ids[3][1]
    assert c.cmd(b"SEARCH EMAILID " + ids[3][0])[0] == b"* SEARCH 3"
    assert c.cmd(b"SEARCH THREADID " + ids[1][1])[0] == b"* SEARCH 1 2 4 5"
    assert c.cmd(b"SEARCH THREADID " + ids[3][1])[0] == b"* SEARCH 3"
    assert c.cmd("SEARCH EMAILID Mnothing")[0] == b"* SEARCH"
    # COPY and MOVE keep EMAILID and THREADID.
    assert b" OK " in c.cmd("COPY 1 Archive")[-1]
    assert b" OK " in c.cmd("MOVE 3 Archive")[-1]
    r = c.cmd("SELECT Archive")
    assert not any(b"[MAILBOXID (" + inbox + b")]" in l for l in r)
    moved = fetch_ids(c, "FETCH 1:2 (EMAILID THREADID)")
    assert moved == {1: ids[1], 2: ids[3]}
    assert c.cmd(b"UID SEARCH EMAILID " + ids[3][0])[0] == b"* SEARCH 2"
    # The same again after the copy is stored under another UID in its first mailbox.
    c.cmd("SELECT INBOX")
    assert c.cmd(b"SEARCH EMAILID " + ids[1][0])[0] == b"* SEARCH 1"
    assert c.cmd(b"SEARCH EMAILID " + ids[3][0])[0] == b"* SEARCH"


PREVIEW_MSGS = [
    msg("plain", "a@x.example", body="Hello   there,\r\n\r\nthis is\ta test.  "),
    b"From: a@x.example\r\nSubject: html\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
    b"<html><body><p>Hi <b>Bob</b></p>&amp; more</body></html>\r\n",
    msg("long", "a@x.example", body="word " * 200),
    b"From: a@x.example\r\nSubject: empty\r\n\r\n",
    b"From: a@x.example\r\nSubject: utf8\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n",
    b"From: a@x.example\r\nSubject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nbody text\r\n> quoted line\r\n"
    b"--b\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment\r\n\r\nattached text\r\n--b--\r\n",
]


def test_preview(server):
    c = Raw(server)
    c.login()
    for m in PREVIEW_MSGS:
        server.deliver("alice@example.com", m)
    c.cmd("SELECT INBOX")
    assert b" PREVIEW" in c.cmd("CAPABILITY")[0]
    r = c.cmd("FETCH 1:6 (PREVIEW)")
    long = ("word " * 40).strip().encode()
    assert r[:-1] == [
        b'* 1 FETCH (PREVIEW "Hello there, this is a test.")',
        b'* 2 FETCH (PREVIEW "Hi Bob & more")',
        b'* 3 FETCH (PREVIEW "' + long + b'")',
        b'* 4 FETCH (PREVIEW "")',
        b"* 5 FETCH (PREVIEW {17}\r\n" + "Grüße aus Köln".encode() + b")",
        # The first text body only, without quoted lines or attachments.
        b'* 6 FETCH (PREVIEW "body text")',
    ], r
    assert r[-1].endswith(b"OK FETCH completed")
    assert c.cmd("UID FETCH 1 (PREVIEW (LAZY) FLAGS)")[0] == \
        b'* 1 FETCH (UID 1 PREVIEW "Hello there, this is a test." FLAGS (\\Recent))'
    # PREVIEW does not set \Seen.
    assert c.cmd("FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))"
    # With UTF8=ACCEPT the text is sent quoted.
    c.cmd("ENABLE UTF8=ACCEPT")
    assert c.cmd("FETCH 5 PREVIEW")[0] == b'* 5 FETCH (PREVIEW "' + "Grüße aus Köln".encode() + b'")'


def test_preview_and_within_like_dovecot(server, dovecot):
    a = Raw(server)
    a.login()
    b = Client(dovecot)
    b.cmd("LOGIN alice@example.com pw")
    for c in (a, b):
        for m in PREVIEW_MSGS:
            assert b" OK " in c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m)[-1]
        c.cmd("SELECT INBOX")
    for cmd in ["FETCH 1:* (PREVIEW)", "FETCH 2 (PREVIEW (LAZY))", "SEARCH YOUNGER 600", "SEARCH OLDER 600"]:
        ra, rb = a.cmd(cmd), b.cmd(cmd)
        assert ra[:-1] == rb[:-1], cmd


def test_imaplib_client(server):
    """Python's imaplib speaks SORT and THREAD: its answers parse as expected."""
    from imap_util import login

    c = ours(server)
    c.close()
    m = login(server)
    m.select("INBOX")
    typ, data = m.sort("(REVERSE DATE)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 8 1 2 7 6 9 10 5 4"]
    typ, data = m.uid("SORT", "(SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"9 4 5 1 2 3 8 6 7 10"]
    typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"((4 10)(5))(9)(7 6)(1 (2 3)(8))"]
    typ, data = m.fetch("1", "(EMAILID THREADID PREVIEW)")
    assert typ == "OK" and re.match(
        rb'1 \(EMAILID \(M[0-9a-f]+\) THREADID \(T[0-9a-f]{24}\) PREVIEW "first message, a bit longer"\)', data[0]
    ), data
    m.logout()
