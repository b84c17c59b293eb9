"""The outbound queue shared by two nodes on PostgreSQL (issue 17): messages submitted
on either node go out once each, whichever node's scheduler takes them.

Both nodes run `serve` on one database (and one blob directory) with the outbound queue
pointed at a DNS server and an SMTP sink on loopback (tests/outbound/net.py). Every
recipient is refused with a 4xx the first time, so that every message is retried a
second later, when both schedulers (polling every second) race for it: the queue's
`FOR UPDATE SKIP LOCKED` and lease (crates/store/src/pg/queue.rs) must let exactly one
of them deliver it. The sink then holds exactly one transaction per message, with the
octets submitted, and both nodes see an empty queue.
"""

import smtplib
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "outbound"))

from conftest import Server  # noqa: E402
from net import Dns, Sink, address_block, free_port_on  # noqa: E402
from pg_cluster import PgCluster, available  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed")

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
MESSAGES = 12


@pytest.fixture
def pg(tmp_path):
    with PgCluster(tmp_path / "pg") as c:
        yield c


def submit(server, rcpt, msg):
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        assert c.sendmail(ALICE, [rcpt], msg) == {}


def queue_ids(server):
    out = server.cli("queue", "list").stdout.decode()
    return [int(l.split("\t")[0]) for l in out.splitlines() if l and not l.startswith(" ")]


def test_two_nodes_deliver_each_queued_message_once(make_server, pg, tmp_path):
    dns = Dns()
    block = address_block()
    port = free_port_on(f"{block}.1")
    dns.add("remote.test", "MX", (10, "mx.remote.test"))
    dns.host("mx.remote.test", f"{block}.11")
    sink = Sink(f"{block}.11", port)
    overrides = {
        "store.backend": "postgres",
        "store.url": pg.url,
        "store.pool_size": 4,
        "outbound.dns": dns.addr,
        "outbound.port": port,
        "outbound.connect_timeout": 3,
        "outbound.timeout": 10,
        "queue.min_backoff": 1,
        "queue.max_backoff": 1,
        "queue.poll_interval": 1,
    }
    a = make_server(**overrides)
    b = Server(tmp_path / "b", {**overrides, "data_dir": str(a.data_dir)})
    b.start()
    try:
        rcpts = [f"r{i}@remote.test" for i in range(MESSAGES)]
        sink.temp_once.update(rcpts)
        sent = {}
        for i, rcpt in enumerate(rcpts):
            msg = (
                f"From: <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: shared queue {i}\r\n"
                f"Message-ID: <q{i}@example.com>\r\n\r\nmessage {i}\r\n"
            ).encode()
            submit(a if i % 2 == 0 else b, rcpt, msg)
            sent[rcpt] = msg
        got = sink.wait(MESSAGES, timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and (queue_ids(a) or queue_ids(b)):
            time.sleep(0.5)
        assert queue_ids(a) == [] and queue_ids(b) == [], "both nodes see an empty queue"
        time.sleep(3)  # three more polls of each node: a duplicate would show now
        got = list(sink.received)
        by_rcpt = {}
        for t in got:
            assert len(t.rcpts) == 1, t.rcpts
            by_rcpt.setdefault(t.rcpts[0], []).append(t)
        assert sorted(by_rcpt) == sorted(rcpts)
        dups = {r: len(ts) for r, ts in by_rcpt.items() if len(ts) != 1}
        assert dups == {}, f"delivered more than once: {dups}"
        for rcpt, [t] in by_rcpt.items():
            assert t.sender == ALICE
            assert t.data.endswith(sent[rcpt]), t.data
        assert sink.seen_temp == set(rcpts), "every message was retried once"
    finally:
        b.stop()
        sink.stop()
        dns.stop()
