"""POP3 end to end against the real binary: every RFC 1939 command in every state with
exact replies, CAPA (RFC 2449), AUTH PLAIN/LOGIN (RFC 5034), exact octets and
dot-stuffing, UIDL stability, the maildrop lock, IMAP alongside, and bad input."""

import imaplib
import os
import poplib
import socket
import ssl
import time

import pytest

from pop3_util import ALICE, BOB, Raw, deliver, login_when_free, pop, stored, unstuff

SIMPLE = b"From: bob@example.org\r\nSubject: one\r\n\r\nHello\r\n"


def b64(s: bytes) -> str:
    import base64

    return base64.b64encode(s).decode()


def test_greeting_and_capa(server):
    r = Raw(server)
    assert r.greeting == "+OK mail.example.com Letterbox POP3 server ready"
    assert "<" not in r.greeting  # no APOP timestamp
    caps = r.multi("CAPA")
    assert caps == [
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER USER",
        "STLS", "USER", "SASL PLAIN LOGIN", "UTF8 USER", "IMPLEMENTATION Letterbox",
    ]
    r.login()
    caps = r.multi("CAPA")
    assert "EXPIRE NEVER" in caps and "USER" in caps  # RFC 2449 5: same list after login
    assert r.cmd("QUIT") == "+OK Letterbox POP3 server signing off (0 messages left)"
    assert r.closed()
    # poplib's view
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=10)
    caps = p.capa()
    assert caps["SASL"] == ["PLAIN", "LOGIN"] and caps["EXPIRE"] == ["NEVER", "USER"]
    assert caps["IMPLEMENTATION"] == ["Letterbox"]
    p.quit()


def test_capa_expire_follows_the_policy(make_server):
    s = make_server(**{"pop3.retention": "30d"})
    r = Raw(s)
    assert "EXPIRE 30 USER" in r.multi("CAPA")
    s.cli("user", "set", ALICE, "pop3-retention", "delete")
    s.cli("user", "set", BOB, "pop3-retention", "keep")
    r.login(ALICE)
    assert "EXPIRE 0" in r.multi("CAPA")
    r.cmd("QUIT")
    r = Raw(s)
    r.login(BOB)
    assert "EXPIRE NEVER" in r.multi("CAPA")
    r.cmd("QUIT")
    s.cli("user", "set", BOB, "pop3-retention", "7d")
    r = Raw(s)
    r.login(BOB)
    assert "EXPIRE 7" in r.multi("CAPA")


def test_authorization_state(server):
    r = Raw(server)
    for cmd in ["STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "RSET", "NOOP", "TOP 1 1", "UIDL"]:
        reply = r.cmd(cmd)
        assert reply == f"-ERR {cmd.split()[0]} is not valid in the AUTHORIZATION state: log in first", reply
        if cmd == "RSET":
            r.close()
            r = Raw(server)  # stay below max_bad_commands
    assert r.cmd("PASS x") == "-ERR Send USER first"
    assert r.cmd("USER") == "-ERR Missing user name"
    assert r.cmd("APOP alice@example.com 0123456789abcdef") == "-ERR APOP is not supported"
    assert r.cmd("STLS now") == "-ERR STLS takes no arguments"
    assert r.cmd("FOO") == "-ERR Unknown command"
    r.close()

    r = Raw(server)
    assert r.cmd("UTF8") == "+OK UTF8 enabled"
    assert r.cmd("user alice@example.com") == "+OK Send PASS"  # keywords in any case
    t = time.time()
    assert r.cmd("PASS wrong") == "-ERR [AUTH] Authentication failed"
    assert time.time() - t >= 0.4  # a failed login is answered after a delay
    # PASS must follow USER at once.
    assert r.cmd("PASS alice-Secret1") == "-ERR Send USER first"
    assert r.cmd("USER nobody@example.com") == "+OK Send PASS"
    assert r.cmd("PASS alice-Secret1") == "-ERR [AUTH] Authentication failed"
    r.login()
    for cmd in ["USER x", "PASS x", "AUTH PLAIN", "APOP a b", "UTF8", "STLS"]:
        reply = r.cmd(cmd)
        assert reply == f"-ERR {cmd.split()[0]} is not valid in the TRANSACTION state: already logged in", reply
    assert r.cmd("NOOP") == "+OK"
    assert r.cmd("QUIT").startswith("+OK")


def tls_client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed
    return ctx


def test_stls(server):
    deliver(server, SIMPLE)
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=10)
    assert "STLS" in p.capa()
    assert p.stls(tls_client_context()) == b"+OK Begin TLS negotiation"
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]
    with pytest.raises(poplib.error_proto, match="Command not permitted when TLS active"):
        p._shortcmd("STLS")
    p.user(ALICE)
    assert p.pass_("alice-Secret1").startswith(b"+OK")
    assert p.retr(1)[1][-1] == b"Hello"
    p.quit()

    # Commands pipelined after STLS are dropped, never run: the handshake follows at once.
    r = Raw(server)
    r.send(b"STLS\r\nUSER alice@example.com\r\nPASS alice-Secret1\r\n")
    assert r.line() == "+OK Begin TLS negotiation"
    tls = tls_client_context().wrap_socket(r.sock)
    f = tls.makefile("rb")
    tls.sendall(b"STAT\r\n")
    assert f.readline() == b"-ERR STAT is not valid in the AUTHORIZATION state: log in first\r\n"
    tls.close()


