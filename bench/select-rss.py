#!/usr/bin/env python3
"""SELECT time and memory per session on a big mailbox (issue 18).

    bench/select-rss.py [--bin target/release/letterbox] [--msgs 100000] [--sessions 100]
                        [--reps 20] [--keep DIR [--import-only]] [--copies K] [--dovecot]

Writes an mbox of MSGS small messages (every other one \\Seen, every tenth with a
keyword), imports it (`letterbox import mbox`) into a fresh data directory, starts
`letterbox serve` on loopback and measures, against that one process:

- the time of `SELECT INBOX`, first after the start (cold: nothing of the mailbox in
  memory yet) and then REPS more times (warm; median and min), each on its own logged-in
  connection so that only the SELECT is timed;
- the server's resident memory (VmRSS) with SESSIONS connections logged in and then with
  the same connections each having INBOX selected: the difference divided by SESSIONS is
  the memory a selected big mailbox costs a session.

With --dovecot, the same figures for a private Dovecot beside it (Debian's package, the
configuration of bench/dovecot.conf.in: Maildir, loopback, its own base_dir), run after
Letterbox has stopped: the same MSGS messages written into its Maildir (every other one
seen, every tenth with the keyword), indexed by one untimed SELECT first (so Dovecot's
figure is warm), then REPS timed SELECTs each on its own connection. Dovecot serves each
session in an `imap` process of its own, so its memory per selected session is that
process: the sum of the `imap` processes' VmRSS (and PSS, which counts the pages they
share once) with SESSIONS sessions selected, divided by SESSIONS, beside the growth from
logged in to selected. Needs root (Dovecot's private instance drops to its user).

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


BODY = "This is a line of a test message body, about sixty octets long.\n" * 16


def message(i):
    """Message i of the box (LF line ends): its header and body, whether it is seen,
    whether it has the keyword."""
    text = (
        f"From: Sender {i % 97} <sender{i % 97}@example.org>\n"
        f"To: big@example.com\n"
        f"Subject: Message number {i}\n"
        f"Date: Tue, 14 Nov 2023 12:00:00 +0000\n"
        f"Message-ID: <{i}@example.org>\n"
    )
    return text, i % 2 == 0, i % 10 == 0


def write_mbox(path, n):
    with open(path, "w") as f:
        for i in range(n):
            head, seen, kw = message(i)
            status = "Status: RO\n" if seen else ""
            kw = "X-Keywords: $Label1\n" if kw else ""
            f.write(f"From sender{i % 97}@example.org Tue Nov 14 12:00:00 2023\n{head}{status}{kw}\n{BODY}\n")


def write_maildir(maildir, n):
    """The same messages as a Dovecot Maildir (CRLF, as Dovecot stores what it gets over
    IMAP): flags in the file names (S: seen; a: the first keyword of dovecot-keywords)."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "dovecot-keywords").write_text("0 $Label1\n")
    for i in range(n):
        head, seen, kw = message(i)
        data = (head + "\n" + BODY).replace("\n", "\r\n").encode()
        flags = ("S" if seen else "") + ("a" if kw else "")
        name = f"{1700000000 + i}.M{i}P1.bench,S={len(data)}:2,{flags}"
        (maildir / "cur" / name).write_bytes(data)


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


def imap_procs(master):
    """Dovecot's `imap` processes (children of its master): their pids."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == master and comm == "imap":
            pids.append(int(d.name))
    return pids


def pss_kib(pid):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss")


def run_dovecot(a, tmp):
    """The Dovecot side (--dovecot): its warm SELECT and memory per selected session."""
    import pwd

    d = tmp / "dovecot"
    home = d / "home" / "big@example.com"
    if not (d / "written").exists():
        shutil.rmtree(d, ignore_errors=True)
        t = time.time()
        write_maildir(home / "Maildir", a.msgs)
        print(f"dovecot: Maildir of {a.msgs} written in {time.time() - t:.1f} s", flush=True)
        (d / "written").touch()
    for sub in ("run", "state"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    dv = pwd.getpwnam("dovecot")
    subprocess.run(["chown", "-R", "dovecot:dovecot", str(d / "home")], check=True)
    (d / "users").write_text("big@example.com:{PLAIN}secret::::::\n")
    port = free_port()
    procs = a.sessions + a.reps + 50
    conf = (ROOT / "bench/dovecot.conf.in").read_text()
    for k, v in {
        "@ROOT@": str(d), "@DOMAIN@": "example.com", "@UID@": str(dv.pw_uid),
        "@GID@": str(dv.pw_gid), "@PORT_IMAP@": str(port), "@PORT_POP3@": str(free_port()),
        "@PORT_LMTP@": str(free_port()), "@PROCS@": str(procs), "@CLIENTS@": str(procs * 2),
        "@AUTH_CLIENTS@": str(procs * 5), "@CPUS@": str(os.cpu_count() or 1),
    }.items():
        conf = conf.replace(k, v)
    (d / "dovecot.conf").write_text(conf)
    subprocess.run(["dovecot", "-c", str(d / "dovecot.conf")], check=True)
    try:
        pidfile = d / "run" / "master.pid"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                if pidfile.exists():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        master = int(pidfile.read_text())

        def login():
            c = Conn(port)
            c.cmd("LOGIN big@example.com secret")
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
        first = timed_select()  # Dovecot indexes the Maildir on its first SELECT
        # A Maildir changed within the last second or two is synced again at every
        # SELECT (Dovecot cannot trust a directory mtime of the current second): wait
        # that out, and sync once more, untimed.
        time.sleep(2.5)
        timed_select()
        warm = [timed_select() for _ in range(a.reps)]
        time.sleep(0.5)
        conns = [login() for _ in range(a.sessions)]
        time.sleep(0.5)
        pids = imap_procs(master)
        rss_before = sum(rss_kib(p) for p in pids)
        for c in conns:
            c.cmd("SELECT INBOX")
        time.sleep(0.5)
        pids = imap_procs(master)
        rss_after = sum(rss_kib(p) for p in pids)
        pss_after = sum(pss_kib(p) for p in pids)
        load = os.getloadavg()
        print(f"dovecot: {subprocess.run(['dovecot', '--version'], capture_output=True, text=True).stdout.strip()}")
        print(f"dovecot messages (EXISTS): {sorted(exists)}, sessions: {a.sessions}, imap processes: {len(pids)}, load average: {load[0]:.1f}")
        print(f"dovecot SELECT first of this run (indexes a new Maildir; not in the comparison): {first:.1f} ms")
        print(
            f"dovecot SELECT warm: median {statistics.median(warm):.3f} ms, "
            f"min {min(warm):.3f} ms ({a.reps} connections)"
        )
        print(f"dovecot imap processes' RSS, {a.sessions} sessions logged in: {rss_before} KiB")
        print(f"dovecot imap processes' RSS / PSS, INBOX selected by all: {rss_after} / {pss_after} KiB")
        print(
            f"dovecot per selected session: RSS {rss_after / a.sessions:.1f} KiB, "
            f"PSS {pss_after / a.sessions:.1f} KiB (growth from logged in: "
            f"{(rss_after - rss_before) / a.sessions:.1f} KiB)"
        )
        for c in conns:
            c.close()
    finally:
        subprocess.run(["dovecot", "-c", str(d / "dovecot.conf"), "stop"], check=False)


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
    ap.add_argument("--dovecot", action="store_true", help="then the same figures for Dovecot")
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
    try:
        if a.dovecot:
            run_dovecot(a, tmp)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
