#!/usr/bin/env python3
"""Delivery rate over LMTP and SMTP: 10 parallel sessions, 5 KB messages, each `250` durable
(fsynced) before it is sent. Not a test (pytest does not collect it); run it with

    cargo build --release -p letterbox
    LETTERBOX_BIN=target/release/letterbox python3 tests/smtp/bench_delivery.py [SECONDS]

It starts its own server in a temporary directory, like the tests do. Where Debian's
Dovecot LMTP is installed (`apt-get install dovecot-lmtpd`), it also runs the LMTP load
against a private Dovecot instance (Maildir, default fsync settings) for comparison.
"""

import os
import shutil
import smtplib
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
from smtp_util import lmtp, lmtp_send, smtp  # noqa: E402

SESSIONS = 10
SIZE = 5 * 1024


def body(t, i):
    head = f"Subject: bench {t}-{i}\r\nMessage-ID: <{t}.{i}.{time.time()}@bench>\r\n\r\n".encode()
    line = b"y" * 70 + b"\r\n"
    text = line * ((SIZE - len(head)) // len(line))
    return head + text + b"z" * (SIZE - len(head) - len(text) - 2) + b"\r\n"


class Dovecot:
    """A private Dovecot LMTP instance in `root`, delivering to Maildirs."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        for d in ["run", "state", "mail"]:
            (root / d).mkdir(parents=True)
        shutil.chown(root / "mail", "dovecot", "dovecot")
        os.chmod(root, 0o755)
        conf = root / "dovecot.conf"
        conf.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)

    def require(self, proto):
        assert proto == "lmtp"
        return self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(server, proto, seconds):
    counts = [0] * SESSIONS
    stop = time.time() + seconds
    rcpts = list(USERS)

    def worker(t):
        if proto == "lmtp":
            with lmtp(server) as c:
                c.ehlo("bench")
                i = 0
                while time.time() < stop:
                    i += 1
                    res = lmtp_send(c, "bench@example.org", [rcpts[i % len(rcpts)]], body(t, i))
                    assert all(code == 250 for code, _ in res.values()), res
                    counts[t] += 1
        else:
            with smtp(server) as c:
                c.ehlo("bench")
                i = 0
                while time.time() < stop:
                    i += 1
                    assert c.sendmail("bench@example.org", [rcpts[i % len(rcpts)]], body(t, i)) == {}
                    counts[t] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(SESSIONS)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.time() - t0)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as d:
        s = Server(Path(d), {"quota.default": "10G", "log.level": "info"})
        s.dir.mkdir(parents=True, exist_ok=True)
        s.cli("domain", "add", "example.com")
        for a, p in USERS.items():
            s.add_user(a, p)
        s.start()
        try:
            for proto in ("lmtp", "smtp"):
                rate = run(s, proto, seconds)
                print(f"{proto}: {rate:.0f} messages/s ({SESSIONS} sessions, {SIZE} octets, durable)")
        finally:
            s.stop()
        if shutil.which("dovecot") and Path("/usr/lib/dovecot/lmtp").exists():
            os.chmod(d, 0o755)  # Dovecot delivers as its own user
            dv = Dovecot(Path(d) / "dovecot")
            try:
                rate = run(dv, "lmtp", seconds)
                print(f"dovecot lmtp: {rate:.0f} messages/s ({SESSIONS} sessions, {SIZE} octets, Maildir)")
            except (OSError, smtplib.SMTPException, AssertionError) as e:
                print(f"dovecot lmtp: not measured ({e!r}); see {Path(d) / 'dovecot' / 'dovecot.log'}")
            finally:
                dv.stop()


if __name__ == "__main__":
    main()
