"""`UID SORT (DATE)` and `UID THREAD REFERENCES` (RFC 5256) from the sort keys made at
delivery (issue 18, crates/message/src/sortkeys.rs, crates/store/src/sortkeys.rs): for
messages that arrived over LMTP, by APPEND, by COPY and by import, the first SORT and
THREAD ever of a mailbox, the same after a restart, and the same again when the records
are gone (read from the heads, as for messages stored before them). The expected UID
orders are computed here from the messages written: sent date (INTERNALDATE when there
is none, ties by sequence number), and the threads of their References / In-Reply-To."""

import smtplib

from imap_util import Raw
from test_imap_shared_index import store_sql

GROUPS = 9
# Per group: (index, parent index or None, minutes after the group's start, how the
# parent is named: "refs" (References: the whole chain) or "irt" (In-Reply-To only)).
SHAPE = [(0, None, 0, None), (1, 0, 30, "refs"), (2, 1, 45, "irt"), (3, 0, 20, "refs"), (4, 3, 90, "refs")]


def build():
    """The messages: {name: dict(octets, date (epoch seconds or None), id, parent)}."""
    msgs = {}
    base = 1_772_400_000  # 2026-03-01 21:20:00 UTC
    for g in range(GROUPS):
        start = base + ((g * 7) % GROUPS) * 3600  # groups' starts out of their order
        for i, parent, minutes, how in SHAPE:
            name = f"g{g}m{i}"
            mid = f"<qs-{name}@sort.example>"
            chain = []
            p = parent
            while p is not None:
                chain.insert(0, f"<qs-g{g}m{p}@sort.example>")
                p = SHAPE[p][1]
            date = start + minutes * 60
            # Two groups' third replies have the same sent date (ties go by sequence).
            if g in (2, 5) and i == 2:
                date = base + 50 * 3600
            h = f"From: qs{g}@from.example\r\nTo: t@example.com\r\nMessage-ID: {mid}\r\n"
            subject = f"qsort topic {g}"
            if parent is not None:
                subject = ("Re: " if i % 2 else "RE: ") + subject
                if how == "refs":
                    h += "References: " + "\r\n ".join(chain) + "\r\n"
                else:
                    h += f"In-Reply-To: {chain[-1]}\r\n"
            h += f"Subject: {subject}\r\n"
            # Group 4's root has no valid Date: its INTERNALDATE (APPENDed) stands in.
            if g == 4 and i == 0:
                h += "Date: not a date\r\n"
                date = None
            else:
                h += "Date: " + rfc822(date) + "\r\n"
            msgs[name] = {
                "octets": (h + f"\r\nbody of {name}\r\n").encode(),
                "date": date,
                "id": mid,
                "parent": None if parent is None else f"g{g}m{parent}",
                "subject": subject,
                "refs": [] if parent is None else chain if how == "refs" else chain[-1:],
            }
    return msgs


def lbs1(m):
    """A message's sort-keys record as the version before base subjects (LBS1) wrote it
    (crates/message/src/sortkeys.rs: CRC-32, flags, date, subject, Message-ID, parents)."""
    import struct
    import zlib

    def leb(n):
        out = b""
        while True:
            b, n = n & 0x7F, n >> 7
            if n == 0:
                return out + bytes([b])
            out += bytes([b | 0x80])

    def s(x):
        x = x.encode()
        return leb(len(x)) + x

    body = bytes([(1 if m["date"] is not None else 0) | 2 | 4])
    if m["date"] is not None:
        body += struct.pack("<q", m["date"])
    body += s(m["subject"]) + s(m["id"].strip("<>")) + leb(len(m["refs"]))
    body += b"".join(s(r.strip("<>")) for r in m["refs"])
    return b"LBS1" + struct.pack("<I", zlib.crc32(body)) + body


def rfc822(t):
    import email.utils

    return email.utils.formatdate(t, usegmt=True)


APPEND_INTERNAL = "14-Nov-2023 12:00:00 +0000"
APPEND_INTERNAL_EPOCH = 1_699_963_200


def route(name):
    """How a message arrives: by its number, LMTP, APPEND or import (group 4's root is
    APPENDed with a known INTERNALDATE)."""
    if name == "g4m0":
        return "append"
    n = sum(map(ord, name))
    return ["lmtp", "append", "import"][n % 3]


