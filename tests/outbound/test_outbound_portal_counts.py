"""The outbound queue as the portal's operators see it (issue 14): `/metrics` reports the
queue's length (`letterbox_queue_messages`, read at each scrape) and the recipients
that failed for good (`letterbox_bounces_total{protocol="queue"}`), and the domains page
(`GET /api/admin/domains`) counts them in the sender's domain's "bounced" column."""

import http.client
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import free_ports  # noqa: E402
from test_outbound import ALICE, inbox_dsn, message, net, outbound_server, queue_ids, submit, wait_for  # noqa: E402,F401


def get(port, path, token=None, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, (path, r.status, body)
    return body.decode()


def metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name + labels)} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def today_bounced(port, token):
    day = int(time.time()) // 86400
    [d] = [d for d in json.loads(get(port, "/api/admin/domains", token)) if d["name"] == "example.com"]
    return sum(c["bounced"] for c in d["counts"] if c["day"] == day)


def test_queue_length_and_remote_bounces_reach_metrics_and_domains(make_server, net):
    (http_port,) = free_ports(1)
    net.mx("remote.test", (10, "mx.remote.test", net.ip(41)))
    sink = net.sink(41)
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 <nobody@remote.test>: no such user"
    server = outbound_server(make_server, net, **{"listen.http": [f"127.0.0.1:{http_port}"]})
    token = server.cli("admin", "token", "add", "test").stdout.decode().strip()
    text = get(http_port, "/metrics")
    assert metric(text, "letterbox_queue_messages") == 0, text
    assert today_bounced(http_port, token) == 0

    # Held by the operator: the entry stays in the queue.
    server.cli("user", "set", ALICE, "outbound", "hold")
    submit(server, ["y@remote.test"], message("held"))
    [qid] = queue_ids(server)
    assert metric(get(http_port, "/metrics"), "letterbox_queue_messages") == 1
    server.cli("queue", "remove", qid)
    server.cli("user", "set", ALICE, "outbound", "allow")
    assert metric(get(http_port, "/metrics"), "letterbox_queue_messages") == 0

    # Two recipients refused with 550 by the remote MX, one accepted.
    sink.rcpt_replies["other@remote.test"] = "550 5.1.1 <other@remote.test>: no such user"
    submit(server, ["nobody@remote.test", "other@remote.test", "ok@remote.test"], message("bounce me"))
    inbox_dsn(server)
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    text = get(http_port, "/metrics")
    # Counters are per node: in cluster mode (tests/cluster_mode.py) either node may have
    # sent the entry, so the bounces are summed over the nodes.
    texts = [text] + [get(http_port, "/metrics", host=h) for h in getattr(server, "other_hosts", [])]
    bounces = [metric(t, "letterbox_bounces_total", '{protocol="queue",reason="remote"}') or 0 for t in texts]
    assert sum(bounces) == 2, texts
    assert metric(text, "letterbox_queue_messages") == 0
    assert today_bounced(http_port, token) == 2
