"""Helpers for the SMTP/LMTP end-to-end tests: raw sessions, LMTP's per-recipient
replies (smtplib.LMTP reads only one reply after DATA), and reading stored mail back."""

import re
import smtplib
import socket


def smtp(server, **kw):
    return smtplib.SMTP("127.0.0.1", server.require("smtp"), timeout=30, **kw)


def lmtp(server):
    return smtplib.LMTP("127.0.0.1", server.require("lmtp"), timeout=30)


class Raw:
    """A line-level client: send anything, read replies (multi-line joined by '\\n')."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def cmd(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                lines.append("<EOF>")
                break
            assert line.endswith(b"\r\n"), line
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                break
        return "\n".join(lines)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def lmtp_send(conn: smtplib.LMTP, sender, rcpts, message: bytes):
    """One LMTP transaction; returns {rcpt: (code, text)} for the accepted recipients and
    the RCPT refusals, as RFC 2033 gives them."""
    code, msg = conn.mail(sender)
    assert code == 250, (code, msg)
    accepted, result = [], {}
    for r in rcpts:
        code, msg = conn.rcpt(r)
        if code == 250:
            accepted.append(r)
        else:
            result[r] = (code, msg.decode())
    if not accepted:
        conn.rset()
        return result
    code, msg = conn.docmd("DATA")
    assert code == 354, (code, msg)
    conn.send(stuff(message) + b".\r\n")
    for r in accepted:
        code, msg = conn.getreply()
        result[r] = (code, msg.decode())
    return result


def stuff(message: bytes) -> bytes:
    """Dot-stuffing for DATA (message already CRLF, ending with CRLF)."""
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", message)


TRACE_RE = re.compile(
    rb"\AReturn-Path: <(?P<sender>[^>]*)>\r\n"
    rb"Delivered-To: (?P<rcpt>[^\r\n]+)\r\n"
    rb"Received: from (?P<helo>\S+) \((?P<ip>\[[^\]]+\])\)\r\n"
    rb"\tby (?P<host>\S+) \(Letterbox\) with (?P<proto>[A-Z0-9]+) id (?P<id>[A-Z0-9]+)\r\n"
    rb"\tfor <(?P<for>[^>]+)>; (?P<date>[^\r\n]+)\r\n"
)


def split_trace(stored: bytes):
    """(trace header fields, body) of a message stored by the SMTP/LMTP listener."""
    m = TRACE_RE.match(stored)
    assert m, stored[:400]
    return m.groupdict(), stored[m.end():]


def inbox(server, address, mailbox="INBOX"):
    return [server.message(address, mailbox, uid) for uid in server.uids(address, mailbox)]


def bodies(server, address):
    """Stored messages that came through SMTP/LMTP, without our trace headers."""
    out = []
    for m in inbox(server, address):
        if m.startswith(b"Return-Path: "):
            out.append(split_trace(m)[1])
    return out


def warnings(server, address):
    subjects = []
    for m in inbox(server, address):
        hit = re.search(rb"(?m)^Subject: (Your mailbox is \d+% full)\r$", m)
        if hit:
            subjects.append(hit.group(1).decode())
    return subjects


def blob_files(server):
    d = server.data_dir / "blobs"
    return sorted(p for p in d.glob("??/*") if p.is_file())


def usage(server, address):
    """Exact usage: the sum of the message sizes over all the account's folders."""
    out = server.cli("quota", "show", address).stdout.decode()
    return out.split("\t")[1]
