#!/usr/bin/env python3
"""IMAP benchmark (issue 5): a mailbox of N messages — APPEND rate, SELECT,
`FETCH 1:* (FLAGS)`, `FETCH 1:* (ENVELOPE)`, `UID SEARCH TEXT`, `SORT (SUBJECT)`,
`THREAD REFERENCES` — and the memory of K
sessions sitting in IDLE; beside a private Dovecot (Debian's dovecot-imapd, Maildir)
when it is installed. Not a test (pytest does not collect it); run it with

    cargo build --release -p letterbox
    LETTERBOX_BIN=target/release/letterbox python3 tests/imap/bench_imap.py [N] [K]

(defaults: N = 100000 messages, K = 2000 IDLE sessions). It starts its own servers in
a temporary directory and stops them at the end. The APPEND rate is measured over the
first 5,000 messages; the rest go in by APPEND for Letterbox and, for Dovecot (whose
fsync per APPEND makes 100,000 take most of an hour), as Maildir files written directly.
Each timed command runs after one untimed SELECT, so Dovecot's indexing is not counted.
"""

import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from conftest import Server, USERS  # noqa: E402
from imap_util import Raw  # noqa: E402

WRITERS = 8
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()


def message(i, rng):
    body = []
    for _ in range(40):
        body.append(" ".join(rng.choice(WORDS) for _ in range(12)))
    if i == 4242:
        body.append("the needle zanzibar is here")
    return (
        f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\n"
        f"To: alice@example.com\r\n"
        f"Subject: message {i} {rng.choice(WORDS)}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}.{rng.random()}@bench>\r\n\r\n" + "\r\n".join(body) + "\r\n"
    ).encode()


class Client(Raw):
    def __init__(self, port, timeout=600):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def descendants(pid):
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Dovecot:
    def __init__(self, root: Path, sessions):
        self.root = root
        self.port = free_port()
        for d in ("run", "state", "home"):
            (root / d).mkdir(parents=True)
        os.chmod(root, 0o755)
        shutil.chown(root / "home", "dovecot", "dovecot")
        import pwd
        pw = pwd.getpwnam("dovecot")
        conf = root / "dovecot.conf"
        conf.write_text(f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
ssl = no
disable_plaintext_auth = no
first_valid_uid = 1
mail_location = maildir:{root}/home/%u/Maildir
default_client_limit = {sessions * 2 + 100}
default_process_limit = {sessions + 100}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = {sessions + 100}
}}
service imap {{
  process_limit = {sessions + 100}
}}
passdb {{
  driver = static
  args = password=alice-Secret1
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = {sessions + 100}
}}
service auth {{
  client_limit = {sessions * 2 + 100}
}}
service anvil {{
  client_limit = {sessions * 2 + 100}
}}
""")
        subprocess.run(["dovecot", "-c", str(conf)], check=True)
        time.sleep(1)
        self.pid = int((root / "run" / "master.pid").read_text())

    def pids(self):
        return descendants(self.pid)

    def bulk(self, msgs):
        """Writes messages straight into alice's Maildir (after the first APPEND made it)."""
        import pwd
        pw = pwd.getpwnam("dovecot")
        cur = self.root / "home" / "alice@example.com" / "Maildir" / "cur"
        for i, m in enumerate(msgs):
            f = cur / f"{int(time.time())}.B{i}.bench:2,"
            f.write_bytes(m)
            os.chown(f, pw.pw_uid, pw.pw_gid)

    def stop(self):
        subprocess.run(["dovecot", "-c", str(self.root / "dovecot.conf"), "stop"], check=False)


RATE_SAMPLE = 5000


def load(port, n, bulk=None):
    """APPENDs the first RATE_SAMPLE messages (timed), then the rest: with `bulk(msgs)`
    when given, by APPEND otherwise. Returns the APPEND rate."""
    rng = random.Random(5)
    msgs = [message(i, rng) for i in range(n)]
    rate = append(port, msgs[:RATE_SAMPLE])
    if len(msgs) > RATE_SAMPLE:
        if bulk:
            bulk(msgs[RATE_SAMPLE:])
        else:
            append(port, msgs[RATE_SAMPLE:])
    return rate


