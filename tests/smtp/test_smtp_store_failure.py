"""A storage failure for one recipient after the data (here an honest outside fault: the
account is removed by `letterbox user remove --force` between RCPT and the end of the
data, so the store has no account to put the copy in). SMTP has one reply for all:
another recipient has the message, so 250 and the sender gets a DSN for the failed
one (RFC 5321 6.1, RFC 3464); no recipient has it: 451, to try again. LMTP (RFC 2033
4.2): the failed recipient gets its own 451."""

from smtp_util import Raw, bodies, inbox

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def open_tx(server, proto, rcpts):
    r = Raw(server.require(proto))
    r.cmd("LHLO x" if proto == "lmtp" else "EHLO x")
    assert r.cmd(f"MAIL FROM:<{CAROL}>").startswith("250")
    for rcpt in rcpts:
        assert r.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Recipient OK"
    assert r.cmd("DATA").startswith("354")
    return r


def test_one_recipient_store_failure(make_server):
    server = make_server(start=False)
    server.add_user(CAROL, "pw-carol-1")
    for u in ("dave@example.com", "erin@example.com", "frank@example.com"):
        server.add_user(u, "pw-" + u)
    server.start()
    # SMTP, one of two recipients gone: 250, and carol is told of bob's copy.
    r = open_tx(server, "smtp", [ALICE, BOB])
    server.cli("user", "remove", BOB, "--force")
    assert r.cmd("Subject: two\r\n\r\nhello\r\n.").startswith("250 2.0.0 Message accepted for delivery")
    r.close()
    assert len(bodies(server, ALICE)) == 1
    dsns = inbox(server, CAROL)
    assert len(dsns) == 1, dsns
    dsn = dsns[0]
    assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:200]
    assert b"\r\nFinal-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.3.0\r\n" in dsn, dsn
    assert b"\r\nDiagnostic-Code: smtp; 550 5.3.0 <bob@example.com>: The message could not be stored\r\n" in dsn, dsn
    assert b"\r\nSubject: two\r\n" in dsn
    assert "NOT delivered to <bob@example.com>: storage failure; a DSN was sent to the sender" in server.read_log()
    # SMTP, the only recipient gone: nothing stored anywhere, 451.
    r = open_tx(server, "smtp", ["dave@example.com"])
    server.cli("user", "remove", "dave@example.com", "--force")
    assert r.cmd("Subject: one\r\n\r\nhello\r\n.") == "451 4.3.0 Temporary failure, try again later"
    r.close()
    # LMTP: one reply per recipient, the failed one its own.
    r = open_tx(server, "lmtp", ["erin@example.com", "frank@example.com"])
    server.cli("user", "remove", "frank@example.com", "--force")
    r.send(b"Subject: lmtp\r\n\r\nhello\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0 <erin@example.com> Delivered")
    assert r.reply() == "451 4.3.0 <frank@example.com> Temporary failure, try again later"
    r.close()
    assert len(bodies(server, "erin@example.com")) == 1
    # Only the SMTP transaction that was answered 250 made a DSN.
    assert len(inbox(server, CAROL)) == 1
    assert server.proc.poll() is None
    assert server.cli("check").stdout == b"ok\n"
