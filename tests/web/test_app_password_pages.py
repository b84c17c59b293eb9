"""Application passwords and recent logins in the portal (issue 14): created, listed and
revoked through the JSON API and through the HTML pages (forms with CSRF tokens); each
password works over IMAP (imaplib) for its protocol only and stops once revoked; the
recent logins page and API list the logins, the portal's own included."""

import html
import imaplib
import re
import smtplib

import pytest

from ops_util import Http, start, web_server

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"


@pytest.fixture
def srv(make_server):
    return start(web_server(make_server))


def imap_ok(srv, user, pw):
    c = imaplib.IMAP4("127.0.0.1", srv.require("imap"))
    try:
        c.login(user, pw)
        c.logout()
        return True
    except imaplib.IMAP4.error as e:
        assert "[AUTHENTICATIONFAILED]" in str(e)
        return False


def test_api(srv):
    h = Http(srv)
    h.login(ALICE, ALICE_PW)
    status, created = h.json("POST", "/api/app-passwords", {"name": "Phone", "protocols": ["imap", "smtp"]})
    assert status == 201
    assert (created["name"], created["protocols"]) == ("Phone", ["imap", "smtp"])
    pw = created["password"]
    assert re.fullmatch(r"[a-km-z2-9]{4}(-[a-km-z2-9]{4}){4}", pw)
    assert imap_ok(srv, ALICE, pw)
    with smtplib.SMTP("127.0.0.1", srv.require("submission")) as c:
        c.ehlo("phone")
        assert c.login(ALICE, pw) == (235, b"2.7.0 Authentication successful")

    status, listed = h.json("GET", "/api/app-passwords")
    assert status == 200
    (item,) = listed["app_passwords"]
    assert (item["name"], item["protocols"]) == ("Phone", ["imap", "smtp"])
    assert item["last_used"] is not None and "password" not in item

    # Refusals: bad protocol, duplicate name, the web protocol, no CSRF token.
    assert h.json("POST", "/api/app-passwords", {"name": "x", "protocols": ["ftp"]}) == (
        400,
        {"error": "unknown protocol 'ftp' for an application password (known: imap, pop3, smtp)"},
    )
    assert h.json("POST", "/api/app-passwords", {"name": "x", "protocols": ["web"]})[0] == 400
    assert h.json("POST", "/api/app-passwords", {"name": "Phone", "protocols": ["pop3"]}) == (
        409,
        {"error": "application password 'Phone' of alice@example.com already exists"},
    )
    assert h.json("DELETE", "/api/app-passwords/Phone", csrf=False) == (403, {"error": "missing or wrong CSRF token"})
    assert imap_ok(srv, ALICE, pw)

    # An app password never opens the portal.
    other = Http(srv)
    assert other.json("POST", "/api/login", {"address": ALICE, "password": pw}) == (
        401,
        {"error": "wrong address or password"},
    )

    assert h.json("DELETE", "/api/app-passwords/Phone") == (200, {"revoked": True})
    assert not imap_ok(srv, ALICE, pw)
    assert h.json("DELETE", "/api/app-passwords/Phone") == (
        404,
        {"error": "application password 'Phone' of alice@example.com does not exist"},
    )

    status, logins = h.json("GET", "/api/logins")
    assert status == 200
    got = [(l["protocol"], l["app_password"], l["remote"]) for l in logins["logins"]]
    assert got == [
        ("imap", "Phone", "127.0.0.1"),
        ("smtp", "Phone", "127.0.0.1"),
        ("imap", "Phone", "127.0.0.1"),
        ("web", None, "127.0.0.1"),
    ]
    assert all(isinstance(l["at"], int) for l in logins["logins"])
    # Bob sees only his own.
    b = Http(srv)
    b.login("bob@example.com", "bob-Secret2")
    assert [l["protocol"] for l in b.json("GET", "/api/logins")[1]["logins"]] == ["web"]
    assert b.json("GET", "/api/app-passwords")[1] == {"app_passwords": []}


def test_pages(srv):
    h = Http(srv)
    r = h.request("GET", "/account/app-passwords")
    assert (r.status, r.getheader("Location")) == (303, "/login")
    h.login(ALICE, ALICE_PW)
    r = h.request("GET", "/account")
    assert b'href="/account/app-passwords"' in r.body and b'href="/account/logins"' in r.body
    r = h.request("GET", "/account/app-passwords")
    assert r.status == 200 and b"You have no application passwords." in r.body

    # A form without its CSRF token is refused and creates nothing.
    r = h.request("POST", "/account/app-passwords", form={"name": "Laptop", "pop3": "on"})
    assert r.status == 403
    assert h.json("GET", "/api/app-passwords")[1] == {"app_passwords": []}

    r = h.request("POST", "/account/app-passwords", form={"csrf": h.csrf, "name": "Old <laptop>", "pop3": "on"})
    assert r.status == 200
    assert r.getheader("Cache-Control") == "no-store"
    page = r.body.decode()
    m = re.search(r'<code class="secret" id="new-app-password">([^<]+)</code>', page)
    assert m, page
    pw = m.group(1)
    assert "Old &lt;laptop&gt;" in page and "Old <laptop>" not in page  # escaped
    assert not imap_ok(srv, ALICE, pw)  # POP3 only
    import poplib

    p = poplib.POP3("127.0.0.1", srv.require("pop3"))
    p.user(ALICE)
    assert p.pass_(pw).startswith(b"+OK")
    p.quit()

    # Listed, and shown no more.
    r = h.request("GET", "/account/app-passwords")
    assert "Old &lt;laptop&gt;" in r.body.decode() and pw not in r.body.decode()
    r = h.request("GET", "/account/logins")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", r.body.decode())
    assert [row[1:] for row in rows] == [
        ("127.0.0.1", "POP3", "app password " + html.escape("Old <laptop>")),
        ("127.0.0.1", "WEB", "your password"),
    ]

    r = h.request("POST", "/account/app-passwords/revoke", form={"csrf": h.csrf, "name": "Old <laptop>"})
    assert r.status == 303
    assert r.getheader("Location") == "/account/app-passwords"
    r = h.request("GET", "/account/app-passwords")
    assert b"Application password revoked." in r.body and b"You have no application passwords." in r.body
    assert h.json("GET", "/api/app-passwords")[1] == {"app_passwords": []}
    p = poplib.POP3("127.0.0.1", srv.require("pop3"))
    p.user(ALICE)
    with pytest.raises(poplib.error_proto):
        p.pass_(pw)
