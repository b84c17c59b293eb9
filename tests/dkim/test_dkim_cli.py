"""`letterbox domain dkim` and `letterbox domain dns` through the real binary; the
signatures it makes checked by dkimpy, an independent verifier, against the TXT
records it printed."""

import sys
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dkim_util import txt_records, verify_all  # noqa: E402

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@remote.example>\r\n"
    b"Subject: DKIM test\r\n"
    b"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <dkim-test-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"this message is signed.\r\n"
)


@pytest.fixture
def lb(make_server):
    return make_server(start=False)


def sign(lb, message=MESSAGE, domain="example.com"):
    return lb.cli("domain", "dkim", domain, "--sign", input=message).stdout


def test_keys_records_and_dkimpy_verifies_both_algorithms(lb):
    out = lb.cli("domain", "dkim", "example.com").stdout.decode()
    records = txt_records(out)
    names = sorted(records)
    assert len(names) == 2, out
    stem = names[0].split("._domainkey.")[0][:-1]
    assert stem.startswith("lb20") and len(stem) == len("lb20261206"), names
    assert names == [f"{stem}e._domainkey.example.com.", f"{stem}r._domainkey.example.com."]
    assert records[names[0]].startswith("v=DKIM1; k=ed25519; p=")
    assert records[names[1]].startswith("v=DKIM1; k=rsa; p=MIIBIjAN")
    # Asking again makes no new keys and prints the same records.
    again = lb.cli("domain", "dkim", "example.com").stdout.decode()
    assert txt_records(again) == records
    listed = [l.split("\t") for l in lb.cli("domain", "dkim", "example.com", "--list").stdout.decode().splitlines()]
    assert [(l[0], l[1], l[2]) for l in listed] == [
        (f"{stem}e", "ed25519", "active"),
        (f"{stem}r", "rsa", "active"),
    ]

    signed = sign(lb)
    assert signed.endswith(MESSAGE)
    assert verify_all(signed, records) == [
        (f"{stem}e", "ed25519-sha256", True),
        (f"{stem}r", "rsa-sha256", True),
    ]
    # An altered body or header fails both.
    for altered in (
        signed.replace(b"this message is signed", b"this message is altered"),
        signed.replace(b"Subject: DKIM test", b"Subject: DKIM test!"),
        signed.replace(b"To: Bob", b"From: mallory@evil.example\r\nTo: Bob"),
    ):
        assert [ok for (_, _, ok) in verify_all(altered, records)] == [False, False]
    # Records of another key do not verify it either.
    other = {n: v for n, v in records.items()}
    other[names[0]], other[names[1]] = records[names[1]], records[names[0]]
    assert [ok for (_, _, ok) in verify_all(signed, other)] == [False, False]


def test_rotation_without_gap(lb):
    first = txt_records(lb.cli("domain", "dkim", "example.com").stdout.decode())
    old_signed = sign(lb)
    out = lb.cli("domain", "dkim", "example.com", "--rotate").stdout.decode()
    new = txt_records(out)
    assert len(new) == 2 and not set(new) & set(first), out
    new_stem = sorted(new)[0].split("._domainkey.")[0][:-1]
    assert f"--activate {new_stem}" in out
    # Published, not signing yet: mail is still signed with the old pair only.
    during = sign(lb)
    assert [s for (s, _, _) in verify_all(during, first)] == [sorted(first)[0].split(".")[0], sorted(first)[1].split(".")[0]]
    states = {l.split("\t")[0]: l.split("\t")[2] for l in lb.cli("domain", "dkim", "example.com", "--list").stdout.decode().splitlines()}
    assert sorted(states.values()) == ["active", "active", "published", "published"]

    out = lb.cli("domain", "dkim", "example.com", "--activate", f"{new_stem}e").stdout.decode()
    assert "Retired" in out and "a few days" in out, out
    after = sign(lb)
    overlap = {**first, **new}
    assert verify_all(after, overlap) == [
        (f"{new_stem}e", "ed25519-sha256", True),
        (f"{new_stem}r", "rsa-sha256", True),
    ]
    # During the overlap both the old and the new records verify what they signed.
    assert all(ok for (_, _, ok) in verify_all(old_signed, overlap))
    states = {l.split("\t")[0]: l.split("\t")[2] for l in lb.cli("domain", "dkim", "example.com", "--list").stdout.decode().splitlines()}
    assert sorted(states.values()) == ["active", "active", "retired", "retired"]
    # A retired pair cannot come back.
    old_stem = sorted(first)[0].split("._domainkey.")[0][:-1]
    r = lb.cli("domain", "dkim", "example.com", "--activate", old_stem, check=False)
    assert r.returncode == 1 and b"retired" in r.stderr


