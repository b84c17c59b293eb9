"""A refused address is shown in the reply as the client sent it (RFC 5321 4.1.2): a quoted
local part stays quoted. `<"al ice"@example.com>` was shown as `<alice@example.com>` (the
spaces removed), so the 550 "no such user" named a real, different mailbox."""

from smtp_util import Raw

NO_SUCH_USER = ": Recipient address rejected: no such user here"


def test_rcpt_reply_shows_the_address_as_given(server):
    r = Raw(server.require("smtp"))
    r.cmd("EHLO x")
    assert r.cmd("MAIL FROM:<s@example.org>").startswith("250")
    for sent, shown in [
        ('"al ice"@example.com', '"al ice"@example.com'),
        ('"al\\"ice"@example.com', '"al\\"ice"@example.com'),
        ('"a\\\\b"@example.com', '"a\\\\b"@example.com'),
        ('"a>b"@example.com', '"a>b"@example.com'),
        ('"a\tb"@example.com', '"a?b"@example.com'),
        ("nobody@example.com", "nobody@example.com"),
    ]:
        assert r.cmd(f"RCPT TO:<{sent}>") == f"550 5.1.1 <{shown}>{NO_SUCH_USER}", sent
    assert r.cmd('RCPT TO:<"al ice"@example.org>') == '554 5.7.1 <"al ice"@example.org>: Relay access denied'
    # A quoted local part that needs no quotes is the same address: accepted.
    assert r.cmd('RCPT TO:<"alice"@example.com>') == "250 2.1.5 Recipient OK"
    r.close()
    r = Raw(server.require("lmtp"))
    r.cmd("LHLO x")
    assert r.cmd("MAIL FROM:<s@example.org>").startswith("250")
    assert r.cmd('RCPT TO:<"al ice"@example.com>') == f'550 5.1.1 <"al ice"@example.com>{NO_SUCH_USER}'
    r.close()


def test_submission_sender_refusal_shows_the_address_as_given(server):
    from test_submission import authed

    r = authed(server)
    # Without the quotes this would read as alice's own address, refused.
    assert r.cmd('MAIL FROM:<"al ice"@example.com>') == '553 5.7.1 <"al ice"@example.com>: Sender address not owned by alice@example.com'
    assert r.cmd("MAIL FROM:<alice@example.com>") == "250 2.1.0 Sender OK"
