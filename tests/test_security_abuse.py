"""Issue 7 end to end, abuse resistance across the protocols: failed logins throttled
per IP and per account whatever the protocol (POP3, IMAP and SMTP failures count
together), blocks listed and lifted with `letterbox block`, connection limits answered in
each protocol's words, pre- and post-login time-outs, bad-command and auth-failure limits,
over-long lines, and logs that never contain a password or an authentication payload."""

import base64
import imaplib
import poplib
import smtplib
import subprocess
import time

import pytest

from conftest import CLUSTER
from security_util import (ALICE, ALICE_PW, BOB, BOB_PW, Conn, also_listen_on, b64,
                           client_context, ipv6_pair, other_ip, plain, wait_for_log)

ALL = ("imap", "pop3", "submission", "smtp", "lmtp")


def remote_server(make_server, protocols=ALL, **overrides):
    ip = other_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host and none can be added")
    s = make_server(start=False, **overrides)
    also_listen_on(s, ip, protocols)
    s.start()
    return s, ip


def blocks(server):
    out = server.cli("block", "list").stdout.decode()
    return {line.split("\t")[0]: line for line in out.splitlines() if line}


def imap_login(port, user, password, host="127.0.0.1"):
    c = Conn(port, host=host)
    reply = c.imap("a", f'LOGIN {user} "{password}"')[-1]
    c.close()
    return reply


def pop_login(port, user, password, host="127.0.0.1"):
    c = Conn(port, host=host)
    c.pop(f"USER {user}")
    reply = c.pop(f"PASS {password}")
    c.close()
    return reply


def smtp_login(port, user, password, host="127.0.0.1"):
    c = Conn(port, host=host)
    c.smtp("EHLO x")
    reply = c.smtp(f"AUTH PLAIN {plain(user, password)}")[0]
    c.close()
    return reply


# --- throttling and blocks ---------------------------------------------------------------


def test_failures_count_across_protocols_per_account_and_per_ip(make_server):
    s, ip = remote_server(make_server, **{
        "auth.max_failures": 4, "auth.failure_delay_ms": 20, "auth.block_duration": 600,
        "auth.allow_plaintext": True, "limits.max_auth_failures": 10})
    imap, pop3, sub = s.ports["imap"], s.ports["pop3"], s.ports["submission"]
    # Per account: 4 failures for alice from two addresses and three protocols.
    assert pop_login(pop3, ALICE, "wrong-1").startswith("-ERR [AUTH]")
    assert imap_login(imap, ALICE, "wrong-2", host=ip).startswith("a NO [AUTHENTICATIONFAILED]")
    assert smtp_login(sub, ALICE, "wrong-3").startswith("535 5.7.8")
    assert blocks(s) == {}
    assert imap_login(imap, ALICE, "wrong-4", host=ip).startswith("a NO")
    wait_for_log(s, "block=user:alice@example.com")
    assert set(blocks(s)) == {"user:alice@example.com"}, blocks(s)
    # Blocked: the right password fails everywhere, as a wrong one would.
    assert imap_login(imap, ALICE, ALICE_PW).startswith("a NO [AUTHENTICATIONFAILED]")
    assert pop_login(pop3, ALICE, ALICE_PW).startswith("-ERR [AUTH]")
    assert smtp_login(sub, ALICE, ALICE_PW).startswith("535")
    assert "login refused: blocked" in s.read_log()
    # Another account is not affected, from either address.
    assert imap_login(imap, BOB, BOB_PW).startswith("a OK")
    assert pop_login(pop3, BOB, BOB_PW, host=ip).startswith("+OK")
    # Lifted by the admin command, the account logs in at once (no restart).
    s.cli("block", "lift", ALICE)
    assert blocks(s) == {}
    assert imap_login(imap, ALICE, ALICE_PW).startswith("a OK")
    assert s.cli("block", "lift", ALICE, check=False).returncode != 0
    # Per IP: failures for different (also unknown) accounts from one address.
    for i, login in enumerate((imap_login, pop_login, imap_login, smtp_login)):
        port = {imap_login: imap, pop_login: pop3, smtp_login: sub}[login]
        login(port, f"nobody{i}@example.com", "guess", host=ip)
    wait_for_log(s, f"block=ip:{ip}")
    assert set(blocks(s)) == {f"ip:{ip}"}, blocks(s)
    assert imap_login(imap, BOB, BOB_PW, host=ip).startswith("a NO")
    assert smtp_login(sub, BOB, BOB_PW, host=ip).startswith("535")
    assert imap_login(imap, BOB, BOB_PW).startswith("a OK")  # from loopback: fine
    s.cli("block", "lift", ip)
    assert imap_login(imap, BOB, BOB_PW, host=ip).startswith("a OK")
    assert pop_login(pop3, BOB, BOB_PW, host=ip).startswith("+OK")


