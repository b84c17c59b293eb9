"""IMAP priority 1: greeting, CAPABILITY, NOOP, LOGOUT, LOGIN, AUTHENTICATE (PLAIN and
LOGIN, with and without SASL-IR), ID, ENABLE, NAMESPACE, and bad input handling."""

import base64
import imaplib
import socket
import time

from imap_util import ALICE, Raw, login

# Issue 6: quota, MULTIAPPEND, APPENDLIMIT (the default 50M) and friends; SORT, THREAD,
# OBJECTID, PREVIEW.
QUOTA_CAPS = b" QUOTA QUOTA=RES-STORAGE MULTIAPPEND STATUS=SIZE UNAUTHENTICATE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS"
SORT_CAPS = b" SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES WITHIN OBJECTID PREVIEW"
EXT_CAPS = QUOTA_CAPS + SORT_CAPS + b" COMPRESS=DEFLATE" + b" APPENDLIMIT=52428800"
CAPS = b"IMAP4rev2 IMAP4rev1 LITERAL+ STARTTLS SASL-IR AUTH=PLAIN AUTH=LOGIN ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE ID CONDSTORE QRESYNC ESEARCH SEARCHRES BINARY" + EXT_CAPS
CAPS_AFTER = b"IMAP4rev2 IMAP4rev1 LITERAL+ ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE ID CONDSTORE QRESYNC ESEARCH SEARCHRES BINARY" + EXT_CAPS


def test_greeting_and_capability(server):
    c = Raw(server)
    assert c.greeting == b"* OK [CAPABILITY " + CAPS + b"] Letterbox ready"
    assert c.cmd("CAPABILITY") == [b"* CAPABILITY " + CAPS, b"t1 OK CAPABILITY completed"]
    assert c.cmd("NOOP") == [b"t2 OK NOOP completed"]
    r = c.login()
    assert r == [b"t3 OK [CAPABILITY " + CAPS_AFTER + b"] Logged in"]
    assert c.cmd("LOGOUT") == [b"* BYE Logging out", b"t4 OK LOGOUT completed"]


