"""SPF, DKIM and DMARC of received mail against a test DNS server (dnslib on loopback):
a message signed in the test with an independent signer (dkimpy) gets dkim=pass, the
same message altered dkim=fail; DMARC p=reject refuses, p=quarantine files in Junk; a
forged Authentication-Results with our authserv-id is removed."""

import base64
import re
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

dkim = pytest.importorskip("dkim", reason="dkimpy: scripts/install-test-deps")
from dnslib import QTYPE, RR, TXT  # noqa: E402
from dnslib.server import BaseResolver, DNSServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_util import smtp  # noqa: E402

ALICE = "alice@example.com"


class Zone(BaseResolver):
    def __init__(self, records):
        self.records = records  # name (no trailing dot) -> TXT text

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype in (QTYPE.TXT, QTYPE.ANY) and name in self.records:
            text = self.records[name].encode()
            chunks = [text[i:i + 255] for i in range(0, len(text), 255)]
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        elif not any(k == name or k.endswith("." + name) for k in self.records):
            reply.header.rcode = 3  # NXDOMAIN
        return reply


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    priv = d / "priv.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(priv), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(priv), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return priv.read_bytes(), base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def dns(keys):
    from conftest import free_port

    _, pub = keys
    zone = Zone({
        "remote.example": "v=spf1 ip4:127.0.0.1 -all",
        "sel._domainkey.remote.example": f"v=DKIM1; k=rsa; p={pub}",
        "_dmarc.remote.example": "v=DMARC1; p=reject",
        "forged.example": "v=spf1 ip4:192.0.2.1 -all",
        "_dmarc.forged.example": "v=DMARC1; p=reject",
        "dubious.example": "v=spf1 ip4:192.0.2.1 -all",
        "_dmarc.dubious.example": "v=DMARC1; p=quarantine",
    })
    port = free_port()
    servers = [DNSServer(zone, address="127.0.0.1", port=port, tcp=tcp) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    yield f"127.0.0.1:{port}"
    for s in servers:
        s.stop()


@pytest.fixture
def checked(make_server, dns):
    return make_server(**{"filter.check_auth": True, "filter.dns": dns})


def message(frm, subject, body="Lunch at noon?\r\n", extra=""):
    return (
        f"From: Carol <carol@{frm}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Date: Sun, 06 Dec 2026 19:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@{frm}>\r\n"
        f"{extra}\r\n{body}"
    ).encode()


def sign(keys, msg):
    priv, _ = keys
    sig = dkim.sign(msg, b"sel", b"remote.example", priv, include_headers=[b"from", b"to", b"subject", b"date"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def auth_results(m: bytes):
    """Our Authentication-Results field, unfolded."""
    head = m.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(r"(?ms)^Authentication-Results: (.*?)(?=\r\n\S|\Z)", head)
    return [re.sub(r"\s+", " ", f) for f in fields]


def stored(server, mailbox="INBOX"):
    return [server.message(ALICE, mailbox, u) for u in server.uids(ALICE, mailbox)]


def test_dkim_pass_and_fail_with_dkimpy_signature(checked, keys):
    signed = sign(keys, message("remote.example", "signed"))
    altered = signed.replace(b"Lunch at noon?", b"Lunch at one?")
    altered_header = signed.replace(b"Subject: signed", b"Subject: signed!")
    with smtp(checked) as s:
        s.sendmail("carol@remote.example", [ALICE], signed)
        s.sendmail("carol@remote.example", [ALICE], altered)
        s.sendmail("carol@remote.example", [ALICE], altered_header)
    good, bad, bad_header = stored(checked)
    (ar,) = auth_results(good)
    assert ar.startswith("mail.example.com; spf=pass"), ar
    assert "smtp.mailfrom=carol@remote.example" in ar
    assert re.search(r"dkim=pass header\.i=@remote\.example header\.s=sel header\.b=", ar), ar
    assert "dmarc=pass header.from=remote.example policy.dmarc=reject" in ar
    (ar,) = auth_results(bad)
    assert "dkim=fail (body hash did not verify) header.i=@remote.example header.s=sel" in ar, ar
    (ar2,) = auth_results(bad_header)
    assert re.search(r"dkim=fail \([^)]*\) header\.i=@remote\.example header\.s=sel", ar2), ar2
    # SPF still passes and is aligned: DMARC passes, so the altered copy is delivered.
    assert "dmarc=pass" in ar
    # The stored message is the signed one, byte for byte, below our headers.
    assert good.endswith(signed)


def test_dmarc_reject_and_quarantine(checked):
    with smtp(checked) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@forged.example", [ALICE], message("forged.example", "forged"))
        assert e.value.smtp_code == 550
        assert e.value.smtp_error == b"5.7.1 Message rejected: DMARC policy of forged.example (RFC 7489)"
        s.sendmail("carol@dubious.example", [ALICE], message("dubious.example", "dubious"))
    assert checked.uids(ALICE) == []
    (m,) = stored(checked, "Junk")
    (ar,) = auth_results(m)
    assert "spf=fail" in ar and "dmarc=fail" in ar and "policy.dmarc=quarantine" in ar, ar


def test_dmarc_report_only(make_server, dns):
    s = make_server(**{"filter.check_auth": True, "filter.dns": dns, "filter.dmarc_reject": "report"})
    with smtp(s) as c:
        c.sendmail("carol@forged.example", [ALICE], message("forged.example", "forged"))
    (m,) = stored(s)
    assert "dmarc=fail" in auth_results(m)[0]


def test_forged_authentication_results_removed(checked, keys):
    forged = message(
        "remote.example",
        "forged results",
        extra="Authentication-Results: mail.example.com; dkim=pass header.d=bank.example\r\n"
        "Authentication-Results: relay.example.net; spf=pass\r\n",
    )
    with smtp(checked) as s:
        s.sendmail("carol@remote.example", [ALICE], forged)
    (m,) = stored(checked)
    ars = auth_results(m)
    assert len(ars) == 2, ars
    assert ars[0].startswith("mail.example.com; spf=pass")
    assert ars[1] == "relay.example.net; spf=pass"
    assert b"bank.example" not in m
    assert "removed a forged Authentication-Results header" in checked.read_log()
