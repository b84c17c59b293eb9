"""Internationalised domain names (RFC 5890/5891, UTS #46): a U-label domain and its
A-label are one domain, stored as the lower-case A-label, whichever form the CLI, SMTP,
LMTP, IMAP or POP3 is given; an invalid name gets the protocol's clear error; a store
made before holds U-labels, which are rewritten once (or refused, changing nothing,
when two entries would become one)."""

import imaplib
import poplib
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "smtp"))
from smtp_util import Raw, inbox  # noqa: E402

import pytest  # noqa: E402

U, A = "exämple.com", "xn--exmple-cua.com"


def test_cli_domain_user_alias_one_form(make_server):
    s = make_server(start=False)
    s.cli("domain", "add", "EXÄMPLE.com")
    r = s.cli("domain", "add", A, check=False)
    assert (r.returncode, r.stderr) == (1, f"letterbox: domain {A} already exists\n".encode())
    r = s.cli("domain", "add", "xn--a.com", check=False)
    assert (r.returncode, r.stderr) == (1, b"letterbox: invalid domain 'xn--a.com'\n")
    assert s.cli("domain", "list").stdout.decode().splitlines() == ["example.com", A]
    s.add_user(f"x@{U}", "x-Secret-1")
    r = s.cli("user", "add", f"X@{A}", "--password-stdin", input="pw-Secret-2\n", check=False)
    assert r.returncode == 1 and r.stderr == f"letterbox: user x@{A} already exists\n".encode(), r.stderr
    r = s.cli("user", "add", "y@xn--a.com", "--password-stdin", input="pw-Secret-2\n", check=False)
    assert r.returncode == 1 and b"invalid address 'y@xn--a.com'" in r.stderr, r.stderr
    assert f"x@{A}" in s.cli("user", "list").stdout.decode()
    s.cli("alias", "add", f"info@{A}", f"x@{U}")
    assert s.cli("alias", "list").stdout.decode() == f"info@{A}\tx@{A}\n"
    s.cli("alias", "remove", f"info@{U}")
    assert s.cli("alias", "list").stdout == b""


def test_smtp_lmtp_imap_pop3_either_form(make_server):
    s = make_server(start=False)
    s.cli("domain", "add", U)
    s.add_user(f"x@{U}", "x-Secret-1")
    s.start()
    r = Raw(s.require("smtp"))
    r.cmd("EHLO client")
    # The A-label, plain ASCII: no SMTPUTF8 needed.
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd(f"RCPT TO:<x@{A.upper()}>") == "250 2.1.5 Recipient OK"
    assert r.cmd("DATA").startswith("354")
    assert r.cmd("Subject: one\r\n\r\nhello\r\n.").startswith("250 2.0.0")
    # The U-label with SMTPUTF8 (RFC 6531); without it, refused as before.
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd(f"RCPT TO:<x@{U}>") == "553 5.6.7 Non-ASCII address needs SMTPUTF8"
    r.cmd("RSET")
    assert r.cmd("MAIL FROM:<a@example.org> SMTPUTF8").startswith("250")
    assert r.cmd("RCPT TO:<x@EXÄMPLE.com>") == "250 2.1.5 Recipient OK"
    # Not valid Punycode: a clear refusal, not "relay denied".
    assert r.cmd("RCPT TO:<x@xn--a.com>") == "553 5.1.3 Bad recipient address syntax: invalid internationalized domain name"
    assert r.cmd("DATA").startswith("354")
    assert r.cmd("Subject: two\r\n\r\nhello\r\n.").startswith("250 2.0.0")
    assert r.cmd("MAIL FROM:<a@xn--a.com>") == "553 5.1.7 Bad sender address syntax: invalid internationalized domain name"
    r.cmd("QUIT")
    r.close()
    r = Raw(s.require("lmtp"))
    r.cmd("LHLO client")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd(f"RCPT TO:<x@{A}>") == "250 2.1.5 Recipient OK"
    assert r.cmd("DATA").startswith("354")
    assert r.cmd("Subject: three\r\n\r\nhello\r\n.").startswith(f"250 2.0.0 <x@{A}> Delivered")
    r.cmd("QUIT")
    r.close()
    subjects = [m.split(b"\r\nSubject: ")[1].split(b"\r\n")[0] for m in inbox(s, f"x@{A}")]
    assert subjects == [b"one", b"two", b"three"]
    # Logins by either form reach the one account.
    for user in (f"x@{A}", f"x@{U}"):
        m = imaplib.IMAP4("127.0.0.1", s.require("imap"))
        m._encoding = "utf-8"
        assert m.login(f"\"{user}\"", "x-Secret-1")[0] == "OK", user
        assert m.select("INBOX")[1] == [b"3"]
        m.logout()
    p = poplib.POP3("127.0.0.1", s.require("pop3"))
    p.user(f"x@{A}")
    p.pass_("x-Secret-1")
    assert p.stat()[0] == 3
    p.quit()


