"""A full disk (issue 11, section 3): the data directory on a 24 MiB filesystem, filled
by LMTP deliveries. Deliveries are refused temporarily (`452 4.3.1`, IMAP APPEND `NO
[OVERQUOTA]`, `letterbox deliver` exit 75); every acknowledged message is still fetched byte for byte; SELECT works;
STORE \\Deleted + EXPUNGE work and free space (the store's disk reserve, `[store]
disk_reserve`, is released so that they commit); delivery resumes once space is back,
without a restart; `letterbox check --deep` is clean."""

import base64
import imaplib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import USERS, Server
from security_util import Conn

ALICE = "alice@example.com"


@pytest.fixture
def small_fs():
    if os.geteuid() != 0:
        pytest.skip("mounting a 24 MiB filesystem needs root")
    mnt = Path(tempfile.mkdtemp(prefix="letterbox-fulldisk-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)
    mnt.rmdir()


def free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Lmtp:
    def __init__(self, port):
        self.c = Conn(port)
        assert self.c.greeting.startswith("220 ")
        self.c.send("LHLO mta.example.com\r\n")
        while not self.c.line().startswith("250 "):
            pass

    def deliver(self, body: bytes) -> str:
        c = self.c
        assert c.smtp("MAIL FROM:<sender@elsewhere.org>")[0].startswith("250")
        assert c.smtp(f"RCPT TO:<{ALICE}>")[0].startswith("250")
        assert c.smtp("DATA")[0].startswith("354")
        c.send(body + b".\r\n")
        return c.line()


def message(i: int) -> bytes:
    # Random octets in base64: compression cannot shrink them much.
    data = base64.encodebytes(os.urandom(240_000)).replace(b"\n", b"\r\n")
    return (f"From: sender@elsewhere.org\r\nTo: {ALICE}\r\nSubject: filler {i}\r\n"
            f"Message-ID: <filler.{i}@elsewhere.org>\r\n\r\n").encode() + data


def fetch_all(imap):
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK", data
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            out[uid] = item[1]
    return out


@pytest.mark.embedded_only("a full data_dir file system under the SQLite store (its WAL and disk reserve); PostgreSQL's disk is the database's")
def test_full_disk(small_fs, tmp_path, letterbox_bin):
    s = Server(tmp_path, {"data_dir": str(small_fs / "data"), "store.disk_reserve": "2M"})
    s.data_dir = small_fs / "data"
    s.cli("domain", "add", "example.com")
    s.add_user(ALICE, USERS[ALICE])
    s.start()
    try:
        lmtp = Lmtp(s.require("lmtp"))
        sent = {}  # Subject -> body, for every acknowledged delivery
        refusal = None
        i = 0
        # Fill until refused. Once idle (`[store] wal_checkpoint_idle`, 1 s) the store
        # empties its WAL, which can give back room enough to restore the reserve and take
        # mail again (rightly: space came back). So after a refusal, wait past that and
        # try again, until a refusal outlasts it: the disk is then full of mail.
        while i < 300:
            body = message(i)
            reply = lmtp.deliver(body)
            i += 1
            if reply.startswith("250 "):
                sent[f"filler {i - 1}"] = body
                refusal = None
                continue
            if refusal is not None:
                break
            refusal = reply
            time.sleep(2.5)
        assert refusal == f"452 4.3.1 <{ALICE}> Insufficient system storage, try again later", (refusal, len(sent))
        assert len(sent) >= 20, len(sent)
        # Refused again, still temporarily; a small message too.
        assert lmtp.deliver(b"Subject: small\r\n\r\nsmall\r\n") == refusal
        # `letterbox deliver` (an MTA's local delivery agent) fails temporarily too.
        r = s.cli("deliver", ALICE, input=b"Subject: lda\r\n\r\nx\r\n", check=False)
        assert r.returncode == 75, (r.returncode, r.stderr)
        assert r.stderr.decode().startswith("letterbox: delivery failed, try again later: not enough disk space")
        # IMAP: log in, SELECT (read-write) works.
        imap = imaplib.IMAP4("127.0.0.1", s.require("imap"))
        imap.login(ALICE, USERS[ALICE])
        typ, data = imap.select("INBOX")
        assert typ == "OK", data
        assert int(data[0]) == len(sent)
        # Every acknowledged message, byte for byte (after the trace header lines).
        got = fetch_all(imap)
        by_subject = {re.search(rb"Subject: (filler \d+)\r\n", m).group(1).decode(): m for m in got.values()}
        assert set(by_subject) == set(sent)
        for subj, body in sent.items():
            assert by_subject[subj].endswith(body), subj
            assert by_subject[subj][:-len(body)].startswith(b"Return-Path: <sender@elsewhere.org>\r\n")
        # APPEND is refused in IMAP's words.
        typ, data = imap.append("INBOX", None, None, b"Subject: appended\r\n\r\nx\r\n")
        assert (typ, data) == ("NO", [b"[OVERQUOTA] Not enough disk space, try again later"])
        # Delete half the mail: STORE \Deleted and EXPUNGE commit, and the space comes back.
        before = free(small_fs)
        uids = sorted(got)
        gone = uids[: len(uids) // 2]
        typ, data = imap.uid("STORE", ",".join(map(str, gone)), "+FLAGS.SILENT", r"(\Deleted)")
        assert typ == "OK", data
        typ, data = imap.expunge()
        assert typ == "OK", data
        assert sorted(int(n) for n in data if n) and len([n for n in data if n]) == len(gone)
        assert free(small_fs) > before + 2 * (2 << 20), (before, free(small_fs))
        # Delivery resumes, without a restart.
        late = message(999)
        assert lmtp.deliver(late).startswith("250 2.0.0 ")
        typ, data = imap.append("INBOX", None, None, b"Subject: appended\r\n\r\nx\r\n")
        assert typ == "OK", data
        # What was not deleted is intact, byte for byte, and the new mail is there.
        imap.noop()
        after = fetch_all(imap)
        kept = {u: got[u] for u in uids if u not in gone}
        for u, m in kept.items():
            assert after[u] == m, u
        assert any(m.endswith(late) for m in after.values())
        imap.logout()
        lmtp.c.close()
    finally:
        s.stop()
        if s.__dict__.get("log"):
            s.log.close()
    r = s.cli("check", "--deep", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "disk reserve" in s.read_log()
