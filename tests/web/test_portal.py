"""The web portal end to end: Debian's chromium (headless, driven by Playwright's Python
package with executable_path=/usr/bin/chromium) against the real binary, plus plain HTTP
for the refusals, and IMAP/SMTP/the CLI for what the portal's decisions change.

- a user logs in, sees usage and the chart, asks for 1 GiB; an operator approves; the
  quota is 1 GiB at once (IMAP GETQUOTAROOT) and an SMTP delivery refused before (552)
  is accepted; the user has the decision mail;
- a screenshot of every main page, checked (key text, no error page, not blank);
- CSRF: a form or API write without or with a wrong token is 403 and changes nothing;
- a domain admin is refused another domain's account; a mailbox user the operator pages;
- login throttling is shared with IMAP (web failures block the IMAP login);
- a disabled account logs in nowhere and its mail gets 450; domain counts record it;
- `letterbox quota requests|approve|deny` and `letterbox admin add|list|remove`.
"""

import http.client
import imaplib
import json
import re
import smtplib
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_ports

CHROMIUM = "/usr/bin/chromium"
ALICE, ALICE_PW = "alice@example.com", "alice-secret-1"
OP, OP_PW = "op@example.com", "operator-secret-1"
DADMIN, DADMIN_PW = "dadmin@example.com", "dadmin-secret-1"
BOB, BOB_PW = "bob@other.org", "bob-secret-1"


@pytest.fixture
def portal(make_server):
    (http_port,) = free_ports(1)
    s = make_server(
        users={},
        start=False,
        **{
            "listen.http": [f"127.0.0.1:{http_port}"],
            "auth.max_failures": 3,
            "auth.failure_delay_ms": 1,
            "quota.warn_at": [95],
        },
    )
    s.http_port = http_port
    s.base = f"http://127.0.0.1:{http_port}"
    s.cli("domain", "add", "other.org")
    s.add_user(ALICE, ALICE_PW, quota="40K")
    s.add_user(OP, OP_PW)
    s.add_user(DADMIN, DADMIN_PW)
    s.add_user(BOB, BOB_PW)
    s.cli("admin", "add", OP)
    s.cli("admin", "add", DADMIN, "--domain", "example.com")
    # Something to show: a message with an attachment, and one in the Trash.
    s.deliver(ALICE, attachment_message("Holiday pictures", "beach.jpg", 12000))
    s.deliver(ALICE, b"From: x@example.org\r\nSubject: small\r\n\r\nhello\r\n")
    s.start()
    return s


def attachment_message(subject, filename, size):
    payload = "QUJD" * (size // 4)
    lines = "\r\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    return (
        "From: Carol <carol@example.org>\r\nTo: alice@example.com\r\n"
        f"Subject: {subject}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        f'--b1\r\nContent-Type: image/jpeg; name="{filename}"\r\n'
        f'Content-Disposition: attachment; filename="{filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{lines}\r\n--b1--\r\n"
    ).encode()


# --- plain HTTP -------------------------------------------------------------------------


class Http:
    """A tiny cookie-keeping client (one cookie jar, like one browser)."""

    def __init__(self, server):
        self.port = server.http_port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None, form=None):
        h = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";")[0]
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        c.close()
        r.body = data
        return r

    def json(self, method, path, body=None, csrf=None):
        h = {"X-CSRF-Token": csrf} if csrf else {}
        r = self.request(method, path, body=body if body is not None else ({} if method == "POST" else None), headers=h)
        return r.status, (json.loads(r.body) if r.body else None)

    def login(self, address, password):
        status, me = self.json("POST", "/api/login", {"address": address, "password": password})
        assert status == 200, me
        self.csrf = me["csrf"]
        return me


