"""Spam scanning with a real rspamd (Debian's package, started by the test): its action
decides at the end of DATA; junk goes to the Junk folder with rspamd's verdict in a
header; moving mail into Junk teaches rspamd; with rspamd stopped, the configured
fallback applies."""

import imaplib
import json
import smtplib
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rspamd_util import (  # noqa: E402
    GTUBE_ADD_HEADER,
    GTUBE_REJECT,
    GTUBE_REWRITE_SUBJECT,
    rspamd,  # noqa: F401  (fixture)
)
from smtp_util import lmtp, lmtp_send, smtp  # noqa: E402

ALICE = "alice@example.com"
BOB = "bob@example.com"


def msg(subject, body="Hello, this is a normal message about lunch.\r\n"):
    return (
        f"From: Carol <carol@remote.example>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Date: Sun, 06 Dec 2026 19:00:00 +0000\r\n"
        f"Message-ID: <{abs(hash(subject))}@remote.example>\r\n\r\n{body}"
    ).encode()


@pytest.fixture
def scanned(make_server, rspamd):
    return make_server(**{
        "filter.rspamd": rspamd.url,
        "filter.rspamd_controller": rspamd.controller_url,
    })


def stored(server, address=ALICE, mailbox="INBOX"):
    return [server.message(address, mailbox, u) for u in server.uids(address, mailbox)]


def header(m: bytes, name: str):
    head = m.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_gtube_is_rejected_at_end_of_data(scanned):
    with smtp(scanned) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@remote.example", [ALICE], msg("buy now", GTUBE_REJECT + "\r\n"))
        assert e.value.smtp_code == 550
        assert e.value.smtp_error == b"5.7.1 Gtube pattern"
    assert scanned.uids(ALICE) == [] and scanned.uids(ALICE, "Junk") == []
    # LMTP: the refusal for every recipient.
    with lmtp(scanned) as c:
        c.ehlo("mx.example.com")
        r = lmtp_send(c, "carol@remote.example", [ALICE, BOB], msg("again", GTUBE_REJECT + "\r\n"))
    assert r == {
        ALICE: (550, f"5.7.1 <{ALICE}> Gtube pattern"),
        BOB: (550, f"5.7.1 <{BOB}> Gtube pattern"),
    }
    assert "refused by the filter: 550 5.7.1 Gtube pattern" in scanned.read_log()


def test_add_header_and_rewrite_subject_go_to_junk(scanned):
    with smtp(scanned) as s:
        s.sendmail("carol@remote.example", [ALICE], msg("maybe spam", GTUBE_ADD_HEADER + "\r\n"))
        s.sendmail("carol@remote.example", [ALICE], msg("rewrite me", GTUBE_REWRITE_SUBJECT + "\r\n"))
    assert scanned.uids(ALICE) == []
    junk = stored(scanned, mailbox="Junk")
    assert len(junk) == 2
    assert header(junk[0], "X-Spam-Status").startswith("Yes, score=6.00 required=15.00 action=\"add header\"")
    assert header(junk[1], "X-Spam-Status").endswith('action="rewrite subject"')
    for m in junk:
        assert header(m, "X-Spam") == "Yes"
        assert header(m, "Subject") in ("maybe spam", "rewrite me")  # not rewritten


def test_soft_reject_and_greylist_are_temporary(scanned):
    """rspamd's `soft reject` and `greylist` actions (forced by a rule of the test's rspamd
    for these subjects) answer 451 4.7.1 at the end of DATA; nothing is stored."""
    with smtp(scanned) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@remote.example", [ALICE], msg("rspamd-soft-reject-this"))
        assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.7.1 Try again later (soft reject)")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@remote.example", [ALICE], msg("rspamd-greylist-this"))
        assert e.value.smtp_code == 451 and e.value.smtp_error.startswith(b"4.7.1 "), e.value.smtp_error
    assert scanned.uids(ALICE) == [] and scanned.uids(ALICE, "Junk") == []
    log = scanned.read_log()
    assert "refused by the filter: 451 4.7.1 Try again later (soft reject)" in log


