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


def inline_blobs(server):
    """Bodies stored inline in the database (up to `[store] inline_max`), read beside the server."""
    if getattr(server, "db_url", None):  # cluster mode (tests/cluster_mode.py)
        from cluster_mode import sql

        return int(sql(server, "SELECT count(*) FROM blobs WHERE data IS NOT NULL"))
    import sqlite3
    db = sqlite3.connect(f"file:{server.data_dir / 'store.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM blob_data").fetchone()[0]
    finally:
        db.close()


def usage(server, address):
    """Exact usage: the sum of the message sizes over all the account's folders."""
    out = server.cli("quota", "show", address).stdout.decode()
    return out.split("\t")[1]


# --- TLS and submission -----------------------------------------------------------------

import base64
import ssl


def tls_context(server):
    """A client context that verifies the server's self-signed certificate (generated
    into data_dir/tls on first start) for mail.example.com."""
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "selfsigned-cert.pem"))
    ctx.check_hostname = True
    return ctx


def submission(server, **kw):
    return smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30, **kw)


class _SMTP_SSL(smtplib.SMTP_SSL):
    """SMTP_SSL that checks the certificate for mail.example.com while connecting to
    127.0.0.1."""

    def _get_socket(self, host, port, timeout):
        new_socket = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(new_socket, server_hostname="mail.example.com")


def submissions(server):
    """Implicit TLS (RFC 8314) on the submissions listener."""
    return _SMTP_SSL("127.0.0.1", server.require("submissions"), timeout=30, context=tls_context(server))


def starttls(conn: smtplib.SMTP, server):
    """STARTTLS with verification against the self-signed certificate."""
    conn._host = "mail.example.com"  # the name the certificate is for
    code, msg = conn.starttls(context=tls_context(server))
    assert code == 220, (code, msg)
    return code, msg


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def plain(user, password) -> str:
    return b64(f"\0{user}\0{password}")


class RawTLS(Raw):
    """Raw, plus an in-place STARTTLS upgrade and implicit TLS."""

    def __init__(self, port, implicit_tls_ctx=None):
        if implicit_tls_ctx is None:
            super().__init__(port)
            return
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock = implicit_tls_ctx.wrap_socket(raw, server_hostname="mail.example.com")
        self.f = self.sock.makefile("rb")
        self.greeting = self.reply()

    def upgrade(self, ctx):
        """Wraps the socket in TLS (after a 220 to STARTTLS)."""
        self.f = None
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mail.example.com")
        self.f = self.sock.makefile("rb")

    def ehlo(self, name="client.example.org"):
        reply = self.cmd(f"EHLO {name}")
        assert reply.startswith("250"), reply
        return [line[4:] for line in reply.split("\n")]
