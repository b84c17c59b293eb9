"""COMPRESS=DEFLATE (RFC 4978): a raw client that deflates its commands and inflates the
responses with Python's zlib (raw DEFLATE, wbits=-15; a sync flush after each command,
as RFC 4978 section 4 suggests), over plain TCP and over implicit TLS; the errors of
section 3; IDLE pushes through the compressor at once; corrupt compressed input and a
decompression bomb end only their own session. offlineimap (usecompression) is the real
client (isync 1.4's mbsync has no compression)."""

import random
import re
import shutil
import socket
import ssl
import sys
import subprocess
import time
import zlib

import pytest

from imap_util import ALICE, BOB, Raw


class Z(Raw):
    """Raw, plus COMPRESS: after `compress()` every octet both ways is raw DEFLATE.
    `wire_in` counts the octets the server sent on the socket."""

    def __init__(self, server, tls=False, timeout=10):
        port = server.require("imaps" if tls else "imap")
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.n = 0
        self.deflater = None
        self.inflater = None
        self.wire_in = 0
        self.wire_log = b""
        self.greeting = self.line()

    def _fill(self):
        data = self.sock.recv(self.recv_size)
        if not data:
            raise EOFError("connection closed")
        self.wire_in += len(data)
        self.wire_log += data
        if self.inflater is not None:
            data = self.inflater.decompress(data)
        self.buf += data

    def send(self, data: bytes):
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def start(self):
        """Compresses from here on; what was read past the OK line is compressed."""
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.buf = self.inflater.decompress(self.buf)

    def compress(self):
        r = self.cmd("COMPRESS DEFLATE")
        assert re.fullmatch(rb"t\d+ OK DEFLATE active", r[-1]), r
        self.start()
        return r

    def closed(self):
        """True when the server closed the connection (after what it sent)."""
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except (ConnectionResetError, ssl.SSLError):
            return True


def big_message(size, seed=4978):
    rng = random.Random(seed)
    words = "deflate window literal stored block huffman sync flush octet mailbox".split()
    head = (
        b"From: Big <big@example.org>\r\nTo: alice@example.com\r\nSubject: big one\r\n"
        b"Message-ID: <big.%d@example.org>\r\n\r\n" % seed
    )
    lines = []
    n = len(head)
    while n < size:
        if rng.random() < 0.3:
            # Incompressible lines too (base64-like noise).
            line = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(76))
        else:
            line = " ".join(rng.choice(words) for _ in range(12))
        lines.append(line.encode())
        n += len(line) + 2
    return head + b"\r\n".join(lines) + b"\r\n"


def fetched_literal(lines, n):
    """The octets of the first `{n}` literal in the FETCH responses."""
    for l in lines:
        m = re.search(rb"\{(\d+)\}\r\n", l)
        if m:
            start = m.end()
            size = int(m.group(1))
            assert size == n, (size, n)
            return l[start:start + size]
    raise AssertionError(lines[:3])


def test_capability_states_and_errors(server):
    c = Z(server)
    assert b" COMPRESS=DEFLATE" in c.greeting
    # command-auth: not before login (the state rule of every authenticated command).
    assert c.cmd("COMPRESS DEFLATE")[-1] == b"t1 BAD COMPRESS not allowed now: Log in first"
    c.login()
    assert b" COMPRESS=DEFLATE" in c.cmd("CAPABILITY")[0]
    # Unknown algorithm: BAD, nothing turned on (the next exchange is plain text).
    assert re.fullmatch(rb"t\d+ BAD Unknown compression algorithm LZW", c.cmd("COMPRESS LZW")[-1])
    assert re.fullmatch(rb"t\d+ BAD .*", c.cmd("COMPRESS")[-1])
    assert re.fullmatch(rb"t\d+ OK .*", c.cmd("NOOP")[-1])
    before = c.wire_in
    c.compress()
    # A second COMPRESS: NO [COMPRESSIONACTIVE], and the session goes on compressed.
    r = c.cmd("COMPRESS DEFLATE")
    assert re.fullmatch(rb"t\d+ NO \[COMPRESSIONACTIVE\] DEFLATE is already active", r[-1]), r
    r = c.cmd("CAPABILITY")
    assert b"COMPRESS=DEFLATE" in r[0] and re.fullmatch(rb"t\d+ OK .*", r[-1])
    # Each batch of responses ends with a sync flush (an empty stored block), and the
    # wire is not the plain text (short answers may go as stored blocks, long ones not).
    assert c.wire_log.endswith(b"\x00\x00\xff\xff")
    assert b"CAPABILITY IMAP4rev2" not in c.wire_log[before:]
    r = c.cmd("LOGOUT")
    assert r[0].startswith(b"* BYE") and re.fullmatch(rb"t\d+ OK .*", r[-1])
    assert c.closed()
    c.close()


