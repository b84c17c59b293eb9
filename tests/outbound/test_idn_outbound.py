"""Outbound mail to internationalised domains end to end: submission, the queue, the
SMTP client, a remote MX (aiosmtpd, net.py) found through a DNS server that knows only
A-labels. RFC 5890/5891 (IDNA2008): the MX/A lookups and RCPT TO use the A-label, so a
server without SMTPUTF8 never sees UTF-8 in a domain; recipients given as U-label and
as A-label are one destination, one transaction. RFC 6531 3.2: a non-ASCII local part
to a server without SMTPUTF8 bounces with a DSN saying why, and is never sent; with an
SMTPUTF8 server MAIL FROM carries SMTPUTF8. The DSN text names the recipient as the
sender gave it. An invalid name is refused at RCPT (553 5.1.3), nothing queued. DKIM
for a U-label From domain signs with d= its A-label (RFC 6376, RFC 8616)."""

import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_outbound import (ALICE, ALICE_PW, dsn_parts, inbox_dsn, net,  # noqa: E402,F401
                           outbound_server, queue_ids, wait_for)

U, A = "bücher.example", "xn--bcher-kva.example"


def send(server, rcpts, msg, mail_options=("SMTPUTF8",), sender=ALICE, login=(ALICE, ALICE_PW)):
    """One submission transaction; every RCPT must be accepted."""
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(*login)
        code, text = c.mail(sender, list(mail_options))
        assert code == 250, text
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(msg)
        assert code == 250, text


def ascii_message(subject):
    return (f"From: Alice <{ALICE}>\r\nTo: undisclosed-recipients:;\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nHallo.\r\n").encode()


def test_u_label_and_a_label_one_transaction_a_labels_on_the_wire(make_server, net):
    """The DNS knows only the A-label; the server offers no SMTPUTF8. Recipients given
    as U-label (any case) and as A-label go in one transaction, every RCPT TO with the
    A-label, MAIL FROM without SMTPUTF8 (nothing in the message needs it)."""
    net.mx(A, (10, f"mx.{A}", net.ip(11)))
    sink = net.sink(11, smtputf8=False)
    server = outbound_server(make_server, net)
    msg = ascii_message("idn one transaction")
    # Held first, to see the entry: each recipient as the sender gave it.
    server.cli("user", "set", ALICE, "outbound", "hold")
    send(server, [f"user@{U}", f"other@{A}", "Third@BÜCHER.example"], msg)
    [qid] = queue_ids(server)
    shown = server.cli("queue", "show", qid).stdout.decode()
    for r in [f"user@{U}", f"other@{A}", "Third@BÜCHER.example"]:
        assert f"rcpt: <{r}>\tpending" in shown, shown
    server.cli("queue", "release", qid)
    [t] = sink.wait(1)
    assert t.sender == ALICE
    assert t.rcpts == [f"user@{A}", f"other@{A}", f"Third@{A}"]
    assert "SMTPUTF8" not in t.mail_options
    assert t.data.endswith(msg)
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    # Nothing bounced: the sender's INBOX is empty.
    assert server.uids(ALICE) == []


def test_utf8_mailbox_without_smtputf8_bounces_alone_with_reason(make_server, net):
    """A non-ASCII local part cannot reach a server without SMTPUTF8: that recipient
    bounces (553 5.6.7, the DSN names it as given), the ASCII one on the same domain is
    delivered; the refused address is never sent."""
    net.mx(A, (10, f"mx.{A}", net.ip(21)))
    sink = net.sink(21, smtputf8=False)
    server = outbound_server(make_server, net)
    send(server, [f"jösé@{U}", f"plain@{U}"], ascii_message("idn partial"))
    [t] = sink.wait(1)
    assert t.rcpts == [f"plain@{A}"] and "SMTPUTF8" not in t.mail_options
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Action"] == "failed" and r["Status"] == "5.6.7"
    # RFC 6533: the sent form (A-label domain) in the 7-bit utf-8-addr-xtext form.
    assert r["Final-Recipient"] == f"utf-8; j\\x{{F6}}s\\x{{E9}}@{A}"
    # The status part is 7-bit: the reason's UTF-8 as RFC 5137 escapes there...
    assert r["Diagnostic-Code"] == (
        "smtp; 553 5.6.7 The recipient's mailbox name <j\\x{F6}s\\x{E9}@b\\x{FC}cher.example> "
        "is not ASCII and the remote server does not offer SMTPUTF8 (RFC 6531 3.2); it was not sent")
    # ...and the text names the recipient as the sender gave it.
    text = parts[0].get_payload(decode=True).decode()
    assert (f"<jösé@{U}>: 553 5.6.7 The recipient's mailbox name <jösé@{U}> is not ASCII and the "
            "remote server does not offer SMTPUTF8 (RFC 6531 3.2); it was not sent") in text
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert len(sink.received) == 1


