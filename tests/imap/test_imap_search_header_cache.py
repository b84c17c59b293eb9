"""SEARCH's header keys (RFC 9051 6.4.4 FROM, TO, CC, BCC, SUBJECT, HEADER, SENT*) from
the searchable heads the message cache keeps in memory and in the store (issue 18,
crates/imap/src/session/searchable.rs and cache.rs): after a restart, an expunge,
arrivals, and when the store's copy does not decode or was altered, every answer is
the brute-force one: the same key evaluated on every message's full parse (an `OR`
with a BODY key that matches nothing takes that path), and for the messages written
here, a plain substring test in Python. The first header search ever of a mailbox
reads the records made at delivery (crates/store/src/searchables.rs), for messages
delivered over LMTP, APPENDed, imported and copied, and falls back to decoding heads
without them."""

import smtplib
import time
import zlib

import messages
import mime_corpus
from imap_util import Raw
from test_imap_shared_index import store_sql

SHAPES = [messages.SIMPLE, messages.GROUPS, messages.NESTED] + [
    v for k, v in sorted(vars(mime_corpus).items()) if k.isupper() and isinstance(v, bytes)
]

# Header keys and, for those Python checks, (field, needle): every needle holds "qq",
# which none of the corpus's messages has.
KEYS = [
    ("SUBJECT qqtopic3", ("Subject", "qqtopic3")),
    ('SUBJECT "QQTOPIC 2 "', None),
    ("FROM qquser1", ("From", "qquser1")),
    ("FROM qqu2@qqex1", ("From", "qqu2@qqex1")),
    ("FROM qqex2.example", ("From", "qqex2.example")),
    ("TO qqt3@", ("To", "qqt3@")),
    ("CC qqc1", ("Cc", "qqc1")),
    ("BCC qq", ("Bcc", "qq")),
    ("HEADER X-QQ-Tag qqv4", ("X-QQ-Tag", "qqv4")),
    ("HEADER X-QQ-Tag \"\"", ("X-QQ-Tag", "")),
    ("SUBJECT {%d+}\r\n%s" % (len("Gr\u00fc\u00dfe".encode()), "Gr\u00fc\u00dfe"), None),
    ("SUBJECT hello", None),
    ("FROM example", None),
    ("TO @", None),
    ("HEADER Content-Type multipart", None),
    ("SENTSINCE 1-Jan-2020", None),
    ("SENTBEFORE 5-Mar-2026", None),
    ("SENTON 3-Mar-2026", None),
    ("NOT SUBJECT qqtopic1", None),
    ("OR FROM qquser2 TO qqt1@ SEEN", None),
    ("SUBJECT qq UNSEEN", None),
]


def message(i):
    """A message of known plain headers (every other one with a Cc and an X-QQ-Tag)."""
    h = (
        f"From: QQUser{i % 5} <qqu{i % 5}@qqex{i % 3}.example>\r\n"
        f"To: qqt{i % 4}@dest.example\r\n"
        f"Subject: qqtopic{i % 7} QQTOPIC {i % 3} word{i}\r\n"
        f"Date: {1 + i % 28} Mar 2026 10:00:00 +0000\r\n"
    )
    if i % 2:
        h += f"Cc: qqc{i % 3}@cc.example\r\nX-QQ-Tag: qqv{i % 6}\r\n"
    return (h + f"Message-ID: <qq{i}@example>\r\n\r\nbody {i}\r\n").encode()


def session(server):
    c = Raw(server)
    c.login()
    assert c.cmd("SELECT INBOX")[-1].endswith(b"SELECT completed")
    return c


def append(c, start, n, box):
    """Appends n messages (written here and the corpus's shapes), recording in `box`
    (UID -> octets, None for the corpus's) what Python can check."""
    for i in range(start, start + n):
        m = message(i) if i % 4 else SHAPES[i % len(SHAPES)]
        flags = b"(\\Seen) " if i % 3 else b""
        r = c.cmd(b"APPEND INBOX %s{%d+}\r\n" % (flags, len(m)) + m)
        assert b" OK " in r[-1], r
        uid = int(r[-1].split(b"APPENDUID ")[1].split(b" ")[1].rstrip(b"]"))
        box[uid] = m if i % 4 else None


def search(c, key):
    r = c.cmd(("UID SEARCH CHARSET UTF-8 " + key).encode())
    assert r[-1].endswith(b"OK SEARCH completed"), (key, r)
    line = [l for l in r[:-1] if l.startswith(b"* SEARCH")]
    assert len(line) == 1, r
    return [int(x) for x in line[0].split()[2:]]


