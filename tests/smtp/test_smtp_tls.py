"""STARTTLS (RFC 3207) on the smtp, lmtp and submission listeners, end to end: the
capabilities before and after TLS, the plaintext-injection defence, the session reset,
ESMTPS/LMTPS in Received, openssl s_client and swaks."""

import smtplib
import subprocess

from smtp_util import (RawTLS, inbox, lmtp, plain, smtp, split_trace, starttls, stuff,
                       submission, tls_context)

MSG = b"From: bob@example.org\r\nTo: alice@example.com\r\nSubject: tls\r\n\r\n.dot\r\nbody\r\n"


def test_smtp_starttls_capabilities_and_delivery(server):
    with smtp(server) as c:
        code, msg = c.ehlo("client.example.org")
        before = msg.decode().splitlines()
        assert "STARTTLS" in before, before
        assert not any(l.startswith("AUTH") for l in before)
        starttls(c, server)
        assert c.sock.version() in ("TLSv1.3", "TLSv1.2")
        code, msg = c.ehlo("client.example.org")
        after = msg.decode().splitlines()
        assert code == 250
        assert "STARTTLS" not in after, after  # RFC 3207 4.2: not offered again
        assert not any(l.startswith("AUTH") for l in after)  # port 25: never AUTH
        for ext in ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"]:
            assert ext in after, (ext, after)
        # STARTTLS again once TLS is active: out of sequence.
        code, msg = c.docmd("STARTTLS")
        assert (code, msg[:5]) == (503, b"5.5.1"), (code, msg)
        assert c.sendmail("bob@example.org", ["alice@example.com"], MSG) == {}
    [stored] = inbox(server, "alice@example.com")
    trace, body = split_trace(stored)
    assert body == MSG
    assert trace["proto"] == b"ESMTPS"


def test_lmtp_starttls(server):
    c = lmtp(server)
    code, msg = c.ehlo("lmtp.client")  # smtplib.LMTP sends LHLO
    assert code == 250 and b"STARTTLS" in msg, msg
    starttls(c, server)
    code, msg = c.ehlo("lmtp.client")
    assert code == 250 and b"STARTTLS" not in msg, msg
    assert c.sendmail("bob@example.org", ["alice@example.com"], MSG) == {}
    c.quit()
    trace, body = split_trace(inbox(server, "alice@example.com")[0])
    assert (trace["proto"], body) == (b"LMTPS", MSG)


def test_starttls_forgets_the_session(server):
    """RFC 3207 4.2: after TLS the client must EHLO again; MAIL/RCPT given before are gone."""
    r = RawTLS(server.require("smtp"))
    r.ehlo()
    assert r.cmd("MAIL FROM:<bob@example.org>") == "250 2.1.0 Sender OK"
    assert r.cmd("RCPT TO:<alice@example.com>") == "250 2.1.5 Recipient OK"
    assert r.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    r.upgrade(tls_context(server))
    assert r.cmd("RCPT TO:<alice@example.com>") == "503 5.5.1 Send EHLO or HELO first"
    assert "STARTTLS" not in r.ehlo()
    assert r.cmd("RCPT TO:<alice@example.com>") == "503 5.5.1 Need MAIL before RCPT"
    assert r.cmd("DATA") == "503 5.5.1 Need MAIL command"
    assert r.cmd("STARTTLS") == "503 5.5.1 TLS already active"
    assert r.cmd("QUIT").startswith("221")
    r.close()
    assert inbox(server, "alice@example.com") == []


def check_injection(server, port, hello="EHLO"):
    """Commands sent in the same packet as STARTTLS must not be executed (RFC 3207 6)."""
    r = RawTLS(port)
    assert r.cmd(f"{hello} client.example.org").startswith("250")
    # One write, one TCP segment: STARTTLS followed by a whole injected transaction.
    r.send(
        b"STARTTLS\r\n"
        + f"{hello} evil.example.org\r\n".encode()
        + b"MAIL FROM:<evil@example.org>\r\n"
        b"RCPT TO:<alice@example.com>\r\n"
        b"DATA\r\n"
        b"Subject: injected\r\n\r\ninjected\r\n.\r\n"
    )
    assert r.reply() == "220 2.0.0 Ready to start TLS"
    r.upgrade(tls_context(server))
    # The first reply over TLS is the answer to our NOOP, not to an injected command.
    assert r.cmd("NOOP") == "250 2.0.0 OK"
    # The injected greeting and MAIL are not in effect.
    assert r.cmd("MAIL FROM:<bob@example.org>").startswith("503 5.5.1 Send")
    assert r.cmd(f"{hello} client.example.org").startswith("250")
    assert r.cmd("RCPT TO:<alice@example.com>") == "503 5.5.1 Need MAIL before RCPT"
    assert r.cmd("QUIT").startswith("221")
    r.close()
    assert inbox(server, "alice@example.com") == []
    assert "discarding plaintext sent after STARTTLS" in server.read_log()


def test_starttls_injection_is_discarded_smtp(server):
    check_injection(server, server.require("smtp"))


def test_starttls_injection_is_discarded_lmtp(server):
    check_injection(server, server.require("lmtp"), hello="LHLO")