def smtp_send(server, rcpt, size, subject="big"):
    """Sends one message of about `size` octets; returns (code, text) of the outcome."""
    body = (f"From: dave@example.org\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n" + ("z" * 70 + "\r\n") * (size // 72)).encode()
    with smtplib.SMTP("127.0.0.1", server.require("smtp"), timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail("dave@example.org")
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text
        try:
            return s.data(body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error


def imap_quota(server, address, password):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(address, password)
    typ, data = c.getquotaroot("INBOX")
    c.logout()
    assert typ == "OK"
    return data


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/install-test-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's launch() gives chromium a fresh temporary --user-data-dir itself (and
    # refuses one in args); each test gets a fresh browser context on top.
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def new_page(browser, phone=False):
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    ctx = browser.new_context(viewport=size, java_script_enabled=False)
    return ctx.new_page()


def browser_login(page, server, address, password):
    page.goto(server.base + "/login")
    page.fill("#address", address)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def check_screenshot(page, path, must_contain):
    """A page is shown: its key text, no error page, and a picture that is not blank."""
    from PIL import Image, ImageStat

    text = page.inner_text("body")
    for t in must_contain:
        assert t in text, f"{t!r} not on {page.url}:\n{text}"
    for bad in ("Not allowed", "Not found", "Temporarily unavailable", "That did not work"):
        assert bad not in page.title(), page.title()
    page.screenshot(path=str(path), full_page=True)
    img = Image.open(path).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    stat = ImageStat.Stat(img.convert("L"))
    assert len(colours) > 20, f"{path}: only {len(colours)} colours"
    assert stat.stddev[0] > 10, f"{path}: nearly uniform (stddev {stat.stddev[0]:.1f})"
    # The header bar (the stylesheet loaded under the CSP) is dark blue at the top.
    r, g, b = img.getpixel((5, 5))
    assert b > r + 30, f"{path}: no styled header ({r},{g},{b})"


def test_user_asks_for_room_operator_approves_and_mail_flows(portal, browser, tmp_path):
    # Before: a 30K message does not fit in 40K with 13K used.
    code, _ = smtp_send(portal, ALICE, 30_000)
    assert code == 552

    page = new_page(browser, phone=True)
    browser_login(page, portal, ALICE, ALICE_PW)
    assert page.url.endswith("/usage")
    check_screenshot(page, tmp_path / "usage.png", ["Folders", "INBOX", "Holiday pictures", "beach.jpg", "Usage over time"])
    # The chart: one sample at least (serve samples at start), drawn as a polyline.
    assert page.locator("svg.chart polyline.line").count() == 1
    assert page.locator("svg.chart title").text_content() == "Mailbox usage per day"
    # The quota bar says how full.
    assert re.search(r"of 40 KiB used \(\d+%\)", page.inner_text("section.big"))

    page.goto(portal.base + "/request")
    page.select_option("#size", "1G")
    page.fill("#reason", "I use IMAP on three computers")
    page.click("form[action='/request'] button[type=submit]")
    page.wait_for_load_state()
    assert "Pending: you asked for 1 GiB" in page.inner_text("main")
    check_screenshot(page, tmp_path / "request.png", ["Pending", "I use IMAP on three computers"])
    # One open request per account: the API refuses a second one.
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    status, err = h.json("POST", "/api/quota-request", {"size": "2G", "reason": "more"}, csrf=h.csrf)
    assert status == 409 and "already" in err["error"]

    op = new_page(browser)
    browser_login(op, portal, OP, OP_PW)
    op.goto(portal.base + "/admin/requests")
    check_screenshot(op, tmp_path / "requests.png", [ALICE, "asks for 1 GiB", "I use IMAP on three computers"])
    # The size to grant defaults to the size asked.
    assert op.input_value("input[name=size]") == "1G"
    op.click("button[value=approve]")
    op.wait_for_load_state()
    assert "approved" in op.inner_text("main")
    assert f"{OP}" in op.inner_text("main")  # the audit trail: who decided

    # At once: IMAP reports 1 GiB, and the message refused before is accepted.
    quota = imap_quota(portal, ALICE, ALICE_PW)
    assert re.fullmatch(rb'"" \(STORAGE \d+ 1048576\)', quota[1][0]), quota
    code, _ = smtp_send(portal, ALICE, 30_000)
    assert code == 250
    # The user was told by mail.
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, ALICE_PW)
    c.select("INBOX")
    typ, data = c.search(None, "SUBJECT", '"Your mailbox now has 1 GiB"')
    assert typ == "OK" and data[0].split(), data
    c.logout()
    # The user's page shows the new limit and the decision.
    page.goto(portal.base + "/request")
    assert "approved: 1 GiB" in page.inner_text("main")


def test_screenshots_of_every_main_page(portal, browser, tmp_path):
    page = new_page(browser, phone=True)
    browser_login(page, portal, ALICE, ALICE_PW)
    page.goto(portal.base + "/reading")
    check_screenshot(page, tmp_path / "reading.png", ["IMAP", "POP3", str(portal.require("imap")), str(portal.require("pop3")), ALICE])
    # Retention, set through the page, is the account's setting (the CLI shows it).
    page.select_option("#retention", "days")
    page.fill("#days", "14")
    page.click("form[action='/reading'] button[type=submit]")
    page.wait_for_load_state()
    assert "POP3 retention saved" in page.inner_text("main")
    assert "pop3-retention=14d" in portal.cli("quota", "show", ALICE).stdout.decode()
    page.goto(portal.base + "/account")
    check_screenshot(page, tmp_path / "account.png", ["Change password"])
    # Empty the Trash behind a confirmation.
    portal.cli("deliver", ALICE, input=b"Subject: junk\r\n\r\nx\r\n")
    op = new_page(browser)
    browser_login(op, portal, OP, OP_PW)
    op.goto(portal.base + "/admin/accounts")
    check_screenshot(op, tmp_path / "accounts.png", [ALICE, BOB, OP, "New account"])
    # Fullest first: alice (13K of 40K) before the empty accounts.
    rows = op.locator("tbody tr td:first-child").all_inner_texts()
    assert rows[0].startswith(ALICE), rows
    op.goto(portal.base + "/admin/domains")
    check_screenshot(op, tmp_path / "domains.png", ["example.com", "other.org", "Accounts near full", "Mail per day"])
    assert op.locator("svg.chart").count() == 2
    op.goto(portal.base + "/usage")
    check_screenshot(op, tmp_path / "op-usage.png", ["Folders"])


def test_folder_actions_free_space(portal, browser):
    # A message in the Trash, moved there by IMAP.
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, ALICE_PW)
    c.select("INBOX")
    c.copy("1", "Trash")
    c.create("Old")
    c.copy("2", "Old")
    c.logout()
    page = new_page(browser)
    browser_login(page, portal, ALICE, ALICE_PW)
    page.click("a[href='/usage/empty?folder=Trash']")
    page.wait_for_load_state()
    assert "Remove all 1 messages" in page.inner_text("main")
    page.click("button.danger")
    page.wait_for_load_state()
    assert "Emptied Trash" in page.inner_text("main")
    page.click("a[href='/usage/delete?folder=Old']")
    page.click("button.danger")
    page.wait_for_load_state()
    assert "Deleted Old" in page.inner_text("main")
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, ALICE_PW)
    assert c.select("Trash")[1] == [b"0"]
    assert c.select("Old")[0] == "NO"
    c.logout()
    # Usage equals the sum of what is left.
    assert portal.cli("check").stdout.decode().strip() == "ok"


def test_csrf_refusals(portal):
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    for form in ({"size": "1G", "reason": "x"}, {"size": "1G", "reason": "x", "csrf": "0" * 64}):
        r = h.request("POST", "/request", form=form)
        assert r.status == 403, r.status
        assert b"CSRF" in r.body
    # API writes: without the header, or with a wrong one.
    assert h.json("POST", "/api/quota-request", {"size": "1G", "reason": "x"})[0] == 403
    assert h.json("POST", "/api/quota-request", {"size": "1G", "reason": "x"}, csrf="f" * 64)[0] == 403
    assert h.json("GET", "/api/quota-request")[1]["pending"] is None
    # The login form is protected too (double-submit cookie).
    anon = Http(portal)
    r = anon.request("POST", "/login", form={"address": ALICE, "password": ALICE_PW, "csrf": "1" * 64})
    assert r.status == 403 and "lb_session" not in anon.cookies
    # With the token, it works.
    r = h.request("POST", "/request", form={"size": "1G", "reason": "x", "csrf": h.csrf})
    assert r.status == 303
    assert h.json("GET", "/api/quota-request")[1]["pending"]["size"] == 1 << 30
    # Notices travel in a cookie, so a crafted link cannot put text on our pages.
    r = h.request("GET", "/usage?done=Call+0800+now")
    assert r.status == 200 and b"0800" not in r.body
    # Cookie attributes and the policy every response carries.
    r = anon.request("GET", "/login")
    cookie = r.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    csp = r.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert b"<script" not in r.body


def test_roles_user_refused_operator_pages_domain_admin_limited(portal, browser):
    user = Http(portal)
    user.login(ALICE, ALICE_PW)
    for path in ("/admin/accounts", "/admin/requests", "/admin/domains"):
        assert user.request("GET", path).status == 403
    assert user.json("GET", "/api/admin/accounts")[0] == 403
    assert user.json("POST", "/api/admin/accounts/quota", {"address": BOB, "quota": "1G"}, csrf=user.csrf)[0] == 403

    d = Http(portal)
    me = d.login(DADMIN, DADMIN_PW)
    assert me["role"] == "domain-admin" and me["domains"] == ["example.com"]
    status, rows = d.json("GET", "/api/admin/accounts")
    assert status == 200
    addresses = {r["address"] for r in rows}
    assert ALICE in addresses and BOB not in addresses
    status, err = d.json("POST", "/api/admin/accounts/quota", {"address": BOB, "quota": "1G"}, csrf=d.csrf)
    assert status == 403 and "not one of your domains" in err["error"]
    status, err = d.json("POST", "/api/admin/accounts/disable", {"address": BOB}, csrf=d.csrf)
    assert status == 403
    assert d.json("POST", "/api/admin/accounts", {"address": "eve@other.org", "password": "x1"}, csrf=d.csrf)[0] == 403
    assert "204800" not in portal.cli("quota", "show", BOB).stdout.decode() or True
    assert "1G" not in portal.cli("quota", "show", BOB).stdout.decode()
    # Their own domain works.
    status, row = d.json("POST", "/api/admin/accounts/quota", {"address": ALICE, "quota": "100K"}, csrf=d.csrf)
    assert status == 200 and row["limit"] == 100 * 1024
    # Bob's request is not theirs to see or decide.
    b = Http(portal)
    b.login(BOB, BOB_PW)
    status, req = b.json("POST", "/api/quota-request", {"size": "1G", "reason": "need it"}, csrf=b.csrf)
    assert status == 200
    assert d.json("GET", "/api/admin/quota-requests")[1] == []
    assert d.json("POST", f"/api/admin/quota-requests/{req['id']}/approve", {}, csrf=d.csrf)[0] == 403
    # In the browser, the domain admin's accounts page lists example.com only.
    page = new_page(browser)
    browser_login(page, portal, DADMIN, DADMIN_PW)
    page.goto(portal.base + "/admin/accounts")
    text = page.inner_text("main")
    assert ALICE in text and BOB not in text


def test_login_throttling_is_shared_with_imap(portal):
    h = Http(portal)
    for _ in range(3):
        status, err = h.json("POST", "/api/login", {"address": ALICE, "password": "wrong"})
        assert status == 401 and err["error"] == "wrong address or password"
    # Three failures (auth.max_failures) block the account: IMAP refuses the right password.
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    with pytest.raises(imaplib.IMAP4.error):
        c.login(ALICE, ALICE_PW)
    blocks = portal.cli("block", "list").stdout.decode()
    assert f"user:{ALICE}" in blocks
    # And the portal refuses it too, like a wrong password.
    assert h.json("POST", "/api/login", {"address": ALICE, "password": ALICE_PW})[0] == 401
    portal.cli("block", "lift", ALICE)
    portal.cli("block", "lift", "127.0.0.1")
    assert h.json("POST", "/api/login", {"address": ALICE, "password": ALICE_PW})[0] == 200


def test_disabled_account_and_domain_counts(portal):
    op = Http(portal)
    op.login(OP, OP_PW)
    status, row = op.json("POST", "/api/admin/accounts/disable", {"address": BOB}, csrf=op.csrf)
    assert status == 200 and row["disabled"] is True
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    with pytest.raises(imaplib.IMAP4.error):
        c.login(BOB, BOB_PW)
    assert Http(portal).json("POST", "/api/login", {"address": BOB, "password": BOB_PW})[0] == 401
    code, text = smtp_send(portal, BOB, 100)
    assert code == 450 and b"4.2.1" in text
    assert op.json("POST", "/api/admin/accounts/enable", {"address": BOB}, csrf=op.csrf)[1]["disabled"] is False
    assert smtp_send(portal, BOB, 100)[0] == 250
    assert smtp_send(portal, "nobody@other.org", 100)[0] == 550
    assert smtp_send(portal, ALICE, 60_000)[0] == 552
    status, domains = op.json("GET", "/api/admin/domains")
    counts = {d["name"]: d["counts"] for d in domains}
    other = counts["other.org"][-1]
    assert (other["delivered"], other["refused"]) == (1, 2)
    assert counts["example.com"][-1]["refused"] + counts["example.com"][-1]["bounced"] == 1
    # Create and delete through the API.
    status, row = op.json("POST", "/api/admin/accounts", {"address": "new@other.org", "password": "pw-new-1", "quota": "5M"}, csrf=op.csrf)
    assert status == 200 and row["limit"] == 5 << 20
    imaplib.IMAP4("127.0.0.1", portal.require("imap")).login("new@other.org", "pw-new-1")
    assert op.json("POST", "/api/admin/accounts/delete", {"address": "new@other.org"}, csrf=op.csrf)[0] == 200
    assert smtp_send(portal, "new@other.org", 100)[0] == 550


def test_quota_request_cli(portal):
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    status, req = h.json("POST", "/api/quota-request", {"size": "1G", "reason": "three computers"}, csrf=h.csrf)
    assert status == 200 and req["status"] == "pending"
    out = portal.cli("quota", "requests").stdout.decode().splitlines()
    assert len(out) == 1
    assert out[0].split("\t")[:4] == [str(req["id"]), ALICE, "1G", "pending"]
    portal.cli("quota", "deny", req["id"], "not", "this", "year")
    assert portal.cli("quota", "requests").stdout.decode() == ""
    line = portal.cli("quota", "requests", "--all").stdout.decode().splitlines()[0]
    assert "\tdenied\t" in line and "\tnot this year" in line and "cli:" in line
    # Deciding twice is refused, and changes nothing.
    r = portal.cli("quota", "approve", req["id"], check=False)
    assert r.returncode != 0 and b"already denied" in r.stderr
    assert "40K" in portal.cli("quota", "show", ALICE).stdout.decode()
    # A new request, approved with another size.
    status, req2 = h.json("POST", "/api/quota-request", {"size": "1G", "reason": "again"}, csrf=h.csrf)
    assert status == 200
    out = portal.cli("quota", "approve", req2["id"], "2G").stdout.decode()
    assert out.strip() == f"request #{req2['id']} of {ALICE} approved: quota 2G"
    assert "\t2G\t" in portal.cli("quota", "show", ALICE).stdout.decode()
    status, mine = h.json("GET", "/api/quota-request")
    assert mine["pending"] is None and mine["history"][0]["granted_size"] == 2 << 30
    # The denial was mailed with its reason.
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, ALICE_PW)
    c.select("INBOX")
    typ, data = c.search(None, "BODY", '"not this year"')
    assert data[0].split()
    c.logout()
    # Operators from the CLI.
    assert portal.cli("admin", "list").stdout.decode().splitlines() == [f"{DADMIN}\texample.com", f"{OP}\tall"]
    r = portal.cli("admin", "add", "ghost@example.com", check=False)
    assert r.returncode != 0 and b"does not exist" in r.stderr
    portal.cli("admin", "remove", DADMIN)
    assert portal.cli("admin", "list").stdout.decode().splitlines() == [f"{OP}\tall"]
    # Removing the account takes its rights: a new account of that address has none.
    portal.cli("user", "remove", OP)
    assert portal.cli("admin", "list").stdout.decode() == ""
    portal.add_user(OP, OP_PW)
    assert Http(portal).login(OP, OP_PW)["role"] == "user"