def append(port, msgs):
    n = len(msgs)
    errors = []

    def work(k):
        try:
            c = Client(port)
            c.cmd('LOGIN alice@example.com "alice-Secret1"')
            for i in range(k, n, WRITERS):
                m = msgs[i]
                r = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m)
                if b" OK " not in r[-1]:
                    errors.append(r[-1])
                    return
            c.cmd("LOGOUT")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t0 = time.time()
    th = [threading.Thread(target=work, args=(k,)) for k in range(WRITERS)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    if errors:
        raise SystemExit(f"APPEND failed: {errors[:3]}")
    return n / dt


def timed(c, cmd):
    t0 = time.time()
    r = c.cmd(cmd)
    dt = time.time() - t0
    if b" OK " not in r[-1]:
        raise SystemExit(f"{cmd}: {r[-1]}")
    return dt


def idle_memory(port, k, pids_of):
    # Warm up first: password hashing (Argon2, 19 MiB a check) leaves the allocator's
    # per-thread arenas at their high-water mark; what follows is the sessions' share.
    def warm():
        for _ in range(8):
            c = Client(port)
            c.cmd('LOGIN alice@example.com "alice-Secret1"')
            c.cmd("LOGOUT")
            c.close()

    th = [threading.Thread(target=warm) for _ in range(WRITERS)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    time.sleep(1)
    before = rss_kib(pids_of())
    socks = []
    lock = threading.Lock()

    def opener(count):
        for _ in range(count):
            c = Client(port, timeout=120)
            c.cmd('LOGIN alice@example.com "alice-Secret1"')
            c.cmd("SELECT INBOX")
            c.send(b"i IDLE\r\n")
            assert c.line().startswith(b"+")
            with lock:
                socks.append(c)

    per = [k // WRITERS + (1 if i < k % WRITERS else 0) for i in range(WRITERS)]
    th = [threading.Thread(target=opener, args=(n,)) for n in per]
    for t in th:
        t.start()
    for t in th:
        t.join()
    time.sleep(2)
    after = rss_kib(pids_of())
    for c in socks:
        c.close()
    return len(socks), before, after


def bench(name, port, n, k, pids_of, bulk=None):
    rate = load(port, n, bulk)
    c = Client(port)
    c.cmd('LOGIN alice@example.com "alice-Secret1"')
    c.cmd("SELECT INBOX")
    c.cmd("UNSELECT")
    row = {"APPEND msg/s": f"{rate:.0f}"}
    row["SELECT s"] = f"{timed(c, 'SELECT INBOX'):.3f}"
    row["FETCH FLAGS s"] = f"{timed(c, 'FETCH 1:* (FLAGS)'):.3f}"
    row["FETCH ENVELOPE s"] = f"{timed(c, 'FETCH 1:* (ENVELOPE)'):.3f}"
    row["UID SEARCH TEXT s"] = f"{timed(c, 'UID SEARCH TEXT zanzibar'):.3f}"
    row["SORT SUBJECT s"] = f"{timed(c, 'SORT (SUBJECT) UTF-8 ALL'):.3f}"
    row["THREAD REFERENCES s"] = f"{timed(c, 'THREAD REFERENCES UTF-8 ALL'):.3f}"
    c.cmd("LOGOUT")
    opened, before, after = idle_memory(port, k, pids_of)
    row[f"RSS {opened} IDLE MiB"] = f"{after / 1024:.1f} (+{(after - before) / 1024:.1f})"
    print(f"{name:10} " + "  ".join(f"{key}: {v}" for key, v in row.items()), flush=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="letterbox-bench-imap-"))
    os.chmod(tmp, 0o755)
    (tmp / "letterbox").mkdir()
    s = Server(tmp / "letterbox", {
        "server.allow_root": True,
        "limits.max_connections_per_ip": k + 100,
        "limits.max_connections": k + 100,
        "log.level": "info",
    })
    s.cli("domain", "add", "example.com")
    for a, p in USERS.items():
        s.add_user(a, p)
    s.cli("quota", "set", "alice@example.com", "unlimited")
    s.start()
    try:
        print(f"N = {n} messages, K = {k} IDLE sessions")
        bench("letterbox", s.ports["imap"], n, k, lambda: [s.proc.pid])
    finally:
        s.stop()
    if shutil.which("dovecot") and os.geteuid() == 0:
        d = Dovecot(tmp / "dovecot", k)
        try:
            bench("dovecot", d.port, n, k, d.pids, bulk=d.bulk)
        finally:
            d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
