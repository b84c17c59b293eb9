"""DANE for outbound SMTP (RFC 7672), end to end: a DNS server that answers like a
validating resolver (the AD bit set for signed names), TLSA records for the MX hosts, and
aiosmtpd MX hosts whose certificates match or do not match them.

- a DANE-EE(3) record matching a self-signed certificate: sent, over TLS;
- a DANE-TA(2) record matching the CA that issued the MX's certificate: sent, over TLS;
- a TLSA record the certificate does not match: deferred, never sent (not in plaintext
  either); the entry stays queued with a reason naming DANE, and no DSN is sent;
- a matching TLSA record but an MX that offers no STARTTLS: deferred, never in plaintext;
- the same mismatching records without the AD bit (not validated), under an MX RRset
  that is not validated, or for an MX host whose address is not validated (RFC 7672
  2.2.2): DANE does not apply and the message goes by opportunistic TLS.
"""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_outbound import (ALICE, message, net, outbound_server, queue_ids,  # noqa: E402,F401
                           submit, wait_for)


def der_sha256(cert, spki):
    """SHA2-256 of a PEM certificate's DER (selector 0) or of its SubjectPublicKeyInfo
    (selector 1), computed by openssl."""
    if spki:
        pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                             check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             check=True, capture_output=True).stdout
    else:
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
    import hashlib
    return hashlib.sha256(der).digest()


def dane_domain(net, n, domain, cert=None, tlsa=None, sign_mx=True, sign_tlsa=True, sign_host=True):
    """One destination: MX mx.DOMAIN at address n, a sink (STARTTLS with `cert` when
    given), TLSA records `tlsa` [(usage, selector, matching, data)] at _PORT._tcp.mx.DOMAIN."""
    mxname = f"mx.{domain}"
    net.mx(domain, (10, mxname, net.ip(n)))
    tlsa_name = f"_{net.port}._tcp.{mxname}"
    for rec in tlsa or []:
        net.dns.add(tlsa_name, "TLSA", rec)
    if sign_mx:
        net.dns.sign(domain)
    if sign_host:
        net.dns.sign(mxname)
    if sign_tlsa:
        net.dns.sign(tlsa_name)
    return net.sink(n, tls_cert=cert, hostname=mxname)


def test_dane_matching_certificates_are_used(make_server, net):
    pki = net.pki
    ee_cert = pki.leaf("mx.dane-ee.test", trusted=False)  # self-signed: only DANE vouches for it
    ee = dane_domain(net, 11, "dane-ee.test", ee_cert,
                     [(3, 1, 1, der_sha256(ee_cert[0], spki=True))])
    ta_leaf, ta_key = pki.leaf("mx.dane-ta.test", trusted=True)
    chain = Path(ta_leaf).with_suffix(".chain.pem")
    chain.write_bytes(Path(ta_leaf).read_bytes() + Path(pki.ca_cert).read_bytes())
    ta = dane_domain(net, 12, "dane-ta.test", (str(chain), ta_key),
                     [(2, 0, 1, der_sha256(str(pki.ca_cert), spki=False))])
    # The test CA is NOT given to Letterbox as a trust root: DANE-TA alone anchors it.
    server = outbound_server(make_server, net)
    submit(server, ["x@dane-ee.test"], message("dane ee", to="x@dane-ee.test"))
    submit(server, ["y@dane-ta.test"], message("dane ta", to="y@dane-ta.test"))
    [t1] = ee.wait(1)
    [t2] = ta.wait(1)
    assert t1.tls and t1.rcpts == ["x@dane-ee.test"]
    assert t2.tls and t2.rcpts == ["y@dane-ta.test"]
    assert t1.data.endswith(message("dane ee", to="x@dane-ee.test"))
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")


def test_dane_mismatch_or_no_tls_defers_and_never_falls_back(make_server, net):
    pki = net.pki
    cert = pki.leaf("mx.mismatch.test", trusted=False)
    other = pki.leaf("mx.other.test", trusted=False)
    wrong = [(3, 1, 1, der_sha256(other[0], spki=True))]  # another key's hash
    mismatch = dane_domain(net, 21, "mismatch.test", cert, wrong)
    notls = dane_domain(net, 22, "notls.test", None,  # no STARTTLS offered at all
                        [(3, 1, 1, der_sha256(cert[0], spki=True))])
    # The same wrong records, but not validated: DANE must not apply.
    cert3 = pki.leaf("mx.unsigned.test", trusted=False)
    unsigned = dane_domain(net, 23, "unsigned.test", cert3,
                           [(3, 1, 1, der_sha256(other[0], spki=True))], sign_tlsa=False)
    cert4 = pki.leaf("mx.insecure-mx.test", trusted=False)
    insecure_mx = dane_domain(net, 24, "insecure-mx.test", cert4,
                              [(3, 1, 1, der_sha256(other[0], spki=True))], sign_mx=False)
    # Secure MX and TLSA, but the MX host's address is not validated (RFC 7672 2.2.2).
    cert5 = pki.leaf("mx.insecure-a.test", trusted=False)
    insecure_a = dane_domain(net, 25, "insecure-a.test", cert5,
                             [(3, 1, 1, der_sha256(other[0], spki=True))], sign_host=False)
    server = outbound_server(make_server, net)
    submit(server, ["e@insecure-a.test"], message("insecure a", to="e@insecure-a.test"))
    submit(server, ["a@mismatch.test"], message("mismatch", to="a@mismatch.test"))
    submit(server, ["b@notls.test"], message("no tls", to="b@notls.test"))
    submit(server, ["c@unsigned.test"], message("unsigned", to="c@unsigned.test"))
    submit(server, ["d@insecure-mx.test"], message("insecure mx", to="d@insecure-mx.test"))
    [u] = unsigned.wait(1)
    [i] = insecure_mx.wait(1)
    [ia] = insecure_a.wait(1)
    assert u.tls and i.tls and ia.tls
    log = wait_for(lambda: (lambda l: l if "matches none of its TLSA records" in l
                            and "DANE TLSA records (RFC 7672) require TLS" in l else None)(server.read_log()),
                   what="both DANE refusals in the log")
    # Several retries later (backoff 1-2 s) still nothing was sent to either host.
    time.sleep(5)
    assert mismatch.received == [] and notls.received == []
    ids = queue_ids(server)
    assert len(ids) == 2
    shown = "\n".join(server.cli("queue", "show", i).stdout.decode() for i in ids)
    assert "a@mismatch.test" in shown and "b@notls.test" in shown
    assert "DANE" in shown
    # Deferred, not bounced: no DSN in the sender's INBOX.
    assert not any(server.message(ALICE, "INBOX", uid).startswith(b"Return-Path: <>\r\n")
                   for uid in server.uids(ALICE))
    assert "Hello." not in log  # message contents never logged
