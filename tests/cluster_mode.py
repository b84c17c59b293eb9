"""Cluster mode of the end-to-end suite (issue 17): `LETTERBOX_TEST_CLUSTER=1 python3 -m
pytest tests` runs every test's Letterbox as two `letterbox serve` nodes on one PostgreSQL.

- One private PostgreSQL cluster per pytest session (`pg_cluster.PgCluster`, started on
  first use, stopped at exit); a fresh database per server, dropped after its test.
- Both nodes run the same configuration (`[store] backend = "postgres"`, the same database,
  the same `data_dir`, whose `blobs/` the nodes share as they would share a network
  volume); only their listening ports differ.
- The addresses a test sees (`server.ports`, `server.require`, and the listeners a test
  configures itself) belong to node A for deliveries (SMTP, LMTP, submission) and to node
  B for reads (IMAP, POP3, ManageSieve, the web portal, the auth service), so that a
  message delivered in a test is read through the other node. The other node listens
  too, on the same port of another loopback address (`OTHER_HOST`).
- `server.config_path` is the configuration as the test wrote it (its ports are the ones
  the test sees): admin commands (`server.cli`) run with it against the cluster, and a
  test's edits of it reach the node that owns the port. Each start derives the nodes'
  files from it (`node-a.toml`, `node-b.toml`).
- Both nodes log into `server.log` (appended line by line), so log assertions see both.

A test that is inherently about the embedded store (its SQLite file, its WAL, a full disk
under `data_dir`, backup/restore of the SQLite file) carries
`@pytest.mark.embedded_only("why")` and is skipped here with that reason.

A server whose overrides name `store.backend` itself (the PostgreSQL tests in
tests/cluster/) is left as the test built it.
"""

import atexit
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from pg_cluster import PgCluster

# The listeners whose test-facing port is node A's; every other one is node B's.
DELIVERY = {"smtp", "lmtp", "submission", "submissions"}

# Where the node that does not own a listener listens: the same port as the owner's, on
# another loopback address, as another host of the cluster would (so that what a node
# advertises, autoconfig or a quota warning's link, names the ports the test uses).
OTHER_HOST = "127.0.0.12"

# Connections each node keeps: two nodes of a few servers stay under PostgreSQL's
# default max_connections (100).
POOL_SIZE = 6

_pg = None
_names = itertools.count(1)
# The cluster servers made since the last `cleanup()` (one test's).
_live = []


# The database every server's database is copied from: the schema applied once.
TEMPLATE = "lbtemplate"


