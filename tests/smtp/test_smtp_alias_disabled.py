"""An alias whose accounts are partly disabled (by an operator, through the portal): the
active accounts take the message and the sender gets a DSN (RFC 3464, Status 5.2.1) for
the disabled ones, in SMTP and LMTP; an alias whose every account is disabled is still
refused at RCPT with 450."""

import http.client
import json

from conftest import free_ports
from smtp_util import Raw, bodies, inbox, lmtp, lmtp_send

ALICE, BOB, CAROL, OP = "alice@example.com", "bob@example.com", "carol@example.com", "op@example.com"


def disable(server, address):
    """The operator disables `address` through the portal's API."""

    def call(path, body, headers):
        c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers})
        r = c.getresponse()
        data, cookie = r.read(), r.getheader("Set-Cookie")
        c.close()
        assert r.status == 200, data
        return json.loads(data), cookie

    me, cookie = call("/api/login", {"address": OP, "password": "op-secret-1"}, {})
    row, _ = call("/api/admin/accounts/disable", {"address": address}, {"Cookie": cookie.split(";")[0], "X-CSRF-Token": me["csrf"]})
    assert row["disabled"] is True


def send(server, rcpt, subject, sender):
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    assert r.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    reply = r.cmd(f"RCPT TO:<{rcpt}>")
    if reply.startswith("250"):
        assert r.cmd("DATA").startswith("354")
        reply = r.cmd(f"Subject: {subject}\r\n\r\nhello\r\n.")
    r.cmd("QUIT")
    r.close()
    return reply


def test_alias_member_disabled_gets_the_sender_a_dsn(make_server):
    (http_port,) = free_ports(1)
    server = make_server(start=False, **{"listen.http": [f"127.0.0.1:{http_port}"]})
    server.http_port = http_port
    server.add_user(CAROL, "pw-carol-1")
    server.add_user(OP, "op-secret-1")
    server.cli("admin", "add", OP)
    server.cli("alias", "add", "staff@example.com", ALICE, BOB)
    server.cli("alias", "add", "solo@example.com", ALICE)
    server.start()
    disable(server, ALICE)
    # Every account behind the address disabled: refused at RCPT, as for the account.
    assert send(server, "solo@example.com", "solo", CAROL) == "450 4.2.1 <solo@example.com>: Mailbox disabled, try again later"
    # Bob takes it; alice's copy was silently dropped. Now carol is told.
    assert send(server, "staff@example.com", "to staff", CAROL).startswith("250 2.0.0 Message accepted for delivery")
    with lmtp(server) as c:
        c.ehlo("mx")
        res = lmtp_send(c, CAROL, ["staff@example.com"], b"Subject: staff by lmtp\r\n\r\nhello\r\n")
        assert res["staff@example.com"][0] == 250, res
    assert [b.split(b"\r\n\r\n")[0].split(b"\r\n")[-1] for b in bodies(server, BOB)] == [b"Subject: to staff", b"Subject: staff by lmtp"]
    assert bodies(server, ALICE) == []
    dsns = inbox(server, CAROL)
    assert len(dsns) == 2, dsns
    for dsn, subject in zip(dsns, [b"to staff", b"staff by lmtp"]):
        assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:100]
        assert (
            b"\r\nOriginal-Recipient: rfc822; staff@example.com\r\nFinal-Recipient: rfc822; alice@example.com\r\n"
            b"Action: failed\r\nStatus: 5.2.1\r\n" in dsn
        ), dsn
        assert b"\r\nDiagnostic-Code: smtp; 550 5.2.1 <alice@example.com>: Mailbox disabled\r\n" in dsn, dsn
        assert b"\r\nSubject: " + subject + b"\r\n" in dsn
        assert b"Final-Recipient: rfc822; bob@example.com" not in dsn
    log = server.read_log()
    assert log.count("NOT delivered to <alice@example.com> (via <staff@example.com>): mailbox disabled; a DSN was sent to the sender") == 2, log[-3000:]
    # The null sender: delivered to bob, nothing sent back, still logged.
    assert send(server, "staff@example.com", "bounce", "").startswith("250 2.0.0")
    assert len(bodies(server, BOB)) == 3 and len(inbox(server, CAROL)) == 2
    assert "NOT delivered to <alice@example.com> (via <staff@example.com>): mailbox disabled; no DSN to the null sender" in server.read_log()
    assert server.cli("check").stdout == b"ok\n"
