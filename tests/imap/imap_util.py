"""Helpers for the IMAP end-to-end tests: a raw line client for exact responses and
an imaplib login shortcut."""

import imaplib
import socket

from imap_wire import ResponseReader

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")


def login(server, user=ALICE):
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    m.login(*user)
    return m


class Raw(ResponseReader):
    """Speaks IMAP octet by octet: `cmd()` returns the response lines (literals kept in
    line as `{n}\\r\\n<octets>`) up to and including the tagged one."""

    def __init__(self, server, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", server.require("imap")), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def close(self):
        self.sock.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def cmd(self, text, tag=None):
        if isinstance(text, str):
            text = text.encode()
        if tag is None:
            self.n += 1
            tag = f"t{self.n}"
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag.encode() + b" "):
                return lines

    def login(self, user=ALICE):
        r = self.cmd(f'LOGIN "{user[0]}" "{user[1]}"')
        assert b" OK " in r[-1], r
        return r


def deliver(server, message: bytes, to="alice@example.com"):
    server.deliver(to, message)
