"""ManageSieve (RFC 5804) with a real client, `sieve-connect` (Debian): upload over
STARTTLS, activate, list, then mail arrives where the script says, seen over IMAP; a
malformed script is refused with its line and column; the wire details (capabilities,
response codes, literals, login throttling) with a raw client."""

import imaplib
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from conftest import free_port  # noqa: E402
from smtp_util import smtp  # noqa: E402

ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"


@pytest.fixture
def sieve_server(make_server):
    port = free_port()
    s = make_server(**{"listen.managesieve": [f"127.0.0.1:{port}"]})
    s.sieve_port = port
    return s


def sieve_connect(server, *args, password=ALICE_PW, user=ALICE):
    if not shutil.which("sieve-connect"):
        pytest.fail("sieve-connect is not installed (scripts/install-test-deps)")
    return subprocess.run(
        [
            "sieve-connect", "--server", "127.0.0.1", "--port", str(server.sieve_port),
            "--user", user, "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", *args,
        ],
        input=(password + "\n").encode(), capture_output=True, timeout=60,
    )


RULES = """require ["fileinto", "mailbox"];
if header :contains "Subject" "[rust]" {
    fileinto :create "Lists/Rust";
}
"""


def test_sieve_connect_upload_activate_and_delivery(sieve_server, tmp_path):
    s = sieve_server
    f = tmp_path / "rules.sieve"
    f.write_text(RULES)
    r = sieve_connect(s, "--upload", "--localsieve", str(f), "--remotesieve", "rules")
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    r = sieve_connect(s, "--activate", "--remotesieve", "rules")
    assert r.returncode == 0, r.stderr.decode()
    r = sieve_connect(s, "--list")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == '"rules" ACTIVE\n', r.stdout.decode()
    # The same script, seen by the CLI.
    assert s.cli("sieve", "get", ALICE, "rules").stdout == RULES.encode()
    with smtp(s) as c:
        c.sendmail("carol@remote.example", [ALICE],
                   b"From: carol@remote.example\r\nSubject: [rust] 1.95 is out\r\n\r\nhi\r\n")
        c.sendmail("carol@remote.example", [ALICE],
                   b"From: carol@remote.example\r\nSubject: lunch\r\n\r\nhi\r\n")
    for _ in range(2):  # two IMAP clients see the same folders
        m = imaplib.IMAP4("127.0.0.1", s.require("imap"))
        m.login(ALICE, ALICE_PW)
        typ, n = m.select('"Lists/Rust"', readonly=True)
        assert typ == "OK" and int(n[0]) == 1
        typ, n = m.select("INBOX", readonly=True)
        assert int(n[0]) == 1
        m.logout()
    # Downloaded back, byte for byte.
    out = tmp_path / "back.sieve"
    r = sieve_connect(s, "--download", "--remotesieve", "rules", "--localsieve", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_text() == RULES


def test_sieve_connect_malformed_script_refused_with_line_and_column(sieve_server, tmp_path):
    f = tmp_path / "bad.sieve"
    f.write_text('require "fileinto";\nif true {\n  fileinto "A"\n}\n')
    r = sieve_connect(sieve_server, "--upload", "--localsieve", str(f), "--remotesieve", "bad")
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode != 0
    assert re.search(r"line 4, column \d+", out), out
    assert sieve_server.cli("sieve", "list", ALICE).stdout == b""


class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")

    def until_status(self):
        """Lines up to and with the OK/NO/BYE line."""
        lines = []
        while True:
            line = self.f.readline()
            assert line.endswith(b"\r\n"), (lines, line)
            lines.append(line.decode().rstrip("\r\n"))
            m = re.match(r"\{(\d+)\}$", lines[-1])
            if m:
                lines.append(self.f.read(int(m.group(1))).decode())
                continue
            if re.match(r"(OK|NO|BYE)\b", lines[-1]):
                return lines

    def cmd(self, data: bytes):
        self.sock.sendall(data)
        return self.until_status()


def test_wire_protocol(sieve_server):
    import base64

    c = Raw(sieve_server.sieve_port)
    greeting = c.until_status()
    assert greeting[0] == '"IMPLEMENTATION" "Letterbox"'
    assert '"SASL" "PLAIN LOGIN"' in greeting  # loopback: plaintext allowed
    assert '"STARTTLS"' in greeting and '"VERSION" "1.0"' in greeting
    sieve_line = next(l for l in greeting if l.startswith('"SIEVE"'))
    for ext in ("fileinto", "vacation", "imap4flags", "spamtest", "mailbox", "regex", "subaddress"):
        assert ext in sieve_line.split('"')[3].split(), ext
    assert "reject" not in sieve_line.split('"')[3].split()
    assert greeting[-1].startswith("OK")
    assert c.cmd(b"LISTSCRIPTS\r\n") == ['NO "Authenticate first"']
    bad = base64.b64encode(b"\0alice@example.com\0wrong").decode()
    assert c.cmd(f'AUTHENTICATE "PLAIN" "{bad}"\r\n'.encode()) == ['NO "Authentication failed"']
    good = base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode()
    # Without an initial response: an empty challenge, then the response as a string.
    c.sock.sendall(b'AUTHENTICATE "PLAIN"\r\n')
    assert c.f.readline() == b'""\r\n'
    assert c.cmd(f'"{good}"\r\n'.encode()) == ['OK "Logged in"']
    script = b'require "fileinto";\r\nfileinto "Archive";\r\n'
    assert c.cmd(b'PUTSCRIPT "a" {%d+}\r\n%s\r\n' % (len(script), script)) == ['OK "Script stored"']
    assert c.cmd(b'CHECKSCRIPT {9+}\r\nstop stop\r\n')[0].startswith('NO "line 1, column')
    assert c.cmd(b'HAVESPACE "b" 99999999\r\n') == ['NO (QUOTA/MAXSIZE) "Script too large"']
    assert c.cmd(b'DELETESCRIPT "nope"\r\n') == ['NO (NONEXISTENT) "There is no script by that name"']
    assert c.cmd(b'SETACTIVE "a"\r\n') == ['OK "Setactive completed"']
    assert c.cmd(b'DELETESCRIPT "a"\r\n') == ['NO (ACTIVE) "You may not delete the active script"']
    assert c.cmd(b"LISTSCRIPTS\r\n") == ['"a" ACTIVE', 'OK "Listscripts completed"']
    assert c.cmd(b'GETSCRIPT "a"\r\n') == [f"{{{len(script)}}}", script.decode(), "", 'OK "Getscript completed"']
    assert c.cmd(b'RENAMESCRIPT "a" "b"\r\n') == ['OK "Renamescript completed"']
    assert c.cmd(b'SETACTIVE ""\r\n') == ['OK "Setactive completed"']
    assert c.cmd(b'DELETESCRIPT "b"\r\n') == ['OK "Deletescript completed"']
    assert c.cmd(b'NOOP "t1"\r\n') == ['OK (TAG "t1") "Done"']
    assert c.cmd(b"LOGOUT\r\n") == ['OK "Logout completed"']
