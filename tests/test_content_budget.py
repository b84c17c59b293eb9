"""[limits] max_buffered_content: message content held in memory by all SMTP sessions
together is bounded; past it a message is refused for now (452 4.3.1), never lost."""

import smtplib
import socket

import pytest


def recv_reply(f):
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def test_budget_refuses_temporarily_and_recovers(make_server):
    s = make_server(**{"limits.max_buffered_content": "256K"})
    port = s.require("smtp")
    body = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n"
    big = body * 2000  # about 156 KiB

    # Session A holds 156 KiB of unfinished DATA.
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    fa = a.makefile("rb")
    assert recv_reply(fa).startswith(b"220")
    a.sendall(b"EHLO a.example\r\nMAIL FROM:<x@elsewhere.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    for _ in range(3):
        recv_reply(fa)
    assert recv_reply(fa).startswith(b"354")
    a.sendall(big)

    # Session B's message does not fit beside it: a temporary refusal, the session lives.
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as b:
        with pytest.raises(smtplib.SMTPDataError) as e:
            b.sendmail("x@elsewhere.org", ["bob@example.com"], big)
        assert e.value.smtp_code == 452 and b"4.3.1" in e.value.smtp_error
        assert b.noop()[0] == 250
        # A finishes: its message is stored; its room goes back to the budget.
        a.sendall(b".\r\n")
        assert recv_reply(fa).startswith(b"250")
        b.sendmail("x@elsewhere.org", ["bob@example.com"], big)
    a.close()
    assert s.uids("alice@example.com") == [1]
    assert s.uids("bob@example.com") == [1]
    assert "limits.max_buffered_content reached" in s.read_log()
    assert s.cli("check").stdout == b"ok\n"