def general(c, key):
    """The same key on every message's full parse (BODY makes the search read it)."""
    return search(c, f"OR ({key}) BODY zqxjkvzqxjkv-nowhere")


def python_answer(box, live, field, needle):
    """Messages written here whose `field` holds `needle` (case-insensitive); None
    when the corpus's messages could match too (they never hold "qq")."""
    out = []
    for uid in sorted(live):
        m = box.get(uid)
        if m is None:
            continue
        for l in m.split(b"\r\n\r\n")[0].decode().split("\r\n"):
            n, v = l.split(":", 1)
            if n.lower() == field.lower() and needle.lower() in v.strip().lower():
                out.append(uid)
                break
    return out


def check(c, box, live):
    for key, py in KEYS:
        got = search(c, key)
        assert got == general(c, key), key
        if py:
            assert got == python_answer(box, live, *py), key


def stored(server):
    return store_sql(server, "SELECT count(*) FROM message_cache WHERE kind = 3")[0][0]


def poll_stored(server, want, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        n = stored(server)
        if n == want or time.monotonic() > end:
            return n
        time.sleep(0.05)


def uids(c):
    return search(c, "ALL")


def forget_records(server):
    """Drops the records made at delivery (blobs' and rows' copies) while stopped: the
    messages are then as those stored before them."""
    server.stop()
    store_sql(server, "DELETE FROM blob_searchable", pg="UPDATE blobs SET searchable = NULL")
    store_sql(server, "DELETE FROM message_searchable")
    server.start()


def test_header_search_kept_across_restarts(server):
    """Messages stored before the records made at delivery: their records are made
    from their heads and kept in IMAP's chunks."""
    box = {}
    c = session(server)
    append(c, 0, 70, box)
    c.cmd("LOGOUT")
    forget_records(server)
    c = session(server)
    live = uids(c)
    assert len(live) == 70
    check(c, box, live)
    assert poll_stored(server, 1) == 1, "the searchable heads kept in the store"
    c.cmd("LOGOUT")
    # A new process: from the store's copy.
    server.restart()
    c = session(server)
    check(c, box, live)
    # Expunged messages and arrivals (more than STORED_MIN: the copy is written again).
    c.cmd("UID STORE 2:5,20,33 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("EXPUNGE")[-1].endswith(b"OK EXPUNGE completed")
    append(c, 70, 45, box)
    c.cmd("LOGOUT")
    forget_records(server)
    c = session(server)
    live = uids(c)
    assert len(live) == 70 - 6 + 45
    check(c, box, live)
    c.cmd("LOGOUT")
    server.restart()
    check(session(server), box, live)
    # A copy that does not decode is ignored (and written again).
    server.stop()
    store_sql(
        server,
        "UPDATE message_cache SET data = x'4c424832ff' WHERE kind = 3",
        pg="UPDATE message_cache SET data = '\\x4c424832ff'::bytea WHERE kind = 3",
    )
    server.start()
    c = session(server)
    check(c, box, live)
    c.cmd("LOGOUT")
    server.restart()
    check(session(server), box, live)
    # A copy altered in place (the layout intact, values changed): each record's CRC
    # refuses it, the heads are read again.
    server.stop()
    store_sql(
        server,
        "UPDATE message_cache SET data = CAST(replace(data, CAST('qqtopic' AS BLOB), "
        "CAST('qqtopix' AS BLOB)) AS BLOB) WHERE kind = 3",
        pg="UPDATE message_cache SET data = decode(replace(encode(data, 'escape'), "
        "'qqtopic', 'qqtopix'), 'escape') WHERE kind = 3",
    )
    assert store_sql(
        server,
        "SELECT count(*) FROM message_cache WHERE kind = 3 AND instr(data, CAST('qqtopix' AS BLOB)) > 0",
        pg="SELECT count(*) FROM message_cache WHERE kind = 3 AND position('qqtopix'::bytea in data) > 0",
    )[0][0] > 0
    server.start()
    c = session(server)
    check(c, box, live)
    assert search(c, "SUBJECT qqtopix") == []


def records_at_delivery(server):
    """Blobs whose searchable head the store keeps."""
    return store_sql(
        server,
        "SELECT count(*) FROM blob_searchable",
        pg="SELECT count(*) FROM blobs WHERE searchable IS NOT NULL",
    )[0][0]


def row_copies(server):
    """Message rows with their own copy of their blob's record."""
    return store_sql(server, "SELECT count(*) FROM message_searchable")[0][0]


def set_records(server, octets, rows=True):
    """Replaces every blob's kept record (version and record) while stopped, and every
    message row's copy of it (with `rows`; else the copies are dropped, as in a store
    from before them, so that the rows are read through their blobs), and drops IMAP's
    stored chunks, so that the next first search takes what this wrote."""
    server.stop()
    store_sql(server, "DELETE FROM message_cache")
    if octets is None:
        store_sql(server, "DELETE FROM blob_searchable", pg="UPDATE blobs SET searchable = NULL")
    else:
        store_sql(
            server,
            f"UPDATE blob_searchable SET data = x'{octets.hex()}'",
            pg=f"UPDATE blobs SET searchable = '\\x{octets.hex()}'::bytea",
        )
    if octets is None or not rows:
        store_sql(server, "DELETE FROM message_searchable")
    else:
        store_sql(
            server,
            f"UPDATE message_searchable SET data = x'{octets.hex()}'",
            pg=f"UPDATE message_searchable SET data = '\\x{octets.hex()}'::bytea",
        )
    server.start()


def record(first, rest=()):
    """A searchable head (letterbox_message::searchable's layout, version LBH2): the
    CRC-32 of its first part, no sent day, the first part's length and (name, kind 0,
    value) per field (`first`: names SUBJECT/FROM/TO/CC/BCC compare), the CRC-32 of the
    second part, its fields (`rest`: every other name); lengths under 128."""
    fields = lambda fs: b"".join(bytes([len(n)]) + n + b"\x00" + bytes([len(v)]) + v for n, v in fs)
    one, two = fields(first), fields(rest)
    one = b"\x00" + bytes([len(one)]) + one
    return (
        zlib.crc32(one).to_bytes(4, "little") + one + zlib.crc32(two).to_bytes(4, "little") + two
    )


def test_first_search_ever_from_records_made_at_delivery(server, tmp_path):
    """Mailboxes never searched (delivered over LMTP to two recipients, APPENDed,
    copied, imported; the server restarted): the first header search of each reads the
    records made at delivery and answers as evaluating every full parse does; with
    records of another version, damaged, or none (stored before), from the heads."""
    box = {}
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as l:
        assert l.ehlo()[0] == 250
        for i in range(1, 41):
            m = message(i) if i % 4 else SHAPES[i % len(SHAPES)]
            # One transaction, two recipients: one reply each after the data (RFC 2033 4.2).
            assert l.mail("s@example.org")[0] == 250
            for rcpt in ("alice@example.com", "bob@example.com"):
                assert l.rcpt(rcpt)[0] == 250
            assert l.data(m)[0] == 250
            assert l.getreply()[0] == 250
            box[i] = m if i % 4 else None
    c = session(server)
    append(c, 41, 40, box)
    assert c.cmd("CREATE Copies")[-1].endswith(b"CREATE completed")
    assert b" OK " in c.cmd("COPY 1:* Copies")[-1]
    c.cmd("LOGOUT")
    mbox = tmp_path / "in.mbox"
    mbox.write_text(
        "".join(
            f"From a@example.org Tue Nov 14 12:00:00 2023\nFrom: QQUser9 <qqu9@qqex9.example>\n"
            f"Subject: qqtopic3 imported {i}\nDate: 14 Nov 2023 12:00:00 +0000\n\nbody {i}\n\n"
            for i in range(12)
        )
    )
    server.stop()
    server.cli("import", "mbox", "--merge", "alice@example.com", str(mbox))
    server.start()
    assert stored(server) == 0, "never searched"
    # One record per blob: the two recipients and the copies share theirs.
    distinct = store_sql(server, "SELECT count(DISTINCT blob) FROM messages")[0][0]
    assert records_at_delivery(server) == distinct
    # And every message row (LMTP, APPEND, COPY, import) has its own copy of it.
    assert row_copies(server) == store_sql(server, "SELECT count(*) FROM messages")[0][0] == 40 * 2 + 40 + 80 + 12

    def first_searches(keys):
        """Each mailbox's first header searches in a new process (`keys`), and the same
        keys on every full parse."""
        server.restart()
        got, want = [], []
        for user, name in [(None, "INBOX"), (None, "Copies"), ("bob", "INBOX")]:
            c = Raw(server)
            if user:
                c.login(("bob@example.com", "bob-Secret2"))
            else:
                c.login()
            assert c.cmd(f"SELECT {name}")[-1].endswith(b"SELECT completed")
            got.append([search(c, k) for k in keys])
            want.append([general(c, k) for k in keys])
            c.cmd("LOGOUT")
        return got, want

    keys = [k for k, _ in KEYS]
    got, want = first_searches(keys)
    assert got == want
    assert len(got[0][keys.index("NOT SUBJECT qqtopic1")]) > 80
    # The Python answer for the messages written here (UIDs 1 to 80 of alice's INBOX).
    c = session(server)
    live = [u for u in uids(c) if u in box]
    assert len(live) == 80
    imported = search(c, "SUBJECT imported")
    assert len(imported) == 12
    for key, py in KEYS:
        if py:
            got_k = [u for u in search(c, key) if u in box]
            assert got_k == python_answer(box, live, *py), key
    c.cmd("LOGOUT")
    # The answers are those kept at delivery: a record put in their place is answered.
    marked = b"LBH2" + record([(b"subject", b"qqmarker")], [(b"X-QQ-Tag", b"qqrestmark")])
    set_records(server, marked)
    c = session(server)
    assert search(c, "SUBJECT qqmarker") == uids(c)
    assert search(c, "HEADER X-QQ-Tag qqrestmark") == uids(c)
    c.cmd("LOGOUT")
    # A damaged second part: SUBJECT still reads the (intact) first part; HEADER on a
    # name of the second part is answered from the heads.
    set_records(server, marked[:-1] + bytes([marked[-1] ^ 1]))
    c = session(server)
    assert search(c, "SUBJECT qqmarker") == uids(c)
    assert search(c, "HEADER X-QQ-Tag qqrestmark") == [] == general(c, "HEADER X-QQ-Tag qqrestmark")
    assert search(c, "HEADER X-QQ-Tag qqv3") == general(c, "HEADER X-QQ-Tag qqv3") != []
    c.cmd("LOGOUT")
    # Rows without their own copy (inserted before the copies were kept) are answered
    # from their blob's record.
    set_records(server, b"LBH2" + record([(b"subject", b"qqblobonly")]), rows=False)
    assert row_copies(server) == 0
    c = session(server)
    assert search(c, "SUBJECT qqblobonly") == uids(c)
    c.cmd("LOGOUT")
    # Another version, a damaged record, or none (stored before): from the heads.
    damaged = bytearray(b"LBH2" + record([(b"subject", b"qqmarker")]))
    damaged[-5] ^= 1  # the first part's last octet (an empty second part follows)
    for octets in (b"LBH1" + record([(b"subject", b"qqmarker")]), bytes(damaged), None):
        set_records(server, octets)
        got2, _ = first_searches(keys + ["SUBJECT qqmarker"])
        assert got2 == [g + [[]] for g in got]


def test_records_made_at_delivery_not_copied_into_chunks(server):
    """Messages with records made at delivery: a header search reads those (first
    ever, and again after a restart) and keeps no chunk of its own beside them; the
    chunks of searchable heads an earlier build wrote (duplicating the records) are
    dropped once, at the store's start, the other kinds kept."""
    box = {}
    c = session(server)
    append(c, 0, 70, box)
    c.cmd("NOOP")
    live = uids(c)
    check(c, box, live)
    c.cmd("LOGOUT")
    time.sleep(1.0)  # the chunks would be written after the answers
    assert stored(server) == 0, "no chunk duplicates the records"
    server.restart()
    c = session(server)
    check(c, box, live)
    c.cmd("LOGOUT")
    time.sleep(1.0)
    assert stored(server) == 0
    # Chunks an earlier build wrote: kind 3 dropped (once), kind 1 kept.
    server.stop()
    for kind in (1, 3):
        store_sql(
            server,
            "INSERT INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data) "
            f"SELECT id, {kind}, 0, uidvalidity, x'00' FROM mailboxes WHERE name = 'INBOX' ORDER BY id LIMIT 1",
            pg="INSERT INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data) "
            f"SELECT id, {kind}, 0, uidvalidity, '\\x00'::bytea FROM mailboxes WHERE name = 'INBOX' ORDER BY id LIMIT 1",
        )
    kinds = lambda: store_sql(server, "SELECT kind FROM message_cache ORDER BY kind")
    assert kinds() == [(1,), (3,)]
    store_sql(
        server,
        "DELETE FROM meta WHERE key = 'searchable_chunks_dropped'",
        pg="DELETE FROM schema_version WHERE version = 190",
    )
    server.start()
    assert (3,) not in kinds() and (1,) in kinds()
    c = session(server)
    check(c, box, live)
    # Dropped once: chunks written afterwards stay.
    server.stop()
    store_sql(
        server,
        "INSERT INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data) "
        "SELECT id, 3, 7, uidvalidity, x'00' FROM mailboxes WHERE name = 'INBOX' ORDER BY id LIMIT 1",
        pg="INSERT INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data) "
        "SELECT id, 3, 7, uidvalidity, '\\x00'::bytea FROM mailboxes WHERE name = 'INBOX' ORDER BY id LIMIT 1",
    )
    server.start()
    assert (3,) in kinds()
