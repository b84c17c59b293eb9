"""Client autoconfiguration (issue 14) from the live listener configuration: Thunderbird's
config-v1.1.xml (both URLs), Microsoft Autodiscover (POX 2006/2006a), Apple's
.mobileconfig (parsed by plistlib) for a logged-in user. The ports advertised are exactly
the configured listeners; a disabled listener (pop3 here) is absent."""

import plistlib
import xml.etree.ElementTree as ET

import pytest

from ops_util import Http, start, web_server

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
REQ_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESP_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@pytest.fixture
def srv(make_server):
    # POP3 without TLS disabled: it must appear nowhere.
    s = web_server(make_server, **{"listen.pop3": []})
    s.ports.pop("pop3")
    return start(s)


def expected(s):
    """(type, port, socketType) per configured listener, in order of preference."""
    p = s.ports
    return {
        "incoming": [("imap", p["imaps"], "SSL"), ("imap", p["imap"], "STARTTLS"), ("pop3", p["pop3s"], "SSL")],
        "outgoing": [("smtp", p["submissions"], "SSL"), ("smtp", p["submission"], "STARTTLS")],
    }


def thunderbird_servers(xml):
    root = ET.fromstring(xml)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.com"
    assert [d.text for d in provider.findall("domain")] == ["example.com"]
    out = {}
    for kind in ("incoming", "outgoing"):
        servers = provider.findall(f"{kind}Server")
        for srv_el in servers:
            assert srv_el.findtext("hostname") == "mail.example.com"
            assert srv_el.findtext("authentication") == "password-cleartext"
            assert srv_el.findtext("username") == "%EMAILADDRESS%"
        out[kind] = [(e.get("type"), int(e.findtext("port")), e.findtext("socketType")) for e in servers]
    return out


def test_thunderbird_autoconfig(srv):
    h = Http(srv)
    r = h.request("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.com", headers={"Host": "autoconfig.example.com"})
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/xml; charset=utf-8"
    assert thunderbird_servers(r.body) == expected(srv)
    assert b'type="pop3"' in r.body and b"STARTTLS</socketType>" in r.body
    # The well-known URL, asked of the domain itself, without an address.
    r = h.request("GET", "/.well-known/autoconfig/mail/config-v1.1.xml", headers={"Host": "example.com"})
    assert r.status == 200
    assert thunderbird_servers(r.body) == expected(srv)
    # Not one of our domains: nothing to say.
    r = h.request("GET", "/mail/config-v1.1.xml?emailaddress=x%40elsewhere.org", headers={"Host": "autoconfig.elsewhere.org"})
    assert (r.status, r.body) == (404, b"no mail domain of this server\n")


def test_autoconfig_follows_mail_host_and_listeners(make_server):
    s = web_server(
        make_server,
        **{"web.mail_host": "imap.example.net", "listen.imaps": [], "listen.pop3s": [], "listen.submissions": []},
    )
    for p in ("imaps", "pop3s", "submissions"):
        s.ports.pop(p)
    start(s)
    r = Http(s).request("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.com")
    root = ET.fromstring(r.body)
    got = [(e.tag, e.get("type"), int(e.findtext("port")), e.findtext("socketType"), e.findtext("hostname"))
           for e in root.find("emailProvider") if e.tag.endswith("Server")]
    assert got == [
        ("incomingServer", "imap", s.ports["imap"], "STARTTLS", "imap.example.net"),
        ("incomingServer", "pop3", s.ports["pop3"], "STARTTLS", "imap.example.net"),
        ("outgoingServer", "smtp", s.ports["submission"], "STARTTLS", "imap.example.net"),
    ]


def autodiscover(h, email, schema=OUTLOOK_NS, path="/autodiscover/autodiscover.xml"):
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{REQ_NS}">\n <Request>\n'
        f"  <EMailAddress>{email}</EMailAddress>\n"
        f"  <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>\n </Request>\n</Autodiscover>\n"
    ).encode()
    r = h.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/xml; charset=utf-8"
    root = ET.fromstring(r.body)
    assert root.tag == f"{{{RESP_NS}}}Autodiscover"
    return root


def test_autodiscover_pox(srv):
    h = Http(srv)
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        root = autodiscover(h, "Alice@Example.com", path=path)
        account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
        q = lambda e, t: e.findtext(f"{{{OUTLOOK_NS}}}{t}")
        assert q(account, "AccountType") == "email" and q(account, "Action") == "settings"
        protocols = account.findall(f"{{{OUTLOOK_NS}}}Protocol")
        got = [(q(p, "Type"), int(q(p, "Port")), q(p, "Encryption")) for p in protocols]
        p = srv.ports
        assert got == [
            ("IMAP", p["imaps"], "SSL"),
            ("IMAP", p["imap"], "TLS"),
            ("POP3", p["pop3s"], "SSL"),
            ("SMTP", p["submissions"], "SSL"),
            ("SMTP", p["submission"], "TLS"),
        ]
        for pr in protocols:
            assert q(pr, "Server") == "mail.example.com"
            assert q(pr, "LoginName") == "alice@example.com"
            assert (q(pr, "SSL"), q(pr, "SPA"), q(pr, "AuthRequired"), q(pr, "DomainRequired")) == ("on", "off", "on", "off")

    def error(root):
        e = root.find(f"{{{RESP_NS}}}Response/{{{RESP_NS}}}Error")
        return e.findtext(f"{{{RESP_NS}}}ErrorCode"), e.findtext(f"{{{RESP_NS}}}Message")

    assert error(autodiscover(h, "x@elsewhere.org")) == ("600", "Invalid Request")
    mobilesync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
    assert error(autodiscover(h, ALICE, schema=mobilesync)) == ("601", "Requested schema version not supported")
    r = h.request("POST", "/autodiscover/autodiscover.xml", body=b"<Autodiscover><Request>", headers={"Content-Type": "text/xml"})
    assert error(ET.fromstring(r.body)) == ("600", "Invalid Request")


def test_mobileconfig_for_logged_in_user(srv):
    h = Http(srv)
    r = h.request("GET", "/settings/mail.mobileconfig")
    assert (r.status, r.getheader("Location")) == (303, "/login")
    h.login(ALICE, ALICE_PW)
    r = h.request("GET", "/settings/mail.mobileconfig")
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/x-apple-aspen-config"
    assert r.getheader("Content-Disposition") == 'attachment; filename="example.com.mobileconfig"'
    profile = plistlib.loads(r.body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAddress"] == ALICE
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"], mail["IncomingMailServerUseSSL"]) == (
        "mail.example.com",
        srv.ports["imaps"],
        True,
    )
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"]) == (
        "mail.example.com",
        srv.ports["submissions"],
        True,
    )
    assert mail["IncomingMailServerUsername"] == mail["OutgoingMailServerUsername"] == ALICE
    assert "IncomingPassword" not in mail and ALICE_PW.encode() not in r.body
    # The same profile identity each time, so a second download replaces the first.
    again = plistlib.loads(h.request("GET", "/settings/mail.mobileconfig").body)
    assert again["PayloadUUID"] == profile["PayloadUUID"]
