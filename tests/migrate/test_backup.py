"""`letterbox backup DEST` while `serve` takes deliveries, and `letterbox restore SRC`
(issue 16), through the real binary:
- every message acknowledged (LMTP 250) before the backup started is in the restored
  store, which passes `check --deep` (restore runs it);
- a second backup into the same DEST copies only the new blob files;
- a restored store, served, answers the same UIDs, MODSEQs and flags.
"""

import imaplib
import re
import smtplib
import threading
import time

import pytest

from conftest import Server

ALICE = ("alice@example.com", "alice-Secret1")


def message(n, big):
    body = "".join(f"line {n} {i} of a big attachment-like body\r\n" for i in range(3000)) if big else f"body {n}\r\n"
    return (f"From: s@example.org\r\nTo: alice@example.com\r\nSubject: load {n}\r\nMessage-ID: <{n}@load>\r\n\r\n" + body).encode()


class Load(threading.Thread):
    """Delivers over LMTP until stopped; `acked` lists the Message-IDs answered 250."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = []
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            with smtplib.LMTP("127.0.0.1", self.port) as l:
                n = 0
                while not self.stop_flag.is_set():
                    n += 1
                    refused = l.sendmail("s@example.org", ["alice@example.com"], message(n, n % 5 == 0))
                    if not refused:
                        self.acked.append(n)
        except Exception as e:  # reported by the test
            self.error = e


def state(port):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(*ALICE)
    c.select("INBOX", readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(UID MODSEQ FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    rows, ids = [], set()
    for n, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        tail = data[n + 1] if n + 1 < len(data) and isinstance(data[n + 1], bytes) else b""
        head = (item[0] + tail).decode()
        uid = int(re.search(r"UID (\d+)", head).group(1))
        modseq = int(re.search(r"MODSEQ \((\d+)\)", head).group(1))
        flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
        rows.append((uid, modseq, flags))
        m = re.search(rb"<(\d+)@load>", item[1])
        if m:
            ids.add(int(m.group(1)))
    c.logout()
    return sorted(rows, key=lambda r: r[0]), ids


def restored(tmp_path, name, backup):
    (tmp_path / name).mkdir()
    s = Server(tmp_path / name)
    r = s.cli("restore", backup)
    assert "check --deep: ok" in r.stdout.decode(), r.stdout
    s.start()
    return s


@pytest.mark.embedded_only("compares MODSEQs, which a PostgreSQL backup's restore raises; the cluster's backup is tests/cluster/test_pg_backup.py")
def test_backup_during_delivery_load_and_restore(server, tmp_path):
    load = Load(server.ports["lmtp"])
    load.start()
    while len(load.acked) < 20 and load.is_alive():
        time.sleep(0.05)
    before_backup = set(load.acked)
    dest = tmp_path / "backup"
    r = server.cli("backup", dest)
    load.stop_flag.set()
    load.join(60)
    assert load.error is None, load.error
    assert len(load.acked) > len(before_backup), "the load did not go on during the backup"
    assert re.search(r"\d+ blob files \(\d+ copied now\)", r.stdout.decode()), r.stdout
    first_blobs = int(re.search(r"(\d+) blob files", r.stdout.decode()).group(1))
    assert first_blobs >= 1

    s1 = restored(tmp_path, "r1", dest)
    try:
        _, ids = state(s1.ports["imap"])
        assert before_backup <= ids, sorted(before_backup - ids)
    finally:
        s1.stop()

    # Flags changed, then a quiet backup: the restored store serves the same state.
    c = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    c.login(*ALICE)
    c.select("INBOX")
    c.uid("STORE", "1:5", "+FLAGS", "(\\Seen $Label1)")
    c.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    r = server.cli("backup", dest)
    out = r.stdout.decode()
    total, copied = map(int, re.search(r"(\d+) blob files \((\d+) copied now\)", out).groups())
    assert copied < total, out  # incremental: the first backup's blobs are not copied again
    original, _ = state(server.ports["imap"])
    s2 = restored(tmp_path, "r2", dest)
    try:
        assert state(s2.ports["imap"])[0] == original
    finally:
        s2.stop()


@pytest.mark.embedded_only("about the data directory; a PostgreSQL restore's refusal is in tests/cluster/test_pg_backup.py")
def test_restore_refuses_a_data_directory_with_a_store(server, tmp_path):
    dest = tmp_path / "b"
    server.cli("backup", dest)
    r = server.cli("restore", dest, check=False)
    assert r.returncode != 0 and b"already holds a store" in r.stderr, r.stderr
