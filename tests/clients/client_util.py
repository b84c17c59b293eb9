"""Helpers for the real-client tests: a deterministic corpus of messages, a fast bulk
APPEND (LITERAL+, pipelined), a logging TCP proxy that sits between a client and the
server, and readers for the Maildirs mbsync and offlineimap write."""

import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import zlib

from imap_wire import ResponseReader

import pytest

ALICE = ("alice@example.com", "alice-Secret1")
BOB = ("bob@example.com", "bob-Secret2")

WORDS = (
    "mail server sync folder message quota client flag seen draft answered archive "
    "tuesday meeting notes budget draft review release letter parcel weekly summary "
    "gr\u00fc\u00dfe caf\u00e9 na\u00efve"
).split()


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {' '.join(missing)}")


def make_message(i, rng):
    """Message number `i`: CRLF lines, a mix of plain, 8-bit and multipart bodies, sizes
    from a few hundred octets to ~6 KiB. Deterministic for a given `rng` state."""
    subject = f"Message {i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
    lines = []
    for _ in range(rng.randint(2, 60)):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))))
    head = (
        f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\n"
        f"To: alice@example.com\r\n"
        f"Subject: {subject.encode('ascii', 'replace').decode()}\r\n"
        f"Date: Tue, {1 + i % 28:02d} Sep 2026 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <m{i}.{rng.randint(0, 1 << 30)}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    text = "\r\n".join(lines) + "\r\n"
    if i % 7 == 3:
        b = f"b{i}"
        return (
            head + f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n'
            f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + text
            + f"--{b}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + "QUJD" * 19 + "\r\n"
            + f"--{b}--\r\n"
        ).encode()
    return (head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text).encode()


def make_messages(n, start=1, seed=6):
    rng = random.Random(seed * 1_000_003 + start)
    return [make_message(i, rng) for i in range(start, start + n)]


class Imap(ResponseReader):
    """A small raw IMAP client that pipelines (enough for filling and checking)."""

    recv_size = 1 << 20

    def __init__(self, port, user=ALICE, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.line()
        r = self.cmd(f'LOGIN "{user[0]}" "{user[1]}"')
        assert b" OK " in r[-1], r

    def until(self, tag):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + b" "):
                return lines

    def cmd(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.n += 1
        tag = b"c%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def append_many(self, mailbox, msgs, flags=(), batch=256):
        """APPENDs every message with LITERAL+, `batch` commands in flight; returns the
        APPENDUIDs in order."""
        uids = []
        fl = ("(" + " ".join(flags) + ") ") if flags else ""
        for s in range(0, len(msgs), batch):
            tags, out = [], []
            for m in msgs[s:s + batch]:
                self.n += 1
                tag = b"c%d" % self.n
                tags.append(tag)
                out.append(tag + f' APPEND "{mailbox}" {fl}{{{len(m)}+}}\r\n'.encode() + m + b"\r\n")
            self.sock.sendall(b"".join(out))
            for tag in tags:
                last = self.until(tag)[-1]
                m = re.match(rb".* OK \[APPENDUID \d+ (\d+)\]", last)
                assert m, last
                uids.append(int(m.group(1)))
        return uids

    def close(self):
        try:
            self.cmd("LOGOUT")
        finally:
            self.sock.close()


def uid_flags(port, mailbox="INBOX", user=ALICE):
    """{uid: set of flags} of a mailbox, straight from the server."""
    c = Imap(port, user)
    c.cmd(f'EXAMINE "{mailbox}"')
    out = {}
    for l in c.cmd("UID FETCH 1:* (UID FLAGS)")[:-1]:
        m = re.match(rb"\* \d+ FETCH \((?=.*UID (\d+))(?=.*FLAGS \(([^)]*)\)).*\)$", l)
        if m:
            out[int(m.group(1))] = set(m.group(2).decode().split())
    c.close()
    return out


class Proxy:
    """A logging TCP proxy on loopback in front of `port`. Records everything each client
    sends (`sent`, one bytes object per connection) and counts the server's octets
    (`received`); with `keep_replies` it keeps those too (`replies`). A connection that
    turns on COMPRESS=DEFLATE is recorded decompressed (`wire_received` counts what
    crossed the wire)."""

    def __init__(self, port, keep_replies=False):
        self.target = port
        self.keep_replies = keep_replies
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.reset()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        """Forgets what was recorded (connections still open keep their slots)."""
        with self.lock:
            n = len(getattr(self, "sent", []))
            self.sent = [b""] * n
            self.replies = [b""] * n
            self.received = 0  # the server's octets, decompressed
            self.wire_received = 0  # as they crossed the wire
            self.deflate = getattr(self, "deflate", {})

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                idx = len(self.sent)
                self.sent.append(b"")
                self.replies.append(b"")
            threading.Thread(target=self._pump, args=(c, s, idx), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, -1 - idx), daemon=True).start()

    def _pump(self, src, dst, idx):
        conn = idx if idx >= 0 else -1 - idx
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self.lock:
                    plain = self._inflate(conn, idx >= 0, data)
                    if idx < 0:
                        self.received += len(plain)
                        self.wire_received += len(data)
                        if self.keep_replies:
                            self.replies[conn] += plain
                    else:
                        self.sent[conn] += plain
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _inflate(self, conn, from_client, data):
        """What `data` says in plain IMAP: after `COMPRESS DEFLATE` (RFC 4978) and the
        server's tagged OK, both directions are raw DEFLATE, which clients such as
        mbsync and Thunderbird turn on whenever the server offers it."""
        st = self.deflate.setdefault(conn, {"tag": None, "client": None, "server": None, "pending": b""})
        if from_client:
            if st["client"]:
                return st["client"].decompress(data)
            m = re.search(rb"(?:^|\n)(\S+) COMPRESS DEFLATE\r\n$", self.sent[conn][-200:] + data, re.I)
            if m:
                st["tag"] = m.group(1)
            return data
        if st["server"]:
            return st["server"].decompress(data)
        if st["tag"] is None:
            return data
        buf = st["pending"] + data
        m = re.search(rb"(?:^|\n)" + re.escape(st["tag"]) + rb" (OK|NO|BAD)[^\r]*\r\n", buf)
        if not m:
            st["pending"] = buf
            return data
        st["pending"], tag = b"", st["tag"]
        st["tag"] = None
        if m.group(1) != b"OK":
            return data
        st["client"] = zlib.decompressobj(-15)
        st["server"] = zlib.decompressobj(-15)
        head = len(buf) - len(data)
        cut = m.end() - head
        return data[:cut] + st["server"].decompress(data[cut:])

    def commands(self):
        """The client's command lines (literal contents left out), all connections."""
        out = []
        with self.lock:
            streams = list(self.sent)
        for data in streams:
            i = 0
            while i < len(data):
                j = data.find(b"\r\n", i)
                if j < 0:
                    j = len(data)
                line = data[i:j]
                out.append(line)
                i = j + 2
                m = re.search(rb"\{(\d+)\+?\}$", line)
                if m:
                    i += int(m.group(1))
        return out

    def close(self):
        self.lsock.close()


BODY_FETCH = re.compile(rb"(BODY(\.PEEK)?\[(TEXT)?\]|BINARY(\.PEEK)?\[|RFC822(?![.](SIZE|HEADER)))", re.I)


def body_fetches(commands):
    """The commands that fetch whole messages or message texts."""
    return [c for c in commands if re.search(rb"\bFETCH\b", c, re.I) and BODY_FETCH.search(c)]


MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def maildir(d, uid_re):
    """{uid: (flags set, path)} of the messages in Maildir `d`; `uid_re` finds the UID
    in a file name."""
    out = {}
    for sub in ("new", "cur"):
        p = d / sub
        if not p.is_dir():
            continue
        for name in os.listdir(p):
            m = re.search(uid_re, name)
            assert m, name
            info = name.split(":2,")[1] if ":2," in name else ""
            uid = int(m.group(1))
            assert uid not in out, f"UID {uid} twice in {d}"
            out[uid] = ({MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS}, p / name)
    return out


def fill(port, mailbox, msgs, connections=8, user=ALICE):
    """APPENDs `msgs` over `connections` parallel sessions (the store's group commit
    makes that several times faster than one); returns {uid: octets}. At most 8, so
    that with the test's own sessions it stays under `[limits] max_userip_connections`
    (10 by default: one user from one address)."""
    out, errors = {}, []

    def work(part):
        try:
            c = Imap(port, user)
            uids = c.append_many(mailbox, part)
            c.close()
            out.update(zip(uids, part))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(msgs[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(out) == len(msgs)
    return out


class Tmux:
    """A full-screen program in a private tmux server (its own socket), driven by keys
    and read from the screen."""

    def __init__(self, name, command, env, width=150, height=40):
        self.sock = f"letterbox-{name}-{os.getpid()}"
        self.base = ["tmux", "-L", self.sock]
        env_args = [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            self.base + ["new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), "env", *env_args, *command],
            check=True,
        )

    def keys(self, *keys, literal=False):
        subprocess.run(self.base + ["send-keys", "-t", "t"] + (["-l"] if literal else []) + list(keys), check=True)

    def type(self, text):
        self.keys(text, literal=True)

    def screen(self):
        return subprocess.run(self.base + ["capture-pane", "-p", "-t", "t"], capture_output=True, text=True).stdout

    def wait_for(self, pattern, timeout=20):
        """Waits until the screen matches `pattern` (a regex); returns the screen."""
        deadline = time.time() + timeout
        while True:
            s = self.screen()
            if re.search(pattern, s):
                return s
            if time.time() > deadline:
                raise AssertionError(f"{pattern!r} not on screen:\n{s}")
            time.sleep(0.2)

    def close(self):
        subprocess.run(self.base + ["kill-server"], capture_output=True)
        # The socket file stays behind when the program ended the server by exiting.
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.sock)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def assert_clean_log(server):
    """The server logged no error while the client worked."""
    errors = [l for l in server.read_log().splitlines() if " ERROR " in l]
    assert not errors, errors[:10]


def offlineimap_conf(tmp_path, port, mail, user=ALICE, compress=False):
    """An offlineimap configuration syncing `user`'s account on `port` into the Maildir
    `mail` (plain IMAP on loopback, one connection)."""
    rc = tmp_path / "offlineimap.conf"
    rc.write_text(
        f"""[general]
accounts = t
metadata = {tmp_path}/meta
fsync = false
[Account t]
localrepository = local
remoterepository = remote
[Repository local]
type = Maildir
localfolders = {mail}
[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = {user[0]}
remotepass = {user[1]}
ssl = no
starttls = no
maxconnections = 1
usecompression = {"yes" if compress else "no"}
"""
    )
    return rc
