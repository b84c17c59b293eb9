"""Outbound delivery end to end (issue 12): submission to remote recipients, the queue,
MX routing, retries, DSNs, null MX, expiry, MTA-STS, the smarthost, limits, hold and the
queue CLI, against a DNS server and real SMTP servers on extra loopback addresses (see
net.py), and a second Letterbox as a remote MX."""

import email
import email.policy
import smtplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "smtp"))

from conftest import CLUSTER  # noqa: E402
from net import Dns, Pki, PolicyServer, Sink, address_block, free_port_on  # noqa: E402

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"


class Net:
    def __init__(self, tmp):
        self.dns = Dns()
        self.block = address_block()
        self.port = free_port_on(f"{self.block}.1")
        self.https = free_port_on(f"{self.block}.1")
        self.sinks = []
        self.others = []
        self.tmp = tmp
        self._pki = None

    def ip(self, n):
        return f"{self.block}.{n}"

    @property
    def pki(self):
        if self._pki is None:
            self._pki = Pki(self.tmp / "pki")
        return self._pki

    def sink(self, n, **kw):
        s = Sink(self.ip(n), self.port, **kw)
        self.sinks.append(s)
        return s

    def mx(self, domain, *hosts):
        """hosts: (preference, name, ip or None)."""
        for pref, name, ip in hosts:
            self.dns.add(domain, "MX", (pref, name))
            if ip:
                self.dns.host(name, ip)

    def stop(self):
        for s in self.sinks:
            s.stop()
        for o in self.others:
            o.stop()
        self.dns.stop()


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path)
    yield n
    n.stop()


def outbound_server(make_server, net, **extra):
    overrides = {
        "outbound.dns": net.dns.addr,
        "outbound.port": net.port,
        "outbound.mta_sts_port": net.https,
        "outbound.connect_timeout": 3,
        "outbound.timeout": 10,
        "queue.min_backoff": 1,
        "queue.max_backoff": 2,
        "queue.poll_interval": 1,
    }
    overrides.update(extra)
    return make_server(**overrides)


def message(subject, to="x@remote.test", extra=b""):
    return (
        f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\n".encode()
        + b"Hello.\r\n.leading dot\r\n" + extra
    )


def submit(server, rcpts, msg, sender=ALICE, mail_options=(), rcpt_options=()):
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        refused = c.sendmail(sender, rcpts, msg, mail_options=list(mail_options),
                             rcpt_options=list(rcpt_options))
        return refused


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def queue_ids(server):
    out = server.cli("queue", "list").stdout.decode()
    return [int(l.split("\t")[0]) for l in out.splitlines() if l and not l.startswith(" ")]


def inbox_dsn(server, address=ALICE, timeout=30):
    """The first message in the INBOX from the null sender, parsed."""
    def find():
        for uid in server.uids(address):
            raw = server.message(address, "INBOX", uid)
            if raw.startswith(b"Return-Path: <>\r\n"):
                return raw
        return None
    raw = wait_for(find, timeout, "a DSN in the sender's INBOX")
    return raw, email.message_from_bytes(raw, policy=email.policy.compat32)


