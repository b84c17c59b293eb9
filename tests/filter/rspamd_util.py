"""A private rspamd (Debian's package) for the filter tests: its own configuration
overrides, database and ports on loopback; started once per test module (it takes
about a minute to compile its expressions on this machine) and stopped at the end.

Its Bayes classifier keeps its statistics in a private Redis (Debian's redis-server, on a
free loopback port, nothing saved to disk), the backend rspamd documents. The SQLite
backend, used here before, is opened by each rspamd process (the normal worker and the
controller) at start-up, and they race for its exclusive lock ("database is locked" in
rspamd's log): a process that loses may be left without the statfile, and when that is the
controller, which does the learning, nothing is ever learned. That is how learning failed
on a fresh machine while passing on another."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# rspamd's own test strings (built into rspamd 3.x): the action each one produces.
GTUBE_REJECT = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_REWRITE_SUBJECT = "ZJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class Rspamd:
    def __init__(self, root: Path, port: int, controller: int, redis: int):
        self.root, self.port, self.controller, self.redis = root, port, controller, redis
        self.proc = None
        self.redis_proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def controller_url(self):
        return f"http://127.0.0.1:{self.controller}"

    def configure(self):
        for d in ("local.d", "override.d", "db", "run", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        files = {
            "local.d/worker-normal.inc": f'bind_socket = "127.0.0.1:{self.port}";\ncount = 1;\n',
            "local.d/worker-controller.inc": (
                f'bind_socket = "127.0.0.1:{self.controller}";\ncount = 1;\nsecure_ip = "127.0.0.1";\n'
            ),
            "override.d/worker-proxy.inc": "enabled = false;\n",
            "override.d/worker-fuzzy.inc": "enabled = false;\n",
            # The same on a machine with or without internet: no fuzzy servers, no maps
            # fetched from rspamd.com.
            "local.d/fuzzy_check.conf": "enabled = false;\n",
            # No network here: DNS lookups fail fast on a closed loopback port.
            "local.d/options.inc": (
                "enable_test_patterns = true;\n"
                'dns {\n  nameserver = ["127.0.0.1:9"];\n  timeout = 0.2s;\n  retransmits = 1;\n}\n'
            ),
            # info: each learn and its outcome are logged (the test prints them on failure).
            "local.d/logging.inc": 'type = "console";\nlevel = "info";\n',
            # Without DNS a plain message scores a few points; keep greylisting by score
            # out of the way of the "clean message" and "add header" cases (the action
            # itself stays, for the forced rule below), under reject's 15, which rspamd
            # reports as `required`.
            "local.d/actions.conf": "greylist = 14.9;\n",
            # rspamd's own test patterns (GTUBE) give reject, add header and rewrite
            # subject only: two rules of rspamd's force_actions module give the other two
            # actions, for a subject the test chooses (multimap matches it).
            "local.d/multimap.conf": (
                'LB_TEST_SOFT_REJECT { type = "header"; header = "Subject"; regexp = true; '
                f'map = "{self.root}/soft-reject.map"; score = 0.0; }}\n'
                'LB_TEST_GREYLIST { type = "header"; header = "Subject"; regexp = true; '
                f'map = "{self.root}/greylist.map"; score = 0.0; }}\n'
            ),
            "soft-reject.map": "/rspamd-soft-reject-this/\n",
            "greylist.map": "/rspamd-greylist-this/\n",
            "local.d/force_actions.conf": (
                "rules {\n"
                '  LB_TEST_SOFT_REJECT { action = "soft reject"; expression = "LB_TEST_SOFT_REJECT"; '
                'message = "Try again later (soft reject)"; }\n'
                '  LB_TEST_GREYLIST { action = "greylist"; expression = "LB_TEST_GREYLIST"; }\n'
                "}\n"
            ),
            # Bayes in the private Redis (see the module doc): what learning writes to.
            # Only the classifier gets the server, so the modules that turn on with a
            # global Redis (greylisting, ratelimit, neural...) stay off.
            "override.d/classifier-bayes.conf": (
                'backend = "redis";\n'
                f'servers = "127.0.0.1:{self.redis}";\n'
                "min_learns = 1;\n"
                "autolearn = false;\n"
            ),
        }
        for name, text in files.items():
            (self.root / name).write_text(text)

    def start_redis(self):
        if self.redis_proc and self.redis_proc.poll() is None:
            return
        (self.root / "redis").mkdir(exist_ok=True)
        self.redis_proc = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(self.redis),
                "--save", "", "--appendonly", "no", "--dir", str(self.root / "redis"),
                "--logfile", str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis), timeout=2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"redis-server did not come up: {(self.root / 'redis.log').read_text()[-2000:]}")

    def start(self, wait=240):
        self.start_redis()
        self.log = open(self.root / "rspamd.log", "ab")
        r = self.root
        self.proc = subprocess.Popen(
            [
                "rspamd", "-f", "-u", "root", "-g", "root",
                "-c", "/etc/rspamd/rspamd.conf",
                f"--var=LOCAL_CONFDIR={r}", f"--var=DBDIR={r}/db",
                f"--var=RUNDIR={r}/run", f"--var=LOGDIR={r}/log",
            ],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rspamd exited: {(self.root / 'rspamd.log').read_text()[-3000:]}")
            if self.ready():
                return
            time.sleep(1)
        raise AssertionError("rspamd did not come up")

    def ready(self):
        # The normal worker answers /ping once it has loaded its rules.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                return b"pong" in s.recv(1024)
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # rspamd forks workers: signal its whole process group (ours alone).
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def stop_redis(self):
        if self.redis_proc and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(20)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
                self.redis_proc.wait()
        self.redis_proc = None


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if not shutil.which("rspamd"):
        pytest.fail("rspamd is not installed (scripts/install-test-deps)")
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/install-test-deps)")
    from conftest import free_ports

    port, controller, redis = free_ports(3)
    r = Rspamd(tmp_path_factory.mktemp("rspamd"), port, controller, redis)
    r.configure()
    r.start()
    try:
        yield r
    finally:
        r.stop()
        r.stop_redis()