def test_password_with_spaces_and_quit_before_login(make_server):
    s = make_server(users={ALICE: "a pass with  spaces "})
    r = Raw(s)
    assert r.cmd("QUIT") == "+OK Letterbox POP3 server signing off"
    assert r.closed()
    r = Raw(s)
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS a pass with  spaces ").startswith("+OK ")


def test_too_many_auth_failures_end_the_session(make_server):
    s = make_server(**{"limits.max_auth_failures": 2})
    r = Raw(s)
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS bad1") == "-ERR [AUTH] Authentication failed"
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS bad2") == "-ERR [AUTH] Authentication failed (too many failures, closing connection)"
    assert r.closed()
    # The server lives on, and the right password still works.
    r = Raw(s)
    r.login()


def test_sasl_plain_and_login(server):
    pw = b"alice-Secret1"
    r = Raw(server)
    assert r.cmd("AUTH PLAIN " + b64(b"\0alice@example.com\0" + pw)).startswith("+OK alice@example.com has 0 messages")
    r.cmd("QUIT")

    r = Raw(server)
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd(b64(b"alice@example.com\0alice@example.com\0" + pw)).startswith("+OK ")
    r.cmd("QUIT")

    r = Raw(server)
    assert r.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
    assert r.cmd(b64(b"alice@example.com")) == "+ UGFzc3dvcmQ6"
    assert r.cmd(b64(pw)).startswith("+OK ")
    r.cmd("QUIT")

    r = Raw(server)
    assert r.cmd("auth login " + b64(b"alice@example.com")) == "+ UGFzc3dvcmQ6"
    assert r.cmd(b64(pw)).startswith("+OK ")
    r.cmd("QUIT")

    r = Raw(server)
    assert r.multi("AUTH") == ["PLAIN", "LOGIN"]
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("*") == "-ERR Authentication cancelled"
    assert r.cmd("AUTH CRAM-MD5") == "-ERR Unsupported authentication mechanism"
    assert r.cmd("AUTH PLAIN !!!notbase64") == "-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH PLAIN " + b64(b"bob@example.com\0alice@example.com\0" + pw)) == "-ERR [AUTH] Authentication failed"
    # poplib's own AUTH-less login still works on the same connection.
    r.login()