def uid_search(c, key):
    r = c.cmd(("UID SEARCH " + key).encode())
    assert r[-1].endswith(b"OK SEARCH completed"), r
    line = [l for l in r[:-1] if l.startswith(b"* SEARCH")]
    return [int(x) for x in line[0].split()[2:]]


def answers(c, mailbox):
    """(UID SORT (DATE), UID THREAD REFERENCES, UID SORT (REVERSE DATE)) of `mailbox`."""
    assert c.cmd(f"SELECT {mailbox}")[-1].endswith(b"SELECT completed")
    out = []
    for cmd, prefix in [
        ("UID SORT (DATE) UTF-8 ALL", b"* SORT"),
        ("UID THREAD REFERENCES UTF-8 ALL", b"* THREAD"),
        ("UID SORT (REVERSE DATE) UTF-8 ALL", b"* SORT"),
    ]:
        r = c.cmd(cmd.encode())
        assert b" OK " in r[-1], r
        line = [l for l in r[:-1] if l.startswith(prefix)]
        assert len(line) == 1, r
        out.append(line[0].decode().rstrip("\r\n"))
    return out


def expected(msgs, uid_of):
    """The three answers for a mailbox whose UIDs are `uid_of` (name -> UID)."""
    by_uid = sorted(uid_of, key=uid_of.get)
    seq = {n: k + 1 for k, n in enumerate(by_uid)}

    def date(n):
        d = msgs[n]["date"]
        return APPEND_INTERNAL_EPOCH if d is None else d

    order = sorted(by_uid, key=lambda n: (date(n), seq[n]))
    rev = sorted(by_uid, key=lambda n: (-date(n), seq[n]))
    sort = "* SORT " + " ".join(str(uid_of[n]) for n in order)
    rsort = "* SORT " + " ".join(str(uid_of[n]) for n in rev)
    kids = {n: [] for n in by_uid}
    roots = []
    for n in by_uid:
        p = msgs[n]["parent"]
        (kids[p] if p else roots).append(n)
    key = lambda n: (date(n), seq[n])

    def render(n):
        out = [str(uid_of[n])]
        while len(kids[n]) == 1:
            n = kids[n][0]
            out.append(str(uid_of[n]))
        ks = sorted(kids[n], key=key)
        s = " ".join(out)
        if ks:
            s += " " + "".join("(" + render(k) + ")" for k in ks)
        return s

    thread = "* THREAD " + "".join("(" + render(r) + ")" for r in sorted(roots, key=key))
    return [sort, thread, rsort]


def top_level(thread):
    """How many threads a `* THREAD` line holds."""
    depth = n = 0
    for ch in thread:
        if ch == "(":
            n += depth == 0
            depth += 1
        elif ch == ")":
            depth -= 1
    return n