def test_unknown_domain_and_foreign_from(lb):
    for args in (["domain", "dkim", "nowhere.example"], ["domain", "dns", "nowhere.example"],
                 ["domain", "dkim", "nowhere.example", "--list"]):
        r = lb.cli(*args, check=False)
        assert r.returncode == 1, r
        assert r.stderr.decode() == "letterbox: domain nowhere.example does not exist\n"
    lb.cli("domain", "dkim", "example.com")
    r = lb.cli("domain", "dkim", "example.com", "--sign", input=MESSAGE.replace(b"alice@example.com", b"alice@other.example"), check=False)
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1
    r = lb.cli("domain", "dkim", "example.com", "--activate", "lb19990101", check=False)
    assert r.returncode == 1 and b"no DKIM key" in r.stderr


def test_dns_records(make_server):
    lb = make_server(start=False, **{"listen.pop3": [], "listen.pop3s": []})
    out = lb.cli("domain", "dns", "example.com").stdout.decode()
    assert "no DKIM key yet" in out
    lb.cli("domain", "dkim", "example.com")
    out = lb.cli("domain", "dns", "example.com").stdout.decode()
    # The output is a valid zone file (dnspython parses it).
    zone = dns.zone.from_text(out, origin="example.com.", check_origin=False, relativize=False)

    def rr(name, rdtype):
        node = zone.get_node(name)
        assert node is not None, f"{name} missing:\n{out}"
        return [r.to_text() for r in node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)) or []]

    assert rr("example.com.", "MX") == ["10 mail.example.com."]
    txt = rr("example.com.", "TXT")
    assert txt == ['"v=spf1 mx -all"']
    assert rr("_dmarc.example.com.", "TXT")[0].startswith('"v=DMARC1; p=quarantine;')
    assert rr("_mta-sts.example.com.", "TXT")[0].startswith('"v=STSv1; id=')
    assert rr("mta-sts.example.com.", "CNAME") == ["mail.example.com."]
    assert "mx: mail.example.com" in out and "mode: testing" in out
    assert rr("_smtp._tls.example.com.", "TXT") == ['"v=TLSRPTv1; rua=mailto:postmaster@example.com"']
    for svc in ("submission", "submissions", "imap", "imaps"):
        assert rr(f"_{svc}._tcp.example.com.", "SRV") == [f"0 1 {lb.ports[svc]} mail.example.com."]
    # Listeners that are not configured get no SRV record.
    assert zone.get_node("_pop3._tcp.example.com.") is None
    assert zone.get_node("_pop3s._tcp.example.com.") is None
    assert rr("autoconfig.example.com.", "CNAME") == ["mail.example.com."]
    assert rr("autodiscover.example.com.", "CNAME") == ["mail.example.com."]
    # The DKIM records are those `domain dkim` printed.
    dkim_records = txt_records(lb.cli("domain", "dkim", "example.com").stdout.decode())
    for name, value in dkim_records.items():
        got = "".join(s.strip('"') for s in rr(name, "TXT")[0].split('" "'))
        assert got == value