def test_failed_logins_are_slowed(make_server):
    s = make_server(**{"auth.max_failures": 0, "auth.failure_delay_ms": 200,
                       "limits.max_auth_failures": 100})
    c = Conn(s.require("imap"))
    times = []
    for i in range(4):
        t = time.monotonic()
        assert c.imap(f"a{i}", f"LOGIN {ALICE} bad{i}")[-1].startswith(f"a{i} NO")
        times.append(time.monotonic() - t)
    c.close()
    assert times[0] >= 0.18 and times[3] >= 1.5, times  # 200, 400, 800, 1600 ms
    # max_failures = 0 never blocks; a success then clears the counts.
    assert blocks(s) == {}
    t = time.monotonic()
    assert imap_login(s.require("imap"), ALICE, ALICE_PW).startswith("a OK")
    t = time.monotonic()
    assert imap_login(s.require("imap"), ALICE, "bad").startswith("a NO")
    assert time.monotonic() - t < 1.0


# --- connection limits ---------------------------------------------------------------------


def test_connection_limits_answer_in_each_protocol(make_server):
    # Per-address limits count each service apart and never refuse trusted networks
    # (loopback by default): trust nothing here, so that loopback meets them.
    # The total is each node's own: in cluster mode (tests/cluster_mode.py) the node that
    # serves IMAP and POP3 holds three of the six connections below.
    s, ip = remote_server(make_server, **{"limits.max_connections_per_ip": 1,
                                          "limits.max_connections": 3 if CLUSTER else 6,
                                          "limits.trusted_networks": []})
    expected = {
        "imap": b"* BYE Too many connections",
        "pop3": b"-ERR [SYS/TEMP] Too many connections",
        "smtp": b"421 4.7.0 Too many connections",
        "lmtp": b"421 4.7.0 Too many connections",
        "submission": b"421 4.7.0 Too many connections",
    }
    held = []
    for proto, words in expected.items():
        held.append(Conn(s.ports[proto]))  # this address's one place for the service
        c = Conn(s.ports[proto], greeting=False)
        data = c.rest()
        c.close()
        assert data.startswith(words) and data.endswith(b"\r\n") and data.count(b"\r\n") == 1, (proto, data)
    wait_for_log(s, "limits.max_connections_per_ip reached")
    # Implicit TLS counts with its protocol (IMAP): closed without a handshake.
    with pytest.raises((OSError, EOFError)):
        Conn(s.ports["imaps"], implicit_tls=True)
    # Total limit: one more from another address fills it; the next is refused too.
    held += [Conn(s.ports["pop3"], host=ip)]
    c = Conn(s.ports["imap"], host=ip, greeting=False)
    assert c.rest().startswith(b"* BYE Too many connections")
    wait_for_log(s, "limits.max_connections reached")
    # A session that ends gives its place back.
    held.pop(0).close()
    deadline = time.time() + 10
    while True:
        c = Conn(s.ports["imap"], host=ip)
        if c.greeting.startswith("* OK"):
            break
        assert time.time() < deadline, c.greeting
        time.sleep(0.1)
    assert c.imap("a", "NOOP")[-1].startswith("a OK")
    for h in held + [c]:
        h.close()


# --- time-outs -------------------------------------------------------------------------------


def timed_rest(c, timeout=15):
    t = time.monotonic()
    data = c.rest(timeout)
    return data, time.monotonic() - t


