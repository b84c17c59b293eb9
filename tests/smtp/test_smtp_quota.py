"""Quota over SMTP and LMTP: refusals at RCPT and after the data, the warnings (exactly one
per upward crossing, re-armed when usage falls), and a raised quota taking effect at once."""

import poplib
import re

from smtp_util import Raw, bodies, inbox, lmtp, lmtp_send, smtp, warnings

ALICE = "alice@example.com"


def message(n, tag="m"):
    """A message of exactly n octets."""
    head = f"Subject: {tag}\r\n\r\n".encode()
    line = b"x" * 98 + b"\r\n"
    body = line * ((n - len(head)) // 100)
    body += b"y" * (n - len(head) - len(body) - 2) + b"\r\n"
    m = head + body
    assert len(m) == n
    return m


def send(server, rcpts, msg, sender="s@example.org"):
    """One SMTP transaction; returns the final reply (code, text) or the RCPT refusal."""
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    assert r.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    ok = 0
    last = None
    for a in rcpts:
        last = r.cmd(f"RCPT TO:<{a}>")
        ok += last.startswith("250")
    if not ok:
        r.close()
        return last
    assert r.cmd("DATA").startswith("354")
    r.send(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    reply = r.reply()
    r.cmd("QUIT")
    r.close()
    return reply


def test_quota_at_rcpt_and_at_data(make_server):
    # No warnings here: their messages would count towards the usage this test measures.
    server = make_server(**{"quota.warn_at": []})
    server.cli("quota", "set", ALICE, "20K")
    for i in range(3):
        assert send(server, [ALICE], message(6000, f"fill {i}")).startswith("250 2.0.0")
    # Not full yet, so RCPT accepts; the message turns out too big: 552 after the data.
    assert send(server, [ALICE], message(6000, "too big")) == "552 5.2.2 Mailbox full"
    # A declared SIZE that would not fit is refused at RCPT.
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    r.cmd("MAIL FROM:<s@example.org> SIZE=3000")
    assert r.cmd(f"RCPT TO:<{ALICE}>") == f"552 5.2.2 <{ALICE}>: Mailbox full"
    r.cmd("RSET")
    r.cmd("MAIL FROM:<s@example.org> SIZE=500")
    assert r.cmd(f"RCPT TO:<{ALICE}>") == "250 2.1.5 Recipient OK"
    r.cmd("RSET")
    # A lowered quota: already over the limit, refused at RCPT whatever the size.
    server.cli("quota", "set", ALICE, "10K")
    r.cmd("MAIL FROM:<s@example.org>")
    assert r.cmd(f"RCPT TO:<{ALICE}>") == f"552 5.2.2 <{ALICE}>: Mailbox full"
    r.cmd("RSET")
    # Raised: accepted at once, in the same session, without a restart.
    server.cli("quota", "set", ALICE, "1M")
    r.cmd("MAIL FROM:<s@example.org> SIZE=6000")
    assert r.cmd(f"RCPT TO:<{ALICE}>") == "250 2.1.5 Recipient OK"
    assert r.cmd("DATA").startswith("354")
    r.send(message(6000, "after raise") + b".\r\n")
    assert r.reply().startswith("250 2.0.0")
    r.close()
    subjects = [re.search(rb"Subject: ([^\r]*)", b).group(1) for b in bodies(server, ALICE)]
    assert subjects == [b"fill 0", b"fill 1", b"fill 2", b"after raise"]
    r = server.cli("check", "--deep", check=False)
    assert r.stdout == b"ok\n", r.stdout


def test_lmtp_full_recipient_alone_gets_552(server):
    server.cli("quota", "set", ALICE, "5K")
    with lmtp(server) as c:
        c.ehlo("mx")
        res = lmtp_send(c, "s@example.org", [ALICE, "bob@example.com"], message(8000, "big"))
        assert res[ALICE] == (552, f"5.2.2 <{ALICE}> Mailbox full")
        assert res["bob@example.com"][0] == 250
        # Declared size: refused at RCPT for alice only.
        c.mail("s@example.org", ["SIZE=8000"])
        assert c.rcpt(ALICE)[0] == 552
        assert c.rcpt("bob@example.com")[0] == 250
        c.rset()
    assert bodies(server, ALICE) == []
    assert bodies(server, "bob@example.com") == [message(8000, "big")]


def test_smtp_several_recipients_some_full(server):
    server.cli("quota", "set", ALICE, "5K")
    reply = send(server, [ALICE, "bob@example.com"], message(8000, "partly"))
    assert reply.startswith("250 2.0.0"), reply
    assert bodies(server, ALICE) == []
    assert bodies(server, "bob@example.com") == [message(8000, "partly")]
    log = server.read_log()
    assert f"NOT delivered to <{ALICE}>: mailbox full" in log, log[-3000:]
    # All recipients full: the one reply is 552.
    server.cli("quota", "set", "bob@example.com", "5K")
    assert send(server, [ALICE, "bob@example.com"], message(8000, "nobody")) == "552 5.2.2 Mailbox full"


def test_warnings_once_per_crossing(server):
    server.cli("quota", "set", ALICE, "200K")
    sent = 0

    def deliver(n, tag, proto="smtp"):
        nonlocal sent
        if proto == "smtp":
            assert send(server, [ALICE], message(n, tag)).startswith("250 2.0.0")
        else:
            with lmtp(server) as c:
                c.ehlo("mx")
                assert lmtp_send(c, "s@example.org", [ALICE], message(n, tag))[ALICE][0] == 250
        sent += n

    deliver(80_000, "a")  # ~39%
    assert warnings(server, ALICE) == []
    deliver(90_000, "b", "lmtp")  # ~83%: crosses 80
    assert warnings(server, ALICE) == ["Your mailbox is 80% full"]
    deliver(4_000, "c")  # still under 95: nothing new
    deliver(2_000, "d", "lmtp")
    assert warnings(server, ALICE) == ["Your mailbox is 80% full"]
    deliver(20_000, "e")  # ~97%: crosses 95
    assert warnings(server, ALICE) == ["Your mailbox is 80% full", "Your mailbox is 95% full"]
    deliver(1_000, "f")  # over 95, no new crossing
    assert len(warnings(server, ALICE)) == 2

    # The warning itself: from the domain's postmaster, says how full, what happens, what
    # to do, and (POP3 retention is `keep`) the POP3 hint.
    w = next(m for m in inbox(server, ALICE) if b"Your mailbox is 80% full" in m)
    assert not w.startswith(b"Return-Path:")  # not an SMTP delivery: no trace headers
    text = w.decode()
    assert re.search(r"(?m)^From: .*<postmaster@example\.com>\r$", text), text
    assert re.search(r"(?m)^To: .*alice@example\.com", text), text
    assert "Auto-Submitted: auto-generated" in text
    flat = re.sub(r"\s+", " ", text)
    for want in ["of its 200 KiB limit", "bounced", "Trash", "attachments", "larger quota", "POP3", "pop3-retention"]:
        assert want in flat, (want, text)

    # Usage falls (the user deletes mail over POP3): the thresholds re-arm.
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
    p.user(ALICE)
    p.pass_("alice-Secret1")
    count, _ = p.stat()
    for i in range(1, count + 1):
        p.dele(i)
    p.quit()
    assert inbox(server, ALICE) == []
    deliver(170_000, "again")  # ~83%
    assert warnings(server, ALICE) == ["Your mailbox is 80% full"]
    assert server.cli("check", "--deep").stdout == b"ok\n"


def test_no_pop3_hint_when_retention_deletes(server):
    server.cli("quota", "set", ALICE, "10K")
    server.cli("user", "set", ALICE, "pop3-retention", "30d")
    assert send(server, [ALICE], message(9_000, "big")).startswith("250 2.0.0")
    [w] = [m for m in inbox(server, ALICE) if b"Subject: Your mailbox is 80% full" in m]
    assert b"pop3-retention" not in w and b"POP3" not in w


def test_smtp_recipient_full_after_the_data_gets_a_dsn(server):
    """RFC 5321 6.1: once the 250 is given, a recipient that cannot have the message is
    reported to the sender. The 250 accepted it for bob while alice's full mailbox
    refused it, and alice's copy was only logged ("no bounce was sent"): lost without
    a word. Now a DSN (RFC 3464) goes to a local sender's INBOX, or into the queue for
    a remote one; never to the null sender."""
    server.cli("quota", "set", ALICE, "5K")
    server.cli("user", "add", "carol@example.com", "--password-stdin", input="pw-carol\n")
    reply = send(server, [ALICE, "bob@example.com"], message(8000, "partly"), sender="carol@example.com")
    assert reply.startswith("250 2.0.0"), reply
    assert bodies(server, ALICE) == []
    assert bodies(server, "bob@example.com") == [message(8000, "partly")]
    [dsn] = inbox(server, "carol@example.com")
    assert dsn.startswith(b"Return-Path: <>\r\nDelivered-To: carol@example.com\r\n"), dsn[:200]
    assert b"\r\nSubject: Undelivered Mail Returned to Sender\r\n" in dsn
    assert b"multipart/report" in dsn and b"report-type=\"delivery-status\"" in dsn
    assert b"\r\nFinal-Recipient: rfc822; alice@example.com\r\n" in dsn
    assert b"\r\nAction: failed\r\nStatus: 5.2.2\r\n" in dsn
    assert b"\r\nDiagnostic-Code: smtp; 552 5.2.2 <alice@example.com>: Mailbox full\r\n" in dsn
    assert b"bob@example.com" not in dsn.split(b"text/rfc822-headers")[0]
    assert b"\r\nSubject: partly\r\n" in dsn  # the original's header
    assert "NOT delivered to <alice@example.com>: mailbox full; a DSN was sent to the sender" in server.read_log()
    # A remote sender: the DSN waits in the outbound queue, from the null sender.
    assert send(server, [ALICE, "bob@example.com"], message(8000, "remote")).startswith("250 2.0.0")
    queued = server.cli("queue", "list").stdout.decode().splitlines()
    assert len(queued) == 2, queued
    # (The queue may already have tried it: only the envelope is certain.)
    assert queued[0].split("\t")[3] == "<>", queued
    assert queued[1].startswith("  <s@example.org>\t"), queued
    # The null sender: nothing is sent back (a bounce is never bounced).
    before = server.cli("queue", "list").stdout
    assert send(server, [ALICE, "bob@example.com"], message(8000, "bounce"), sender="").startswith("250 2.0.0")
    assert server.cli("queue", "list").stdout == before
    assert len(inbox(server, "carol@example.com")) == 1
    assert len(bodies(server, "bob@example.com")) == 3
    assert server.cli("check").stdout == b"ok\n"


def test_alias_member_full_after_the_data_gets_a_dsn(server):
    """An alias leading to two accounts, one of them full: the recipient got 250 (the
    other account has the message) and the full account's copy vanished with no log line
    and no DSN, in SMTP and in LMTP alike. Now the sender gets a DSN naming the account,
    with the alias as Original-Recipient."""
    server.cli("quota", "set", ALICE, "5K")
    server.cli("alias", "add", "staff@example.com", ALICE, "bob@example.com")
    server.cli("user", "add", "carol@example.com", "--password-stdin", input="pw-carol\n")
    reply = send(server, ["staff@example.com"], message(8000, "to staff"), sender="carol@example.com")
    assert reply.startswith("250 2.0.0"), reply
    with lmtp(server) as c:
        c.ehlo("mx")
        res = lmtp_send(c, "carol@example.com", ["staff@example.com"], message(8000, "staff by lmtp"))
        assert res["staff@example.com"][0] == 250, res
    assert bodies(server, ALICE) == []
    assert [re.search(rb"Subject: ([^\r]*)", b).group(1) for b in bodies(server, "bob@example.com")] == [
        b"to staff", b"staff by lmtp"]
    dsns = inbox(server, "carol@example.com")
    assert len(dsns) == 2, dsns
    for dsn, subject in zip(dsns, [b"to staff", b"staff by lmtp"]):
        assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:100]
        assert b"\r\nOriginal-Recipient: rfc822; staff@example.com\r\nFinal-Recipient: rfc822; alice@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n" in dsn, dsn
        assert b"\r\nSubject: " + subject + b"\r\n" in dsn
        assert b"Final-Recipient: rfc822; bob@example.com" not in dsn
    log = server.read_log()
    assert log.count("NOT delivered to <alice@example.com> (via <staff@example.com>): mailbox full; a DSN was sent to the sender") == 2, log[-3000:]
    assert server.cli("check").stdout == b"ok\n"
