"""DSNs and delay notices Letterbox writes itself are DKIM-signed (RFC 6376): From
MAILER-DAEMON@mail.example.com has no keys of its own, so the nearest parent domain with
keys signs (d=example.com, DMARC's relaxed alignment). dkimpy, an independent verifier,
checks both signatures (Ed25519 and RSA) on the octets stored in the sender's INBOX."""

import email
import email.policy
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "dkim"))

from dkim_util import txt_records, verify_all  # noqa: E402
from test_outbound import (ALICE, dsn_parts, message, net, outbound_server,  # noqa: E402,F401
                           submit, wait_for)


def dsns(server, n):
    out = []
    for uid in server.uids(ALICE):
        raw = server.message(ALICE, "INBOX", uid)
        if raw.startswith(b"Return-Path: <>\r\n"):
            out.append(raw)
    return out if len(out) >= n else None


def test_bounce_and_delay_notice_are_signed(make_server, net):
    net.mx("remote.test", (10, "mx.remote.test", net.ip(11)))
    sink = net.sink(11)
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 no such user"
    net.mx("slow.test", (10, "mx.slow.test", net.ip(12)))  # nothing listens: deferred
    server = outbound_server(make_server, net, **{"queue.delay_warning": 2, "queue.max_age": 3600})
    records = txt_records(server.cli("domain", "dkim", "example.com").stdout.decode())
    submit(server, ["nobody@remote.test"], message("bounce me", to="nobody@remote.test"))
    submit(server, ["x@slow.test"], message("slow one", to="x@slow.test"))
    raws = wait_for(lambda: dsns(server, 2), 40, "a failure DSN and a delay notice")
    actions = set()
    for raw in raws:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        _, _, [r] = dsn_parts(msg)
        actions.add(r["Action"])
        assert msg["From"] == '"Mail Delivery System" <MAILER-DAEMON@mail.example.com>'
        sigs = msg.get_all("DKIM-Signature")
        assert len(sigs) == 2, sigs
        assert all(re.search(r"\bd=example\.com;", re.sub(r"\s+", "", s)) for s in sigs)
        results = verify_all(raw, records)
        assert sorted(a for _, a, _ in results) == ["ed25519-sha256", "rsa-sha256"], results
        assert all(ok for _, _, ok in results), results
    assert actions == {"failed", "delayed"}


def test_vacation_reply_to_another_domain_leaves_signed(make_server, net):
    """A Sieve vacation reply to a remote sender is queued from <> and leaves with the
    account domain's DKIM signatures, which dkimpy verifies on what the remote got."""
    import smtplib
    net.mx("remote.test", (10, "mx.remote.test", net.ip(21)))
    sink = net.sink(21)
    server = outbound_server(make_server, net)
    records = txt_records(server.cli("domain", "dkim", "example.com").stdout.decode())
    script = 'require ["vacation"];\nvacation :days 3 :subject "Away" "I am away.";\n'
    server.cli("sieve", "put", ALICE, "main", "--activate", input=script.encode())
    carol = "carol@remote.test"
    with smtplib.SMTP("127.0.0.1", server.require("smtp"), timeout=30) as c:
        c.sendmail(carol, [ALICE], (f"From: <{carol}>\r\nTo: <{ALICE}>\r\nSubject: hi\r\n"
                                    "Message-ID: <hi@remote.test>\r\n\r\nHi.\r\n").encode())
    [t] = sink.wait(1)
    assert t.sender == "<>" and t.rcpts == [carol]
    assert t.data.startswith(b"DKIM-Signature: ")
    results = verify_all(t.data, records)
    assert sorted(a for _, a, _ in results) == ["ed25519-sha256", "rsa-sha256"], results
    assert all(ok for _, _, ok in results), results