def test_timeouts_before_and_after_login(make_server):
    s = make_server(**{"limits.timeout_unauthenticated": 2, "limits.timeout_authenticated": 4,
                       "limits.timeout_idle": 3})
    # IMAP before login.
    data, t = timed_rest(Conn(s.require("imap")))
    assert data.startswith(b"* BYE") and 1.5 < t < 8, (data, t)
    # IMAP after login: the longer time-out applies.
    c = Conn(s.require("imap"))
    c.imap("a", f"LOGIN {ALICE} {ALICE_PW}")
    data, t = timed_rest(c)
    assert data.startswith(b"* BYE") and 3.5 < t < 10, (data, t)
    # IMAP IDLE ends at timeout_idle.
    c = Conn(s.require("imap"))
    c.imap("a", f"LOGIN {ALICE} {ALICE_PW}")
    c.imap("b", "SELECT INBOX")
    c.send("c IDLE\r\n")
    assert c.line().startswith("+")
    data, t = timed_rest(c)
    assert b"BYE" in data and 2.5 < t < 10, (data, t)
    # POP3 before login says why; after login RFC 1939 3 keeps at least 10 minutes.
    data, t = timed_rest(Conn(s.require("pop3")))
    assert data.startswith(b"-ERR") and 1.5 < t < 8, (data, t)
    c = Conn(s.require("pop3"))
    c.pop(f"USER {ALICE}")
    assert c.pop(f"PASS {ALICE_PW}").startswith("+OK")
    time.sleep(5)
    assert c.pop("NOOP").startswith("+OK")
    c.close()
    # SMTP and submission before AUTH: 421 4.4.2.
    for proto in ("smtp", "submission", "lmtp"):
        data, t = timed_rest(Conn(s.require(proto)))
        assert data.startswith(b"421 4.4.2") and 1.5 < t < 8, (proto, data, t)
    # Submission after AUTH: the authenticated time-out.
    c = Conn(s.require("submission"))
    c.smtp("EHLO x")
    assert c.smtp(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")[0].startswith("235")
    data, t = timed_rest(c)
    assert data.startswith(b"421 4.4.2") and 3.5 < t < 10, (data, t)
    # A TLS handshake that never comes: implicit TLS and after STARTTLS.
    for proto in ("imaps", "pop3s", "submissions"):
        c = Conn(s.require(proto), greeting=False)
        data, t = timed_rest(c)
        assert data == b"" and t < 8, (proto, data, t)
    c = Conn(s.require("imap"))
    c.imap("a", "STARTTLS")
    data, t = timed_rest(c)
    assert data == b"" and t < 8, (data, t)


# --- bad commands, auth failures per session, long lines ----------------------------------------


def test_bad_command_limits(make_server):
    s = make_server(**{"limits.max_bad_commands": 3})
    c = Conn(s.require("imap"))
    for i in range(2):
        assert c.imap(f"t{i}", "FROBNICATE")[-1].startswith(f"t{i} BAD")
    c.send("t3 FROBNICATE\r\n")
    data = c.rest()
    assert b"t3 BAD" in data and b"* BYE" in data, data
    c = Conn(s.require("pop3"))
    assert c.pop("FROB").startswith("-ERR") and c.pop("FROB").startswith("-ERR")
    c.send("FROB\r\n")
    data = c.rest()
    assert data.startswith(b"-ERR") and b"closing" in data, data
    for proto in ("smtp", "submission", "lmtp"):
        c = Conn(s.require(proto))
        assert c.smtp("FROB")[0].startswith("500") and c.smtp("FROB")[0].startswith("500")
        c.send("FROB\r\n")
        data = c.rest()
        assert b"421" in data, (proto, data)
    # A good command in between resets the count (consecutive errors only).
    c = Conn(s.require("imap"))
    for i in range(5):
        assert c.imap(f"x{i}", "FROBNICATE")[-1].startswith(f"x{i} BAD")
        assert c.imap(f"y{i}", "NOOP")[-1].startswith(f"y{i} OK")
    c.close()


def test_auth_failures_per_session(make_server):
    s = make_server(**{"limits.max_auth_failures": 2, "auth.failure_delay_ms": 10,
                       "auth.max_failures": 100})
    c = Conn(s.require("imap"))
    assert c.imap("a", f"LOGIN {ALICE} x")[-1].startswith("a NO")
    c.send(f"b LOGIN {ALICE} y\r\n")
    assert b"* BYE" in c.rest()
    c = Conn(s.require("pop3"))
    c.pop(f"USER {ALICE}")
    assert c.pop("PASS x").startswith("-ERR")
    c.pop(f"USER {ALICE}")
    c.send("PASS y\r\n")
    data = c.rest()
    assert data.startswith(b"-ERR") and b"closing" in data, data
    c = Conn(s.require("submission"))
    c.smtp("EHLO x")
    assert c.smtp(f"AUTH PLAIN {plain(ALICE, 'x')}")[0].startswith("535")
    c.send(f"AUTH PLAIN {plain(ALICE, 'y')}\r\n")
    data = c.rest()
    assert data.startswith(b"535") and b"421" in data, data


def test_over_long_lines(make_server):
    s = make_server(**{"limits.max_line_length": 1024, "limits.max_bad_commands": 5})
    long = "x" * 5000
    # IMAP: a command line over the limit ends the session with a reason.
    c = Conn(s.require("imap"))
    c.send(f"a NOOP {long}\r\n")
    data = c.rest()
    assert data.startswith(b"* BYE [TOOBIG]"), data
    # IMAP: so does an over-long SASL response (after the login, never before).
    c = Conn(s.require("imap"))
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send(long + "\r\n")
    assert b"* BYE" in c.rest()
    # POP3 and SMTP: refused, counted as bad, the session goes on.
    c = Conn(s.require("pop3"))
    assert c.pop(f"USER {long}").startswith("-ERR")
    assert c.pop_multi("CAPA")[0].startswith("+OK")
    c.close()
    for proto in ("smtp", "submission"):
        c = Conn(s.require(proto))
        assert c.smtp(f"EHLO {long}")[0].startswith("500 5.5.2"), proto
        assert c.smtp("EHLO x")[0].startswith("250"), proto
        c.close()
    # A huge line without an end is read and discarded in bounded memory, and the
    # session is still answered afterwards.
    c = Conn(s.require("pop3"))
    c.send(b"NOOP " + b"y" * (8 << 20))
    c.send(b"\r\nCAPA\r\n")
    assert c.line().startswith("-ERR")
    assert c.line().startswith("+OK")
    c.close()


# --- no passwords in the logs ------------------------------------------------------------------


def test_logs_never_contain_passwords(make_server):
    user, pw, wrong = "trace@example.com", "Tr4ce-Pw!zq81", "Wr0ng-Pw!kx52"
    s = make_server(**{"log.level": "trace", "auth.max_failures": 1000,
                       "auth.failure_delay_ms": 10, "limits.max_auth_failures": 100})
    s.add_user(user, pw)
    imap, pop3, sub = s.require("imap"), s.require("pop3"), s.require("submission")
    for p in (pw, wrong):
        ok_imap, ok_pop, ok_smtp = ("a OK", "+OK", "235") if p == pw else ("a NO", "-ERR", "535")
        # IMAP: LOGIN (atom, quoted, literal), AUTHENTICATE PLAIN with and without
        # SASL-IR, AUTHENTICATE LOGIN.
        for form in (p if p.isalnum() else f'"{p}"', f'{{{len(p)}+}}\r\n{p}'):
            c = Conn(imap)
            assert c.imap("a", f"LOGIN {user} {form}")[-1].startswith(ok_imap)
            c.close()
        c = Conn(imap)
        assert c.imap("a", f"AUTHENTICATE PLAIN {plain(user, p)}")[-1].startswith(ok_imap)
        c.close()
        c = Conn(imap)
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.line().startswith("+")
        c.send(plain(user, p) + "\r\n")
        assert c.until_tag("a")[-1].startswith(ok_imap)
        c.close()
        c = Conn(imap)
        c.send("a AUTHENTICATE LOGIN\r\n")
        c.line()
        c.send(b64(user) + "\r\n")
        c.line()
        c.send(b64(p) + "\r\n")
        assert c.until_tag("a")[-1].startswith(ok_imap)
        c.close()
        m = imaplib.IMAP4_SSL("127.0.0.1", s.require("imaps"), ssl_context=client_context(), timeout=30)
        try:
            m.login(user, p)
            m.logout()
        except imaplib.IMAP4.error:
            assert p == wrong
        # POP3: USER/PASS, AUTH PLAIN with and without initial response, AUTH LOGIN.
        assert pop_login(pop3, user, p).startswith(ok_pop)
        c = Conn(pop3)
        assert c.pop(f"AUTH PLAIN {plain(user, p)}").startswith(ok_pop)
        c.close()
        c = Conn(pop3)
        assert c.pop("AUTH PLAIN").startswith("+")
        assert c.pop(plain(user, p)).startswith(ok_pop)
        c.close()
        c = Conn(pop3)
        assert c.pop("AUTH LOGIN").startswith("+")
        assert c.pop(b64(user)).startswith("+")
        assert c.pop(b64(p)).startswith(ok_pop)
        c.close()
        # SMTP submission: AUTH PLAIN with and without initial response, AUTH LOGIN.
        assert smtp_login(sub, user, p).startswith(ok_smtp)
        c = Conn(sub)
        c.smtp("EHLO x")
        assert c.smtp("AUTH PLAIN")[0].startswith("334")
        assert c.smtp(plain(user, p))[0].startswith(ok_smtp)
        c.close()
        c = Conn(sub)
        c.smtp("EHLO x")
        assert c.smtp("AUTH LOGIN")[0].startswith("334")
        assert c.smtp(b64(user))[0].startswith("334")
        assert c.smtp(b64(p))[0].startswith(ok_smtp)
        c.close()
        c = Conn(sub)
        c.smtp("EHLO x")
        assert c.smtp(f"AUTH LOGIN {b64(user)}")[0].startswith("334")
        assert c.smtp(b64(p))[0].startswith(ok_smtp)
        c.close()
        # Real clients too.
        try:
            c = smtplib.SMTP_SSL("127.0.0.1", s.require("submissions"), context=client_context(), timeout=30)
            c.login(user, p)
            c.quit()
        except smtplib.SMTPAuthenticationError:
            assert p == wrong
        try:
            c = poplib.POP3_SSL("127.0.0.1", s.require("pop3s"), context=client_context(), timeout=30)
            c.user(user)
            c.pass_(p)
            c.quit()
        except poplib.error_proto:
            assert p == wrong
        subprocess.run(["swaks", "--server", f"127.0.0.1:{sub}", "--tls", "--auth", "PLAIN",
                        "--auth-user", user, "--auth-password", p, "--quit-after", "AUTH"],
                       capture_output=True, timeout=60)
    time.sleep(0.5)
    log = s.read_log()
    assert "login failed" in log and "login" in log and "TRACE" in log, log[-2000:]
    for p in (pw, wrong):
        for needle in (p, b64(p), b64(user), plain(user, p), b64(f"{user}\0{p}"), b64(f"\0{user}\0{p}")[:16],
                       p.encode().hex(), ", ".join(str(b) for b in p.encode()), repr(p.encode())[2:-1]):
            assert needle not in log, f"{needle!r} found in the log"


def test_imap_literals_before_login_are_bounded(make_server):
    """Before login no literal may exceed a command line (a LOGIN's password needs no
    more): an unauthenticated client cannot make the server buffer megabytes. After
    login, `imap.max_literal_size` applies."""
    s = make_server(**{"limits.max_line_length": 4096, "imap.max_literal_size": "1M"})
    c = Conn(s.require("imap"))
    assert c.imap("a", "LOGIN {1000000}")[-1].startswith("a NO [TOOBIG]")
    c.send("b LOGIN {1000000+}\r\n")
    assert c.rest().startswith(b"* BYE [TOOBIG]")
    c = Conn(s.require("imap"))
    c.send(f"a LOGIN {{{len(ALICE)}}}\r\n")
    assert c.line().startswith("+")
    c.send(f"{ALICE} {{{len(ALICE_PW)}+}}\r\n{ALICE_PW}\r\n")
    assert c.until_tag("a")[-1].startswith("a OK")
    body = b"Subject: big\r\n\r\n" + b"x" * 500_000 + b"\r\n"
    c.send(f"b APPEND INBOX {{{len(body)}}}\r\n")
    assert c.line().startswith("+")
    c.send(body + b"\r\n")
    assert c.until_tag("b")[-1].startswith("b OK")
    assert c.imap("c", "APPEND INBOX {2000000}")[-1].startswith("c NO [TOOBIG]")
    c.close()


# Found by fuzzing delivery (crates/smtp/fuzz, target `delivery`): 676 octets whose MIME
# nesting mail-parser reads as a cycle; the structure used to grow exponentially (gigabytes,
# seconds) while being stored. Any SMTP client could send it.
CYCLIC_MIME = base64.b64decode(
    "RnJvbTogIkEiIDxhQGV4YW1wbGUub3JnPiwgPT8AAAAAAAABAHV1Zi04P3E/Qj1DMz1BOT89IDxiCkNvbnRlbnQt"
    "VHlwZTogbXVsdGlwYXJ0L21peGVkOyBib3VuZGFyeT0iYjEiDQoNCnByZQoNLS1iMQ0KQ29AeGIwPg0KVG86IHVu"
    "ZGlzY2xvc2VkOjsNAAAAAQB1dWYtOD9xP0I9QzM9QTk/PSA8YgpDb250ZW50LVR5cGU6IG11bHRpcGFydC9taXhl"
    "ZDsgYm91bmRhcnk9ImIxIg0KDQpwcmUKDS0tYjENCkNvQHhiMD4NClRvOiB1bmRpc2Nsb3NlZDo7DQpDb250ZW50"
    "LVR5cGU6IG1lc3NhZ2UvcmZjODIyDQoNClN1YmplY3Q6IGlubmVyDQpDbw0KY2FmPUMzPUE5DQotLWIxjQpDb250"
    "ZW50LVR5cGU6IG1lc3NhZ2UvcmZjODIyDQoNCm50YWJsZQ0KDQpjYWY9QzM9QUMzPUE5DQotLWIxDWxvc2VkOjsN"
    "CkNvbnRlbnQtVHlwZTogbWVzc2FnZS9yZmM4MjINCg0KU3VgamVjdDogaW5uZXINCkNvDQpjYWY9QzM9QTkNCi0t"
    "YjENCkNvbmxvc2VkOjsNCkNvbnRlbnQtVHlwZTogbWVzc2FnZS9yAAAAAAAAAABmYzgyMg0KDQpTdWJqZWN0OiBp"
    "bm5lcg0KQ28NCmNhZj1DMz1BOQ0KLS1iMQ0KQ29udGVudC1UeXBlOiBtZXNzYWdlL3JmYzgyMg0KDQpTdWJqZWN0"
    "Og0KU3UNCmNhZj1DMz1BQzM9IHJpZW5uDQpDby5iaW4NCg0KQUFpZW5uDQpDby5iaW4NCg0KQUFFQ0F3PT0NCi0t"
    "YjEtLQ0KZXA9YS5iaW4NCg=="
)


def test_hostile_mime_nesting_is_delivered_quickly(server):
    c = Conn(server.require("smtp"))
    c.smtp("EHLO x")
    assert c.smtp("MAIL FROM:<x@example.org>")[0].startswith("250")
    assert c.smtp(f"RCPT TO:<{ALICE}>")[0].startswith("250")
    assert c.smtp("DATA")[0].startswith("354")
    t = time.monotonic()
    body = CYCLIC_MIME.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    c.send(body + b"\r\n.\r\n")
    assert c.smtp_reply()[0].startswith("250")
    assert time.monotonic() - t < 5
    c.close()
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"), timeout=30)
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODYSTRUCTURE)")
    assert typ == "OK" and len(data[0]) < 10_000, data
    m.logout()