def test_transaction_commands_exact_replies(server):
    bodies = [
        SIMPLE,
        b"Subject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
        b"Subject: three\r\nX-A: b\r\n\r\n.dot first\r\n..two dots\r\n.\r\nlast",
    ]
    uids = [deliver(server, b) for b in bodies]
    msgs = [stored(server, u) for u in uids]
    assert msgs[0] == b"Delivered-To: alice@example.com\r\n" + SIMPLE
    # RFC 1939: the exact octets RETR sends, whose last line gets its missing CRLF.
    sizes = [len(m if m.endswith(b"\r\n") else m + b"\r\n") for m in msgs]
    total = sum(sizes)

    r = Raw(server)
    assert r.login() == f"+OK alice@example.com has 3 messages ({total} octets)"
    assert r.cmd("STAT") == f"+OK 3 {total}"
    assert r.cmd("LIST") == f"+OK 3 messages ({total} octets)"
    assert r.body() == b"".join(f"{i} {n}\r\n".encode() for i, n in enumerate(sizes, 1)) + b".\r\n"
    assert r.cmd("LIST 2") == f"+OK 2 {sizes[1]}"
    assert r.cmd("UIDL") == "+OK Unique-ID listing follows"
    uidl = r.body().decode().split("\r\n")[:-2]
    assert len(set(u.split()[1] for u in uidl)) == 3
    for i, line in enumerate(uidl, 1):
        n, uid = line.split(" ")
        assert int(n) == i and len(uid) == 16 and uid.isalnum()
        assert int(uid[8:], 16) == uids[i - 1]
    assert r.cmd("UIDL 3") == f"+OK 3 {uidl[2].split()[1]}"

    # RETR: exact octets on the wire, dot-stuffed, terminated.
    assert r.cmd("RETR 1") == f"+OK {sizes[0]} octets"
    assert r.body() == msgs[0] + b".\r\n"
    assert r.cmd("RETR 3") == f"+OK {sizes[2]} octets"
    wire = r.body()
    assert wire.endswith(b"\r\n..dot first\r\n...two dots\r\n..\r\nlast\r\n.\r\n"), wire
    assert unstuff(wire) == msgs[2] + b"\r\n"  # CRLF added before '.' only
    # TOP: header, blank line, n body lines.
    assert r.cmd("TOP 2 0") == "+OK Top of message follows"
    assert r.body() == b"Delivered-To: alice@example.com\r\nSubject: two\r\n\r\n.\r\n"
    assert r.cmd("TOP 2 2") == "+OK Top of message follows"
    assert r.body() == b"Delivered-To: alice@example.com\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\n.\r\n"
    assert r.cmd("TOP 3 100") == "+OK Top of message follows"
    assert unstuff(r.body()) == msgs[2] + b"\r\n"

    # DELE hides the message for the rest of the session; RSET brings it back.
    assert r.cmd("DELE 1") == "+OK Message 1 deleted"
    assert r.cmd("DELE 1") == "-ERR Message 1 already deleted"
    assert r.cmd("RETR 1") == "-ERR Message 1 already deleted"
    assert r.cmd("LIST 1") == "-ERR Message 1 already deleted"
    assert r.cmd("TOP 1 0") == "-ERR Message 1 already deleted"
    assert r.cmd("UIDL 1") == "-ERR Message 1 already deleted"
    assert r.cmd("STAT") == f"+OK 2 {total - sizes[0]}"
    assert r.multi("LIST") == [f"2 {sizes[1]}", f"3 {sizes[2]}"]
    assert [l.split()[0] for l in r.multi("UIDL")] == ["2", "3"]
    assert r.cmd("RSET") == f"+OK maildrop has 3 messages ({total} octets)"
    assert r.cmd("STAT") == f"+OK 3 {total}"
    assert r.cmd("NOOP") == "+OK"
    assert r.cmd("DELE 2") == "+OK Message 2 deleted"
    assert r.cmd("QUIT") == "+OK Letterbox POP3 server signing off (2 messages left)"
    assert r.closed()
    assert server.uids(ALICE) == [uids[0], uids[2]]

    # Mail fetched over POP3 is \Seen for IMAP.
    p = pop(server)
    assert p.stat() == (2, sizes[0] + sizes[2])
    p.quit()


def test_poplib_every_command(server):
    bodies = [SIMPLE, b"Subject: x\r\n\r\n" + b"y" * 3000 + b"\r\n"]
    for b in bodies:
        deliver(server, b)
    p = pop(server)
    assert p.getwelcome() == b"+OK mail.example.com Letterbox POP3 server ready"
    n, size = p.stat()
    assert n == 2
    resp, listing, _ = p.list()
    assert resp.startswith(b"+OK 2 messages") and len(listing) == 2
    assert p.list(1).startswith(b"+OK 1 ")
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == b"Delivered-To: alice@example.com\r\n" + SIMPLE
    resp, lines, _ = p.top(2, 0)
    assert lines == [b"Delivered-To: alice@example.com", b"Subject: x", b""]
    assert len(p.uidl()[1]) == 2 and p.uidl(2).startswith(b"+OK 2 ")
    assert p.noop() == b"+OK"
    assert p.dele(1) == b"+OK Message 1 deleted"
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    assert p.rset().startswith(b"+OK")
    p.dele(2)
    assert p.quit() == b"+OK Letterbox POP3 server signing off (1 messages left)"
    p = pop(server)
    assert p.stat()[0] == 1
    assert p.retr(1)[1][-1] == b"Hello"
    p.quit()