def test_starttls_injection_is_discarded_submission(server):
    """On submission the injected part includes an AUTH with valid credentials."""
    r = RawTLS(server.require("submission"))
    r.ehlo()
    r.send(
        b"STARTTLS\r\n"
        b"EHLO evil.example.org\r\n"
        + f"AUTH PLAIN {plain('alice@example.com', 'alice-Secret1')}\r\n".encode()
        + b"MAIL FROM:<alice@example.com>\r\n"
    )
    assert r.reply() == "220 2.0.0 Ready to start TLS"
    r.upgrade(tls_context(server))
    assert r.cmd("NOOP") == "250 2.0.0 OK"
    r.ehlo()
    assert r.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
    r.close()


def test_starttls_with_parameter_and_before_ehlo(server):
    r = RawTLS(server.require("smtp"))
    assert r.cmd("STARTTLS now") == "501 5.5.4 Syntax error (no parameters allowed)"
    # STARTTLS before EHLO is allowed (nothing to forget).
    assert r.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    r.upgrade(tls_context(server))
    assert "STARTTLS" not in r.ehlo()
    r.close()


def test_failed_handshake_ends_the_session(server):
    r = RawTLS(server.require("smtp"))
    r.ehlo()
    assert r.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    r.send(b"EHLO this is not a TLS ClientHello\r\n")
    rest = r.f.read()  # closed after a TLS alert at most: no plaintext reply
    assert not rest[:1].isdigit(), rest
    r.close()
    # Other sessions are unaffected.
    with smtp(server) as c:
        assert c.noop()[0] == 250


def openssl_starttls(port, proto, script: bytes, *extra):
    return subprocess.run(
        ["openssl", "s_client", "-starttls", proto, "-connect", f"127.0.0.1:{port}",
         "-crlf", "-quiet", "-verify_return_error", "-verify_hostname", "mail.example.com", *extra],
        input=script, capture_output=True, timeout=60,
    )


def test_openssl_s_client_starttls_smtp(server):
    ca = str(server.data_dir / "tls" / "selfsigned-cert.pem")
    r = openssl_starttls(
        server.require("smtp"), "smtp",
        b"EHLO openssl.example.org\nMAIL FROM:<bob@example.org>\nRCPT TO:<alice@example.com>\nDATA\n"
        b"Subject: via openssl\n\nhello over TLS\n.\nQUIT\n",
        "-CAfile", ca,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr.decode())
    assert "250-mail.example.com Hello openssl.example.org" in out, out
    assert "STARTTLS" not in out, out  # the EHLO after TLS does not offer it
    assert "250 2.0.0 Message accepted for delivery" in out, out
    assert "221 2.0.0" in out, out
    trace, body = split_trace(inbox(server, "alice@example.com")[0])
    assert trace["proto"] == b"ESMTPS"
    assert body == b"Subject: via openssl\r\n\r\nhello over TLS\r\n"


def test_openssl_s_client_starttls_lmtp_and_submission(server):
    ca = str(server.data_dir / "tls" / "selfsigned-cert.pem")
    r = openssl_starttls(server.require("lmtp"), "lmtp", b"LHLO x\nQUIT\n", "-CAfile", ca)
    out = r.stdout.decode()
    assert r.returncode == 0 and "250-mail.example.com Hello x" in out and "STARTTLS" not in out, (out, r.stderr)
    r = openssl_starttls(
        server.require("submission"), "smtp",
        f"EHLO x\nAUTH PLAIN {plain('alice@example.com', 'alice-Secret1')}\nQUIT\n".encode(),
        "-CAfile", ca,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    assert "250 AUTH PLAIN LOGIN" in out and "STARTTLS" not in out, out
    assert "235 2.7.0 Authentication successful" in out, out


def test_swaks_tls_inbound(server):
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.require('smtp')}", "--tls",
         "--from", "bob@example.org", "--to", "alice@example.com", "--helo", "swaks.example.org",
         "--header", "Subject: swaks tls", "--body", "over tls"],
        capture_output=True, timeout=60,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "220 2.0.0 Ready to start TLS" in out, out
    trace, body = split_trace(inbox(server, "alice@example.com")[0])
    assert trace["proto"] == b"ESMTPS"
    assert b"Subject: swaks tls\r\n" in body and b"\r\n\r\nover tls\r\n" in body


def test_swaks_tls_required_fails_cleanly_without_certificate_trust(server):
    """swaks --tls-verify against the self-signed certificate fails the handshake; the
    server survives it and keeps serving."""
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.require('smtp')}", "--tls", "--tls-verify",
         "--tls-verify-host", "mail.example.com",
         "--from", "bob@example.org", "--to", "alice@example.com", "--quit-after", "TLS"],
        capture_output=True, timeout=60,
    )
    assert r.returncode != 0
    with smtp(server) as c:
        assert c.noop()[0] == 250


def test_old_tls_versions_refused_on_starttls_and_submissions(server):
    """Downgrade: TLS 1.0/1.1 are refused, both after STARTTLS and on implicit TLS; the
    server keeps serving afterwards."""
    import ssl
    import socket
    import warnings

    def old_ctx():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        return ctx

    r = RawTLS(server.require("submission"))
    r.ehlo()
    assert r.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    try:
        r.upgrade(old_ctx())
        raise AssertionError("TLS 1.1 accepted after STARTTLS")
    except (ssl.SSLError, OSError):
        pass
    r.close()
    with socket.create_connection(("127.0.0.1", server.require("submissions")), timeout=10) as raw:
        try:
            old_ctx().wrap_socket(raw)
            raise AssertionError("TLS 1.1 accepted on submissions")
        except (ssl.SSLError, OSError):
            pass
    with submission(server) as c:
        starttls(c, server)
        assert c.sock.version() in ("TLSv1.3", "TLSv1.2")