def test_user_names_cannot_forge_log_lines(make_server):
    """A user name is client data: sent with CR LF (an IMAP literal, a SASL payload) or
    terminal escapes, it must not start a line of its own in the log, nor reach the
    terminal of `letterbox block list`."""
    s = make_server(**{"auth.failure_delay_ms": 1, "auth.max_failures": 1})
    forged = "2026-01-01T00:00:00.000000Z  INFO letterbox_proto::auth: login ip=10.9.9.9 user=admin"
    evil = f"evil\r\n{forged}\x1b[31m"
    c = Conn(s.require("imap"))
    c.send(f"a LOGIN {{{len(evil)}+}}\r\n{evil} pw\r\n")
    assert c.until_tag("a")[-1].startswith("a NO")
    c.close()
    c = Conn(s.require("pop3"))
    assert c.pop("AUTH PLAIN " + plain(f"pop\n{forged}", "pw")).startswith("-ERR")
    c.close()
    assert smtp_login(s.require("submission"), f"smtp\n{forged}", "pw").startswith("535")
    wait_for_log(s, "user=smtp")
    log = s.read_log()
    assert not any(line.startswith(forged[:30]) for line in log.splitlines()), log[-2000:]
    assert "\x1b" not in log
    assert "10.9.9.9" in log  # still there, escaped, on the line of the real event
    listing = s.cli("block", "list").stdout.decode()
    assert "user:evil" in listing and "\x1b" not in listing and "\r" not in listing, listing
    assert not any(line.startswith(forged[:30]) for line in listing.splitlines()), listing


