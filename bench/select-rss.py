#!/usr/bin/env python3
"""SELECT time and memory per session on a big mailbox (issue 18).

    bench/select-rss.py [--bin target/release/letterbox] [--msgs 100000] [--sessions 100]
                        [--reps 20] [--keep DIR [--import-only]] [--copies K]

Writes an mbox of MSGS small messages (every other one \\Seen, every tenth with a
keyword), imports it (`letterbox import mbox`) into a fresh data directory, starts
`letterbox serve` on loopback and measures, against that one process:

- the time of `SELECT INBOX`, first after the start (cold: nothing of the mailbox in
  memory yet) and then REPS more times (warm; median and min), each on its own logged-in
  connection so that only the SELECT is timed;
- the server's resident memory (VmRSS) with SESSIONS connections logged in and then with
  the same connections each having INBOX selected: the difference divided by SESSIONS is
  the memory a selected big mailbox costs a session.

The server runs alone (no other load from this script while it measures); the machine's
load (`uptime`) is printed with the figures, since other work on the machine moves them.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise RuntimeError("connection closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def cmd(self, text):
        self.n += 1
        tag = f"a{self.n}".encode()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            l = self.line()
            out.append(l)
            if l.startswith(tag + b" "):
                if not l.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text}: {l!r}")
                return out

    def close(self):
        self.s.close()


def write_mbox(path, n):
    body = ("This is a line of a test message body, about sixty octets long.\n" * 16)
    with open(path, "w") as f:
        for i in range(n):
            status = "Status: RO\n" if i % 2 == 0 else ""
            kw = "X-Keywords: $Label1\n" if i % 10 == 0 else ""
            f.write(
                f"From sender{i % 97}@example.org Tue Nov 14 12:00:00 2023\n"
                f"From: Sender {i % 97} <sender{i % 97}@example.org>\n"
                f"To: big@example.com\n"
                f"Subject: Message number {i}\n"
                f"Date: Tue, 14 Nov 2023 12:00:00 +0000\n"
                f"Message-ID: <{i}@example.org>\n{status}{kw}\n{body}\n"
            )


def copy_rows(db, copies):
    """INBOX's message rows COPIES times over (new UIDs and MODSEQs, the same blobs), the
    server stopped: a big mailbox in seconds where importing it would take an hour on a
    busy machine. Only for SELECT/STATUS/memory figures: the copies share their blobs
    without counting them (`letterbox check` would say so)."""
    import sqlite3

    c = sqlite3.connect(db)
    (mb,) = c.execute("SELECT id FROM mailboxes WHERE name = 'INBOX'").fetchone()
    (top_uid, top_mod) = c.execute(
        "SELECT max(uid), max(modseq) FROM messages WHERE mailbox_id = ?", (mb,)
    ).fetchone()
    cols = "flags, keywords, internal_date, size, prefix, blob, pop3_seen_at"
    for k in range(1, copies):
        c.execute(
            f"INSERT INTO messages (mailbox_id, uid, modseq, {cols}) "
            f"SELECT mailbox_id, uid + ?, modseq + ?, {cols} FROM messages "
            f"WHERE mailbox_id = ? AND uid <= ?",
            (k * top_uid, k * top_mod, mb, top_uid),
        )
    c.execute(
        "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, first_recent = ? WHERE id = ?",
        (copies * top_uid + 1, copies * top_mod + 1, copies * top_uid + 1, mb),
    )
    c.commit()
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/letterbox"))
    ap.add_argument("--msgs", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--keep", help="work in DIR (kept; its mbox and imported data are reused)")
    ap.add_argument(
        "--copies",
        type=int,
        default=1,
        help="after the import, copy INBOX's message rows so that it holds COPIES times as many",
    )
    ap.add_argument("--import-only", action="store_true", help="fill DIR (--keep) and stop")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="select-rss-"))
    tmp.mkdir(parents=True, exist_ok=True)
    mbox = tmp / f"big-{a.msgs}.mbox"
    if not mbox.exists():
        write_mbox(mbox, a.msgs)
    data = tmp / "data"
    imported = tmp / "imported"
    if data.exists() and not imported.exists():
        shutil.rmtree(data)
    port = free_port()
    cfg = tmp / "letterbox.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nhostname = "mail.example.com"\n'
        f'[listen]\nimap = ["127.0.0.1:{port}"]\nsmtp = []\nlmtp = []\npop3 = []\n'
        f'submission = []\nsubmissions = []\nimaps = []\npop3s = []\nhttp = []\n'
        f'[server]\nallow_root = true\n[log]\nlevel = "warn"\n'
        f'[limits]\nmax_connections_per_ip = 100000\nmax_userip_connections = 100000\n'
    )
    run = lambda *args, **kw: subprocess.run(
        [a.bin, "--config", str(cfg), *args], check=True, capture_output=True, **kw
    )
    if not imported.exists():
        run("domain", "add", "example.com")
        run("user", "add", "big@example.com", "--password-stdin", input=b"secret\n")
        t = time.time()
        run("import", "mbox", "big@example.com", str(mbox))
        print(f"import: {time.time() - t:.1f} s", flush=True)
        imported.touch()
    if a.copies > 1 and not (tmp / "copied").exists():
        copy_rows(data / "store.db", a.copies)
        (tmp / "copied").touch()
    if a.import_only:
        return
    proc = subprocess.Popen(
        [a.bin, "--config", str(cfg), "serve"],
        stdout=open(tmp / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)

        def login():
            c = Conn(port)
            c.cmd('LOGIN big@example.com secret')
            return c

        def timed_select():
            c = login()
            t = time.perf_counter()
            r = c.cmd("SELECT INBOX")
            dt = time.perf_counter() - t
            exists.update(int(l.split()[1]) for l in r if l.endswith(b" EXISTS"))
            c.close()
            return dt * 1000

        exists = set()
        cold = timed_select()
        warm = [timed_select() for _ in range(a.reps)]
        time.sleep(0.5)
        conns = [login() for _ in range(a.sessions)]
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        for c in conns:
            c.cmd("SELECT INBOX")
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        load = os.getloadavg()
        print(f"binary: {a.bin}")
        print(f"messages (EXISTS): {sorted(exists)}, sessions: {a.sessions}, load average: {load[0]:.1f}")
        print(f"SELECT cold (first after start): {cold:.2f} ms")
        print(
            f"SELECT warm: median {statistics.median(warm):.3f} ms, "
            f"min {min(warm):.3f} ms ({a.reps} connections)"
        )
        print(f"RSS with {a.sessions} sessions logged in: {before} KiB")
        print(f"RSS with INBOX selected by all: {after} KiB")
        print(f"per selected session: {(after - before) / a.sessions:.1f} KiB")
        for c in conns:
            c.close()
    finally:
        proc.terminate()
        proc.wait()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