def test_message_edge_cases_exact_octets(server):
    big_line = b"x" * 100_000
    cases = [
        b"",  # delivered as just the Delivered-To line
        b".",
        b"..\r\n.\r\n",
        b"Subject: nofinal\r\n\r\nno final newline",
        b"Subject: lf\n\nbare LF\nlines\n.dotted\n",
        b"Subject: long\r\n\r\n" + big_line + b"\r\n." + big_line,
        b"Subject: crlfcrlf\r\n\r\n\r\n\r\n",
        "Subject: caf\u00e9\r\n\r\nUTF-8 \u2603\r\n".encode(),
        bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n",
    ]
    uids = [deliver(server, c) for c in cases]
    r = Raw(server)
    r.login()
    for i, uid in enumerate(uids, 1):
        want = stored(server, uid)
        expect = want if want.endswith(b"\r\n") else want + b"\r\n"
        # LIST and RETR announce the exact octets sent (RFC 1939), final CRLF included.
        assert r.cmd(f"LIST {i}") == f"+OK {i} {len(expect)}"
        assert r.cmd(f"RETR {i}") == f"+OK {len(expect)} octets"
        wire = r.body()
        assert unstuff(wire) == expect, (i, wire[:80])
        # Stuffing: every line that starts with '.' got one more.
        for line in wire[:-3].split(b"\r\n"):
            assert not line.startswith(b".") or line.startswith(b".."), line[:20]
    r.cmd("QUIT")


def test_bad_input_survives(server):
    deliver(server, SIMPLE)
    r = Raw(server)
    r.login()
    replies = {
        "RETR": "-ERR Usage: RETR msg",
        "RETR x": "-ERR Invalid message number 'x'",
        "RETR -1": "-ERR Invalid message number '-1'",
        "RETR 1.0": "-ERR Invalid message number '1.0'",
        "RETR 1 2": "-ERR Usage: RETR msg",
        "TOP 1": "-ERR Usage: TOP msg n",
        "TOP 1 x": "-ERR Invalid number of lines 'x'",
        "TOP 1 -1": "-ERR Invalid number of lines '-1'",
        "DELE": "-ERR DELE needs a message number",
        "LIST 1 2": "-ERR Too many arguments to LIST",
        "STAT 1": "-ERR Too many arguments to STAT",
    }
    for cmd, want in replies.items():
        assert r.cmd(cmd) == want, cmd
        assert r.cmd("NOOP") == "+OK"  # resets the bad-command count
    # Out of range: a refusal, not a protocol error.
    for cmd in ["RETR 0", "RETR 2", "LIST 99999999999999999999999", "DELE 2", "TOP 0 1", "UIDL 7"]:
        assert r.cmd(cmd).startswith("-ERR No such message"), cmd
    assert r.cmd("TOP 1 99999999999999999999999") == "+OK Top of message follows"
    r.body()
    # Over-long line (limits.max_line_length, 65536 by default).
    assert r.cmd("NOOP " + "x" * 70_000) == "-ERR Line too long"
    assert r.cmd("STAT").startswith("+OK 1 ")
    assert r.cmd(b"\xff\xfe") == "-ERR Unknown command"
    assert r.cmd(b"LIST \xff") == "-ERR Arguments must be ASCII"
    assert r.cmd("") == "-ERR Unknown command"
    assert r.cmd("QUIT").startswith("+OK")
    assert server.uids(ALICE) != []


def test_too_many_bad_commands_close(make_server):
    s = make_server(**{"limits.max_bad_commands": 3})
    r = Raw(s)
    assert r.cmd("FOO") == "-ERR Unknown command"
    assert r.cmd("BAR") == "-ERR Unknown command"
    assert r.cmd("BAZ") == "-ERR Unknown command (too many bad commands, closing connection)"
    assert r.closed()
    r = Raw(s)
    r.login()


def test_idle_timeout_before_login(make_server):
    s = make_server(**{"limits.timeout_unauthenticated": 1})
    r = Raw(s)
    time.sleep(1.5)
    assert r.line() == "-ERR Disconnected for inactivity"
    assert r.closed()
    r = Raw(s)
    r.login()


def test_pipelining(server):
    deliver(server, SIMPLE)
    deliver(server, SIMPLE)
    r = Raw(server)
    r.send(b"USER alice@example.com\r\nPASS alice-Secret1\r\nSTAT\r\nRETR 1\r\nLIST\r\nDELE 2\r\nNOOP\r\nQUIT\r\n")
    assert r.line() == "+OK Send PASS"
    assert r.line().startswith("+OK alice@example.com has 2 messages")
    assert r.line().startswith("+OK 2 ")
    assert r.line().startswith("+OK ") and r.body().endswith(b"Hello\r\n.\r\n")
    assert r.line().startswith("+OK 2 messages") and r.body().count(b"\r\n") == 3
    assert r.line() == "+OK Message 2 deleted"
    assert r.line() == "+OK"
    assert r.line() == "+OK Letterbox POP3 server signing off (1 messages left)"
    assert r.closed()
    assert len(server.uids(ALICE)) == 1


