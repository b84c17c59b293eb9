"""Helpers for the POP3 end-to-end tests: a byte-level client (exact replies, raw wire
octets of multi-line responses), poplib sessions, and mail delivered and read back through
the admin CLI."""

import poplib
import re
import socket
import time

from conftest import USERS

ALICE = "alice@example.com"
BOB = "bob@example.com"


def pop(server, user=ALICE, password=None):
    """A poplib session, logged in."""
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
    p.user(user)
    p.pass_(USERS[user] if password is None else password)
    return p


def deliver(server, body: bytes, to=ALICE) -> int:
    """Delivers with `letterbox deliver`; returns the new UID."""
    out = server.deliver(to, body).stdout.decode()
    m = re.search(r"delivered uid (\d+)", out)
    assert m, out
    return int(m.group(1))


def stored(server, uid, user=ALICE) -> bytes:
    """The stored octets of a message (what RETR must send, before dot-stuffing)."""
    return server.message(user, "INBOX", uid)


def unstuff(wire: bytes) -> bytes:
    """A multi-line response body as a client reads it: lines up to the '.' line, one
    leading dot removed, CRLF kept."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n", wire[-20:]
    out = []
    for line in wire[:-3].split(b"\r\n")[:-1]:
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(l + b"\r\n" for l in out)


class Raw:
    """A line-level POP3 client that sees every octet."""

    def __init__(self, server_or_port, timeout=30):
        port = server_or_port if isinstance(server_or_port, int) else server_or_port.require("pop3")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def line(self) -> str:
        """One reply line without CRLF, or '<EOF>'."""
        line = self.f.readline()
        if not line:
            return "<EOF>"
        assert line.endswith(b"\r\n"), line
        return line[:-2].decode("utf-8", "replace")

    def cmd(self, line) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.line()

    def body(self) -> bytes:
        """The rest of a multi-line response, as sent, up to and including '.' CRLF."""
        out = []
        while True:
            line = self.f.readline()
            assert line, "EOF inside a multi-line response"
            out.append(line)
            if line == b".\r\n":
                return b"".join(out)

    def multi(self, line) -> list:
        first = self.cmd(line)
        assert first.startswith("+OK"), (line, first)
        return [l.decode() for l in unstuff(self.body()).split(b"\r\n")[:-1]]

    def login(self, user=ALICE, password=None):
        assert self.cmd(f"USER {user}") == "+OK Send PASS"
        r = self.cmd(f"PASS {USERS[user] if password is None else password}")
        assert r.startswith(f"+OK {user} has "), r
        return r

    def closed(self) -> bool:
        """True when the server has closed the connection."""
        try:
            return self.f.readline() == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        """Drops the connection at once (the makefile would keep the socket open)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.f.close()
        self.sock.close()


def login_when_free(server, user=ALICE, timeout=10):
    """A logged-in Raw session, once the previous session on the maildrop has ended
    (until then the server answers [IN-USE])."""
    deadline = time.time() + timeout
    while True:
        r = Raw(server)
        assert r.cmd(f"USER {user}") == "+OK Send PASS"
        reply = r.cmd(f"PASS {USERS[user]}")
        if reply.startswith("+OK"):
            return r
        r.close()
        assert reply.startswith("-ERR [IN-USE]") and time.time() < deadline, reply
        time.sleep(0.05)