def test_login_failures_and_limit(make_server):
    server = make_server(**{"auth.failure_delay_ms": 10})
    c = Raw(server)
    assert c.cmd('LOGIN alice@example.com "wrong"') == [b"t1 NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert c.cmd('LOGIN nobody@example.com "wrong"') == [b"t2 NO [AUTHENTICATIONFAILED] Authentication failed"]
    c.send(b't3 LOGIN alice@example.com "x"\r\n')
    assert c.line() == b"* BYE Too many authentication failures"
    try:
        assert c.line() == b""
    except (EOFError, ConnectionResetError):
        pass


def test_imaplib_login_and_literal_password(server):
    m = login(server)
    assert m.state == "AUTH"
    m.logout()
    c = Raw(server)
    c.send(b"a LOGIN {17}\r\n")
    assert c.line() == b"+ Ready for literal data"
    c.send(b"alice@example.com {13+}\r\nalice-Secret1\r\n")
    assert c.until("a")[-1].startswith(b"a OK [CAPABILITY")


def test_authenticate_plain_and_login(server):
    cred = base64.b64encode(b"\0alice@example.com\0alice-Secret1").decode()
    c = Raw(server)
    assert c.cmd(f"AUTHENTICATE PLAIN {cred}")[-1].startswith(b"t1 OK [CAPABILITY")
    c = Raw(server)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.line() == b"+ "
    c.send(cred.encode() + b"\r\n")
    assert c.until("a")[-1].startswith(b"a OK")
    c = Raw(server)
    c.send(b"a AUTHENTICATE LOGIN\r\n")
    assert c.line() == b"+ VXNlcm5hbWU6"
    c.send(base64.b64encode(b"alice@example.com") + b"\r\n")
    assert c.line() == b"+ UGFzc3dvcmQ6"
    c.send(base64.b64encode(b"alice-Secret1") + b"\r\n")
    assert c.until("a")[-1].startswith(b"a OK")
    c = Raw(server)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.line() == b"+ "
    c.send(b"*\r\n")
    assert c.until("a") == [b"a BAD Authentication cancelled"]
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    m.authenticate("PLAIN", lambda _: b"\0alice@example.com\0alice-Secret1")
    assert m.state == "AUTH"


def test_id_enable_namespace_and_states(server):
    c = Raw(server)
    assert c.cmd('ID ("name" "pytest")') == [b'* ID ("name" "Letterbox" "version" "0.1.0")', b"t1 OK ID completed"]
    assert c.cmd("ENABLE IMAP4rev2") == [b"t2 BAD ENABLE not allowed now: Log in first"]
    assert c.cmd("SELECT INBOX") == [b"t3 BAD SELECT not allowed now: Log in first"]
    c.login()
    assert c.cmd("NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL', b"t5 OK NAMESPACE completed"]
    assert c.cmd("ENABLE IMAP4rev2 FOO") == [b"* ENABLED IMAP4rev2", b"t6 OK ENABLE completed"]
    assert c.cmd("ENABLE IMAP4rev2") == [b"* ENABLED", b"t7 OK ENABLE completed"]
    assert c.cmd("FETCH 1 FLAGS") == [b"t8 BAD FETCH not allowed now: Select a mailbox first"]
    assert c.cmd("LOGIN a b") == [b"t9 BAD LOGIN not allowed now: Already logged in"]
    assert c.cmd("STARTTLS")[-1] == b"t10 BAD STARTTLS not allowed now: Already logged in"


def test_bad_commands(server):
    c = Raw(server)
    assert c.cmd("FROB") == [b"t1 BAD unknown command FROB"]
    c.send(b"\r\n")
    assert c.line() == b"* BAD missing or malformed tag"
    assert c.cmd("NOOP") == [b"t2 OK NOOP completed"]
    for i in range(9):
        c.send(b"x FROB\r\n")
        assert c.line() == b"x BAD unknown command FROB"
    c.send(b"x FROB\r\n")
    assert c.line() == b"x BAD unknown command FROB"
    assert c.line() == b"* BYE Too many invalid commands"


def test_line_and_literal_limits(make_server):
    server = make_server(**{"imap.max_literal_size": 100, "limits.max_line_length": 1024})
    c = Raw(server)
    c.login()
    # A synchronizing literal over the limit is refused before it is sent.
    assert c.cmd("APPEND INBOX {101}") == [b"t2 NO [TOOBIG] Literal of 101 octets exceeds the limit of 100"]
    assert c.cmd("NOOP") == [b"t3 OK NOOP completed"]
    # A non-synchronizing one ends the session.
    c.send(b"t4 APPEND INBOX {101+}\r\n" + b"x" * 101 + b"\r\n")
    assert c.line() == b"* BYE [TOOBIG] Literal too large"
    c = Raw(server)
    c.send(b"a NOOP " + b"x" * 2000 + b"\r\n")
    assert c.line() == b"* BYE [TOOBIG] Command line too long"


def test_vanishing_mid_literal_stores_nothing(server):
    c = Raw(server)
    c.login()
    c.send(b"a APPEND INBOX {50+}\r\nFrom: x@y\r\n\r\nhalf")
    c.close()
    time.sleep(0.3)
    m = login(server)
    typ, data = m.select("INBOX")
    assert data == [b"0"]


def test_logindisabled_off_loopback_is_not_testable_here(server):
    # Loopback always allows plaintext (contract); the LOGINDISABLED branch is covered by
    # the crate's unit test of `capabilities`.
    from_caps = imaplib.IMAP4("127.0.0.1", server.require("imap")).capabilities
    assert "AUTH=PLAIN" in from_caps and "LOGINDISABLED" not in from_caps


def test_starttls(server):
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    assert "STARTTLS" in m.capabilities
    m.starttls(ssl_context=ctx)
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    m.login(*ALICE)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    # Plaintext pipelined after STARTTLS is dropped, never executed (RFC 9051 6.2.1).
    c = Raw(server)
    c.send(b"a STARTTLS\r\nb LOGIN alice@example.com alice-Secret1\r\n")
    assert c.line() == b"a OK Begin TLS negotiation now"
    c.sock = ctx.wrap_socket(c.sock)
    assert c.cmd("CAPABILITY", tag="c")[0] == b"* CAPABILITY " + CAPS.replace(b" STARTTLS", b"")
    assert c.cmd("NOOP", tag="d") == [b"d OK NOOP completed"]
    assert c.cmd("STARTTLS", tag="e") == [b"e BAD TLS is already active"]
    assert c.cmd("SELECT INBOX", tag="f") == [b"f BAD SELECT not allowed now: Log in first"]


def test_imaps_implicit_tls(server):
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", server.require("imaps"), ssl_context=ctx)
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    m.login(*ALICE)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
