"""A private Postfix instance (Debian's package) for the tests: its own
config_directory, queue_directory and log under a temporary directory, smtpd on a
loopback port, nothing chrooted, started with `postfix -c DIR start` and stopped with
`postfix -c DIR stop`. Needs root (Postfix's master) and the `postfix` user."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def world_dir(prefix):
    """A temporary directory Postfix's unprivileged daemons can reach (pytest's own
    temporary directories are root-only)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


class Postfix:
    def __init__(self, port, main: dict):
        self.dir = world_dir("lb-postfix-")
        self.conf = self.dir / "conf"
        self.conf.mkdir()
        self.port = port
        self.log = self.dir / "maillog"
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.dir / "queue"),
            "data_directory": str(self.dir / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.test",
            "mydomain": "test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.dir),
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "biff": "no",
        }
        settings.update(main)
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{port}"))

    def run(self, *args):
        return subprocess.run([POSTFIX, "-c", str(self.conf), *args], capture_output=True, text=True, timeout=60)

    def start(self):
        (self.dir / "queue").mkdir(exist_ok=True)
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        shutil.chown(data, "postfix", "postfix")
        # The queue's subdirectories, owners and modes, as the package's install does.
        r = self.run("set-permissions", "create-missing")
        if r.returncode != 0:
            raise AssertionError(f"postfix set-permissions failed: {r.stdout}{r.stderr}")
        r = self.run("start")
        if r.returncode != 0:
            raise AssertionError(f"postfix start failed: {r.stdout}{r.stderr}\n{self.read_log()}")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix does not listen on {self.port}:\n{self.read_log()}")

    def stop(self):
        self.run("stop")
        # The master exits shortly after; wait for its pid file to go.
        pid = self.dir / "queue" / "pid" / "master.pid"
        deadline = time.time() + 10
        while pid.exists() and time.time() < deadline:
            time.sleep(0.1)

    def read_log(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
