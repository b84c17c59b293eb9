"""Sieve `redirect` to another domain (issue 13, RFC 5228 4.2): through the outbound queue
to a real SMTP server (aiosmtpd on an extra loopback address, MX from a test DNS server:
tests/outbound/net.py), from the original envelope sender (null stays null), with our
Received field and X-Sieve-Redirected-From above the unchanged message; and the loop
control: a message that comes back is kept, not sent again; one message goes to one
address once; too many Received fields and `sieve_max_redirects` stop it. Also from
`letterbox deliver`."""

import imaplib
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "outbound"))
sys.path.insert(0, str(HERE.parent / "smtp"))

from net import Dns, Sink, address_block, free_port_on  # noqa: E402
from smtp_util import smtp  # noqa: E402

ALICE = "alice@example.com"
CAROL = "carol@remote.example"


class Net:
    def __init__(self):
        self.dns = Dns()
        block = address_block()
        self.ip = f"{block}.25"
        self.port = free_port_on(self.ip)
        self.dns.add("remote.test", "MX", (10, "mx.remote.test"))
        self.dns.host("mx.remote.test", self.ip)
        self.sink = Sink(self.ip, self.port)

    def stop(self):
        self.sink.stop()
        self.dns.stop()


@pytest.fixture
def net():
    n = Net()
    yield n
    n.stop()


def redirecting_server(make_server, net, **extra):
    overrides = {
        "outbound.dns": net.dns.addr,
        "outbound.port": net.port,
        "outbound.connect_timeout": 3,
        "outbound.timeout": 10,
        "queue.min_backoff": 1,
        "queue.max_backoff": 2,
        "queue.poll_interval": 1,
    }
    overrides.update(extra)
    return make_server(**overrides)


def put(server, script, address=ALICE):
    server.cli("sieve", "put", address, "main", "--activate", input=script.encode())


def msg(subject, extra="", msgid=None):
    msgid = msgid or f"<{subject.replace(' ', '-')}@remote.example>"
    return (
        f"From: Carol <{CAROL}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: {msgid}\r\n{extra}\r\nHello.\r\n.leading dot\r\n"
    ).encode()


def send(server, message, sender=CAROL):
    with smtp(server) as s:
        s.sendmail(sender, [ALICE], message)


