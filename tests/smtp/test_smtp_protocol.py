"""SMTP and LMTP listeners, end to end against the real binary: the dialogue, every reply
code of issue 3, the trace headers, byte-exact bodies, BDAT, pipelining, swaks."""

import socket
import subprocess
import time

import pytest

from smtp_util import Raw, bodies, blob_files, inbox, inline_blobs, lmtp, lmtp_send, smtp, split_trace, usage


def test_ehlo_advertises_the_extensions(make_server):
    s = make_server(**{"smtp.max_message_size": "1M"})
    with smtp(s) as c:
        code, msg = c.ehlo("client.example.org")
        assert code == 250
        lines = msg.decode().splitlines()
        assert lines[0].startswith("mail.example.com")
        for ext in ["PIPELINING", "SIZE 1048576", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"]:
            assert ext in lines, (ext, lines)
        assert "STARTTLS" in lines  # the server always has TLS (self-signed here)
        assert not any(l.startswith("AUTH") for l in lines)  # port 25 is the inbound MTA
    r = Raw(s.require("lmtp"))
    assert r.greeting.startswith("220 mail.example.com LMTP")
    assert r.cmd("EHLO x").startswith("500 5.5.1")
    lhlo = r.cmd("LHLO x")
    assert "250-PIPELINING" in lhlo and "250-ENHANCEDSTATUSCODES" in lhlo, lhlo
    r.close()


def test_smtp_delivery_headers_and_byte_exact_body(server):
    body = (
        b"From: Bob <bob@example.org>\r\n"
        b"To: alice@example.com\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b".\r\n"  # a line with a single dot, stuffed on the wire
        b"trailing space   \r\n"
        b"8bit: caf\xc3\xa9 \xe2\x82\xac\r\n"
        b"tab\tand\x0cform feed\r\n"
        + b"long " * 300 + b"\r\n"  # 1500 octets: over RFC 5321's 1000, kept as is
        b"\r\n"
        b"last line\r\n"
    )
    with smtp(server) as c:
        c.ehlo("client.example.org")
        refused = c.sendmail("bob@example.org", ["alice@example.com"], body, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    [stored] = inbox(server, "alice@example.com")
    trace, got = split_trace(stored)
    assert got == body
    assert trace["sender"] == b"bob@example.org"
    assert trace["rcpt"] == b"alice@example.com"
    assert trace["for"] == b"alice@example.com"
    assert trace["helo"] == b"client.example.org"
    assert trace["ip"] == b"[127.0.0.1]"
    assert trace["host"] == b"mail.example.com"
    assert trace["proto"] == b"ESMTP"
    assert trace["date"].endswith(b"+0000")
    # The server log names the transaction id the Received header carries.
    assert trace["id"].decode() in server.read_log()


def test_bare_lf_is_normalised_to_crlf(server):
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    r.cmd("MAIL FROM:<>")
    r.cmd("RCPT TO:<alice@example.com>")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: lf\n\nline one\nline two\r\nbare cr\rstays\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0")
    assert r.cmd("QUIT").startswith("221 2.0.0")
    r.close()
    assert bodies(server, "alice@example.com") == [b"Subject: lf\r\n\r\nline one\r\nline two\r\nbare cr\rstays\r\n"]
    trace, _ = split_trace(inbox(server, "alice@example.com")[0])
    assert trace["sender"] == b""


def test_reply_codes(make_server):
    s = make_server(**{"smtp.max_recipients": 3, "smtp.max_message_size": 2000})
    s.cli("user", "add", "carol@example.com", "--password-stdin", input="pw-carol\n")
    r = Raw(s.require("smtp"))
    assert r.greeting.startswith("220 mail.example.com ESMTP")
    # Out of sequence.
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("503 5.5.1")
    assert r.cmd("EHLO client").startswith("250-mail.example.com")
    assert r.cmd("RCPT TO:<alice@example.com>").startswith("503 5.5.1")
    assert r.cmd("DATA").startswith("503 5.5.1")
    r.send(b"BDAT 3 LAST\r\nabc")
    assert r.reply().startswith("503 5.5.1")
    # Malformed paths.
    assert r.cmd("MAIL FROM:<a@@example.org>").startswith("501 5.1.7")
    assert r.cmd("MAIL FROM:a@example.org").startswith("501 5.1.7")
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=5000").startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<a@example.org> FOO=BAR").startswith("555 5.5.4")
    assert r.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 Sender OK"
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("503 5.5.1")
    assert r.cmd("RCPT TO:<alice@@example.com>").startswith("501 5.1.3")
    assert r.cmd("RCPT TO:<alice@example..com>").startswith("501 5.1.3")
    assert r.cmd("RCPT TO:<not an address>").startswith("501 5.1.3")
    assert r.cmd("RCPT TO:alice@example.com").startswith("501 5.1.3")
    # Not local: never a relay. Unknown local user.
    assert r.cmd("RCPT TO:<someone@elsewhere.org>") == "554 5.7.1 <someone@elsewhere.org>: Relay access denied"
    assert r.cmd("RCPT TO:<nobody@example.com>").startswith("550 5.1.1 <nobody@example.com>")
    # Too many recipients.
    for who in ["alice", "bob", "carol"]:
        assert r.cmd(f"RCPT TO:<{who}@example.com>") == "250 2.1.5 Recipient OK"
    assert r.cmd("RCPT TO:<alice+x@example.com>") == "452 4.5.3 Too many recipients"
    # Over the size limit, found while reading the data.
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: big\r\n\r\n" + (b"x" * 100 + b"\r\n") * 30 + b".\r\n")
    assert r.reply().startswith("552 5.3.4")
    # Other commands.
    assert r.cmd("VRFY alice").startswith("252 2.5.0")
    assert r.cmd("EXPN staff").startswith("502 5.5.1")
    assert r.cmd("HELP").startswith("214 2.0.0")
    assert r.cmd("NOOP") == "250 2.0.0 OK"
    assert r.cmd("RSET") == "250 2.0.0 OK"
    # Port 25 is the inbound MTA: no AUTH (STARTTLS is tested in test_smtp_tls.py).
    assert r.cmd("AUTH PLAIN AGFsaWNlAHB3").startswith("502 5.5.1")
    assert r.cmd("FROB").startswith("500 5.5.1")
    assert r.cmd("NOOP " + "x" * 70000).startswith("500 5.5.2")
    assert r.cmd("QUIT").startswith("221 2.0.0")
    assert r.reply() == "<EOF>"
    r.close()
    for who in ["alice", "bob", "carol"]:
        assert inbox(s, f"{who}@example.com") == []
    assert s.cli("check").returncode == 0


def test_bad_command_limit_and_pipelined_garbage(make_server):
    s = make_server(**{"limits.max_bad_commands": 5})
    r = Raw(s.require("smtp"))
    r.send(b"".join(b"GARBAGE %d\r\n" % i for i in range(50)))
    replies = [r.reply() for _ in range(6)]
    assert replies[:5] == ["500 5.5.1 Command unrecognized"] * 5
    assert replies[5].startswith("421 4.7.0")
    assert r.reply() == "<EOF>"
    r.close()
    # An HTTP request is not worth a conversation.
    r = Raw(s.require("smtp"))
    r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.reply().startswith("421 4.7.0")
    r.close()
    # The server is still fine for everyone else.
    with smtp(s) as c:
        assert c.sendmail("x@example.org", ["alice@example.com"], b"Subject: ok\r\n\r\nok\r\n") == {}


def test_helo_and_postmaster(server):
    server.cli("alias", "add", "postmaster@example.com", "alice@example.com")
    r = Raw(server.require("smtp"))
    assert r.cmd("HELO old.client").startswith("250 mail.example.com")
    assert r.cmd("MAIL FROM:<x@example.org> BODY=8BITMIME").startswith("555 5.5.4")  # no ESMTP after HELO
    assert r.cmd("MAIL FROM:<x@example.org>") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<Postmaster>") == "250 2.1.5 Recipient OK"  # RFC 5321 4.5.1
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: to postmaster\r\n\r\nhi\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0")
    r.close()
    [m] = inbox(server, "alice@example.com")
    trace, body = split_trace(m)
    assert trace["proto"] == b"SMTP"
    assert body == b"Subject: to postmaster\r\n\r\nhi\r\n"


def test_pipelining(server):
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    r.send(
        b"MAIL FROM:<p@example.org>\r\n"
        b"RCPT TO:<alice@example.com>\r\n"
        b"RCPT TO:<ghost@example.com>\r\n"
        b"RCPT TO:<bob@example.com>\r\n"
        b"DATA\r\n"
    )
    assert r.reply() == "250 2.1.0 Sender OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply().startswith("550 5.1.1")
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply().startswith("354")
    # The message, then another whole transaction, all in one write.
    r.send(
        b"Subject: one\r\n\r\nfirst\r\n.\r\n"
        b"MAIL FROM:<p@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    )
    assert r.reply().startswith("250 2.0.0")
    assert r.reply() == "250 2.1.0 Sender OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply().startswith("354")
    r.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    assert r.reply().startswith("250 2.0.0")
    assert r.reply().startswith("221")
    r.close()
    assert bodies(server, "alice@example.com") == [b"Subject: one\r\n\r\nfirst\r\n"]
    assert bodies(server, "bob@example.com") == [b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nsecond\r\n"]


def test_bdat_chunking(server):
    part1 = b"Subject: chunks\r\n\r\n.not stuffed\r\n"
    part2 = b"binary-ish \x00\x01\xff octets\r\n.\r\n"  # BDAT content is raw
    part3 = b"end\r\n"
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    r.send(b"MAIL FROM:<c@example.org>\r\nRCPT TO:<alice@example.com>\r\n")
    r.send(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d\r\n" % len(part2) + part2)
    r.send(b"BDAT %d LAST\r\n" % len(part3) + part3)
    assert r.reply() == "250 2.1.0 Sender OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply() == f"250 2.0.0 {len(part1)} octets received"
    assert r.reply() == f"250 2.0.0 {len(part2)} octets received"
    assert r.reply().startswith("250 2.0.0 Message accepted")
    # BDAT 0 LAST ends a message too; LMTP-style DATA after BDAT is refused.
    r.send(b"MAIL FROM:<c@example.org>\r\nRCPT TO:<bob@example.com>\r\nBDAT 4\r\nhi\r\nDATA\r\nBDAT 0 LAST\r\n")
    assert r.reply() == "250 2.1.0 Sender OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply() == "250 2.0.0 4 octets received"
    assert r.reply().startswith("503 5.5.1")
    assert r.reply().startswith("250 2.0.0 Message accepted")
    r.close()
    assert bodies(server, "alice@example.com") == [part1 + part2 + part3]
    assert bodies(server, "bob@example.com") == [b"hi\r\n"]


def test_lmtp_bdat_replies_per_recipient(server):
    r = Raw(server.require("lmtp"))
    r.cmd("LHLO x")
    r.send(b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nBDAT 6 LAST\r\nhello\n")
    assert r.reply() == "250 2.1.0 Sender OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply() == "250 2.1.5 Recipient OK"
    assert r.reply().startswith("250 2.0.0 <alice@example.com>")
    assert r.reply().startswith("250 2.0.0 <bob@example.com>")
    r.close()
    trace, body = split_trace(inbox(server, "bob@example.com")[0])
    assert body == b"hello\r\n"
    assert trace["proto"] == b"LMTP"


def test_lmtp_replies_and_data_without_recipients(server):
    with lmtp(server) as c:
        assert c.ehlo("mx.example.net")[0] == 250  # LHLO
        res = lmtp_send(c, "s@example.org", ["alice@example.com", "nobody@example.com", "bob@example.com", "x@other.org"],
                        b"Subject: lmtp\r\n\r\n.dot\r\n")
        assert res["alice@example.com"][0] == 250
        assert res["bob@example.com"][0] == 250
        assert res["nobody@example.com"][0] == 550 and res["nobody@example.com"][1].startswith("5.1.1")
        assert res["x@other.org"][0] == 554 and res["x@other.org"][1].startswith("5.7.1")
        c.mail("s@example.org")
        code, msg = c.docmd("DATA")
        assert code == 503 and msg.startswith(b"5.5.1")  # RFC 2033 4.2
    for who in ["alice", "bob"]:
        assert bodies(server, f"{who}@example.com") == [b"Subject: lmtp\r\n\r\n.dot\r\n"]


def test_store_inline_max_decides_database_or_file(make_server):
    s = make_server(**{"store.inline_max": "8K"})
    small = b"Subject: small\r\n\r\n" + b"fits inline\r\n" * 100
    large = b"Subject: large\r\n\r\n" + b"goes to a blob file\r\n" * 1000
    with smtp(s) as c:
        assert c.sendmail("s@example.org", ["alice@example.com"], small) == {}
        assert c.sendmail("s@example.org", ["alice@example.com"], large) == {}
    assert (len(blob_files(s)), inline_blobs(s)) == (1, 1)
    assert [split_trace(m)[1] for m in inbox(s, "alice@example.com")] == [small, large]
    assert s.cli("check", "--deep").stdout == b"ok\n"
    # Expunged and collected: neither the row nor the file stays.
    s.cli("user", "remove", "alice@example.com", "--force")
    assert (len(blob_files(s)), inline_blobs(s)) == (0, 0)
    assert s.cli("check").stdout == b"ok\n"


def test_aliases_plus_tags_and_dedup(server):
    server.cli("alias", "add", "team@example.com", "alice@example.com", "bob@example.com")
    before = (len(blob_files(server)), inline_blobs(server))
    msg = b"Subject: to everyone\r\n\r\n" + b"the same body for all\r\n" * 200
    with smtp(server) as c:
        refused = c.sendmail("s@example.org", ["team@example.com", "alice+news@example.com", "Bob@Example.COM"], msg)
        assert refused == {}
    # alice: via team and alice+news; bob: via team and Bob@: one copy each.
    for who in ["alice", "bob"]:
        assert bodies(server, f"{who}@example.com") == [msg]
    [a] = inbox(server, "alice@example.com")
    assert split_trace(a)[0]["rcpt"] == b"team@example.com"
    # One stored body for all recipients: the prefixes differ, the blob is shared. It is
    # small (under `[store] inline_max`), so it lives in the database, not in a file.
    assert (len(blob_files(server)), inline_blobs(server)) == (before[0], before[1] + 1)
    assert server.cli("check", "--deep").stdout == b"ok\n"
    # A catch-all takes what no account or alias claims; other domains are still refused.
    server.cli("alias", "add", "@example.com", "bob@example.com")
    with smtp(server) as c:
        assert c.sendmail("s@example.org", ["whoever@example.com"], b"Subject: catch-all\r\n\r\nx\r\n") == {}
        c.mail("s@example.org")
        assert c.rcpt("whoever@example.org")[0] == 554
    assert bodies(server, "bob@example.com")[-1] == b"Subject: catch-all\r\n\r\nx\r\n"


def test_disconnect_mid_data_stores_nothing(server):
    for cut in [b"Subject: cut\r\n\r\nhalf a messa", b"Subject: cut\r\n\r\nline\r\n", b"Subject: x\r\n\r\nend\r\n."]:
        r = Raw(server.require("smtp"))
        r.cmd("EHLO x")
        r.cmd("MAIL FROM:<>")
        r.cmd("RCPT TO:<alice@example.com>")
        assert r.cmd("DATA").startswith("354")
        r.send(cut)
        r.sock.shutdown(socket.SHUT_RDWR)
        r.close()
    # And in BDAT.
    r = Raw(server.require("lmtp"))
    r.cmd("LHLO x")
    r.send(b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nBDAT 1000 LAST\r\nonly a little")
    time.sleep(0.2)
    r.close()
    time.sleep(0.5)
    assert inbox(server, "alice@example.com") == []
    assert usage(server, "alice@example.com") == "0"
    assert server.cli("check", "--deep").stdout == b"ok\n"
    # The server is unharmed.
    with smtp(server) as c:
        assert c.sendmail("", ["alice@example.com"], b"Subject: after\r\n\r\nok\r\n") == {}


def test_slow_client_times_out(make_server):
    s = make_server(**{"limits.timeout_unauthenticated": 1})
    r = Raw(s.require("smtp"))
    r.cmd("EHLO x")
    t0 = time.time()
    assert r.reply().startswith("421 4.4.2")
    assert r.reply() == "<EOF>"
    assert time.time() - t0 < 10
    r.close()
    r = Raw(s.require("smtp"))
    r.cmd("EHLO x")
    r.cmd("MAIL FROM:<>")
    r.cmd("RCPT TO:<alice@example.com>")
    r.cmd("DATA")
    r.send(b"Subject: slow\r\n\r\n")
    assert r.reply().startswith("421 4.4.2")
    r.close()
    assert inbox(s, "alice@example.com") == []


def test_smtputf8(server):
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    assert r.cmd("MAIL FROM:<jos\u00e9@exampl\u00e9.org>").startswith("553 5.6.7")
    assert r.cmd("MAIL FROM:<jos\u00e9@exampl\u00e9.org> SMTPUTF8") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<alice@example.com>") == "250 2.1.5 Recipient OK"
    r.cmd("DATA")
    body = "Subject: caf\u00e9\r\nFrom: jos\u00e9@exampl\u00e9.org\r\n\r\n\u00fcn\u00efc\u00f8d\u00e9\r\n".encode()
    r.send(body + b".\r\n")
    assert r.reply().startswith("250 2.0.0")
    r.close()
    trace, got = split_trace(inbox(server, "alice@example.com")[0])
    assert got == body
    assert trace["sender"] == "jos\u00e9@exampl\u00e9.org".encode()
    assert trace["proto"] == b"UTF8SMTP"


def test_swaks_smtp_and_lmtp(server):
    # swaks ends the data with CRLF . CRLF itself.
    body = "Subject: via swaks\r\n\r\nHello from swaks."
    for proto, port in [("ESMTP", server.require("smtp")), ("LMTP", server.require("lmtp"))]:
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(port), "--protocol", proto,
             "--from", "sender@example.org", "--to", "alice@example.com,bob@example.com",
             "--data", body, "--pipeline"],
            capture_output=True, timeout=60,
        )
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for who in ["alice", "bob"]:
        got = bodies(server, f"{who}@example.com")
        assert got == [body.encode() + b"\r\n"] * 2, got
    # swaks sees the refusals too (exit code 24: a recipient was refused).
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.require("smtp")),
         "--from", "s@example.org", "--to", "someone@elsewhere.org"],
        capture_output=True, timeout=60,
    )
    assert r.returncode != 0
    assert b"554 5.7.1" in r.stdout


def test_size_and_chunk_size_over_twenty_digits_are_refused(make_server):
    """RFC 1870 `size-value ::= 1*20DIGIT`: a longer SIZE was read as its last digits
    (smtp-proto restarts an overflowing number), so `SIZE=99999999999999999999999` passed
    as 999 octets; the same for BDAT's chunk size."""
    s = make_server(**{"smtp.max_message_size": 2000})
    r = Raw(s.require("smtp"))
    assert r.cmd("EHLO client").startswith("250-mail.example.com")
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999999") == "501 5.5.4 Invalid SIZE parameter"
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=184467440737095516160") == "501 5.5.4 Invalid SIZE parameter"
    assert r.cmd("MAIL FROM:<a@example.org> size=18446744073709551616") == "501 5.5.4 Invalid SIZE parameter"
    # Twenty digits under the limit's value are still a size: over the fixed maximum.
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=00000000000000002001").startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=100") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<alice@example.com>") == "250 2.1.5 Recipient OK"
    assert r.cmd("BDAT 184467440737095516160 LAST") == "501 5.5.4 Syntax: BDAT chunk-size [LAST]"
    # The transaction is intact: a well-formed chunk completes it.
    chunk = b"Subject: ok\r\n\r\nhi\r\n"
    r.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert r.reply().startswith("250 2.0.0")
    assert r.cmd("QUIT").startswith("221 2.0.0")
    r.close()
    [stored] = inbox(s, "alice@example.com")
    assert stored.endswith(b"\r\nSubject: ok\r\n\r\nhi\r\n")
