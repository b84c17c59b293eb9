#!/usr/bin/env python3
"""First SELECT after a start (issue 18, `[imap] preload_index_messages`).

    bench/cold-preload.py N WAIT LABEL=BIN@CONFIG...

For a box made by `bench/select-rss.py --import-only --keep DIR` (account big@example.com),
one CONFIG per case (e.g. DIR/letterbox.toml and a copy with the key set to 0). Each
round, each case in turn: start, wait WAIT seconds after
the port answers (0: connect at once), LOGIN, timed SELECT INBOX (cold) and a second one,
VmRSS before LOGIN and after, SIGTERM. Server log lines 'preloaded' printed once per case."""
import os, re, socket, statistics, subprocess, sys, time
n, wait = int(sys.argv[1]), float(sys.argv[2])
cases = [c.split("=", 1) for c in sys.argv[3:]]
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1])
def cmd(s, f, tag, text):
    t = time.perf_counter(); s.sendall(f"{tag} {text}\r\n".encode())
    while True:
        line = f.readline()
        if line.startswith(tag.encode() + b" "):
            assert line.startswith(tag.encode() + b" OK"), line
            return (time.perf_counter() - t) * 1000
res = {l: [] for l, _ in cases}
for r in range(n):
    for label, spec in cases:
        b, cfg = spec.split("@")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", open(cfg).read()).group(1))
        log = open(f"/tmp/cold-preload-{label}.log", "w")
        t0 = time.perf_counter()
        p = subprocess.Popen([b, "--config", cfg, "serve"], stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(2000):
                try:
                    s = socket.create_connection(("127.0.0.1", port)); break
                except OSError:
                    time.sleep(0.005)
            up = (time.perf_counter() - t0) * 1000
            time.sleep(wait)
            r0 = rss(p.pid)
            f = s.makefile("rb"); f.readline()
            cmd(s, f, "a", "LOGIN big@example.com secret")
            cold = cmd(s, f, "b", "SELECT INBOX")
            warm = cmd(s, f, "c", "SELECT INBOX")
            r1 = rss(p.pid)
            res[label].append((cold, warm, r0, r1, up))
            s.close()
        finally:
            p.terminate(); p.wait(); log.close()
        if r == 0:
            for l in open(f"/tmp/cold-preload-{label}.log"):
                if "preloaded" in l: print(label, l.strip()[:200])
for label, _ in cases:
    v = res[label]; c = [x[0] for x in v]
    print(f"{label}: cold SELECT median {statistics.median(c):.3f} ms ({min(c):.3f}-{max(c):.3f}), "
          f"second {statistics.median([x[1] for x in v]):.3f} ms, VmRSS before LOGIN "
          f"{statistics.median([x[2] for x in v]):.0f} kB, after {statistics.median([x[3] for x in v]):.0f} kB, "
          f"port up after {statistics.median([x[4] for x in v]):.0f} ms, n={len(c)}")
print("load average", " ".join(open("/proc/loadavg").read().split()[:3]))