def test_dropped_connection_deletes_nothing(server):
    for _ in range(3):
        deliver(server, SIMPLE)
    r = Raw(server)
    r.login()
    for i in (1, 2, 3):
        assert r.cmd(f"DELE {i}").startswith("+OK")
    r.sock.shutdown(socket.SHUT_RDWR)
    r.close()
    # Once the session has ended (the lock is gone), all three are still there.
    r = login_when_free(server)
    assert r.cmd("STAT").startswith("+OK 3 ")
    r.cmd("QUIT")
    assert len(server.uids(ALICE)) == 3


def test_maildrop_lock(server):
    deliver(server, SIMPLE)
    first = Raw(server)
    first.login()
    second = Raw(server)
    assert second.cmd(f"USER {ALICE}") == "+OK Send PASS"
    assert second.cmd("PASS alice-Secret1") == "-ERR [IN-USE] Mailbox is locked by another POP3 session"
    # Another account is not affected.
    other = Raw(server)
    other.login(BOB)
    # Still in AUTHORIZATION: the client may retry once the first session is done.
    assert first.cmd("QUIT").startswith("+OK")
    second.login()
    assert second.cmd("STAT").startswith("+OK 1 ")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        pop(server)


def test_uidl_stable_and_new_mail_in_next_session(server):
    deliver(server, SIMPLE)
    deliver(server, SIMPLE)
    p = pop(server)
    first = p.uidl()[1]
    deliver(server, b"Subject: late\r\n\r\nlate\r\n")
    assert p.stat()[0] == 2  # the snapshot taken at login
    assert p.uidl()[1] == first
    p.dele(1)
    p.quit()
    p = pop(server)
    listing = p.uidl()[1]
    assert len(listing) == 2
    assert listing[0].split()[1] == first[1].split()[1]  # message 2 became 1, same UIDL
    assert listing[1].split()[1] not in [l.split()[1] for l in first]
    p.quit()
    server.restart()
    p = pop(server)
    assert p.uidl()[1] == listing
    p.quit()


def test_imap_expunge_during_pop3_session(server):
    if "imap" not in server.available:
        pytest.skip("imap listener not in this build")
    deliver(server, SIMPLE)
    deliver(server, b"Subject: two\r\n\r\nsecond\r\n")
    r = Raw(server)
    r.login()
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    m.login(ALICE, "alice-Secret1")
    m.select("INBOX")
    m.store("1", "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    assert r.cmd("RETR 1") == "-ERR Message 1 was removed by another session"
    assert r.cmd("RETR 2").startswith("+OK")
    assert r.body().endswith(b"second\r\n.\r\n")
    assert r.cmd("DELE 1") == "+OK Message 1 deleted"
    assert r.cmd("QUIT") == "+OK Letterbox POP3 server signing off (1 messages left)"
    assert len(server.uids(ALICE)) == 1


def server_hwm_kib(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_message_streams_in_bounded_memory(server):
    # 50 MiB, lines of 78 octets, some starting with a dot.
    line = b"." + b"x" * 75 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (50 * 1024 * 1024 // len(line))
    uid = deliver(server, body)
    want = stored(server, uid)
    deliver(server, SIMPLE)
    r = Raw(server, timeout=120)
    r.login()
    r.cmd("RETR 2")
    r.body()
    before = server_hwm_kib(server)
    assert r.cmd("RETR 1") == f"+OK {len(want)} octets"
    got = 0
    lines = 0
    while True:
        l = r.f.readline()
        if l == b".\r\n":
            break
        assert l.startswith(b"..") or l.startswith(b"Subject") or l in (b"\r\n", b"Delivered-To: alice@example.com\r\n")
        got += len(l) - (1 if l.startswith(b"..") else 0)
        lines += 1
    assert got == len(want)
    after = server_hwm_kib(server)
    print(f"VmHWM before {before} KiB, after {after} KiB")
    assert after - before < 16 * 1024, f"peak memory grew by {after - before} KiB for a 50 MiB RETR"
    r.cmd("QUIT")
