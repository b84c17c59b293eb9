"""Message octets in an S3-compatible object store (issue 17), through the real binary
against a real S3 server (SeaweedFS, `tests/blobs/seaweed.py`), the bucket listed with
boto3 as an independent client.

- Small messages stay in the database (`[store] inline_max`), large ones become one
  object under `blobs/`, a shared attachment one object under `parts/` however many
  messages carry it; all come back byte for byte over IMAP and POP3; `check --deep`
  reads every object back (and both notice an object deleted or altered behind the
  server's back); deleting the mail and running `letterbox gc` deletes the
  objects (the bucket ends empty) without the server listing it.
- S3 stopped: a large delivery gets a 4xx over SMTP and LMTP (never a 5xx), IMAP
  answers `NO [UNAVAILABLE]` for a message in S3 and for a large APPEND, POP3 `-ERR
  [SYS/TEMP]`; small messages still deliver and read. S3 back: everything works again
  without restarting letterbox.
- `kill -9` of letterbox in the middle of deliveries: every acknowledged message is
  there afterwards; uploads the kill orphaned are collected once their hold expires
  (`[blobs] hold_max`), and the bucket then holds exactly the referenced objects.
"""

import base64
import imaplib
import poplib
import random
import re
import smtplib
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seaweed import BUCKET, Seaweed  # noqa: E402

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")
KEY = re.compile(r"^(blobs|parts)/([0-9a-f]{2})/\2[0-9a-f]{62}$")


@pytest.fixture
def weed(tmp_path):
    w = Seaweed(tmp_path / "weed")
    w.start()
    yield w
    w.stop()


def text(n, size, seed):
    """A plain text message of about `size` octets that zstd cannot shrink below 64 KiB."""
    rnd = random.Random(seed)
    words = [rnd.choice(["mail", "store", "object", "bucket", "letter", "part", "quota"]) + str(rnd.getrandbits(24)) for _ in range(size // 12)]
    lines = [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)]
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: text {n}\r\n"
        f"Message-ID: <t{n}.{seed}@example.org>\r\n\r\n"
    ).encode() + "\r\n".join(lines).encode() + b"\r\n"