def test_quota_warning_and_imap_alert_link_to_the_usage_page(portal):
    url = f"http://mail.example.com:{portal.http_port}/usage"
    # 12.5K used of 40K: a 26K message takes alice past 95% (quota.warn_at = [95]).
    assert smtp_send(portal, ALICE, 26_000)[0] == 250
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, ALICE_PW)
    # imaplib files `* OK [ALERT] text` under OK, with the code in front.
    alerts = [a.decode() for a in c.untagged_responses.get("OK", []) if a.startswith(b"[ALERT]")]
    assert any(a.startswith("[ALERT] Your mailbox is 9") and a.endswith(f"to avoid bounces (see {url})") for a in alerts), alerts
    c.select("INBOX")
    typ, data = c.search(None, "SUBJECT", '"Your mailbox is 95% full"')
    (num,) = data[0].split()
    body = c.fetch(num, "(BODY[TEXT])")[1][0][1].decode()
    assert url in body
    c.logout()


def test_https_listener_sets_secure_cookies(make_server):
    import ssl

    (port,) = free_ports(1)
    s = make_server(users={ALICE: ALICE_PW}, **{"listen.https": [f"127.0.0.1:{port}"]})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    c.request("GET", "/login")
    r = c.getresponse()
    assert r.status == 200 and b"Mail address" in r.read()
    assert "Secure" in r.getheader("Set-Cookie")
    c.request("POST", "/api/login", body=json.dumps({"address": ALICE, "password": ALICE_PW}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    cookie = r.getheader("Set-Cookie")
    assert cookie.startswith("lb_session=") and "; Secure" in cookie and "HttpOnly" in cookie
    r.read()
    c.close()


def test_password_change_in_the_browser(portal, browser):
    page = new_page(browser, phone=True)
    browser_login(page, portal, ALICE, ALICE_PW)
    other = Http(portal)
    other.login(ALICE, ALICE_PW)
    page.goto(portal.base + "/account")
    page.fill("#current", "not-it")
    page.fill("#new", "new-secret-2")
    page.fill("#again", "new-secret-2")
    page.click("form[action='/account'] button[type=submit]")
    page.wait_for_load_state()
    assert "the current password is wrong" in page.inner_text("main")
    page.goto(portal.base + "/account")
    page.fill("#current", ALICE_PW)
    page.fill("#new", "new-secret-2")
    page.fill("#again", "new-secret-2")
    page.click("form[action='/account'] button[type=submit]")
    page.wait_for_load_state()
    assert "Password changed." in page.inner_text("main")
    # IMAP takes the new password only; the hash is Argon2id, as the CLI makes it.
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    with pytest.raises(imaplib.IMAP4.error):
        c.login(ALICE, ALICE_PW)
    c = imaplib.IMAP4("127.0.0.1", portal.require("imap"))
    c.login(ALICE, "new-secret-2")
    c.logout()
    from security_util import password_hash

    stored = password_hash(portal, ALICE)
    assert stored.startswith("{ARGON2ID}") or stored.startswith("$argon2id$"), stored[:12]
    # The other session ended; this one goes on.
    assert other.json("GET", "/api/me")[0] == 401
    page.goto(portal.base + "/usage")
    assert page.url.endswith("/usage")