def old_store(s, sql):
    """Rows as a letterbox before A-labels stored them, written into its database."""
    s.stop()
    c = sqlite3.connect(s.data_dir / "store.db")
    c.executescript(sql + "UPDATE meta SET value = 1 WHERE key = 'schema_version';")
    c.commit()
    c.close()


@pytest.mark.embedded_only(
    "writes the SQLite database directly; PostgreSQL's migration 135 is tested by"
    " idn::tests::postgres_store_rewritten_once_or_refused"
)
def test_old_store_rewritten_or_refused(make_server):
    s = make_server(start=False)
    s.cli("domain", "list")
    old_store(
        s,
        f"""INSERT INTO domains (name) VALUES ('{U}');
        INSERT INTO accounts (address, domain_id, password_hash, created)
            SELECT 'x@{U}', id, 'h', 0 FROM domains WHERE name = '{U}';
        INSERT INTO aliases (address, target) VALUES ('@{U}', 'x@{U}');""",
    )
    assert s.cli("domain", "list").stdout.decode().splitlines() == ["example.com", A]
    assert f"x@{A}" in s.cli("user", "list").stdout.decode()
    assert s.cli("alias", "list").stdout.decode() == f"@{A}\tx@{A}\n"
    s.start()
    r = Raw(s.require("smtp"))
    r.cmd("EHLO client")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd(f"RCPT TO:<anyone@{A}>") == "250 2.1.5 Recipient OK"
    r.cmd("QUIT")
    r.close()
    # Both forms of one name in an old store: refused with one clear line, nothing
    # changed, and the same again at the next start.
    old_store(s, "INSERT INTO domains (name) VALUES ('EXÄMPLE.com');")
    for _ in range(2):
        r = s.cli("domain", "list", check=False)
        assert r.returncode == 1, r
        err = r.stderr.decode()
        assert err == (
            f"letterbox: cannot open the store in {s.data_dir}: cannot store internationalised domain names as"
            f" A-labels (RFC 5891): domains.name 'EXÄMPLE.com' would become '{A}', which is already stored;"
            " remove one of the two (with the letterbox release before this one), then start again (nothing was changed)\n"
        ), err
    c = sqlite3.connect(s.data_dir / "store.db")
    assert sorted(r[0] for r in c.execute("SELECT name FROM domains")) == ["EXÄMPLE.com", "example.com", A]
    assert c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (1,)
    c.close()


def test_sieve_redirect_and_portal_login_either_form(make_server):
    import http.client
    import json

    from conftest import free_ports

    (http_port,) = free_ports(1)
    s = make_server(start=False, **{"listen.http": [f"127.0.0.1:{http_port}"]})
    s.cli("domain", "add", A)
    s.add_user(f"x@{A}", "x-Secret-1")
    # alice's script redirects to the U-label form of x's address: a local account.
    s.cli("sieve", "put", "alice@example.com", "main", "--activate", input=f'redirect "x@{U}";\r\n'.encode())
    s.start()
    # Through `letterbox deliver` (the same Sieve run as SMTP/LMTP delivery).
    s.deliver("alice@example.com", b"Subject: redirected\r\n\r\nhello\r\n")
    assert [b"Subject: redirected" in m for m in inbox(s, f"x@{A}")] == [True]
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
    c.request("POST", "/api/login", body=json.dumps({"address": f"X@{U}", "password": "x-Secret-1"}).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, body
    c.close()