def pg():
    """The session's PostgreSQL cluster, started on first use."""
    global _pg
    if _pg is None:
        c = PgCluster(Path(tempfile.mkdtemp(prefix="letterbox-cluster-pg-")))
        c.start()
        atexit.register(_stop_pg, c)
        # Hundreds of databases made and dropped: no fsync of their files. Commits are as
        # transactional as ever; only a crash of the machine itself could lose them.
        c.psql("ALTER SYSTEM SET fsync = off")
        c.psql("SELECT pg_reload_conf()")
        url = c.new_database(TEMPLATE)
        cfg = c.dir / "migrate.toml"
        cfg.write_text(f'data_dir = "{c.dir / "data"}"\n[store]\nbackend = "postgres"\nurl = "{url}"\n')
        r = subprocess.run([str(self_bin()), "--config", str(cfg), "migrate"], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _pg = c
    return _pg


def _stop_pg(c):
    c.stop()
    shutil.rmtree(c.dir, ignore_errors=True)


def cleanup():
    """After a test: stops its cluster servers and drops their databases (but for a
    module's server that sets `keep`: it goes with the session's cluster)."""
    while _live:
        s = _live.pop()
        if getattr(s, "keep", False):
            continue
        s.stop()
        try:
            pg().psql(f'DROP DATABASE IF EXISTS "{s.db}" WITH (FORCE)')
        except AssertionError:
            pass  # the database is gone with the session's cluster anyway


def copy_database(src, dst):
    """Gives the stopped cluster server `dst` a copy of `src`'s database (what copying
    data_dir does for the embedded store)."""
    pg().psql(f'DROP DATABASE "{dst.db}" WITH (FORCE)')
    pg().psql(f'CREATE DATABASE "{dst.db}" TEMPLATE "{src.db}"')


def sql(server, query):
    """Runs `query` in a cluster server's database (psql's unaligned output)."""
    return pg().psql(query, url=server.db_url)


_ITEM = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ADDR = re.compile(r"^(.*):(\d+)$")


class _Procs:
    """Both nodes' processes, for a test that signals "the server" or reads its /proc:
    signals go to both; `pid` is node B's (where IMAP and POP3 sessions run)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    @property
    def pid(self):
        return self.b.pid

    def send_signal(self, sig):
        for p in (self.a, self.b):
            if p.poll() is None:
                p.send_signal(sig)

    def poll(self):
        ra = self.a.poll()
        return ra if ra is not None else self.b.poll()

    @property
    def returncode(self):
        return self.poll()


def cluster_class(Server):
    """The cluster counterpart of conftest's `Server`."""

    class ClusterServer(Server):
        def __new__(cls, tmp, overrides=None):
            if "store.backend" in (overrides or {}):
                return Server(tmp, overrides)
            return super().__new__(cls)

        def __init__(self, tmp, overrides=None):
            self.db = f"lb{os.getpid()}_{next(_names)}"
            pg().psql(f'CREATE DATABASE "{self.db}" TEMPLATE {TEMPLATE}')
            self.db_url = pg().url.rsplit("/", 1)[0] + "/" + self.db
            self.nodes = {}
            self._procs = None
            # The nodes' addresses besides 127.0.0.1 (a test that reads per-node state).
            self.other_hosts = [OTHER_HOST]
            super().__init__(tmp, overrides)
            _live.append(self)

        # The base class sets and clears `proc`: keep both nodes' processes behind it.
        @property
        def proc(self):
            return self._procs

        @proc.setter
        def proc(self, value):
            if value is None:
                self._procs = None

        def write_config(self):
            cluster = {"store.backend": "postgres", "store.url": self.db_url, "store.pool_size": POOL_SIZE}
            own = self.overrides
            self.overrides = {**cluster, **own}
            try:
                super().write_config()
            finally:
                self.overrides = own

        def node_config(self, node):
            """Node `node`'s configuration ("a" or "b"): the test's, with fresh ports for
            the listeners the other node owns. Returns (path, {protocol: port})."""
            text = self.config_path.read_text()
            out, section, ports = [], "", {}
            for line in text.splitlines():
                m = re.match(r"^\[(.*)\]\s*$", line)
                if m:
                    section = m.group(1).strip()
                m = re.match(r"^(\w+)\s*=\s*\[(.*)\]\s*$", line)
                if section == "listen" and m:
                    proto = m.group(1)
                    mine = (proto in DELIVERY) == (node == "a")
                    items = []
                    for item in _ITEM.findall(m.group(2)):
                        a = _ADDR.match(item)
                        if not mine and a and a.group(1) == "127.0.0.1":
                            # The same port on another loopback address, as on another host.
                            item = f"{OTHER_HOST}:{a.group(2)}"
                        elif not mine:
                            item = f"{a.group(1)}:{free_port()}" if a else f"{item}.node-{node}"
                        a = _ADDR.match(item)
                        if a and proto not in ports:
                            ports[proto] = (a.group(1), int(a.group(2)))
                        items.append('"' + item + '"')
                    line = f"{proto} = [{', '.join(items)}]"
                out.append(line)
            path = self.dir / f"node-{node}.toml"
            path.write_text("\n".join(out) + "\n")
            return path, ports

        def _start(self):
            self.log = open(self.log_path, "ab")
            self.log_start = len(self.read_log())
            procs = {}
            try:
                for node in ("a", "b"):
                    path, ports = self.node_config(node)
                    p = subprocess.Popen(
                        [str(self_bin()), "--config", str(path), "serve"],
                        stdout=self.log,
                        stderr=subprocess.STDOUT,
                    )
                    procs[node] = p
                    self.nodes[node] = ports
                    # Node A first: it makes data_dir's self-signed certificate that B reads.
                    self._wait_listening(p, ports)
            except BaseException:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                raise
            self._procs = _Procs(procs["a"], procs["b"])
            owner = lambda proto: self.nodes["a" if proto in DELIVERY else "b"]
            self.available = {p for p in self.ports if p in owner(p) and self._seen(p, owner(p)[p])}

        def _seen(self, proto, addr):
            pattern = rf"listening for {proto} on {re.escape(addr[0])}:{addr[1]}$"
            return re.search(pattern, self.read_log()[self.log_start:], re.M) is not None

        def _wait_listening(self, p, ports):
            deadline = time.time() + 30
            pending = {k: v for k, v in ports.items() if k in self.ports}
            while pending and time.time() < deadline:
                if p.poll() is not None:
                    raise AssertionError(f"server exited with {p.returncode}:\n{self.read_log()}")
                for proto in list(pending):
                    if self._seen(proto, pending[proto]):
                        del pending[proto]
                if pending:
                    time.sleep(0.05)

        def stop(self):
            procs = self._procs
            self._procs = None
            if not procs:
                return
            live = [p for p in (procs.a, procs.b) if p.poll() is None]
            for p in live:
                p.send_signal(signal.SIGTERM)
            for p in live:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

        def kill9(self):
            procs = self._procs
            self._procs = None
            for p in (procs.a, procs.b):
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                p.wait()

    return ClusterServer


def self_bin():
    from conftest import BIN

    return BIN


def free_port():
    from conftest import free_port

    return free_port()