def test_sort_and_thread_from_keys_made_at_delivery(server, tmp_path):
    msgs = build()
    names = list(msgs)
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as l:
        assert l.ehlo()[0] == 250
        for n in names:
            if route(n) == "lmtp":
                assert l.sendmail("s@example.org", ["alice@example.com"], msgs[n]["octets"]) == {}
    c = Raw(server)
    c.login()
    for n in names:
        if route(n) == "append":
            m = msgs[n]["octets"]
            date = f'"{APPEND_INTERNAL}" ' if n == "g4m0" else ""
            r = c.cmd(b"APPEND INBOX %s{%d+}\r\n" % (date.encode(), len(m)) + m)
            assert b" OK " in r[-1], r
    c.cmd("LOGOUT")
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(
        b"".join(
            b"From s@example.org Tue Nov 14 12:00:00 2023\n" + msgs[n]["octets"].replace(b"\r\n", b"\n") + b"\n"
            for n in names
            if route(n) == "import"
        )
    )
    assert {route(n) for n in names} == {"lmtp", "append", "import"}
    server.stop()
    server.cli("import", "mbox", "--merge", "alice@example.com", str(mbox))
    server.start()
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    assert c.cmd("CREATE Copies")[-1].endswith(b"CREATE completed")
    assert b" OK " in c.cmd("COPY 1:* Copies")[-1]
    c.cmd("LOGOUT")
    # Every row carries its blob's record: delivered, APPENDed, imported and copied.
    total = len(names) * 2
    assert store_sql(server, "SELECT count(*) FROM messages WHERE sortkeys IS NOT NULL")[0][0] == total
    # Of the version with base subjects made at delivery (LBS2).
    assert store_sql(
        server,
        "SELECT count(*) FROM messages WHERE hex(substr(sortkeys, 1, 4)) = '4C425332'",
        pg="SELECT count(*) FROM messages WHERE substring(sortkeys from 1 for 4) = 'LBS2'::bytea",
    )[0][0] == total

    def first(mailboxes=("INBOX", "Copies")):
        """Each mailbox's first SORT and THREAD in a new process."""
        server.restart()
        c = Raw(server)
        c.login()
        got = [answers(c, mb) for mb in mailboxes]
        c.cmd("LOGOUT")
        return got

    got = first()
    # The UIDs of the messages, by their Message-ID (after the answers: this search
    # reads heads).
    c = Raw(server)
    c.login()
    want = []
    for mb in ("INBOX", "Copies"):
        assert c.cmd(f"SELECT {mb}")[-1].endswith(b"SELECT completed")
        uid_of = {}
        for n in names:
            u = uid_search(c, f'HEADER Message-ID "{msgs[n]["id"]}"')
            assert len(u) == 1, (n, u)
            uid_of[n] = u[0]
        want.append(expected(msgs, uid_of))
    # Warm (the keys now in memory) as cold.
    assert [answers(c, mb) for mb in ("INBOX", "Copies")] == want
    c.cmd("LOGOUT")
    assert got == want
    assert top_level(want[0][1]) == GROUPS
    # The same after a restart.
    assert first() == want
    # The records are what is read: a row given another message's record sorts as it.
    inbox_uid = {}
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    for n in ("g0m4", "g7m0"):
        inbox_uid[n] = uid_search(c, f'HEADER Message-ID "{msgs[n]["id"]}"')[0]
    c.cmd("LOGOUT")
    server.stop()
    store_sql(
        server,
        "UPDATE messages SET sortkeys = (SELECT m2.sortkeys FROM messages m2 "
        f"WHERE m2.mailbox_id = messages.mailbox_id AND m2.uid = {inbox_uid['g7m0']}) "
        f"WHERE uid = {inbox_uid['g0m4']} AND mailbox_id = "
        "(SELECT min(mailbox_id) FROM messages)",
    )
    server.start()
    swapped = dict(msgs)
    swapped["g0m4"] = dict(msgs["g7m0"], parent=None)
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    uid_of = {n: uid_search(c, f'HEADER Message-ID "{msgs[n]["id"]}"')[0] for n in names}
    c.cmd("LOGOUT")
    server.restart()
    c = Raw(server)
    c.login()
    got_swapped = answers(c, "INBOX")
    c.cmd("LOGOUT")
    want_swapped = expected(swapped, uid_of)
    # The SORTs follow the record's date; the THREAD has the record's Message-ID twice
    # (RFC 5256 4 step 1: the second is unique), so only its SORTs are compared.
    assert [got_swapped[0], got_swapped[2]] == [want_swapped[0], want_swapped[2]]
    assert got_swapped[0] != want[0][0]
    # Records of the version before (LBS1: the decoded subject, no base subject), as the
    # build before this one wrote them: the same answers.
    server.stop()
    for n in names:
        rec = lbs1(msgs[n]).hex()
        where = f"WHERE uid = {uid_of[n]} AND mailbox_id = (SELECT min(mailbox_id) FROM messages)"
        store_sql(
            server,
            f"UPDATE messages SET sortkeys = X'{rec}' {where}",
            pg=f"UPDATE messages SET sortkeys = decode('{rec}', 'hex') {where}",
        )
    server.start()
    assert store_sql(
        server,
        "SELECT count(*) FROM messages WHERE hex(substr(sortkeys, 1, 4)) = '4C425331'",
        pg="SELECT count(*) FROM messages WHERE substring(sortkeys from 1 for 4) = 'LBS1'::bytea",
    )[0][0] == len(names)
    assert first() == want
    # Without records (stored before them): from the heads, the same answers.
    server.stop()
    store_sql(server, "UPDATE messages SET sortkeys = NULL")
    store_sql(server, "DELETE FROM blob_sortkeys", pg="UPDATE blobs SET sortkeys = NULL")
    server.start()
    assert store_sql(server, "SELECT count(*) FROM messages WHERE sortkeys IS NOT NULL")[0][0] == 0
    assert first() == want