def test_utf8_header_without_smtputf8_bounces_whole_message(make_server, net):
    """UTF-8 in the header (RFC 6532) needs SMTPUTF8 too: without it at the server the
    message bounces for every recipient, nothing sent; the DSN names them as given."""
    net.mx(A, (10, f"mx.{A}", net.ip(31)))
    sink = net.sink(31, smtputf8=False)
    server = outbound_server(make_server, net)
    msg = (f"From: Alice <{ALICE}>\r\nTo: <user@{U}>\r\nSubject: header\r\n"
           "Message-ID: <idn-header@example.com>\r\n\r\nHallo.\r\n").encode()
    send(server, [f"user@{U}"], msg, ["SMTPUTF8", "BODY=8BITMIME"])
    raw, dsn = inbox_dsn(server)
    parts, _, [r] = dsn_parts(dsn)
    assert r["Status"] == "5.6.7"
    assert r["Final-Recipient"] == f"rfc822; user@{A}"
    assert "its header has UTF-8 (RFC 6532)" in r["Diagnostic-Code"]
    assert f"<user@{U}>: 553 5.6.7 The message needs SMTPUTF8" in parts[0].get_payload(decode=True).decode()
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert sink.received == []


def test_smtputf8_server_gets_smtputf8_and_the_a_label(make_server, net):
    """With an SMTPUTF8 server: MAIL FROM carries SMTPUTF8, the UTF-8 local part goes as
    it is, the domain as its A-label, and the message unchanged."""
    net.mx(A, (10, f"mx.{A}", net.ip(41)))
    sink = net.sink(41, smtputf8=True)
    server = outbound_server(make_server, net)
    msg = (f"From: Alice <{ALICE}>\r\nTo: <jösé@{U}>\r\nSubject: utf8\r\n"
           "Message-ID: <idn-utf8@example.com>\r\n\r\nHallo.\r\n").encode()
    send(server, [f"jösé@{U}"], msg, ["SMTPUTF8", "BODY=8BITMIME"])
    [t] = sink.wait(1)
    assert t.rcpts == [f"jösé@{A}"]
    assert "SMTPUTF8" in t.mail_options and "BODY=8BITMIME" in t.mail_options
    assert t.data.endswith(msg)
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert server.uids(ALICE) == []


def test_invalid_idn_refused_at_rcpt_nothing_queued(make_server, net):
    """A domain IDNA refuses gets 553 5.1.3 at RCPT and is not kept: the message that
    follows is queued for the valid recipient only."""
    net.mx(A, (10, f"mx.{A}", net.ip(61)))
    sink = net.sink(61)
    server = outbound_server(make_server, net)
    with smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30) as c:
        c.ehlo("client.example.org")
        c.login(ALICE, ALICE_PW)
        assert c.mail(ALICE, ["SMTPUTF8"])[0] == 250
        # Not valid Punycode; a code point IDNA disallows (U+2488, "1." as one character).
        for bad in ["x@xn--a.example", "x@a\u2488b.example"]:
            code, text = c.rcpt(bad)
            assert (code, text) == (553, b"5.1.3 Bad recipient address syntax: invalid internationalized domain name"), bad
        assert queue_ids(server) == []
        assert c.rcpt(f"ok@{U}")[0] == 250
        assert c.data(ascii_message("idn invalid"))[0] == 250
    [t] = sink.wait(1)
    assert t.rcpts == [f"ok@{A}"]
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert server.uids(ALICE) == []


