"""SEARCH's header keys (RFC 9051 6.4.4 FROM, TO, CC, BCC, SUBJECT, HEADER, SENT*) from
the searchable heads the message cache keeps in memory and in the store (issue 18,
crates/imap/src/session/searchable.rs and cache.rs): after a restart, an expunge,
arrivals, and when the store's copy does not decode or was altered, every answer is
the brute-force one: the same key evaluated on every message's full parse (an `OR`
with a BODY key that matches nothing takes that path), and for the messages written
here, a plain substring test in Python."""

import time

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


def test_header_search_kept_across_restarts(server):
    box = {}
    c = session(server)
    append(c, 0, 70, box)
    c.cmd("NOOP")
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
    c.cmd("NOOP")
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
        "UPDATE message_cache SET data = x'4c424831ff' WHERE kind = 3",
        pg="UPDATE message_cache SET data = '\\x4c424831ff'::bytea WHERE kind = 3",
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
