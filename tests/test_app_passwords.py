"""Application passwords (issue 14) and the login history, through the real binary.

An app password made for one protocol logs in over that protocol (imaplib, poplib,
smtplib on submission) and is refused by the others; revoked, it stops at once (even
though the verified-login cache holds it); the account password keeps working; each
successful login is listed by `letterbox user logins`, bounded by `[auth] login_history`.
"""

import imaplib
import poplib
import re
import smtplib

import pytest

ALICE = "alice@example.com"
ALICE_PW = "alice-Secret1"
SHAPE = re.compile(r"^[a-km-z2-9]{4}(-[a-km-z2-9]{4}){4}$")


@pytest.fixture
def srv(make_server):
    # Short failure delays; blocks far away (this test fails a few logins on purpose).
    return make_server(**{"auth.failure_delay_ms": 20, "auth.max_failures": 50, "auth.login_history": 5})


def add(srv, name, protocols):
    out = srv.cli("user", "app-password", "add", ALICE, name, "--protocols", protocols).stdout.decode()
    pw = out.strip()
    assert SHAPE.match(pw), out
    return pw


def imap_login(srv, user, pw):
    c = imaplib.IMAP4("127.0.0.1", srv.require("imap"))
    try:
        typ, data = c.login(user, pw)
        c.logout()
        return typ, data[0]
    except imaplib.IMAP4.error as e:
        return "NO", str(e)


def pop_login(srv, user, pw):
    c = poplib.POP3("127.0.0.1", srv.require("pop3"))
    try:
        c.user(user)
        r = c.pass_(pw)
        c.quit()
        return r
    except poplib.error_proto as e:
        return e.args[0]


def smtp_login(srv, user, pw):
    with smtplib.SMTP("127.0.0.1", srv.require("submission")) as c:
        c.ehlo("client.example")
        try:
            return c.login(user, pw)
        except smtplib.SMTPAuthenticationError as e:
            return (e.smtp_code, e.smtp_error)


IMAP_FAIL = "NO", "b'[AUTHENTICATIONFAILED] Authentication failed'"
POP_FAIL = b"-ERR [AUTH] Authentication failed"
SMTP_FAIL = (535, b"5.7.8 Authentication credentials invalid")
SMTP_OK = (235, b"2.7.0 Authentication successful")


def test_app_password_per_protocol_and_revocation(srv):
    imap_pw = add(srv, "Phone IMAP", "imap")
    pop_pw = add(srv, "Old laptop", "pop3")
    smtp_pw = add(srv, "Printer", "smtp")

    # Each works for its protocol only.
    typ, text = imap_login(srv, ALICE, imap_pw)
    assert typ == "OK" and text.endswith(b"] Logged in"), text
    assert pop_login(srv, ALICE, imap_pw) == POP_FAIL
    assert smtp_login(srv, ALICE, imap_pw) == SMTP_FAIL

    assert pop_login(srv, ALICE, pop_pw).startswith(b"+OK")
    assert imap_login(srv, ALICE, pop_pw) == IMAP_FAIL
    assert smtp_login(srv, ALICE, pop_pw) == SMTP_FAIL

    assert smtp_login(srv, ALICE, smtp_pw) == SMTP_OK
    assert imap_login(srv, ALICE, smtp_pw) == IMAP_FAIL
    assert pop_login(srv, ALICE, smtp_pw) == POP_FAIL

    # Typed back in capitals and without dashes (as phones let people do), it still works.
    typ, _ = imap_login(srv, ALICE, imap_pw.replace("-", "").upper())
    assert typ == "OK"
    # Another account cannot use it.
    assert imap_login(srv, "bob@example.com", imap_pw) == IMAP_FAIL
    # The account password still works everywhere.
    assert imap_login(srv, ALICE, ALICE_PW)[0] == "OK"
    assert smtp_login(srv, ALICE, ALICE_PW) == SMTP_OK

    listed = srv.cli("user", "app-password", "list", ALICE).stdout.decode().splitlines()
    assert [l.split("\t")[:2] for l in listed] == [
        ["Old laptop", "pop3"],
        ["Phone IMAP", "imap"],
        ["Printer", "smtp"],
    ]
    assert all(l.split("\t")[3] != "never" for l in listed), listed

    # Revoked: refused at once, although the last check is still in the verified cache.
    srv.cli("user", "app-password", "remove", ALICE, "Phone IMAP")
    assert imap_login(srv, ALICE, imap_pw) == IMAP_FAIL
    r = srv.cli("user", "app-password", "remove", ALICE, "Phone IMAP", check=False)
    assert r.returncode != 0
    assert r.stderr.decode() == "letterbox: application password 'Phone IMAP' of alice@example.com does not exist\n"
    # Neither password nor hash reaches the log.
    log = srv.read_log()
    for pw in (imap_pw, pop_pw, smtp_pw, ALICE_PW):
        assert pw not in log and pw.replace("-", "") not in log
    assert "app_password=Printer" in log


def test_cli_refusals(srv):
    r = srv.cli("user", "app-password", "add", ALICE, "x", "--protocols", "imap,ftp", check=False)
    assert (r.returncode, r.stderr.decode()) == (
        1,
        "letterbox: unknown protocol 'ftp' for an application password (known: imap, pop3, smtp)\n",
    )
    r = srv.cli("user", "app-password", "add", "nobody@example.com", "x", "--protocols", "imap", check=False)
    assert (r.returncode, r.stderr.decode()) == (1, "letterbox: user nobody@example.com does not exist\n")
    add(srv, "dup", "imap")
    r = srv.cli("user", "app-password", "add", ALICE, "dup", "--protocols", "pop3", check=False)
    assert (r.returncode, r.stderr.decode()) == (
        1,
        "letterbox: application password 'dup' of alice@example.com already exists\n",
    )


def test_recent_logins_listed_and_bounded(srv):
    pw = add(srv, "Tablet", "imap,pop3")
    assert imap_login(srv, ALICE, ALICE_PW)[0] == "OK"
    assert imap_login(srv, ALICE, pw)[0] == "OK"
    assert pop_login(srv, ALICE, pw).startswith(b"+OK")
    assert smtp_login(srv, ALICE, ALICE_PW) == SMTP_OK
    assert imap_login(srv, ALICE, "wrong-password") == IMAP_FAIL  # failures are not listed
    lines = srv.cli("user", "logins", ALICE).stdout.decode().splitlines()
    rows = [l.split("\t")[1:] for l in lines]
    assert rows == [
        ["127.0.0.1", "smtp", "-"],
        ["127.0.0.1", "pop3", "Tablet"],
        ["127.0.0.1", "imap", "Tablet"],
        ["127.0.0.1", "imap", "-"],
    ]
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", l.split("\t")[0]) for l in lines)
    # Bounded by [auth] login_history = 5: the oldest go.
    for _ in range(3):
        assert imap_login(srv, ALICE, ALICE_PW)[0] == "OK"
    lines = srv.cli("user", "logins", ALICE).stdout.decode().splitlines()
    assert len(lines) == 5
    assert [l.split("\t")[2:] for l in lines][-2:] == [["smtp", "-"], ["pop3", "Tablet"]]
    assert srv.cli("user", "logins", "bob@example.com").stdout == b""
