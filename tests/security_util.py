"""Helpers for the issue 7 (security) end-to-end tests: a line client that can be
upgraded to TLS in place and can connect from a non-loopback address of this host,
servers listening on such an address, TLS contexts (current and old versions)."""

import base64
import socket
import ssl
import subprocess
import time
import warnings

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"
BOB, BOB_PW = "bob@example.com", "bob-Secret2"


def b64(s) -> str:
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain(user, password) -> str:
    return b64(f"\0{user}\0{password}")


def client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def old_tls_context():
    """A client that offers TLS 1.0 and 1.1 only (a downgrade attempt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return ctx


_OTHER_IP = []


def other_ip():
    """A local IPv4 address that is not loopback, so that a connection to it has a
    non-loopback peer address. When the host has none, 192.0.2.2/32 (TEST-NET-1) is
    added to `lo` (needs root); None when that is impossible too."""
    if _OTHER_IP:
        return _OTHER_IP[0]
    ip = None
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                cand = parts[parts.index("inet") + 1].split("/")[0]
                if not cand.startswith("127."):
                    ip = cand
                    break
        if ip is None:
            r = subprocess.run(["ip", "addr", "add", "192.0.2.2/32", "dev", "lo"],
                               capture_output=True, timeout=10)
            if r.returncode == 0 or b"exists" in r.stderr:
                ip = "192.0.2.2"
    except (OSError, subprocess.SubprocessError):
        ip = None
    _OTHER_IP.append(ip)
    return ip


def also_listen_on(server, ip, protocols):
    """Rewrites a not-yet-started server's config so that the listeners named also
    listen on ip (same port)."""
    text = server.config_path.read_text()
    for proto in protocols:
        port = server.ports[proto]
        text = text.replace(f'"127.0.0.1:{port}"', f'"127.0.0.1:{port}", "{ip}:{port}"')
    server.config_path.write_text(text)


class Conn:
    """A line client that sees every octet; `tls()` upgrades it in place (STARTTLS)."""

    def __init__(self, port, host="127.0.0.1", implicit_tls=False, timeout=15, greeting=True,
                 context=None, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        if implicit_tls:
            self.sock = (context or client_context()).wrap_socket(self.sock)
        self.greeting = self.line() if greeting else None

    def tls(self, context=None):
        assert not self.buf, f"unread data before the handshake: {self.buf!r}"
        self.sock = (context or client_context()).wrap_socket(self.sock)
        return self.sock.version()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out.decode(errors="replace")

    def imap(self, tag, command):
        """Sends `tag command`; the response lines up to the tagged one."""
        self.send(f"{tag} {command}\r\n")
        return self.until_tag(tag)

    def until_tag(self, tag):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + " "):
                return lines

    def pop(self, command):
        self.send(command + "\r\n")
        return self.line()

    def pop_multi(self, command):
        first = self.pop(command)
        if not first.startswith("+OK"):
            return first, []
        lines = []
        while (l := self.line()) != ".":
            lines.append(l)
        return first, lines

    def smtp(self, command):
        """Sends a command; the full (possibly multi-line) reply as a list of lines."""
        self.send(command + "\r\n")
        return self.smtp_reply()

    def smtp_reply(self):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return lines

    def rest(self, timeout=10) -> bytes:
        """Everything until the server closes the connection."""
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_for_log(server, text, timeout=10):
    deadline = time.time() + timeout
    while text not in server.read_log():
        if time.time() > deadline:
            raise AssertionError(f"{text!r} not in the log:\n{server.read_log()[-3000:]}")
        time.sleep(0.05)


def password_hash(server, address):
    """The stored hash, read straight from the store's sqlite file (or its PostgreSQL
    database in cluster mode, tests/cluster_mode.py)."""
    if getattr(server, "db_url", None):
        from cluster_mode import sql

        stored = sql(server, f"SELECT password_hash FROM accounts WHERE address = '{address}'")
        assert stored, f"no account {address}"
        return stored
    import sqlite3
    dbs = sorted(server.data_dir.rglob("*.sqlite*")) + sorted(server.data_dir.rglob("*.db"))
    dbs = [d for d in dbs if not d.name.endswith(("-wal", "-shm", "-journal"))]
    assert dbs, list(server.data_dir.rglob("*"))
    con = sqlite3.connect(f"file:{dbs[0]}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT password_hash FROM accounts WHERE address = ?", (address,)).fetchone()
    finally:
        con.close()
    assert row, f"no account {address}"
    return row[0]


def ipv6_pair():
    """Two local IPv6 addresses in one /64, not loopback: (listen_on, other), or None.
    The second is added to `lo` (as /128, needs root) when the host has only one."""
    try:
        out = subprocess.run(["ip", "-6", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    addrs = [l.split()[l.split().index("inet6") + 1] for l in out.splitlines() if "inet6" in l]
    for a in addrs:
        ip, _, plen = a.partition("/")
        if plen != "64":
            continue
        prefix = ip.rsplit(":", 1)[0]
        other = prefix + ":" + ("3" if not ip.endswith(":3") else "4")
        if any(x.startswith(other + "/") for x in addrs):
            return ip, other
        r = subprocess.run(["ip", "addr", "add", f"{other}/128", "dev", "lo", "nodad"],
                           capture_output=True, timeout=10)
        if r.returncode == 0 or b"exists" in r.stderr:
            return ip, other
    return None