def dsn_parts(msg):
    """RFC 3464: multipart/report; report-type=delivery-status, with text, status, original."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    # Python's email package parses the status part into header blocks: the per-message
    # block first, then one per recipient.
    blocks = parts[1].get_payload()
    return parts, blocks[0], blocks[1:]


def test_mx_order_pipelining_and_local_copy(make_server, net):
    """First MX down (nothing listens on its address), the second takes it: one
    transaction with both remote recipients, the local recipient served at once."""
    net.mx("remote.test", (10, "mx1.remote.test", net.ip(11)), (20, "mx2.remote.test", net.ip(12)))
    sink = net.sink(12)
    server = outbound_server(make_server, net)
    msg = message("mx order")
    assert submit(server, ["x@remote.test", "y@remote.test", "bob@example.com"], msg) == {}
    # Local recipient: delivered before the 250.
    assert len(server.uids("bob@example.com")) == 1
    [t] = sink.wait(1)
    assert t.sender == ALICE
    assert sorted(t.rcpts) == ["x@remote.test", "y@remote.test"]
    # Our Received line, then the message as submitted (dot-stuffing undone by the sink).
    assert t.data.startswith(b"Received: from client.example.org")
    assert t.data.endswith(msg), t.data
    assert b"by mail.example.com (Letterbox) with ESMTPA" in t.data
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    log = server.read_log()
    assert "mx1.remote.test" in log  # tried first
    assert ALICE_PW not in log


def test_temporary_failure_then_retry(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(21)))
    sink = net.sink(21)
    sink.temp_once.add("later@remote.test")
    server = outbound_server(make_server, net)
    submit(server, ["later@remote.test", "now@remote.test"], message("retry"))
    got = wait_for(lambda: [t for t in sink.received if "later@remote.test" in t.rcpts],
                   what="the retried delivery")
    assert len(got) == 1
    first = [t for t in sink.received if "now@remote.test" in t.rcpts]
    assert len(first) == 1  # the recipient that succeeded the first time is not sent again
    assert "451 4.3.0 try again later" in server.read_log()
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")


def test_550_gives_rfc3464_dsn_in_senders_inbox(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(31)))
    sink = net.sink(31)
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 <nobody@remote.test>: no such user"
    server = outbound_server(make_server, net)
    msg = message("bounce me")
    submit(server, ["nobody@remote.test", "ok@remote.test"], msg,
           mail_options=["ENVID=env-42"], rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;nobody@remote.test"])
    raw, dsn = inbox_dsn(server)
    assert dsn["From"] == '"Mail Delivery System" <MAILER-DAEMON@mail.example.com>'
    assert dsn["Auto-Submitted"] == "auto-replied"
    parts, per_msg, rcpts = dsn_parts(dsn)
    assert per_msg["Reporting-MTA"] == "dns; mail.example.com"
    assert per_msg["Original-Envelope-Id"] == "env-42"
    assert len(rcpts) == 1
    r = rcpts[0]
    assert r["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert r["Original-Recipient"] == "rfc822; nobody@remote.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert "550 5.1.1 <nobody@remote.test>: no such user" in r["Diagnostic-Code"]
    # RET not FULL: the original header only.
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: bounce me" in parts[2].get_payload()
    assert [t.rcpts for t in sink.received] == [["ok@remote.test"]]
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")


def test_null_mx_bounces_at_once_and_bounces_are_not_bounced(make_server, net):
    net.dns.add("nomail.test", "MX", (0, "."))
    server = outbound_server(make_server, net)
    submit(server, ["x@nomail.test"], message("null mx"), mail_options=["RET=FULL"])
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Status"] == "5.1.10"
    assert "null MX" in r["Diagnostic-Code"]
    # RET=FULL: the whole message comes back.
    assert parts[2].get_content_type() == "message/rfc822"
    assert b"Hello.\r\n.leading dot\r\n" in raw
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert len(server.uids(ALICE)) == 1  # one DSN, nothing more


def test_expiry_bounces_with_delay_notice_first(make_server, net):
    # The MX has an address but nothing listens there.
    net.mx("remote.test", (10, "mx.remote.test", net.ip(41)))
    server = outbound_server(make_server, net, **{"queue.max_age": 6, "queue.delay_warning": 2})
    submit(server, ["x@remote.test"], message("expire"))
    def dsns():
        out = []
        for uid in server.uids(ALICE):
            raw = server.message(ALICE, "INBOX", uid)
            if raw.startswith(b"Return-Path: <>\r\n"):
                out.append(email.message_from_bytes(raw, policy=email.policy.compat32))
        return out if len(out) >= 2 else None
    delayed, failed = wait_for(dsns, 40, "a delay notice and a failure DSN")
    _, _, [d] = dsn_parts(delayed)
    assert d["Action"] == "delayed"
    assert d["Will-Retry-Until"]
    _, _, [f] = dsn_parts(failed)
    assert f["Action"] == "failed"
    assert "expired" in f["Diagnostic-Code"]
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")


def test_mta_sts_enforce(make_server, net):
    """An enforce domain whose MX has a self-signed certificate gets nothing (the entry
    stays queued); one whose MX has a certificate from the trusted CA gets the message
    over TLS. A domain without a policy takes the self-signed one (opportunistic)."""
    pki = net.pki
    policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.{d}\r\nmax_age: 86400\r\n"
    sinks = {}
    for n, (domain, trusted, sts) in enumerate([("bad.test", False, True), ("good.test", True, True),
                                                ("plain.test", False, False)]):
        mxname = f"mx.{domain}"
        cert = pki.leaf(mxname, trusted=trusted)
        net.mx(domain, (10, mxname, net.ip(51 + n)))
        sinks[domain] = net.sink(51 + n, tls_cert=cert, hostname=mxname)
        if sts:
            net.dns.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20261206;")
            web = f"mta-sts.{domain}"
            net.dns.host(web, net.ip(61 + n))
            net.others.append(PolicyServer(net.ip(61 + n), net.https, pki.leaf(web), policy.format(d=domain)))
    server = outbound_server(make_server, net, **{"outbound.tls_ca_file": str(pki.ca_cert)})
    submit(server, ["x@bad.test"], message("sts bad"))
    submit(server, ["x@good.test"], message("sts good"))
    submit(server, ["x@plain.test"], message("no sts"))
    [good] = sinks["good.test"].wait(1)
    assert good.tls
    [plain] = sinks["plain.test"].wait(1)
    assert plain.tls
    wait_for(lambda: "validated TLS required" in server.read_log(), what="the refused handshake")
    ids = queue_ids(server)
    assert len(ids) == 1
    shown = server.cli("queue", "show", ids[0]).stdout.decode()
    assert "x@bad.test" in shown and "validated TLS required" in shown
    assert sinks["bad.test"].received == []


def test_kill9_mid_queue_run_loses_nothing(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(71)))
    sink = net.sink(71)
    # In cluster mode (tests/cluster_mode.py) the killed nodes' leases on the entries they
    # were sending must run out before a node takes them again ([queue] lease): short
    # here, where every attempt is over in well under a second.
    server = outbound_server(make_server, net, **({"queue.lease": 5} if CLUSTER else {}))
    n = 30
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        for i in range(n):
            c.sendmail(ALICE, [f"r{i}@remote.test"], message(f"crash {i}", to=f"r{i}@remote.test"))
    server.kill9()  # every 250 was given; deliveries are in flight
    server.start()
    wait_for(lambda: queue_ids(server) == [], 60, "an empty queue after restart")
    got = {t.rcpts[0] for t in sink.received}
    assert got == {f"r{i}@remote.test" for i in range(n)}  # at least once each


def test_rate_limits(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(81)))
    net.sink(81)
    server = outbound_server(make_server, net, **{"outbound.max_messages_per_hour": 2,
                                                  "outbound.max_recipients_per_message": 3})
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        c.mail(ALICE)
        for r in ("a", "b", "c"):
            assert c.rcpt(f"{r}@remote.test")[0] == 250
        code, text = c.rcpt("d@remote.test")
        assert (code, text[:5]) == (452, b"4.5.3"), text
        assert c.data(message("one"))[0] == 250
        c.sendmail(ALICE, ["e@remote.test"], message("two"))
        c.mail(ALICE)
        code, text = c.rcpt("f@remote.test")
        assert code == 451 and text.startswith(b"4.7.1 Sending limit reached: 2 messages per hour"), text
        # Local recipients are not limited.
        assert c.rcpt("bob@example.com")[0] == 250
        c.rset()
    assert server.read_log().count("outbound limit reached") == 2


def test_queue_cli_and_operator_hold(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(91)))
    server = outbound_server(make_server, net)
    submit(server, ["x@remote.test"], message("cli"))
    [qid] = wait_for(lambda: queue_ids(server) or None, what="a queue entry")
    shown = server.cli("queue", "show", qid).stdout.decode()
    assert f"id: {qid}" in shown and f"sender: <{ALICE}>" in shown and "rcpt: <x@remote.test>\tpending" in shown
    server.cli("queue", "hold", qid)
    assert "\theld\t" in server.cli("queue", "list").stdout.decode()
    for cmd in ("show", "hold", "release", "remove", "retry"):
        r = server.cli("queue", cmd, 999999, check=False)
        assert r.returncode != 0
        assert r.stderr.decode().strip().count("\n") == 0 and "999999" in r.stderr.decode(), r.stderr
    # A sink comes up; the held entry stays until released.
    sink = net.sink(91)
    server.cli("queue", "retry", "--all")
    time.sleep(3)
    assert sink.received == []
    server.cli("queue", "release", qid)
    sink.wait(1)
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    # Operator hold on the account: its remote mail waits in the queue, held.
    server.cli("user", "set", ALICE, "outbound", "hold")
    submit(server, ["y@remote.test"], message("held"))
    [qid] = queue_ids(server)
    assert "\theld\t" in server.cli("queue", "list").stdout.decode()
    server.cli("user", "set", ALICE, "outbound", "allow")
    server.cli("queue", "remove", qid)
    assert queue_ids(server) == []
    assert len(sink.received) == 1


def test_smarthost_relay_with_auth(make_server, net):
    sink = net.sink(101, auth=("relayuser", "relay-pw"))
    server = outbound_server(make_server, net, **{"outbound.relay": f"smtp://{net.ip(101)}:{net.port}",
                                                  "outbound.relay_user": "relayuser",
                                                  "outbound.relay_password": "relay-pw"})
    # No DNS record at all for the domain: the relay routes it.
    submit(server, ["someone@elsewhere.test"], message("relayed", to="someone@elsewhere.test"))
    [t] = sink.wait(1)
    assert t.rcpts == ["someone@elsewhere.test"] and t.auth == "relayuser"
    assert "relay-pw" not in server.read_log()


def test_too_big_for_remote_is_bounced_not_truncated(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(111)))
    sink = net.sink(111, size=2000)
    server = outbound_server(make_server, net)
    submit(server, ["x@remote.test"], message("big", extra=b"x" * 5000 + b"\r\n"))
    _, dsn = inbox_dsn(server)
    _, _, [r] = dsn_parts(dsn)
    assert r["Status"] == "5.3.4" and "SIZE" in r["Diagnostic-Code"]
    assert sink.received == []


def test_second_letterbox_as_remote_mx(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(121)))
    server = outbound_server(make_server, net)
    other = make_server(users={}, start=False, **{"listen.smtp": [f"{net.ip(121)}:{net.port}"]})
    other.cli("domain", "add", "remote.test")
    other.add_user("carol@remote.test", "carol-Secret3")
    other.ports["smtp"] = net.port
    other.start()
    msg = message("to letterbox", to="carol@remote.test")
    submit(server, ["carol@remote.test"], msg)
    [uid] = wait_for(lambda: other.uids("carol@remote.test") or None, what="delivery to the second Letterbox")
    got = other.message("carol@remote.test", "INBOX", uid)
    assert got.startswith(b"Return-Path: <alice@example.com>\r\n")
    assert got.endswith(msg)


def test_port_25_never_relays(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(131)))
    sink = net.sink(131)
    server = outbound_server(make_server, net)
    with smtplib.SMTP("127.0.0.1", server.require("smtp"), timeout=30) as c:
        c.ehlo("x")
        c.mail(ALICE)
        code, text = c.rcpt("x@remote.test")
        assert code == 554 and b"Relay access denied" in text
    assert queue_ids(server) == [] and sink.received == []


def test_dkim_signed_once_when_queued_and_verified_by_dkimpy(make_server, net):
    """Issue 12 with the dkim helper's crate: a submitted message leaves signed with the
    From domain's active keys (Ed25519 and RSA), and dkimpy, an independent verifier,
    accepts both signatures on the octets the remote MTA received."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "dkim"))
    from dkim_util import txt_records, verify_all
    net.mx("remote.test", (10, "mx.remote.test", net.ip(141)))
    sink = net.sink(141)
    server = outbound_server(make_server, net)
    records = txt_records(server.cli("domain", "dkim", "example.com").stdout.decode())
    submit(server, ["x@remote.test"], message("signed"))
    [t] = sink.wait(1)
    assert t.data.startswith(b"DKIM-Signature: ")
    results = verify_all(t.data, records)
    assert sorted(a for _, a, _ in results) == ["ed25519-sha256", "rsa-sha256"], results
    assert all(ok for _, _, ok in results), results