def test_ipv6_clients_count_by_their_64(make_server):
    """An IPv6 client has a /64 to pick addresses from: connection limits and login
    blocks count the /64, and `letterbox block lift ADDRESS` lifts the /64's block."""
    pair = ipv6_pair()
    if pair is None:
        pytest.skip("no global IPv6 /64 on this host")
    listen, other = pair
    s = make_server(start=False, **{"limits.max_connections_per_ip": 2, "auth.max_failures": 3,
                                    "auth.failure_delay_ms": 1, "auth.allow_plaintext": True,
                                    "limits.max_auth_failures": 10})
    port = s.ports["imap"]
    text = s.config_path.read_text()
    s.config_path.write_text(text.replace(f'"127.0.0.1:{port}"', f'"127.0.0.1:{port}", "[{listen}]:{port}"'))
    s.start()
    a = Conn(port, host=listen, source=listen)
    b = Conn(port, host=listen, source=other)
    assert a.greeting.startswith("* OK") and b.greeting.startswith("* OK")
    c = Conn(port, host=listen, source=other, greeting=False)
    assert c.rest().startswith(b"* BYE Too many connections")
    assert Conn(port).greeting.startswith("* OK")  # IPv4 is counted apart
    # The limit is shown; free both places (a session's slot goes back when the server
    # sees the close, which can take a moment on a loaded machine).
    a.close()
    b.close()
    time.sleep(0.3)
    # Failures from two addresses of the /64 block the /64.
    for i, src in enumerate((listen, other, other)):
        c = Conn(port, host=listen, source=src)
        assert c.imap("a", f"LOGIN nobody{i}@example.com x")[-1].startswith("a NO")
        c.close()
    keys = set(blocks(s))
    assert any(k.startswith("ip:") and k.endswith("/64") for k in keys), keys
    c = Conn(port, host=listen, source=listen)
    assert c.imap("a", f"LOGIN {ALICE} {ALICE_PW}")[-1].startswith("a NO")
    c.close()
    assert imap_login(port, ALICE, ALICE_PW).startswith("a OK")  # IPv4 loopback: fine
    s.cli("block", "lift", other)
    assert not any(k.endswith("/64") for k in blocks(s)), blocks(s)
    c = Conn(port, host=listen, source=listen)
    assert c.imap("a", f"LOGIN {ALICE} {ALICE_PW}")[-1].startswith("a OK")
    c.close()


def test_client_that_never_reads_is_dropped_before_login(make_server):
    """A client that pipelines commands and never reads the answers holds a session only
    for the pre-login time-out (the write waits that long at most), on every protocol."""
    import socket
    import threading
    s = make_server(**{"limits.timeout_unauthenticated": 2, "limits.timeout_authenticated": 120})
    for proto, command in (("imap", b"a NOOP\r\n"), ("pop3", b"CAPA\r\n"), ("smtp", b"NOOP\r\n")):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", s.require(proto)))
        t = time.monotonic()
        done = []

        def flood():
            try:
                while time.monotonic() - t < 50:
                    sock.sendall(command * 4096)
            except OSError:
                pass
            done.append(time.monotonic() - t)

        th = threading.Thread(target=flood)
        th.start()
        th.join(60)
        sock.close()
        assert done and done[0] < 20, (proto, done)