def test_fetch_and_append_big_messages_byte_exact(server):
    msg = big_message(3 << 20)
    server.deliver("alice@example.com", msg)
    c = Z(server, timeout=30)
    c.login()
    c.compress()
    r = c.cmd("SELECT INBOX")
    assert b"* 1 EXISTS" in r and re.fullmatch(rb"t\d+ OK \[READ-WRITE\].*", r[-1]), r
    start = c.wire_in
    r = c.cmd("FETCH 1 (BODY.PEEK[])")
    assert re.fullmatch(rb"t\d+ OK .*", r[-1]), r[-1]
    stored = server.message("alice@example.com", "INBOX", 1)
    assert fetched_literal(r, len(stored)) == stored and stored.endswith(msg)
    # It went compressed: far fewer octets on the wire than in the message.
    assert c.wire_in - start < len(msg) * 0.8, (c.wire_in - start, len(msg))

    # APPEND with a synchronizing literal: the go-ahead comes through the compressor.
    up = big_message(1 << 20, seed=7)
    c.n += 1
    tag = f"t{c.n}"
    c.send(f"{tag} APPEND INBOX (\\Seen) {{{len(up)}}}\r\n".encode())
    assert c.line().startswith(b"+ ")
    c.send(up + b"\r\n")
    r = c.until(tag)
    assert re.fullmatch(rb"t\d+ OK \[APPENDUID \d+ 2\] .*", r[-1]), r
    # And a LITERAL+ one, pipelined with the FETCH of both.
    small = b"Subject: small\r\n\r\nhello\r\n"
    c.send(f"a1 APPEND INBOX {{{len(small)}+}}\r\n".encode() + small + b"\r\n")
    assert re.fullmatch(rb"a1 OK \[APPENDUID \d+ 3\] .*", c.until("a1")[-1])
    r = c.cmd("UID FETCH 2 (BODY.PEEK[] FLAGS)")
    assert re.search(rb"FLAGS \(\\Seen( \\Recent)?\)\)$", r[0]), r[0][-40:]
    assert fetched_literal(r, len(up)) == up
    r = c.cmd("UID FETCH 3 BODY.PEEK[]")
    assert fetched_literal(r, len(small)) == small
    c.close()
    # Stored as sent.
    assert server.message("alice@example.com", "INBOX", 2) == up
    assert server.message("alice@example.com", "INBOX", 3) == small