def uid_sort(c, cmd):
    r = c.cmd(cmd.encode())
    assert b" OK " in r[-1], r
    line = [l for l in r[:-1] if l.startswith(b"* SORT")]
    assert len(line) == 1, r
    return [int(x) for x in line[0].split()[2:]]


def test_sort_date_alone_before_thread(server):
    """SORT (DATE) reads the sent dates alone (not THREAD's keys): first after a start,
    REVERSE first, on a subset, with rows whose record is their blob's or none at all
    (stored before them: the heads), after an expunge in another session, and THREAD
    after it; every answer the one computed from the messages written."""
    msgs = build()
    names = list(msgs)
    c = Raw(server)
    c.login()
    for n in names:
        m = msgs[n]["octets"]
        date = f'"{APPEND_INTERNAL}" ' if n == "g4m0" else ""
        r = c.cmd(b"APPEND INBOX %s{%d+}\r\n" % (date.encode(), len(m)) + m)
        assert b" OK " in r[-1], r
    c.cmd("LOGOUT")
    uid_of = {n: k + 1 for k, n in enumerate(names)}
    # A third of the rows without their copy (read through the blob's record), a third
    # without any record (as stored before them: read from the head).
    server.stop()
    store_sql(server, "UPDATE messages SET sortkeys = NULL WHERE uid % 3 <> 0")
    store_sql(
        server,
        "DELETE FROM blob_sortkeys WHERE hash IN (SELECT blob FROM messages WHERE uid % 3 = 1)",
        pg="UPDATE blobs SET sortkeys = NULL WHERE hash IN (SELECT blob FROM messages WHERE uid % 3 = 1)",
    )
    server.start()
    want = expected(msgs, uid_of)
    as_uids = lambda line: [int(x) for x in line.split()[2:]]
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    # First on a subset (the rest not read), then REVERSE DATE, then DATE (the dates
    # kept).
    subset = sorted(u for u in uid_of.values() if u % 4 == 0)
    got = uid_sort(c, "UID SORT (DATE) UTF-8 UID " + ",".join(map(str, subset)))
    assert got == [u for u in as_uids(want[0]) if u in subset]
    assert uid_sort(c, "UID SORT (REVERSE DATE) UTF-8 ALL") == as_uids(want[2])
    assert uid_sort(c, "UID SORT (DATE) UTF-8 ALL") == as_uids(want[0])
    # DATE with ARRIVAL as the second key: ties of sent date go by arrival.
    assert uid_sort(c, "UID SORT (DATE ARRIVAL) UTF-8 ALL") == as_uids(want[0])
    # Another session expunges; this one's next SORT leaves those messages out.
    gone = [n for n in names if n.endswith("m4")]
    d = Raw(server)
    d.login()
    assert d.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    ids = ",".join(str(uid_of[n]) for n in gone)
    assert b" OK " in d.cmd(f"UID STORE {ids} +FLAGS.SILENT (\\Deleted)")[-1]
    assert b" OK " in d.cmd("EXPUNGE")[-1]
    d.cmd("LOGOUT")
    assert b" OK " in c.cmd("NOOP")[-1]
    left = {n: u for n, u in uid_of.items() if n not in gone}
    after = expected(msgs, left)
    assert uid_sort(c, "UID SORT (DATE) UTF-8 ALL") == as_uids(after[0])
    # THREAD after the SORTs makes its own keys; a SORT after it reads them.
    assert answers(c, "INBOX") == after
    c.cmd("LOGOUT")
    # The same first thing after a restart.
    server.restart()
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    assert uid_sort(c, "UID SORT (DATE) UTF-8 ALL") == as_uids(after[0])
    assert answers(c, "INBOX") == after
    c.cmd("LOGOUT")
