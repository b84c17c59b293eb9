"""serve refuses to start when the dropped user cannot reach the store.

The store is opened as root (before the switch), so a data directory whose parent the
`[server] user` cannot search used to give a server that listened and answered every
login `NO [UNAVAILABLE]`. It must exit non-zero with one line naming the path and the user.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, Server
from test_privileges import USER, system_user  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (privilege dropping)")


def test_refuses_to_start_when_store_unreachable(system_user, letterbox_bin):  # noqa: F811
    top = Path(tempfile.mkdtemp(prefix="letterbox-unreach-"))
    try:
        top.chmod(0o755)
        locked = top / "locked"
        locked.mkdir()
        s = Server(locked, {"server.allow_root": False, "server.user": USER})
        s.cli("domain", "add", "example.com")
        s.add_user("alice@example.com", "pw-alice")
        # Root reads the configuration and opens the store; the user cannot walk into
        # `locked` (root-owned, 0700) to reach data_dir below it.
        locked.chmod(0o700)
        r = subprocess.run([str(BIN), "--config", str(s.config_path), "serve"], capture_output=True, timeout=60)
        assert r.returncode != 0, r.stderr.decode()
        last = r.stderr.decode().strip().splitlines()[-1]
        assert last.startswith("letterbox: cannot reach the store "), last
        assert str(s.data_dir) in last and f"`{USER}`" in last, last
        assert "Permission denied" in last, last
        # And it listens no more: nothing accepts on its IMAP port.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.ports["imap"]), timeout=2).close()
        # With the path reachable, the same configuration starts and serves.
        locked.chmod(0o755)
        s.start()
        try:
            import imaplib

            imap = imaplib.IMAP4("127.0.0.1", s.require("imap"))
            assert imap.login("alice@example.com", "pw-alice")[0] == "OK"
            imap.logout()
        finally:
            s.stop()
            s.log.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)
