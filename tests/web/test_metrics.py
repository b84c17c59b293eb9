"""`/metrics` (issue 14): the Prometheus text format, parsed by the official Python
client's parser; the values move with real traffic (IMAP logins, an SMTP delivery, SMTP
and IMAP quota refusals, an unknown recipient); refused (403) from an address outside
`[web] metrics_allow`."""

import imaplib
import smtplib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops_util import Http, start, web_server

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
FULL, FULL_PW = "full@example.com", "full-Secret3"


@pytest.fixture
def srv(make_server):
    s = web_server(make_server, **{"web.metrics_allow": ["127.0.0.1/32"]})
    s.add_user(FULL, FULL_PW, quota="1K")
    return start(s)


def scrape(s, host="127.0.0.1"):
    r = Http(s, host=host).request("GET", "/metrics")
    assert r.status == 200, r.body
    assert r.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    values = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def v(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0)


def scrape_nodes(s):
    """Each node's values, the one a test connects to last: in cluster mode
    (tests/cluster_mode.py) a test's traffic crosses two nodes, and each counts its own."""
    return [scrape(s, host) for host in getattr(s, "other_hosts", [])] + [scrape(s)]


def message(size):
    return ("From: dave@example.org\r\nSubject: m\r\n\r\n" + ("z" * 70 + "\r\n") * (size // 72)).encode()


def test_metrics_follow_real_traffic(srv):
    before = scrape_nodes(srv)

    imap = imaplib.IMAP4("127.0.0.1", srv.require("imap"))
    imap.login(ALICE, ALICE_PW)
    imap.logout()
    imap = imaplib.IMAP4("127.0.0.1", srv.require("imap"))
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, "wrong")
    imap.login(FULL, FULL_PW)
    typ, data = imap.append("INBOX", None, None, message(4000))
    assert (typ, data) == ("NO", [b"[OVERQUOTA] Quota exceeded"])
    imap.logout()

    with smtplib.SMTP("127.0.0.1", srv.require("smtp")) as c:
        c.ehlo("client.example.org")
        assert c.sendmail("dave@example.org", [ALICE], message(500)) == {}
        c.mail("dave@example.org", ["SIZE=4000"])
        assert c.rcpt(FULL) == (552, b"5.2.2 <full@example.com>: Mailbox full")
        assert c.rcpt("nobody@example.com") == (
            550,
            b"5.1.1 <nobody@example.com>: Recipient address rejected: no such user here",
        )
        c.rset()

    nodes = scrape_nodes(srv)
    after = nodes[-1]
    # Counters: the traffic summed over the nodes. Gauges: `after`, one node's.
    d = lambda name, **labels: sum(v(a, name, **labels) - v(b, name, **labels) for a, b in zip(nodes, before))
    assert d("letterbox_logins_total", protocol="imap", result="ok") == 2
    assert d("letterbox_logins_total", protocol="imap", result="failed") == 1
    assert d("letterbox_deliveries_total", protocol="smtp") == 1
    assert d("letterbox_quota_refusals_total", protocol="smtp") == 1
    assert d("letterbox_quota_refusals_total", protocol="imap") == 1
    assert d("letterbox_bounces_total", protocol="smtp", reason="quota") == 1
    assert d("letterbox_bounces_total", protocol="smtp", reason="no_such_user") == 1
    assert d("letterbox_connections_total", listener="imap") == 2
    assert d("letterbox_connections_total", listener="smtp") == 1
    assert d("letterbox_connections_total", listener="http") == len(nodes)  # this scrape, on each node
    # Every session but this scrape's has ended.
    assert v(after, "letterbox_connections_active", listener="imap") == 0
    assert v(after, "letterbox_connections_active", listener="http") == 1
    # Latency histograms: one observation per command, cumulative buckets.
    h = "letterbox_command_duration_seconds"
    assert d(f"{h}_count", protocol="imap", command="LOGIN") == 3
    assert d(f"{h}_count", protocol="imap", command="APPEND") == 1
    assert d(f"{h}_count", protocol="smtp", command="RCPT") == 3
    assert d(f"{h}_count", protocol="smtp", command="DATA") == 1
    assert v(after, f"{h}_bucket", protocol="smtp", command="DATA", le="+Inf") == v(
        after, f"{h}_count", protocol="smtp", command="DATA"
    )
    # Store sizes: what the store holds, read at the scrape.
    assert v(after, "letterbox_store_accounts") == 3
    sizes = [int(l.split("\t")[1]) for l in srv.cli("message", "list", ALICE).stdout.decode().splitlines()]
    assert len(sizes) == 1
    assert v(after, "letterbox_store_usage_bytes") == sum(sizes)
    assert v(after, "letterbox_store_messages") == 1
    assert v(after, "letterbox_store_blobs") == 1
    assert v(after, "letterbox_store_database_bytes") > 0
    # The outbound queue is empty (tests/outbound/test_outbound_portal_counts.py fills it).
    assert after[("letterbox_queue_messages", ())] == 0


def test_metrics_refused_outside_allowed_networks(srv):
    r = Http(srv, source="127.0.0.2").request("GET", "/metrics")
    assert r.status == 403
    assert r.body == b"metrics are not available from this address (see [web] metrics_allow)\n"
    assert "letterbox_" not in r.body.decode()
    assert "/metrics refused" in srv.read_log()
    # From the allowed address it still works.
    assert Http(srv).request("GET", "/metrics").status == 200
