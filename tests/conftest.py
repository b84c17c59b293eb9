"""Shared end-to-end harness: starts the real `letterbox` binary on loopback ports.

Use the `server` fixture (a running server with domain example.com and users
alice@example.com / bob@example.com), or `make_server(**config_overrides)` for a custom
configuration. `server.cli(...)` runs admin commands against the same data directory.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("LETTERBOX_BIN", ROOT / "target" / "debug" / "letterbox"))

USERS = {
    "alice@example.com": "alice-Secret1",
    "bob@example.com": "bob-Secret2",
}

PROTOCOLS = ("smtp", "lmtp", "pop3", "imap", "pop3s", "imaps", "submission", "submissions")


def free_port():
    return free_ports(1)[0]


def free_ports(n):
    """`n` distinct loopback ports the kernel had free a moment ago.

    All sockets stay bound until every port is picked, so the same port is never
    handed out twice; another process can still take one before the server binds,
    which `Server.start` handles by picking again.
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


class Server:
    """A letterbox instance in its own data directory."""

    def __init__(self, tmp: Path, overrides=None):
        self.dir = tmp
        self.data_dir = tmp / "data"
        self.config_path = tmp / "letterbox.toml"
        self.proc = None
        self.log_path = tmp / "server.log"
        self.overrides = dict(overrides or {})
        tmp.mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self):
        """(Re)writes the configuration with freshly picked ports."""
        self.ports = dict(zip(PROTOCOLS, free_ports(len(PROTOCOLS))))
        sections = {
            "": {"data_dir": str(self.data_dir), "hostname": "mail.example.com"},
            "listen": {
                "smtp": [f"127.0.0.1:{self.ports['smtp']}"],
                "lmtp": [f"127.0.0.1:{self.ports['lmtp']}"],
                "pop3": [f"127.0.0.1:{self.ports['pop3']}"],
                "imap": [f"127.0.0.1:{self.ports['imap']}"],
                "submission": [f"127.0.0.1:{self.ports['submission']}"],
                "submissions": [f"127.0.0.1:{self.ports['submissions']}"],
                "imaps": [f"127.0.0.1:{self.ports['imaps']}"],
                "pop3s": [f"127.0.0.1:{self.ports['pop3s']}"],
                "http": [],
            },
            "log": {"level": "debug"},
            # Tests run as root in CI; privilege dropping has its own test.
            "server": {"allow_root": True},
            # The outbound queue never asks the system's resolver (no traffic off this
            # machine): a dead local address unless a test gives its own DNS server.
            "outbound": {"dns": "127.0.0.1:1"},
        }
        for key, value in self.overrides.items():
            section, _, name = key.rpartition(".")
            sections.setdefault(section, {})[name] = value
        lines = [f"{k} = {toml_value(v)}" for k, v in sections.pop("").items()]
        for section, values in sections.items():
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    # --- admin commands -------------------------------------------------------------
    def cli(self, *args, input=None, check=True):
        """Runs `letterbox --config ... ARGS`; returns the CompletedProcess (bytes)."""
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(
            [str(BIN), "--config", str(self.config_path), *map(str, args)],
            input=input,
            capture_output=True,
            timeout=120,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"letterbox {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def add_user(self, address, password, quota=None):
        args = ["user", "add", address, "--password-stdin"]
        if quota is not None:
            args += ["--quota", quota]
        self.cli(*args, input=password + "\n")

    def deliver(self, address, message: bytes):
        """Delivers through the admin `deliver` command (no protocol involved)."""
        return self.cli("deliver", address, input=message)

    def message(self, address, mailbox, uid) -> bytes:
        return self.cli("message", "get", address, mailbox, uid).stdout

    def uids(self, address, mailbox="INBOX"):
        out = self.cli("message", "list", address, mailbox).stdout.decode()
        return [int(line.split("\t")[0]) for line in out.splitlines() if line]

    # --- process --------------------------------------------------------------------
    def start(self):
        # A port picked as free may be taken by another process (a client's ephemeral
        # port) before the server binds it: pick again rather than fail the test.
        for attempt in range(5):
            try:
                return self._start()
            except AssertionError as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                self.write_config()

    def _start(self):
        self.log = open(self.log_path, "ab")
        # Only this run's lines count (a restart appends to the same log).
        self.log_start = len(self.read_log())
        self.proc = subprocess.Popen(
            [str(BIN), "--config", str(self.config_path), "serve"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        pending = set(self.ports)
        while pending and time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.read_log()}")
            for p in list(pending):
                if self._listening(p):
                    pending.discard(p)
            if pending:
                time.sleep(0.05)
        # Protocols not built into the binary yet are simply not listening.
        self.available = {p for p in self.ports if p not in pending}

    def _listening(self, proto):
        # The server logs this once the socket is bound and listening (the kernel queues
        # connections from then on). No probe connection: it would start a session that
        # counts against the connection limits some tests measure.
        pattern = rf"listening for {proto} on \S+:{self.ports[proto]}$"
        return re.search(pattern, self.read_log()[self.log_start:], re.M) is not None

    def require(self, proto):
        if proto not in self.available:
            pytest.fail(f"{proto} listener is not available in this build")
        return self.ports[proto]

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def letterbox_bin():
    if "LETTERBOX_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "-q", "-p", "letterbox"], cwd=ROOT, check=True)
    assert BIN.exists(), f"{BIN} not built"
    return BIN


@pytest.fixture
def make_server(tmp_path, letterbox_bin):
    servers = []

    def make(users=USERS, start=True, **overrides):
        s = Server(tmp_path / f"s{len(servers)}", overrides) if servers else Server(tmp_path, overrides)
        s.dir.mkdir(parents=True, exist_ok=True)
        servers.append(s)
        s.cli("domain", "add", "example.com")
        for address, password in users.items():
            s.add_user(address, password)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.stop()
        if s.__dict__.get("log"):
            s.log.close()


@pytest.fixture
def server(make_server):
    return make_server()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "embedded_only(reason): about the embedded store itself; skipped in cluster mode",
    )


# Cluster mode (tests/cluster_mode.py): every server a test starts is two nodes on one
# PostgreSQL. Off by default.
CLUSTER = os.environ.get("LETTERBOX_TEST_CLUSTER") == "1"
if CLUSTER:
    import cluster_mode

    Server = cluster_mode.cluster_class(Server)

    def pytest_collection_modifyitems(config, items):
        for item in items:
            m = item.get_closest_marker("embedded_only")
            if m:
                item.add_marker(pytest.mark.skip(reason="cluster mode: " + m.args[0]))

    @pytest.fixture(autouse=True)
    def _cluster_cleanup():
        yield
        cluster_mode.cleanup()