def test_clean_message_gets_rspamds_header(scanned):
    with smtp(scanned) as s:
        s.sendmail("carol@remote.example", [ALICE], msg("lunch"))
    (m,) = stored(scanned)
    status = header(m, "X-Spam-Status")
    assert status.startswith("No, score=") and status.endswith('required=15.00 action="no action"'), status
    # Below the trace headers, above the message.
    assert m.index(b"Received: ") < m.index(b"X-Spam-Status: ") < m.index(b"From: Carol")


def test_sieve_spamtest_sees_rspamds_score(scanned):
    script = (
        'require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto", "mailbox"];\n'
        'if spamtest :value "ge" :comparator "i;ascii-numeric" "5" { fileinto :create "Suspect"; stop; }\n'
    )
    scanned.cli("sieve", "put", ALICE, "spam", "--activate", input=script)
    with smtp(scanned) as s:
        s.sendmail("carol@remote.example", [ALICE], msg("suspect", GTUBE_ADD_HEADER + "\r\n"))
        s.sendmail("carol@remote.example", [ALICE], msg("fine"))
    # Score 6 of 15 is 5 on spamtest's 1..10 scale: the script's folder wins over Junk.
    assert [header(m, "Subject") for m in stored(scanned, mailbox="Suspect")] == ["suspect"]
    assert [header(m, "Subject") for m in stored(scanned)] == ["fine"]


def learned(rspamd):
    with urllib.request.urlopen(rspamd.controller_url + "/stat", timeout=10) as r:
        return json.load(r)["learned"]


def why_not_learned(server, rspamd):
    """What both sides logged about learning, for the assertion message."""
    ours = [line for line in server.read_log().splitlines() if "rspamd" in line]
    theirs = (rspamd.root / "rspamd.log").read_text(errors="replace").splitlines()
    return "letterbox:\n" + "\n".join(ours[-20:]) + "\nrspamd:\n" + "\n".join(theirs[-40:])


def test_moving_into_junk_learns_spam_and_out_learns_ham(scanned, rspamd):
    body = "Cheap watches and pills, act now, limited offer, click here.\r\n" * 5
    with smtp(scanned) as s:
        s.sendmail("carol@remote.example", [ALICE], msg("watches", body))
    before = learned(rspamd)
    m = imaplib.IMAP4("127.0.0.1", scanned.require("imap"))
    try:
        m.login(ALICE, "alice-Secret1")
        m.select("INBOX")
        typ, _ = m.uid("MOVE", "1", "Junk")
        assert typ == "OK"
        deadline = time.time() + 120
        while learned(rspamd) == before and time.time() < deadline:
            time.sleep(0.2)
        assert learned(rspamd) == before + 1, why_not_learned(scanned, rspamd)
        assert "rspamd: learned as spam" in scanned.read_log()
        # Out of Junk again: ham.
        m.select("Junk")
        typ, _ = m.uid("MOVE", "1", "INBOX")
        assert typ == "OK"
        deadline = time.time() + 120
        while "rspamd: learned as ham" not in scanned.read_log() and time.time() < deadline:
            time.sleep(0.2)
        assert "rspamd: learned as ham" in scanned.read_log()
    finally:
        m.logout()


def test_rspamd_stopped_fallback(make_server, rspamd):
    url = rspamd.url
    rspamd.stop()  # the last test of this module: rspamd is down from here on
    s1 = make_server(**{"filter.rspamd": url})
    with smtp(s1) as s:
        s.sendmail("carol@remote.example", [ALICE], msg("unscanned", GTUBE_REJECT + "\r\n"))
    (m,) = stored(s1)
    assert header(m, "X-Spam-Status") == "Unscanned (scanner unavailable)"
    assert "rspamd unavailable, message accepted unscanned" in s1.read_log()
    s1.overrides["filter.rspamd_down"] = "tempfail"
    s1.stop()
    s1.write_config()
    s1.start()
    s2 = s1
    with smtp(s2) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("carol@remote.example", [ALICE], msg("deferred"))
        assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.7.1 Spam scanner unavailable, try again later")
    assert len(s2.uids(ALICE)) == 1
