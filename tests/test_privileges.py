"""Started as root, serve binds its ports and then runs as [server] user."""

import os
import poplib
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, CLUSTER, Server

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

USER = "letterbox-test"


@pytest.fixture
def system_user():
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
    return pwd.getpwnam(USER)


@pytest.fixture
def world_dir():
    # pytest's tmp dirs are private to root; the dropped user needs a path it can walk.
    d = Path(tempfile.mkdtemp(prefix="letterbox-priv-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_refuses_root_without_user(world_dir, letterbox_bin):
    s = Server(world_dir, {"server.allow_root": False, "server.user": "no-such-user-xyz"})
    r = subprocess.run([str(BIN), "--config", str(s.config_path), "serve"], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"refusing to run as root" in r.stderr and b"server.user" in r.stderr


def test_drops_to_configured_user(world_dir, system_user, letterbox_bin):
    s = Server(world_dir, {"server.allow_root": False, "server.user": USER})
    s.cli("domain", "add", "example.com")
    s.add_user("alice@example.com", "pw-alice")
    s.start()
    try:
        # Ports accept (kernel backlog) as soon as they are bound; the drop follows.
        deadline = time.time() + 20
        while "running as letterbox-test" not in s.read_log() and time.time() < deadline:
            time.sleep(0.05)
        status = Path(f"/proc/{s.proc.pid}/status").read_text()
        uid_line = next(l for l in status.splitlines() if l.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(system_user.pw_uid)] * 4, uid_line
        # (In cluster mode, tests/cluster_mode.py, the store is PostgreSQL: no store.db.)
        for p in [s.data_dir, s.data_dir / "tls"] + [s.data_dir / "store.db"] * (not CLUSTER):
            assert p.stat().st_uid == system_user.pw_uid, p
        # An admin command run as root keeps the files the server's, and the running
        # server sees its effect.
        s.add_user("bob@example.com", "pw-bob")
        s.deliver("bob@example.com", b"Subject: x\r\n\r\ny\r\n")
        owners = {p.stat().st_uid for p in s.data_dir.rglob("*")}
        assert owners == {system_user.pw_uid}, owners
        pop = poplib.POP3("127.0.0.1", s.require("pop3"), timeout=10)
        pop.user("bob@example.com")
        pop.pass_("pw-bob")
        assert pop.stat()[0] == 1
        pop.quit()
    finally:
        s.stop()