def with_attachment(n, att_b64):
    return (
        f"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: report {n}\r\n"
        f"Message-ID: <a{n}@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n'
        f"--b{n}\r\nContent-Type: text/plain\r\n\r\nMessage {n}, see attached.\r\n"
        f"--b{n}\r\nContent-Type: application/octet-stream; name=\"r.bin\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + att_b64 + f"\r\n--b{n}--\r\n".encode()


def imap(server, who=ALICE):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(*who)
    c.select("INBOX")
    return c


def uids(c):
    c.noop()
    typ, data = c.uid("SEARCH", "ALL")
    assert typ == "OK", data
    return [int(u) for u in data[0].split()]


def fetch(c, uid):
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK", data
    # (Untagged updates the session reports along, e.g. EXISTS, are plain bytes.)
    [body] = [d[1] for d in data if isinstance(d, tuple)]
    return body


def local_files(server):
    return sorted(
        p for sub in ("blobs", "parts") for p in (server.data_dir / sub).glob("??/*")
    )


def test_octets_in_s3_byte_exact_dedup_and_collection(make_server, weed):
    server = make_server(**weed.letterbox_config())
    small = text(1, 2_000, 1)
    large = text(2, 300_000, 2)
    att = base64.encodebytes(random.Random(3).randbytes(200_000)).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    a1, a2 = with_attachment(3, att), with_attachment(4, att)
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        for m in (small, large, a1):
            assert s.sendmail("carol@example.org", [ALICE[0]], m) == {}
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
        # LMTP answers DATA once per recipient (RFC 2033 4.2); smtplib reads the first.
        assert s.sendmail("carol@example.org", [ALICE[0], BOB[0]], a2) == {}
        assert s.getreply()[0] == 250

    keys = weed.keys()
    assert all(KEY.match(k) for k in keys), keys
    blobs = [k for k in keys if k.startswith("blobs/")]
    parts = [k for k in keys if k.startswith("parts/")]
    # The large text is one object; the attachment one part object for three copies;
    # the small message and the skeletons live in the database.
    assert len(blobs) == 1 and len(parts) == 1, keys
    assert local_files(server) == []
    assert server.cli("check", "--deep").stdout == b"ok\n"

    c = imap(server)
    got = [fetch(c, u) for u in uids(c)]
    assert len(got) == 4
    for body, m in zip(got, (small, large, a1, a2)):
        assert body.endswith(m)
    p = poplib.POP3("127.0.0.1", server.require("pop3"))
    p.user(BOB[0])
    p.pass_(BOB[1])
    _, lines, _ = p.retr(1)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(a2)
    p.quit()

    # `check` asks S3 for every referenced object; `--deep` also reads each back.
    s3 = weed.client()
    for key, what in ((blobs[0], b"octets missing"), (parts[0], b"part ")):
        saved = weed.get(key)
        s3.delete_object(Bucket=BUCKET, Key=key)
        r = server.cli("check", check=False)
        assert r.returncode != 0 and what in r.stdout + r.stderr, r
        s3.put_object(Bucket=BUCKET, Key=key, Body=saved[:-8] + bytes(8))
        assert server.cli("check").stdout == b"ok\n"
        r = server.cli("check", "--deep", check=False)
        assert r.returncode != 0, r
        s3.put_object(Bucket=BUCKET, Key=key, Body=saved)
    assert server.cli("check", "--deep").stdout == b"ok\n"

    # Deleting two of the three copies keeps the shared part.
    c.uid("STORE", ",".join(map(str, uids(c)[2:])), "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    out = server.cli("gc").stdout.decode()
    assert out.endswith(", deleted 0 object(s)\n"), out
    assert weed.keys() == keys
    # Then everything goes, and collection deletes both objects.
    c.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    c.logout()
    b = imap(server, BOB)
    b.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
    b.expunge()
    b.logout()
    out = server.cli("gc").stdout.decode()
    assert out.endswith(", deleted 2 object(s)\n"), out
    assert weed.keys() == []
    assert server.cli("check", "--deep").stdout == b"ok\n"


def test_s3_down_gives_temporary_errors_then_recovers(make_server, weed):
    server = make_server(
        **weed.letterbox_config(**{"blobs.timeout": 4, "blobs.connect_timeout": 1, "blobs.retries": 0})
    )
    large1 = text(1, 200_000, 11)
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        s.sendmail("carol@example.org", [ALICE[0]], large1)
    c = imap(server)
    [uid1] = uids(c)

    weed.stop()
    small = text(2, 2_000, 12)
    large2 = text(3, 200_000, 13)
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        assert s.sendmail("carol@example.org", [ALICE[0]], small) == {}
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@example.org", [ALICE[0]], large2)
        assert 400 <= e.value.smtp_code < 500, e.value
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@example.org", [ALICE[0]], large2)
        assert 400 <= e.value.smtp_code < 500, e.value

    # IMAP: the message in S3 cannot be read, the small one can; a large APPEND waits.
    typ, data = c.uid("FETCH", str(uid1), "(BODY.PEEK[])")
    assert typ == "NO" and data[0].startswith(b"[UNAVAILABLE]"), (typ, data)
    all_uids = uids(c)
    assert len(all_uids) == 2
    assert fetch(c, all_uids[1]).endswith(small)
    typ, data = c.append("INBOX", None, None, large2)
    assert typ == "NO" and data[0].startswith(b"[UNAVAILABLE]"), (typ, data)
    # POP3 likewise.
    p = poplib.POP3("127.0.0.1", server.require("pop3"))
    p.user(ALICE[0])
    p.pass_(ALICE[1])
    with pytest.raises(poplib.error_proto) as e:
        p.retr(1)
    assert e.value.args[0].startswith(b"-ERR [SYS/TEMP]"), e.value
    _, lines, _ = p.retr(2)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(small)
    p.quit()

    # S3 back: the same server process delivers and reads again.
    weed.start()
    with smtplib.SMTP("127.0.0.1", server.require("smtp")) as s:
        assert s.sendmail("carol@example.org", [ALICE[0]], large2) == {}
    assert fetch(c, uid1).endswith(large1)
    typ, _ = c.append("INBOX", None, None, large2)
    assert typ == "OK"
    bodies = [fetch(c, u) for u in uids(c)]
    assert [b.endswith(m) for b, m in zip(bodies, (large1, small, large2, large2))] == [True] * 4
    c.logout()
    assert server.proc.poll() is None
    assert server.cli("check", "--deep").stdout == b"ok\n"
    # Nothing in letterbox's log carries the secret key.
    assert "letterbox-test-secret" not in server.read_log()


def test_kill9_mid_delivery_loses_nothing_acknowledged(make_server, weed):
    server = make_server(**weed.letterbox_config(**{"blobs.hold_max": 2}))
    port = server.require("smtp")
    acked = []
    stop = threading.Event()

    def sender(k):
        n = 0
        while not stop.is_set():
            n += 1
            m = text(f"{k}-{n}", 90_000 if n % 3 else 1_000, k * 1000 + n)
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                    if s.sendmail("carol@example.org", [ALICE[0]], m) == {}:
                        acked.append(m)
            except (smtplib.SMTPException, OSError):
                return

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acked) < 12 and time.time() < deadline:
        time.sleep(0.05)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= 12, len(acked)

    server.start()
    c = imap(server)
    bodies = [fetch(c, u) for u in uids(c)]
    c.logout()
    for m in acked:
        assert sum(b.endswith(m) for b in bodies) == 1
    assert server.cli("check", "--deep").stdout == b"ok\n"
    # Uploads whose transaction never committed are collected once their hold is
    # older than hold_max; what remains is exactly what messages reference.
    time.sleep(3)
    server.cli("gc")
    large_stored = sum(1 for b in bodies if len(b) > 64 * 1024)
    assert len(weed.keys("blobs/")) == large_stored, (weed.keys("blobs/"), large_stored)
    assert server.cli("check", "--deep").stdout == b"ok\n"