def test_dkim_for_u_label_from_domain_signs_with_a_label(make_server, net):
    """A local domain added as U-label, a From in UTF-8 (RFC 6532): the message leaves
    signed d=<A-label> by that domain's keys, and dkimpy verifies both signatures."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "dkim"))
    from dkim_util import txt_records, verify_all
    net.mx("remote.test", (10, "mx.remote.test", net.ip(51)))
    sink = net.sink(51, smtputf8=True)
    server = outbound_server(make_server, net, start=False)
    server.cli("domain", "add", "exämple.org")
    server.add_user("ann@exämple.org", "ann-Secret-1")
    server.start()
    records = txt_records(server.cli("domain", "dkim", "exämple.org").stdout.decode())
    assert records and all(n.endswith("._domainkey.xn--exmple-cua.org.") for n in records), records
    msg = ("From: Ann <ann@exämple.org>\r\nTo: <x@remote.test>\r\nSubject: signed\r\n"
           "Message-ID: <idn-dkim@xn--exmple-cua.org>\r\n\r\nHallo.\r\n").encode()
    send(server, ["x@remote.test"], msg, ["SMTPUTF8", "BODY=8BITMIME"],
         sender="ann@exämple.org", login=("ann@xn--exmple-cua.org", "ann-Secret-1"))
    [t] = sink.wait(1)
    assert t.data.startswith(b"DKIM-Signature: ")
    sigs = [l for l in t.data.split(b"\r\n") if l.startswith(b"DKIM-Signature:")]
    assert len(sigs) == 2 and all(b" d=xn--exmple-cua.org;" in s for s in sigs), sigs
    assert t.sender == "ann@xn--exmple-cua.org"
    results = verify_all(t.data, records)
    assert sorted(a for _, a, _ in results) == ["ed25519-sha256", "rsa-sha256"], results
    assert all(ok for _, _, ok in results), results


def test_mx_host_with_an_a_label_name_gets_starttls(make_server, net):
    """The MX host's own name is an A-label: it is used as it is (the DNS gives it so)
    for its address, for TLS (SNI), MTA-STS and DANE, never decoded to UTF-8."""
    mx = f"mx.{A}"
    net.mx(A, (10, mx, net.ip(71)))
    sink = net.sink(71, tls_cert=net.pki.leaf(mx))
    server = outbound_server(make_server, net)
    send(server, [f"user@{U}"], ascii_message("idn mx tls"))
    [t] = sink.wait(1)
    assert t.tls and t.rcpts == [f"user@{A}"]
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    assert server.uids(ALICE) == []


@pytest.mark.skipif(not shutil.which("smtp-sink"), reason="needs Postfix's smtp-sink")
def test_postfix_smtp_sink_without_smtputf8_sees_only_a_labels(make_server, net):
    """A real MTA as the MX: Postfix's smtp-sink, which offers no SMTPUTF8. Its dump has
    the exact envelope it received: MAIL FROM without SMTPUTF8, one transaction with the
    two ASCII mailboxes under the A-label (given as U-label and as A-label), and no
    UTF-8 octet in any envelope line; the UTF-8 mailbox bounced to the sender."""
    dump_dir = Path(tempfile.mkdtemp(prefix="letterbox-idnout."))
    dump_dir.chmod(0o777)  # smtp-sink writes as postfix (it cannot enter pytest's tmp_path)
    dump = dump_dir / "sink.dump"
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["smtp-sink", *user, "-h", "sink.test", "-D", str(dump),
                             f"{net.ip(81)}:{net.port}", "8"], stderr=subprocess.PIPE)
    try:
        net.mx(A, (10, f"mx.{A}", net.ip(81)))
        server = outbound_server(make_server, net)
        send(server, [f"user@{U}", f"Other@{A}", f"jösé@{U}"], ascii_message("idn postfix"))
        raw = wait_for(lambda: dump.exists() and b"Hallo." in dump.read_bytes() and dump.read_bytes(),
                       what="the message in smtp-sink's dump")
        envelope = [l for l in raw.split(b"\n") if l.startswith((b"X-Mail-Args:", b"X-Rcpt-Args:"))]
        assert envelope == [
            f"X-Mail-Args: <{ALICE}>".encode(),
            f"X-Rcpt-Args: <user@{A}>".encode(),
            f"X-Rcpt-Args: <Other@{A}>".encode(),
        ], raw
        _, dsn = inbox_dsn(server)
        _, _, [r] = dsn_parts(dsn)
        assert r["Status"] == "5.6.7" and r["Final-Recipient"] == f"utf-8; j\\x{{F6}}s\\x{{E9}}@{A}"
        wait_for(lambda: queue_ids(server) == [], what="an empty queue")
        assert raw.count(b"X-Mail-Args:") == 1
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(dump_dir, ignore_errors=True)


def test_bounce_of_a_u_label_sender_counts_in_its_domain(make_server, net):
    """A sender given as U-label: MAIL FROM carries its A-label, and a recipient the
    remote refuses is counted in the "bounced" column of the sender's (A-label) domain on
    the portal's domains page, and the DSN reaches the sender's INBOX."""
    from conftest import free_ports
    from test_outbound_portal_counts import get
    (http_port,) = free_ports(1)
    net.mx("remote.test", (10, "mx.remote.test", net.ip(91)))
    sink = net.sink(91, smtputf8=False)
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 no such user"
    server = outbound_server(make_server, net, start=False, **{"listen.http": [f"127.0.0.1:{http_port}"]})
    server.cli("domain", "add", "exämple.org")
    server.add_user("ann@exämple.org", "ann-Secret-1")
    server.start()
    token = server.cli("admin", "token", "add", "test").stdout.decode().strip()
    msg = ("From: <ann@xn--exmple-cua.org>\r\nTo: <nobody@remote.test>\r\nSubject: b\r\n"
           "Message-ID: <idn-bounce@xn--exmple-cua.org>\r\n\r\nHallo.\r\n").encode()
    send(server, ["nobody@remote.test", "ok@remote.test"], msg, sender="ann@exämple.org",
         login=("ann@xn--exmple-cua.org", "ann-Secret-1"))
    [t] = sink.wait(1)
    assert t.sender == "ann@xn--exmple-cua.org" and t.rcpts == ["ok@remote.test"]
    assert "SMTPUTF8" not in t.mail_options
    inbox_dsn(server, "ann@xn--exmple-cua.org")
    wait_for(lambda: queue_ids(server) == [], what="an empty queue")
    day = int(time.time()) // 86400
    [d] = [d for d in json.loads(get(http_port, "/api/admin/domains", token)) if d["name"] == "xn--exmple-cua.org"]
    assert sum(c["bounced"] for c in d["counts"] if c["day"] == day) == 1, d
