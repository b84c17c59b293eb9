"""A private rspamd (Debian's package) for the filter tests: its own configuration
overrides, database and ports on loopback; started once per test module (it takes
about a minute to compile its expressions on this machine) and stopped at the end."""

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
    def __init__(self, root: Path, port: int, controller: int):
        self.root, self.port, self.controller = root, port, controller
        self.proc = None

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
            "local.d/logging.inc": 'type = "console";\nlevel = "notice";\n',
            # Without DNS a plain message scores a few points; keep greylisting out of
            # the way of the "clean message" case.
            "local.d/actions.conf": "greylist = null;\n",
            # Bayes in SQLite (no Redis in the test): what learning writes to.
            "override.d/classifier-bayes.conf": (
                'backend = "sqlite3";\n'
                "min_learns = 1;\n"
                'statfile { symbol = "BAYES_HAM"; spam = false; path = "${DBDIR}/bayes.ham.sqlite"; }\n'
                'statfile { symbol = "BAYES_SPAM"; spam = true; path = "${DBDIR}/bayes.spam.sqlite"; }\n'
                "autolearn = false;\n"
            ),
        }
        for name, text in files.items():
            (self.root / name).write_text(text)

    def start(self, wait=240):
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


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if not shutil.which("rspamd"):
        pytest.fail("rspamd is not installed (scripts/install-test-deps)")
    from conftest import free_ports

    port, controller = free_ports(2)
    r = Rspamd(tmp_path_factory.mktemp("rspamd"), port, controller)
    r.configure()
    r.start()
    yield r
    r.stop()
