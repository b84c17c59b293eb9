"""Serving from behind one address (issue 11, section 4).

- Each service counts its own connections per address, and trusted networks (loopback by
  default) are never refused for their address's count: 60 IMAP sessions from one
  loopback address and the MTA's LMTP delivery from the same address both get in.
- An address that is not trusted meets its per-service limit (`[limits.SERVICE]
  max_connections_per_ip`, else `[limits] max_connections_per_ip`) in its protocol's
  words; the other services still accept it.
- `[limits] max_userip_connections`: IMAP/POP3 sessions logged in as one user from one
  address; the refusal is IMAP `NO [LIMIT]`, POP3 `-ERR [SYS/TEMP]`.
"""

import smtplib
import time

from security_util import Conn

MSG = b"From: a@elsewhere.org\r\nTo: alice@example.com\r\nSubject: busy office\r\n\r\nhello\r\n"


def refused(port, source=None):
    c = Conn(port, greeting=False, source=source)
    data = c.rest()
    c.close()
    return data


def test_lmtp_delivers_while_60_imap_sessions_share_the_address(make_server):
    s = make_server()  # defaults: max_connections_per_ip = 50, loopback trusted
    held = [Conn(s.require("imap")) for _ in range(60)]
    try:
        assert all(c.greeting.startswith("* OK") for c in held)
        # Some of them logged in, as a webmail's per-user sessions would be.
        for i, c in enumerate(held[:5]):
            assert c.imap("a", "LOGIN alice@example.com alice-Secret1")[-1].startswith("a OK"), i
        with smtplib.LMTP("127.0.0.1", s.require("lmtp")) as l:
            assert l.sendmail("a@elsewhere.org", ["alice@example.com"], MSG) == {}
        tagged = held[0].imap("b", "STATUS INBOX (MESSAGES)")
        assert tagged[0] == "* STATUS INBOX (MESSAGES 1)", tagged
    finally:
        for c in held:
            c.close()


def test_untrusted_address_meets_its_per_service_limit(make_server):
    s = make_server(**{
        "limits.trusted_networks": ["127.0.0.1/32", "::1"],
        "limits.max_connections_per_ip": 3,   # the old key: now per service
        "limits.imap.max_connections_per_ip": 5,
    })
    other = "127.0.0.2"  # loopback, but not trusted by this configuration
    imap = [Conn(s.require("imap"), source=other) for _ in range(5)]
    assert all(c.greeting.startswith("* OK") for c in imap)
    assert refused(s.ports["imap"], other) == b"* BYE Too many connections, try again later\r\n"
    # The trusted address is never refused for its count.
    trusted = [Conn(s.ports["imap"]) for _ in range(8)]
    assert all(c.greeting.startswith("* OK") for c in trusted)
    # Other services count apart: POP3 and SMTP still accept the busy address, up to
    # [limits] max_connections_per_ip (3) each.
    pop = [Conn(s.require("pop3"), source=other) for _ in range(3)]
    assert all(c.greeting.startswith("+OK") for c in pop)
    assert refused(s.ports["pop3"], other) == b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    smtp = [Conn(s.require("smtp"), source=other) for _ in range(3)]
    assert all(c.greeting.startswith("220 ") for c in smtp)
    assert refused(s.ports["smtp"], other) == b"421 4.7.0 Too many connections, try again later\r\n"
    log = s.read_log()
    assert "refusing 127.0.0.2:" in log and "limits.imap.max_connections_per_ip reached" in log
    # Delivery from a trusted address is never refused for a count.
    lmtp_held = [Conn(s.require("lmtp")) for _ in range(6)]
    assert all(c.greeting.startswith("220 ") for c in lmtp_held)
    # A place given back is taken again.
    imap.pop().close()
    deadline = time.time() + 10
    while True:
        c = Conn(s.ports["imap"], source=other)
        if c.greeting.startswith("* OK"):
            break
        assert time.time() < deadline, c.greeting
        time.sleep(0.1)
    for x in imap + trusted + pop + smtp + lmtp_held + [c]:
        x.close()


def test_per_user_and_address_limit(make_server):
    s = make_server(**{"limits.max_userip_connections": 3})
    port = s.require("imap")
    sessions = [Conn(port) for _ in range(4)]
    for c in sessions[:3]:
        assert c.imap("a", "LOGIN alice@example.com alice-Secret1")[-1].startswith("a OK")
    assert sessions[3].imap("a", "LOGIN alice@example.com alice-Secret1") == [
        "a NO [LIMIT] Maximum number of connections from user+IP exceeded (limits.max_userip_connections=3)"
    ]
    # The refused session is still usable (not authenticated) and may try again later;
    # another user from the same address is not affected.
    assert sessions[3].imap("b", "LOGIN bob@example.com bob-Secret2")[-1].startswith("b OK")
    # POP3 counts together with IMAP.
    p = Conn(s.require("pop3"))
    assert p.pop("USER alice@example.com").startswith("+OK")
    assert p.pop("PASS alice-Secret1") == (
        "-ERR [SYS/TEMP] Maximum number of connections from user+IP exceeded (limits.max_userip_connections=3)"
    )
    p.close()
    # LOGOUT gives the place back.
    assert sessions[0].imap("z", "LOGOUT")[-1].startswith("z OK")
    sessions[0].close()
    deadline = time.time() + 10
    while True:
        c = Conn(port)
        reply = c.imap("c", "LOGIN alice@example.com alice-Secret1")[-1]
        if reply.startswith("c OK"):
            break
        assert "[LIMIT]" in reply and time.time() < deadline, reply
        c.close()
        time.sleep(0.1)
    for x in sessions[1:] + [c]:
        x.close()


def test_per_service_total(make_server):
    # `[limits.pop3] max_connections` bounds POP3 alone, trusted addresses included;
    # IMAP is not affected.
    s = make_server(**{"limits.pop3.max_connections": 2})
    pop = [Conn(s.require("pop3")) for _ in range(2)]
    assert all(c.greeting.startswith("+OK") for c in pop)
    assert refused(s.ports["pop3"]) == b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    imap = [Conn(s.require("imap")) for _ in range(4)]
    assert all(c.greeting.startswith("* OK") for c in imap)
    assert "limits.pop3.max_connections reached" in s.read_log()
    for c in pop + imap:
        c.close()
