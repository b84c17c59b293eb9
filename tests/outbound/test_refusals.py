"""Messages the remote server cannot take (RFC 5321 with RFC 6152 8BITMIME, RFC 6531
SMTPUTF8, RFC 1870 SIZE) are bounced with a clear reason and never mangled: nothing is
sent (no 7-bit conversion, no truncation, no downgraded address), the DSN names the
missing extension, and with RET=FULL the returned message is the original, octet for
octet. The same message to a server that offers the extension is sent unchanged."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_outbound import (ALICE, ALICE_PW, dsn_parts, inbox_dsn, net,  # noqa: E402,F401
                           outbound_server, queue_ids, wait_for)

import smtplib  # noqa: E402


def eight_bit_message(to):
    return (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: 8bit\r\n"
            "Message-ID: <eightbit@example.com>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Grüße aus Köln, ça va? 日本語\r\n").encode()


def send(server, sender, rcpts, msg, mail_options):
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        code, _ = c.mail(sender, list(mail_options))
        assert code == 250
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(msg)
        assert code == 250, text


def returned_message(parts):
    """The third part of a RET=FULL DSN: message/rfc822, as the octets it carries."""
    assert parts[2].get_content_type() == "message/rfc822"
    [inner] = parts[2].get_payload()
    return inner.as_bytes()


def test_8bit_body_to_server_without_8bitmime_is_bounced_unchanged(make_server, net):
    net.mx("old.test", (10, "mx.old.test", net.ip(11)))
    old = net.sink(11, eight_bit=False)
    net.mx("new.test", (10, "mx.new.test", net.ip(12)))
    new = net.sink(12)
    server = outbound_server(make_server, net)
    msg = eight_bit_message("x@old.test")
    send(server, ALICE, ["x@old.test"], msg, ["BODY=8BITMIME", "RET=FULL"])
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Action"] == "failed" and r["Status"] == "5.6.3"
    assert "8BITMIME" in r["Diagnostic-Code"] and "not converted" in r["Diagnostic-Code"]
    assert "8BITMIME" in parts[0].get_payload(decode=True).decode()
    assert old.received == []
    # The returned message is the original, 8-bit octets included (after DKIM's field,
    # if any, which only prepends).
    assert raw.find(msg) > 0
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    # The same message to a server with 8BITMIME goes as it is, declared 8-bit.
    msg2 = eight_bit_message("y@new.test")
    send(server, ALICE, ["y@new.test"], msg2, ["BODY=8BITMIME"])
    [t] = new.wait(1)
    assert "BODY=8BITMIME" in t.mail_options
    assert t.data.endswith(msg2)


def test_utf8_address_to_server_without_smtputf8_is_bounced(make_server, net):
    net.mx("ascii.test", (10, "mx.ascii.test", net.ip(21)))
    ascii_only = net.sink(21, smtputf8=False)
    net.mx("intl.test", (10, "mx.intl.test", net.ip(22)))
    intl = net.sink(22, smtputf8=True)
    server = outbound_server(make_server, net)
    rcpt = "jösé@ascii.test"
    msg = (f"From: Alice <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: utf8\r\n"
           "Message-ID: <utf8@example.com>\r\n\r\nHej.\r\n").encode()
    send(server, ALICE, [rcpt], msg, ["SMTPUTF8", "BODY=8BITMIME"])
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Action"] == "failed" and r["Status"] == "5.6.7"
    assert "SMTPUTF8" in r["Diagnostic-Code"]
    assert ascii_only.received == []
    # Nothing was downgraded and sent anyway; an SMTPUTF8 server gets the address as is.
    rcpt2 = "jösé@intl.test"
    send(server, ALICE, [rcpt2], msg, ["SMTPUTF8", "BODY=8BITMIME"])
    [t] = intl.wait(1)
    assert t.rcpts == [rcpt2] and "SMTPUTF8" in t.mail_options
    assert ascii_only.received == []


def test_over_remote_size_is_bounced_whole_message_returned(make_server, net):
    net.mx("small.test", (10, "mx.small.test", net.ip(31)))
    small = net.sink(31, size=3000)
    server = outbound_server(make_server, net)
    msg = (f"From: Alice <{ALICE}>\r\nTo: <x@small.test>\r\nSubject: big\r\n"
           "Message-ID: <big@example.com>\r\n\r\n").encode() + b"0123456789" * 500 + b"\r\n"
    send(server, ALICE, ["x@small.test"], msg, ["RET=FULL", f"SIZE={len(msg)}"])
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Status"] == "5.3.4"
    assert "SIZE" in r["Diagnostic-Code"] and "3000" in r["Diagnostic-Code"]
    assert small.received == []
    # The DSN gives the whole original back (RET=FULL), not a truncated copy.
    assert raw.find(msg) > 0