def test_idle_pushes_new_mail_at_once(server):
    c = Z(server)
    c.login()
    c.compress()
    c.cmd("SELECT INBOX")
    c.send(b"i1 IDLE\r\n")
    assert c.line() == b"+ idling"
    # New mail by another session (the server's change feed wakes the IDLE).
    other = Raw(server)
    other.login()
    msg = b"Subject: ping\r\n\r\nnew\r\n"
    other.cmd(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
    t = time.time()
    # The EXISTS arrives on its own (no further input from us), decodable at once.
    assert c.line() == b"* 1 EXISTS"
    assert time.time() - t < 2
    other.close()
    rest = []
    c.send(b"DONE\r\n")
    while True:
        l = c.line()
        rest.append(l)
        if l.startswith(b"i1 "):
            break
    assert rest[-1] == b"i1 OK IDLE terminated", rest
    c.close()


def test_over_implicit_tls(server):
    server.deliver("alice@example.com", big_message(200_000, seed=9))
    c = Z(server, tls=True)
    assert b"COMPRESS=DEFLATE" in c.greeting
    c.login()
    c.compress()
    assert re.fullmatch(rb"t\d+ NO \[COMPRESSIONACTIVE\] .*", c.cmd("COMPRESS DEFLATE")[-1])
    r = c.cmd("SELECT INBOX")
    assert b"* 1 EXISTS" in r
    r = c.cmd("FETCH 1 BODY.PEEK[]")
    stored = server.message("alice@example.com", "INBOX", 1)
    assert fetched_literal(r, len(stored)) == stored
    r = c.cmd("LOGOUT")
    assert r[0].startswith(b"* BYE")
    c.close()


def test_input_sent_right_after_compress_is_read_compressed(server):
    """RFC 4978 says the client waits for the OK; one that does not (the compressed
    command in the same packet) still gets its answer."""
    c = Z(server)
    c.login()
    d = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.sock.sendall(b"z1 COMPRESS DEFLATE\r\n" + d.compress(b"z2 NOOP\r\n") + d.flush(zlib.Z_SYNC_FLUSH))
    assert c.line() == b"z1 OK DEFLATE active"
    c.start()
    c.deflater = d
    assert re.fullmatch(rb"z2 OK .*", c.until("z2")[-1])
    assert re.fullmatch(rb"t\d+ OK .*", c.cmd("NOOP")[-1])
    c.close()


def test_corrupt_input_ends_only_that_session(server):
    c = Z(server)
    c.login()
    c.compress()
    assert re.fullmatch(rb"t\d+ OK .*", c.cmd("NOOP")[-1])
    # Block type 3 is reserved (RFC 1951 3.2.3): not DEFLATE data.
    c.sock.sendall(b"\xff\xff\xff\xff\xff\xff")
    assert c.line() == b"* BYE Corrupt compressed input"
    assert c.closed()
    c.close()
    # The server goes on serving.
    other = Z(server)
    other.login(BOB)
    other.compress()
    assert re.fullmatch(rb"t\d+ OK .*", other.cmd("NOOP")[-1])
    other.close()
    assert "panicked" not in server.read_log()


def rss_kib(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_decompression_bomb_hits_the_line_limit(server):
    c = Z(server, timeout=30)
    c.login()
    c.compress()
    # A 100 MiB line of one octet: ~100 KiB compressed, refused at
    # limits.max_line_length of inflated octets, read through with bounded memory.
    rss = rss_kib(server)
    d = c.deflater
    chunk = b"a" * (1 << 20)
    data = d.compress(b"t9 NOOP ") + b"".join(d.compress(chunk) for _ in range(100))
    data += d.compress(b"\r\n") + d.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 1 << 20, len(data)
    try:
        c.sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert c.line() == b"* BYE [TOOBIG] Command line too long"
    assert c.closed()
    c.close()
    assert rss_kib(server) < rss + 30 * 1024, (rss, rss_kib(server))
    # And a literal bigger than [imap] max_literal_size is refused before it is sent.
    c = Z(server)
    c.login()
    c.compress()
    r = c.cmd("APPEND INBOX {999999999999}")
    assert re.fullmatch(rb"t\d+ NO \[TOOBIG\] .*", r[-1]), r
    c.close()


def offlineimap_conf(tmp_path, port, mail, compress):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "clients"))
    import client_util

    return client_util.offlineimap_conf(tmp_path, port, mail, ALICE, compress)


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="offlineimap not installed")
def test_offlineimap_syncs_compressed(server, tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "clients"))
    from client_util import Proxy

    # Small messages: imaplib2 (offlineimap's IMAP library) inflates at most 32 KiB per
    # socket read and only reads when the socket is readable, so a response whose last
    # packet inflates past 32 KiB stalls it (its bug: with 20-40 KiB messages it hangs
    # against Dovecot 2.3 with imap_zlib just the same).
    msgs = [big_message(1500 + 500 * i, seed=100 + i) for i in range(20)]
    for m in msgs:
        server.deliver("alice@example.com", m)
    proxy = Proxy(server.require("imap"))
    mail = tmp_path / "mail"
    rc = offlineimap_conf(tmp_path, proxy.port, mail, True)
    log = tmp_path / "offlineimap.log"
    with open(log, "w") as out:
        r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], stdout=out, stderr=subprocess.STDOUT, timeout=120)
    text = log.read_text(errors="replace")
    assert r.returncode == 0 and "ERROR" not in text, text
    # It asked for compression and the rest of its session was deflated: the proxy
    # decodes its FETCHes from the compressed stream, and the server's octets on the
    # wire are well under what they decompress to.
    sent = b"".join(proxy.sent)
    assert b" COMPRESS DEFLATE\r\n" in sent
    assert b"FETCH" in sent.split(b" COMPRESS DEFLATE\r\n", 1)[1]
    assert proxy.received > sum(map(len, msgs)), (proxy.received, sum(map(len, msgs)))
    assert proxy.wire_received < proxy.received * 0.8, (proxy.wire_received, proxy.received)
    stored = sorted((server.message("alice@example.com", "INBOX", u) for u in server.uids("alice@example.com")), key=len)
    assert len(stored) == len(msgs) and all(st.endswith(m) for st, m in zip(stored, sorted(msgs, key=len)))
    got = sorted((p.read_bytes() for p in (mail / "INBOX").glob("*/*")), key=len)
    # offlineimap writes LF line ends (and may add its X-OfflineIMAP header).
    assert [re.sub(rb"X-OfflineIMAP: .*\r?\n", b"", g) for g in got] == [st.replace(b"\r\n", b"\n") for st in stored]
    proxy.close()


def test_compression_outlives_unauthenticate(server):
    """RFC 8437 leaves the connection as it is: compression stays on, so STARTTLS (TLS
    would have to go above it) is refused, and a new login cannot COMPRESS again."""
    c = Z(server)
    assert b" STARTTLS " in c.greeting
    c.login()
    c.compress()
    assert re.fullmatch(rb"t\d+ OK .*", c.cmd("UNAUTHENTICATE")[-1])
    assert re.fullmatch(rb"t\d+ BAD STARTTLS is not allowed after COMPRESS", c.cmd("STARTTLS")[-1])
    c.login(BOB)
    r = c.cmd("COMPRESS DEFLATE")
    assert re.fullmatch(rb"t\d+ NO \[COMPRESSIONACTIVE\] DEFLATE is already active", r[-1]), r
    assert b"* 0 EXISTS" in c.cmd("SELECT INBOX")
    c.close()
