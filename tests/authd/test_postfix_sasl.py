"""Postfix (Debian's package, a private instance) checks its SMTP AUTH passwords
against Letterbox through `[listen] auth`, as it does with Dovecot's SASL socket:
`smtpd_sasl_type = dovecot`, `smtpd_sasl_path` = our UNIX socket (or inet:host:port)."""

import base64
import grp
import os
import shutil
import smtplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import free_port, USERS  # noqa: E402
from postfix_util import Postfix, world_dir  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path("/usr/sbin/postfix").exists() or os.geteuid() != 0,
    reason="needs Debian's postfix (scripts/install-test-deps) and root",
)

ALICE = "alice@example.com"


def wait_for(predicate, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sockdir():
    d = world_dir("lb-auth-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_pair(make_server, sasl_path, listen_auth, **overrides):
    server = make_server(**{"listen.auth": listen_auth, "auth.failure_delay_ms": 1, **overrides})
    wait_for(lambda: "listening for auth on" in server.read_log()[server.log_start:], "the auth listener")
    pf = Postfix(
        free_port(),
        {
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": sasl_path,
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
        },
    )
    pf.start()
    return server, pf


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth_reply(port, mechanism_and_response):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        code, ehlo = s.ehlo("client.test")
        assert code == 250
        assert b"AUTH PLAIN LOGIN" in ehlo, ehlo
        return s.docmd("AUTH", mechanism_and_response)


def test_postfix_auth_plain_and_login_over_unix_socket(make_server, sockdir):
    sock = sockdir / "auth"
    server, pf = start_pair(
        make_server, str(sock), [str(sock)], **{"authd.socket_mode": "0660", "authd.socket_group": "postfix"}
    )
    try:
        # The socket is the MTA's group's, not the world's.
        st = sock.stat()
        assert oct(st.st_mode & 0o777) == "0o660"
        assert st.st_gid == grp.getgrnam("postfix").gr_gid

        code, msg = auth_reply(pf.port, "PLAIN " + plain(ALICE, USERS[ALICE]))
        assert (code, msg) == (235, b"2.7.0 Authentication successful"), pf.read_log()

        code, msg = auth_reply(pf.port, "PLAIN " + plain(ALICE, "wrong-password"))
        assert code == 535, (code, msg)
        assert msg.startswith(b"5.7.8 Error: authentication failed"), msg

        # Unknown user: the same refusal.
        code, msg = auth_reply(pf.port, "PLAIN " + plain("nobody@example.com", "x"))
        assert code == 535 and msg.startswith(b"5.7.8 Error: authentication failed"), msg

        # LOGIN (smtplib drives the challenges) and a real submission through Postfix
        # as the authenticated user.
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.ehlo("client.test")
            s.user, s.password = "bob@example.com", USERS["bob@example.com"]
            code, msg = s.auth("LOGIN", s.auth_login)
            assert (code, msg) == (235, b"2.7.0 Authentication successful")
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.ehlo("client.test")
            s.user, s.password = ALICE, "wrong"
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.auth("LOGIN", s.auth_login)
            assert e.value.smtp_code == 535

        # Postfix names the user Letterbox returned (user=) as the SASL user.
        wait_for(lambda: "sasl_username=alice@example.com" in pf.read_log(), "postfix's sasl_username log line")
        # Letterbox logged the logins and failures with the client's address (rip=).
        log = server.read_log()
        assert "login" in log and "127.0.0.1" in log
        assert "wrong-password" not in log and USERS[ALICE] not in log
    finally:
        pf.stop()
        pf.cleanup()


def test_failures_through_postfix_block_like_imap(make_server, sockdir):
    sock = sockdir / "auth"
    server, pf = start_pair(
        make_server, str(sock), [str(sock)], **{"authd.socket_mode": "0666", "auth.max_failures": 3}
    )
    try:
        for _ in range(3):
            code, _ = auth_reply(pf.port, "PLAIN " + plain(ALICE, "guess"))
            assert code == 535
        # Blocked now, the right password too, and the CLI lists the block.
        code, _ = auth_reply(pf.port, "PLAIN " + plain(ALICE, USERS[ALICE]))
        assert code == 535
        blocks = server.cli("block", "list").stdout.decode()
        assert "user:alice@example.com" in blocks, blocks
        server.cli("block", "lift", ALICE)
        server.cli("block", "lift", "127.0.0.1")
        code, _ = auth_reply(pf.port, "PLAIN " + plain(ALICE, USERS[ALICE]))
        assert code == 235
    finally:
        pf.stop()
        pf.cleanup()


def test_postfix_over_tcp(make_server, sockdir):
    port = free_port()
    server, pf = start_pair(make_server, f"inet:127.0.0.1:{port}", [f"127.0.0.1:{port}"])
    try:
        code, msg = auth_reply(pf.port, "PLAIN " + plain(ALICE, USERS[ALICE]))
        assert (code, msg) == (235, b"2.7.0 Authentication successful"), pf.read_log()
        code, _ = auth_reply(pf.port, "PLAIN " + plain(ALICE, "nope"))
        assert code == 535
    finally:
        pf.stop()
        pf.cleanup()


def test_a_live_socket_is_not_taken_over(make_server, sockdir):
    sock = sockdir / "auth"
    first = make_server(**{"listen.auth": [str(sock)]})
    wait_for(lambda: "listening for auth on" in first.read_log()[first.log_start:], "the auth listener")
    second = make_server(start=False, **{"listen.auth": [str(sock)]})
    r = second.cli("serve", check=False)
    assert r.returncode == 1
    last = r.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("letterbox: ") and "another process is listening there" in last, r.stderr