def queue_empty(server, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = server.cli("queue", "list").stdout.decode()
        if not [l for l in out.splitlines() if l and not l.startswith(" ")]:
            return
        time.sleep(0.2)
    raise AssertionError(f"queue not empty: {out}")


def test_redirect_to_another_domain_goes_out_through_the_queue_once(make_server, net):
    server = redirecting_server(make_server, net)
    put(server, 'redirect "fwd@remote.test";\n')
    m = msg("forward me")
    send(server, m)
    [t] = net.sink.wait(1)
    # The original envelope sender (RFC 5228 4.2 lets us copy it), the redirect address.
    assert t.sender == CAROL
    assert t.rcpts == ["fwd@remote.test"]
    # Our headers above the message, which is unchanged (dot-stuffing undone by the sink).
    assert t.data.startswith(
        b"X-Sieve-Redirected-From: <alice@example.com>\r\nReceived: from "
    ), t.data[:300]
    assert b"\tby mail.example.com (Letterbox) with ESMTP id " in t.data
    assert t.data.endswith(m), t.data
    # redirect cancels the implicit keep: nothing stored for Alice.
    assert server.uids(ALICE) == []
    queue_empty(server)
    # The same message again (a client's retry, a second copy): not sent twice.
    send(server, m)
    time.sleep(3)  # two queue polls: a second entry would have been delivered by now
    assert len(net.sink.received) == 1
    assert "sieve: this message was redirected there before; not sent again" in server.read_log()
    # Another message goes out.
    send(server, msg("another one"))
    net.sink.wait(2)
    assert server.uids(ALICE) == []


def test_redirect_keeps_the_null_sender(make_server, net):
    """RFC 5228 4.2: a message with an empty envelope sender is redirected with an empty
    one (a bounce of the copy cannot come back to start the redirect again)."""
    server = redirecting_server(make_server, net)
    put(server, 'redirect "fwd@remote.test";\n')
    send(server, msg("a bounce"), sender="")
    [t] = net.sink.wait(1)
    assert t.sender == "<>"  # aiosmtpd records MAIL FROM:<> so
    assert t.rcpts == ["fwd@remote.test"]


def test_a_message_that_comes_back_is_kept_not_sent_again(make_server, net):
    server = redirecting_server(make_server, net)
    put(server, 'redirect "fwd@remote.test";\n')
    # The message already went through Alice's redirect once (the loop came back).
    looped = msg("loop", extra="X-Sieve-Redirected-From: <alice@example.com>\r\n")
    send(server, looped)
    assert len(server.uids(ALICE)) == 1
    stored = server.message(ALICE, "INBOX", server.uids(ALICE)[0])
    assert stored.endswith(looped)
    log = server.read_log()
    assert "sieve: not redirected (a loop: the message carries X-Sieve-Redirected-From for this account); kept in INBOX instead" in log
    # Someone else's redirect header is no loop for Alice.
    send(server, msg("via bob", extra="X-Sieve-Redirected-From: <bob@elsewhere.test>\r\n"))
    [t] = net.sink.wait(1)
    assert b"Subject: via bob" in t.data
    queue_empty(server)
    assert len(net.sink.received) == 1


def test_hop_count_and_redirect_limits(make_server, net):
    server = redirecting_server(
        make_server, net, **{"filter.sieve_redirect_max_hops": 5, "filter.sieve_max_redirects": 2}
    )
    put(server, 'redirect "a@remote.test";\nredirect "b@remote.test";\nredirect "c@remote.test";\n')
    # Five Received fields: the hop count says loop; the message is kept, nothing sent.
    hops = "".join(f"Received: from hop{i}.example by hop{i+1}.example; Mon, 1 Jan 2024 10:00:0{i} +0000\r\n" for i in range(5))
    send(server, hops.encode() + msg("many hops"))
    assert len(server.uids(ALICE)) == 1
    # Four: redirected, to the first two addresses only (sieve_max_redirects = 2).
    hops4 = "".join(hops.splitlines(keepends=True)[:4])
    send(server, hops4.encode() + msg("few hops"))
    got = net.sink.wait(2)
    queue_empty(server)
    time.sleep(2)
    got = list(net.sink.received)
    assert sorted(r for t in got for r in t.rcpts) == ["a@remote.test", "b@remote.test"]
    assert all(b"Subject: few hops" in t.data for t in got)
    assert len(server.uids(ALICE)) == 1


def test_letterbox_deliver_runs_the_script_and_redirects(make_server, net):
    """The local delivery agent (`letterbox deliver`, like dovecot-lda) runs the same
    script: a redirect to another domain through the queue, a fileinto with flags."""
    server = redirecting_server(make_server, net)
    put(server, r'''require ["fileinto", "imap4flags", "mailbox", "copy"];
if header :contains "Subject" "forward" { redirect "fwd@remote.test"; stop; }
if header :contains "Subject" "invoice" { fileinto :create :flags "\\Flagged" "Invoices"; stop; }
''')
    r = server.cli("deliver", "--from", CAROL, ALICE, input=msg("please forward"))
    assert r.stdout == b"no copy stored (Sieve discarded or redirected it)\n"
    [t] = net.sink.wait(1)
    assert t.sender == CAROL and t.rcpts == ["fwd@remote.test"]
    assert t.data.startswith(b"X-Sieve-Redirected-From: <alice@example.com>\r\nReceived: from localhost ([127.0.0.1])\r\n"), t.data[:200]
    assert b"with local id " in t.data
    assert t.data.endswith(msg("please forward"))
    r = server.cli("deliver", "--from", CAROL, ALICE, input=msg("invoice 42"))
    assert r.stdout == b"delivered uid 1\n"
    assert server.uids(ALICE) == []
    assert server.uids(ALICE, "Invoices") == [1]
    stored = server.message(ALICE, "Invoices", 1)
    assert stored == b"Return-Path: <carol@remote.example>\r\nDelivered-To: alice@example.com\r\n" + msg("invoice 42")
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    try:
        m.login(ALICE, "alice-Secret1")
        m.select("Invoices", readonly=True)
        typ, data = m.fetch("1", "(FLAGS)")
        assert typ == "OK" and b"\\Flagged" in data[0], data
    finally:
        m.logout()


def test_vacation_reply_to_another_domain_reaches_its_mx_once(make_server, net):
    """RFC 5230: the reply leaves through the outbound queue from the null sender, to the
    envelope sender, once for two messages (the queue delivers it like submitted mail)."""
    server = redirecting_server(make_server, net)
    put(server, 'require ["vacation"];\nvacation :days 3 :subject "Away" "Back on Monday.";\n')
    for i in range(2):
        m = (
            f"From: Dan <dan@remote.test>\r\nTo: {ALICE}\r\nSubject: hello {i}\r\n"
            f"Message-ID: <hello{i}@remote.test>\r\n\r\nHi.\r\n"
        ).encode()
        send(server, m, sender="dan@remote.test")
    [t] = net.sink.wait(1)
    assert t.sender == "<>"
    assert t.rcpts == ["dan@remote.test"]
    assert b"\r\nSubject: Away\r\n" in t.data
    assert b"In-Reply-To: <hello0@remote.test>" in t.data
    queue_empty(server)
    time.sleep(2)
    assert len(net.sink.received) == 1
    assert len(server.uids(ALICE)) == 2
