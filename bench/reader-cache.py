#!/usr/bin/env python3
"""Cold big-mailbox commands against `[store] reader_cache_bytes` (issue 18).

    bench/reader-cache.py --config DIR/letterbox/letterbox.toml [--bin target/release/letterbox]
                          [--sizes 2M,8M,16M,32M,64M] [--reps 3] [--user big@example.com]
                          [--password bench-Secret1]

For a box kept by `bench/run ... --big-fill import --keep` (its Letterbox config), for each
cache size (a copy of the config with `[store] reader_cache_bytes` set) and each command:
start `letterbox serve`, LOGIN, SELECT INBOX, then the command (the first of its kind since
the start: cold, the OS page cache as it is), and stop the server. Around the command only:
the server's read syscalls and octets (/proc/PID/io `syscr`, `rchar`: every thread, SQLite's
page reads are pread64), its CPU time (`perf stat -e task-clock -p PID`: this machine's
virtual CPUs count no instructions; for those, callgrind; and user and system time from
/proc/PID/stat, every thread), the command's wall time, and the server's VmRSS after it. Medians of REPS; the load average is
printed beside them, since other work on the machine moves the times.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time

COMMANDS = [
    ("ENVELOPE", "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"),
    ("BODYSTRUCTURE", "FETCH 1:* (BODYSTRUCTURE)"),
    ("SEARCH SUBJECT", 'UID SEARCH SUBJECT "quarterly forecast"'),
    ("SORT (DATE)", "UID SORT (DATE) UTF-8 ALL"),
]


def proc_io(pid):
    d = {}
    for line in open(f"/proc/{pid}/io"):
        k, v = line.split(":")
        d[k] = int(v)
    return d


def cpu_ticks(pid):
    """User and system CPU of every thread, in clock ticks (/proc/PID/stat)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12])


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def with_cache(cfg, size, out):
    text = open(cfg).read()
    key = f'reader_cache_bytes = "{size}"'
    if re.search(r"^\[store\]\s*$", text, re.M):
        text = re.sub(r"^\[store\]\s*$", "[store]\n" + key, text, count=1, flags=re.M)
    else:
        text += f"\n[store]\n{key}\n"
    open(out, "w").write(text)


class Imap:
    def __init__(self, port):
        for _ in range(4000):
            try:
                self.s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.005)
        self.f = self.s.makefile("rb", buffering=1 << 20)
        self.f.readline()
        self.n = 0

    def cmd(self, text):
        self.n += 1
        tag = f"rc{self.n}".encode()
        t = time.perf_counter()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError(f"connection closed during {text}")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text}: {line!r}")
                return (time.perf_counter() - t) * 1000


def one(binary, cfg, port, user, password, command):
    log = open(cfg + ".log", "a")
    p = subprocess.Popen([binary, "--config", cfg, "serve"], stdout=log, stderr=subprocess.STDOUT)
    try:
        c = Imap(port)
        c.cmd(f"LOGIN {user} {password}")
        c.cmd("SELECT INBOX")
        out = tempfile.NamedTemporaryFile(suffix=".perf", delete=False).name
        perf = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", "task-clock", "-p", str(p.pid), "-o", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        before, t0 = proc_io(p.pid), cpu_ticks(p.pid)
        ms = c.cmd(command)
        after, t1 = proc_io(p.pid), cpu_ticks(p.pid)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        cpu = 0.0
        for line in open(out):
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2] == "task-clock":
                cpu = float(parts[0])
        os.unlink(out)
        rss = rss_kb(p.pid)
        c.s.close()
        hz = os.sysconf("SC_CLK_TCK")
        user, system = ((t1[i] - t0[i]) * 1000 / hz for i in (0, 1))
        return (after["rchar"] - before["rchar"], after["syscr"] - before["syscr"], cpu, ms, rss,
                user, system)
    finally:
        p.terminate()
        p.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--bin", default="target/release/letterbox")
    ap.add_argument("--sizes", default="2M,8M,16M,32M,64M")
    ap.add_argument("--commands", default=",".join(n for n, _ in COMMANDS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--user", default="big@example.com")
    ap.add_argument("--password", default="bench-Secret1")
    a = ap.parse_args()
    text = open(a.config).read()
    m = re.search(r"^imap\s*=\s*\[\s*\"127\.0\.0\.1:(\d+)\"", text, re.M)
    port = int(m.group(1))
    wanted = a.commands.split(",")
    rows = []
    for size in a.sizes.split(","):
        cfg = f"{a.config}.cache-{size}.toml"
        with_cache(a.config, size, cfg)
        for name, command in COMMANDS:
            if name not in wanted:
                continue
            runs = [one(a.bin, cfg, port, a.user, a.password, command) for _ in range(a.reps)]
            med = [statistics.median(r[i] for r in runs) for i in range(7)]
            load = " ".join(open("/proc/loadavg").read().split()[:3])
            row = (f"{name:15} {size:>4}: read {med[0] / 1e6:8.1f} MB {med[1]:9.0f} syscalls "
                   f"server CPU {med[2]:8.1f} ms (user {med[5]:.0f} system {med[6]:.0f}), wall {med[3]:8.1f} ms "
                   f"(min {min(r[3] for r in runs):.1f}) VmRSS {med[4] / 1024:.0f} MiB "
                   f"load {load} n={len(runs)}")
            print(row, flush=True)
            rows.append(row)


if __name__ == "__main__":
    main()
