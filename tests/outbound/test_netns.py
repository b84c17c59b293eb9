"""Outbound delivery to remote hosts in their own network namespaces (issue 12): each MX
is a namespace (`ip netns`) joined to this one by a veth pair, with its own routed
address (10.201.R.x/30), not a loopback alias. The first MX is a host that is down (its
end of the link is down, so nothing answers ARP and the connection fails as it does for a
dead host on the internet); the second runs Postfix's `smtp-sink` inside its namespace
and dumps every transaction to a file. Letterbox must try the first MX (preference 10),
give up on it, and deliver to the second (preference 20) over the routed link.

Needs root and `ip netns` (the tests run as root in CI); skipped with the reason
otherwise. DNS is the tests' server (net.py) on 127.0.0.1 in this namespace.
"""

import os
import random
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from net import Dns  # noqa: E402

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
SINK_PORT = 2525


def _netns_reason():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip") or not shutil.which("smtp-sink"):
        return "needs iproute2 (ip) and Postfix's smtp-sink"
    name = f"lbxprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` is not available here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(args)}: {r.stderr.strip()}"
    return r.stdout


class Host:
    """A namespace with one veth link to this namespace: `here` on our side, `ip` on its
    side, a /30 of its own (`prefix.base` .. `prefix.base+3`)."""

    def __init__(self, tag, prefix, base):
        self.ns = f"lbx{tag}"
        self.outer, self.inner = f"lbx{tag}o", f"lbx{tag}i"
        self.here, self.ip = f"{prefix}.{base + 1}", f"{prefix}.{base + 2}"
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            sh("ip", "link", "set", self.inner, "netns", self.ns)
            sh("ip", "addr", "add", f"{self.here}/30", "dev", self.outer)
            sh("ip", "link", "set", self.outer, "up")
            self.run("ip", "addr", "add", f"{self.ip}/30", "dev", self.inner)
            self.run("ip", "link", "set", "lo", "up")
            self.run("ip", "link", "set", self.inner, "up")
        except AssertionError:
            self.remove()
            raise

    def run(self, *args):
        return sh("ip", "netns", "exec", self.ns, *args)

    def spawn(self, *args):
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def down(self):
        """The host is off the network: its side of the link is down."""
        self.run("ip", "link", "set", self.inner, "down")

    def remove(self):
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


@pytest.fixture
def hosts():
    """hosts(n) makes the n-th remote host (n < 2); all are removed at the end."""
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    made = []
    # Interface names are at most 15 characters: "lbx" + 5 + 1 + "o".
    tag = f"{random.randint(0, 99999):05d}"
    prefix = f"10.201.{random.randint(1, 254)}"

    def make(n):
        h = Host(f"{tag}{n}", prefix, 4 * n)
        made.append(h)
        return h

    yield make
    for h in made:
        h.remove()


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def listening(h, port):
    out = h.run("ss", "-Htln", f"sport = :{port}")
    return out.strip() != ""


def test_first_mx_down_second_takes_it_over_routed_namespaces(make_server, hosts):
    mx1, mx2 = hosts(0), hosts(1)
    mx1.down()
    # smtp-sink writes as the postfix user, which cannot enter pytest's 0700 tmp_path.
    dump_dir = Path(tempfile.mkdtemp(prefix="letterbox-netns."))
    dump_dir.chmod(0o777)
    dump = dump_dir / "mx2.dump"
    sink = mx2.spawn("smtp-sink", "-u", "postfix", "-h", "mx2.remote.test", "-D", str(dump),
                     f"{mx2.ip}:{SINK_PORT}", "16")
    dns = Dns()
    try:
        wait_for(lambda: listening(mx2, SINK_PORT), 10, "smtp-sink in its namespace")
        dns.add("remote.test", "MX", (10, "mx1.remote.test"))
        dns.add("remote.test", "MX", (20, "mx2.remote.test"))
        dns.host("mx1.remote.test", mx1.ip)
        dns.host("mx2.remote.test", mx2.ip)
        server = make_server(**{
            "outbound.dns": dns.addr,
            "outbound.port": SINK_PORT,
            "outbound.mta_sts": False,
            "outbound.connect_timeout": 3,
            "outbound.timeout": 10,
            "queue.min_backoff": 1,
            "queue.max_backoff": 2,
            "queue.poll_interval": 1,
        })
        body = (f"From: <{ALICE}>\r\nTo: <x@remote.test>\r\nSubject: netns\r\n"
                "Message-ID: <netns@example.com>\r\n\r\nOver a routed link.\r\n").encode()
        with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
            c.ehlo("client.example.org")
            c.login(ALICE, ALICE_PW)
            assert c.sendmail(ALICE, ["x@remote.test", "y@remote.test"], body) == {}
        try:
            text = wait_for(lambda: dump.exists() and b"Over a routed link." in dump.read_bytes()
                            and dump.read_bytes(), 60, "the message at the second MX").decode()
        except AssertionError:
            sink.terminate()
            raise AssertionError(f"nothing at mx2; smtp-sink: {sink.communicate()[1]!r}; "
                                 f"server log: {server.read_log()[-3000:]}")
        # One transaction, from our side of mx2's link (a routed address, not loopback).
        assert text.count("X-Mail-Args:") == 1, text
        assert f"X-Client-Addr: {mx2.here}\n" in text, text
        mail_args = [l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("X-Mail-Args:")]
        assert mail_args[0].split()[0] == f"<{ALICE}>", mail_args
        rcpts = [l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("X-Rcpt-Args:")]
        assert sorted(r.split()[0] for r in rcpts) == ["<x@remote.test>", "<y@remote.test>"], rcpts
        assert f"Received: from mail.example.com ([{mx2.here}])" in text, text
        assert "Received: from client.example.org" in text
        assert text.rstrip("\n").endswith("Over a routed link."), text[-200:]

        def empty():
            out = server.cli("queue", "list").stdout.decode()
            return not any(l and not l.startswith(" ") for l in out.splitlines())
        wait_for(empty, 30, "an empty queue")
        log = server.read_log()
        # The first MX was tried (by its routed address) and failed before the second took it.
        assert "mx1.remote.test" in log, log[-3000:]
        assert ALICE_PW not in log
    finally:
        sink.terminate()
        sink.wait()
        dns.stop()
        shutil.rmtree(dump_dir, ignore_errors=True)
