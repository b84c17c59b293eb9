"""The submission (587, STARTTLS) and submissions (465, implicit TLS) listeners, end to
end: AUTH (RFC 4954) PLAIN/LOGIN through the shared login gate, throttling and blocks,
sender ownership, local delivery (byte-exact), remote recipients queued, and
passwords never reaching the log."""

import smtplib
import socket
import subprocess

import pytest

from smtp_util import (RawTLS, b64, inbox, plain, smtp, split_trace, starttls, submission,
                       submissions, tls_context)

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
BOB, BOB_PW = "bob@example.com", "bob-Secret2"

MSG = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: submitted\r\n"
    b"\r\n"
    b".leading dot\r\n"
    b"8bit: caf\xc3\xa9\r\n"
    b"trailing   \r\n"
    b"\r\n"
    b"end\r\n"
)


def caps(msg: bytes):
    return msg.decode().splitlines()


def test_capabilities_on_loopback(server):
    """Loopback counts as safe for passwords: AUTH is offered before TLS too; STARTTLS
    only before TLS; submissions (implicit TLS) never offers STARTTLS."""
    with submission(server) as c:
        assert c.ehlo("client.example.org")[0] == 250
        before = caps(c.ehlo_resp)
        assert "STARTTLS" in before and "AUTH PLAIN LOGIN" in before, before
        starttls(c, server)
        c.ehlo("client.example.org")
        after = caps(c.ehlo_resp)
        assert "STARTTLS" not in after and "AUTH PLAIN LOGIN" in after, after
        assert c.login(ALICE, ALICE_PW)[0] == 235
        c.ehlo("client.example.org")
        assert not any(l.startswith("AUTH") for l in caps(c.ehlo_resp))  # already authenticated
    with submissions(server) as c:
        assert c.sock.version() in ("TLSv1.3", "TLSv1.2")
        c.ehlo("client.example.org")
        lines = caps(c.ehlo_resp)
        assert "STARTTLS" not in lines and "AUTH PLAIN LOGIN" in lines, lines
    # Port 25 never offers AUTH, before or after TLS.
    with smtp(server) as c:
        c.ehlo("x")
        assert not any(l.startswith("AUTH") for l in caps(c.ehlo_resp))
        assert c.docmd("AUTH", "PLAIN " + plain(ALICE, ALICE_PW))[0] == 502


def non_loopback_ip():
    """An address of this host that is not loopback (a connection to it has a
    non-loopback peer address), or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for ip in out.split():
        if ":" not in ip and not ip.startswith("127."):
            return ip
    return None


def server_on_all_addresses(make_server, **overrides):
    """A server whose submission listener is on 0.0.0.0, so that a client can come from a
    non-loopback address of this host."""
    s = make_server(start=False, **overrides)
    port = s.ports["submission"]
    text = s.config_path.read_text()
    s.config_path.write_text(text.replace(f'"127.0.0.1:{port}"', f'"0.0.0.0:{port}"'))
    s.start()
    return s


def test_auth_only_after_starttls_off_loopback(make_server):
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host")
    s = server_on_all_addresses(make_server)
    port = s.require("submission")
    r = RawTLS.__new__(RawTLS)
    r.sock = socket.create_connection((ip, port), timeout=30)
    r.f = r.sock.makefile("rb")
    assert r.reply().startswith("220 mail.example.com ESMTP")
    before = r.ehlo()
    assert "STARTTLS" in before and not any(l.startswith("AUTH") for l in before), before
    assert r.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW)) == (
        "538 5.7.11 Encryption required for requested authentication mechanism: use STARTTLS")
    assert r.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
    assert r.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    r.upgrade(tls_context(s))
    after = r.ehlo()
    assert "AUTH PLAIN LOGIN" in after and "STARTTLS" not in after, after
    assert r.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW)) == "235 2.7.0 Authentication successful"
    assert r.cmd("MAIL FROM:<alice@example.com>") == "250 2.1.0 Sender OK"
    r.close()
    assert f"{ip}" in s.read_log()


def test_allow_plaintext_offers_auth_without_tls(make_server):
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host")
    s = server_on_all_addresses(make_server, **{"auth.allow_plaintext": True})
    c = smtplib.SMTP(ip, s.require("submission"), timeout=30)
    c.ehlo("x")
    assert "AUTH PLAIN LOGIN" in caps(c.ehlo_resp)
    assert c.login(ALICE, ALICE_PW)[0] == 235
    c.quit()


def test_auth_dialogue(server):
    r = RawTLS(server.require("submission"))
    assert r.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW)) == "503 5.5.1 Send EHLO first"
    r.ehlo()
    assert r.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
    assert r.cmd("RCPT TO:<bob@example.com>").startswith("503 5.5.1")
    assert r.cmd("DATA").startswith("503 5.5.1")
    assert r.cmd("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication type: use PLAIN or LOGIN"
    # PLAIN without initial response: an empty challenge; then a cancel.
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd("*") == "501 5.7.0 Authentication cancelled"
    # Not base64.
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd("%%%") == "501 5.5.2 Cannot decode the response"
    assert r.cmd("AUTH PLAIN =") == "501 5.5.2 Cannot decode the response"
    # LOGIN, cancelled at the password.
    assert r.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert r.cmd(b64(ALICE)) == "334 UGFzc3dvcmQ6"
    assert r.cmd("*") == "501 5.7.0 Authentication cancelled"
    # Someone else's authorization identity is not supported.
    assert r.cmd("AUTH PLAIN " + b64(f"{BOB}\0{ALICE}\0{ALICE_PW}")) == "535 5.7.8 Authentication credentials invalid"
    # LOGIN with the user name as initial response, then the password.
    assert r.cmd("AUTH LOGIN " + b64(ALICE)) == "334 UGFzc3dvcmQ6"
    assert r.cmd(b64(ALICE_PW)) == "235 2.7.0 Authentication successful"
    assert r.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW)) == "503 5.5.1 Already authenticated"
    assert r.cmd("MAIL FROM:<alice@example.com>") == "250 2.1.0 Sender OK"
    assert r.cmd("QUIT").startswith("221 2.0.0")
    r.close()
    # PLAIN with the response on its own line.
    r = RawTLS(server.require("submission"))
    r.ehlo()
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd(plain(BOB, BOB_PW)) == "235 2.7.0 Authentication successful"
    r.close()


def test_auth_line_limit(make_server):
    s = make_server(**{"limits.max_line_length": 1024})
    r = RawTLS(s.require("submission"))
    r.ehlo()
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd("A" * 5000) == "500 5.5.6 Authentication exchange line is too long"
    assert r.cmd("NOOP") == "250 2.0.0 OK"
    r.close()


def test_smtplib_plain_and_login(server):
    with submission(server) as c:
        starttls(c, server)
        c.ehlo("x")
        code, msg = c.auth("PLAIN", lambda challenge=None: f"\0{ALICE}\0{ALICE_PW}")
        assert (code, msg) == (235, b"2.7.0 Authentication successful")
    with submissions(server) as c:
        c.ehlo("x")
        c.user, c.password = BOB, BOB_PW
        code, msg = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235, msg
    with submissions(server) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login(ALICE, "wrong")
        assert e.value.smtp_code == 535 and e.value.smtp_error == b"5.7.8 Authentication credentials invalid"


def test_blocked_after_repeated_failures(make_server):
    s = make_server(**{"auth.max_failures": 3, "auth.failure_delay_ms": 10})
    for _ in range(3):
        with submissions(s) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                c.login(ALICE, "wrong-password")
            assert e.value.smtp_code == 535
    # Blocked: the right password gets the same answer as a wrong one.
    with submissions(s) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login(ALICE, ALICE_PW)
        assert (e.value.smtp_code, e.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    blocks = s.cli("block", "list").stdout.decode()
    assert "user:alice@example.com\t" in blocks and "ip:127.0.0.1\t" in blocks, blocks
    assert "login refused: blocked" in s.read_log()
    s.cli("block", "lift", "alice@example.com")
    s.cli("block", "lift", "127.0.0.1")
    assert s.cli("block", "list").stdout == b""
    with submissions(s) as c:
        assert c.login(ALICE, ALICE_PW)[0] == 235


def authed(server, user=ALICE, password=ALICE_PW):
    r = RawTLS(server.require("submissions"), tls_context(server))
    assert r.greeting.startswith("220 mail.example.com ESMTP")
    r.ehlo()
    assert r.cmd("AUTH PLAIN " + plain(user, password)) == "235 2.7.0 Authentication successful"
    return r


def test_sender_must_belong_to_the_account(server):
    server.cli("alias", "add", "sales@example.com", ALICE)
    server.cli("alias", "add", "team@example.com", ALICE, BOB)
    server.cli("alias", "add", "bobs@example.com", BOB)
    server.cli("alias", "add", "@example.com", ALICE)  # catch-all
    r = authed(server)
    for ok in ["alice@example.com", "Alice@EXAMPLE.com", "alice+lists@example.com",
               "sales@example.com", "team@example.com", "sales+x@example.com"]:
        assert r.cmd(f"MAIL FROM:<{ok}>") == "250 2.1.0 Sender OK", ok
        assert r.cmd("RSET") == "250 2.0.0 OK"
    for bad in ["bob@example.com", "bobs@example.com", "bob+alice@example.com",
                "anything@example.com", "alice@elsewhere.org", ""]:
        reply = r.cmd(f"MAIL FROM:<{bad}>")
        assert reply.startswith("553 5.7.1 <"), (bad, reply)
        assert reply.endswith("Sender address not owned by alice@example.com"), reply
    r.close()


def test_submit_local_message_byte_exact(server):
    with submission(server) as c:
        starttls(c, server)
        c.ehlo("laptop.example.org")
        c.login(ALICE, ALICE_PW)
        refused = c.sendmail("alice@example.com", [BOB, "alice+sent@example.com"], MSG,
                             mail_options=["BODY=8BITMIME"])
        assert refused == {}
    [stored] = inbox(server, BOB)
    trace, body = split_trace(stored)
    assert body == MSG
    assert trace["sender"] == b"alice@example.com"
    assert trace["rcpt"] == b"bob@example.com"
    assert trace["helo"] == b"laptop.example.org"
    assert trace["proto"] == b"ESMTPSA"  # RFC 3848: TLS and authenticated
    [own] = inbox(server, ALICE)
    assert split_trace(own)[1] == MSG
    # The same over submissions with BDAT, and an alias as sender.
    server.cli("alias", "add", "sales@example.com", ALICE)
    r = authed(server)
    assert r.cmd("MAIL FROM:<sales@example.com>") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<bob@example.com>") == "250 2.1.5 Recipient OK"
    r.send(b"BDAT %d LAST\r\n" % len(MSG) + MSG)
    assert r.reply().startswith("250 2.0.0 Message accepted for delivery")
    r.close()
    second = inbox(server, BOB)[1]
    trace, body = split_trace(second)
    assert (trace["sender"], trace["proto"], body) == (b"sales@example.com", b"ESMTPSA", MSG)


def test_remote_recipient_queued(server):
    """Issue 12: a remote recipient is accepted and queued (the queue's own tests, with a
    DNS server and remote MTAs, are in tests/outbound); an unknown local one is still
    refused."""
    r = authed(server)
    assert r.cmd("MAIL FROM:<alice@example.com>") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<someone@elsewhere.org>") == "250 2.1.5 Recipient OK"
    assert r.cmd("RCPT TO:<nobody@example.com>").startswith("550 5.1.1")
    r.send(b"DATA\r\n")
    assert r.reply().startswith("354")
    r.send(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    assert r.reply().startswith("250 2.0.0 Message queued for delivery, id=")
    r.close()
    out = server.cli("queue", "list").stdout.decode()
    assert "<alice@example.com>" in out and "<someone@elsewhere.org>" in out, out
    # smtplib: the local recipient gets it at once, the remote one is queued.
    with submissions(server) as c:
        c.login(ALICE, ALICE_PW)
        assert c.sendmail(ALICE, [BOB, "friend@elsewhere.org"], MSG) == {}
    assert [split_trace(m)[1] for m in inbox(server, BOB)] == [MSG]


def test_quota_applies_on_submission(server):
    server.cli("quota", "set", BOB, "1K")
    big = MSG + b"x" * 2000 + b"\r\n"
    with submissions(server) as c:
        c.login(ALICE, ALICE_PW)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail(ALICE, [BOB], big)  # smtplib declares SIZE: refused at RCPT
        assert e.value.recipients[BOB][0] == 552
    assert inbox(server, BOB) == []


def test_swaks_tls_auth_plain(server):
    base = ["swaks", "--from", ALICE, "--to", BOB, "--helo", "swaks.example.org",
            "-a", "PLAIN", "--auth-user", ALICE, "--auth-password", ALICE_PW,
            "--header", "Subject: via swaks"]
    r = subprocess.run(base + ["--server", f"127.0.0.1:{server.require('submission')}", "-tls"],
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "220 2.0.0 Ready to start TLS" in out and "235 2.7.0 Authentication successful" in out, out
    r = subprocess.run(base + ["--server", f"127.0.0.1:{server.require('submissions')}", "--tls-on-connect"],
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    msgs = inbox(server, BOB)
    assert len(msgs) == 2
    for m in msgs:
        trace, body = split_trace(m)
        assert trace["proto"] == b"ESMTPSA" and b"Subject: via swaks\r\n" in body
    # A wrong password: swaks reports the 535.
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{server.require('submission')}", "-tls",
                        "--from", ALICE, "--to", BOB, "-a", "PLAIN", "--auth-user", ALICE,
                        "--auth-password", "not-it"], capture_output=True, timeout=60)
    assert r.returncode != 0 and "535 5.7.8" in r.stdout.decode()


def test_passwords_never_logged(server):
    """Every way a password travels here: PLAIN (initial response and separate line),
    LOGIN, successes and failures. Neither the password nor its base64 forms appear."""
    secrets = [ALICE_PW, "Wrong-Guess-42"]
    r = RawTLS(server.require("submission"))
    r.ehlo()
    assert r.cmd("AUTH PLAIN " + plain(ALICE, "Wrong-Guess-42")).startswith("535")
    assert r.cmd("AUTH LOGIN " + b64(ALICE)).startswith("334")
    assert r.cmd(b64("Wrong-Guess-42")).startswith("535")
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd(plain(ALICE, ALICE_PW)).startswith("235")
    r.close()
    with submissions(server) as c:
        c.ehlo("x")
        c.user, c.password = ALICE, ALICE_PW
        assert c.auth("LOGIN", c.auth_login, initial_response_ok=False)[0] == 235
    log = server.read_log()
    assert "login failed" in log and "login" in log
    for p in secrets:
        for form in [p, b64(p), plain(ALICE, p)]:
            assert form not in log, form


def test_brute_force_is_slowed_and_blocked_while_others_log_in(make_server):
    """1,000 wrong passwords for alice from 127.0.0.1: the first answers come ever more
    slowly, then the IP and the account are blocked (named in the log, listed by
    `letterbox block list`); bob, from another address (127.0.0.2), logs in normally
    throughout."""
    import time

    s = make_server(**{"auth.max_failures": 5, "auth.failure_delay_ms": 10,
                       "limits.max_bad_commands": 5000, "limits.max_auth_failures": 5000})
    port = s.require("submissions")

    def bob_logs_in():
        c = _from(s, "127.0.0.2")
        assert c.login(BOB, BOB_PW)[0] == 235
        c.quit()

    r = RawTLS(port, tls_context(s))
    r.ehlo()
    times = []
    for i in range(1000):
        t = time.monotonic()
        assert r.cmd("AUTH PLAIN " + plain(ALICE, f"guess-{i}")) == "535 5.7.8 Authentication credentials invalid"
        times.append(time.monotonic() - t)
        if i % 100 == 0:
            bob_logs_in()
    # Slowed: the 5th failure waited 16 times the base delay (growing delay).
    assert times[4] >= 0.15 > times[0], times[:6]
    # Blocked: the right password fails the same way now.
    assert r.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW)) == "535 5.7.8 Authentication credentials invalid"
    r.close()
    bob_logs_in()
    blocks = s.cli("block", "list").stdout.decode()
    assert "ip:127.0.0.1\t" in blocks and "user:alice@example.com\t" in blocks, blocks
    import re
    log = re.sub(r"\x1b\[[0-9;]*m", "", s.read_log())  # without the terminal colours
    assert "failed logins within 900s block=ip:127.0.0.1" in log
    assert "failed logins within 900s block=user:alice@example.com" in log
    assert "guess-" not in log


def _from(server, source_ip):
    from smtp_util import _SMTP_SSL
    return _SMTP_SSL("127.0.0.1", server.require("submissions"), timeout=30,
                     context=tls_context(server), source_address=(source_ip, 0))


def test_large_message_over_tls_byte_exact(server):
    """3 MiB with dot-lines, long lines and binary-ish 8-bit text, over STARTTLS with
    DATA and over implicit TLS with BDAT chunks."""
    import random
    rnd = random.Random(7)
    lines = []
    size = 0
    while size < 3 << 20:
        kind = rnd.randrange(4)
        if kind == 0:
            line = b"." * rnd.randrange(1, 4) + b"dots"
        elif kind == 1:
            line = bytes(rnd.randrange(0x20, 0x7f) for _ in range(rnd.randrange(0, 3000)))
        elif kind == 2:
            line = "ünïcödé €".encode() * rnd.randrange(1, 50)
        else:
            line = b""
        lines.append(line)
        size += len(line) + 2
    big = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    with submission(server) as c:
        starttls(c, server)
        c.login(ALICE, ALICE_PW)
        assert c.sendmail(ALICE, [BOB], big, mail_options=["BODY=8BITMIME"]) == {}
    r = authed(server)
    assert r.cmd("MAIL FROM:<alice@example.com> BODY=8BITMIME") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<bob@example.com>") == "250 2.1.5 Recipient OK"
    half = len(big) // 2
    r.send(b"BDAT %d\r\n" % half + big[:half])
    assert r.reply() == f"250 2.0.0 {half} octets received"
    r.send(b"BDAT %d LAST\r\n" % (len(big) - half) + big[half:])
    assert r.reply().startswith("250 2.0.0 Message accepted")
    r.close()
    got = [split_trace(m)[1] for m in inbox(server, BOB)]
    assert len(got) == 2 and got[0] == big and got[1] == big
