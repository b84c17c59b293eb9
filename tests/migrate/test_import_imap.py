"""`letterbox import imap` from a real Dovecot 2.3 over IMAP, and from another Letterbox
over imaps (issue 16).

Dovecot is filled as for the Maildir import (folders with a hierarchy and a non-ASCII
name, flags, keywords, a \\Deleted message left unexpunged, an expunged UID leaving a gap,
subscriptions); a POP3 client keeps the messages and offlineimap syncs a local copy, both
against Dovecot. Then Letterbox pulls the account over IMAP, and over the real protocols:
- every folder's UIDVALIDITY and UIDNEXT, every UID with its flags and keywords, the
  internal dates, the octets and the subscriptions equal Dovecot's;
- the summary says what clients will do; with `--pop3-uidl-format` POP3 UIDL lists what
  Dovecot's did;
- offlineimap, with the state it made against Dovecot, resyncs without fetching one body
  (counted on the wire through a logging proxy) and its Maildir is unchanged;
- a rerun imports nothing twice; an import killed part way resumes and fetches only the
  rest (counted on the wire too);
- a wrong password, an unreachable server and an untrusted certificate each stop the
  run with one line and their own exit code, and store nothing.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))
from client_util import Proxy, body_fetches, offlineimap_conf  # noqa: E402
from dovecot_util import DOVECOT, PASSWORD  # noqa: E402
from test_import_maildir import (  # noqa: E402
    ADDR,
    ALICE_PW,
    bodies,
    dovecot,  # noqa: F401  (the fixture)
    fill_dovecot,
    imap_login,
    message,
    pop3_uidls,
    state,
)

pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot not installed")


def import_imap(server, port, *extra, password=PASSWORD, check=True, scheme="imap"):
    return server.cli(
        "import", "imap", ADDR, "--from", f"{scheme}://127.0.0.1:{port}", "--password-stdin", *extra,
        input=password + "\n", check=check,
    )


def run_offlineimap(tmp_path, port, mail, password):
    rc = offlineimap_conf(tmp_path, port, mail, (ADDR, password))
    r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def local_files(mail):
    """Every message file offlineimap wrote, with its name (it holds the UID, U=)."""
    return sorted(
        (str(p.relative_to(mail)), p.read_bytes())
        for p in mail.rglob("*")
        if p.is_file() and p.parent.name in ("cur", "new")
    )


def test_import_imap_keeps_uids_flags_dates_folders_and_subscriptions(dovecot, server, tmp_path):
    fill_dovecot(dovecot)
    before_uidls = pop3_uidls(dovecot.pop3, ADDR, PASSWORD, retrieve=True)
    assert len(before_uidls) == 5
    has_offlineimap = shutil.which("offlineimap") is not None
    mail = tmp_path / "mail"
    mail.mkdir()
    if has_offlineimap:
        run_offlineimap(tmp_path, dovecot.imap, mail, PASSWORD)
        synced = local_files(mail)
        assert len(synced) == 5 + 2 + 3 + 1, synced
    before, before_subs = state(dovecot.imap, ADDR, PASSWORD)
    before_bodies = bodies(dovecot.imap, ADDR, PASSWORD)
    assert 2 not in before["Lists/rust"][2] and before["Lists/rust"][1] == 5
    assert "\\Deleted" in before["INBOX"][2][2] and "$Forwarded" in before["INBOX"][2][1]

    r = import_imap(server, dovecot.imap, "--pop3-uidl-format", "%08Xu%08Xv")
    out = r.stdout.decode()
    assert "4 folders, 11 messages imported" in out, out
    assert "0 already imported, 0 with new UIDs, 0 skipped" in out, out
    assert "UIDVALIDITY and UIDs kept from the source" in out, out
    assert "POP3: UIDLs rebuilt" in out, out

    after, after_subs = state(server.ports["imap"], ADDR, ALICE_PW)
    assert after == before
    assert after_subs == before_subs
    assert bodies(server.ports["imap"], ADDR, ALICE_PW) == before_bodies
    assert pop3_uidls(server.ports["pop3"], ADDR, ALICE_PW) == before_uidls
    c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
    typ, data = c.list('""', "Sent")
    assert b"\\Sent" in data[0], data
    c.logout()

    if has_offlineimap:
        proxy = Proxy(server.ports["imap"])
        try:
            run_offlineimap(tmp_path, proxy.port, mail, ALICE_PW)
            cmds = proxy.commands()
        finally:
            proxy.close()
        # It did resync: every folder examined, every message's flags listed.
        assert sum(1 for c in cmds if re.search(rb"(?i)^\S+ (UID )?FETCH 1:\* \(FLAGS UID", c)) >= 4, cmds
        assert body_fetches(cmds) == []
        assert local_files(mail) == synced

    # A rerun: refused without --merge, then nothing twice and no body fetched.
    r = import_imap(server, dovecot.imap, check=False)
    assert r.returncode != 0 and b"--merge" in r.stderr, r.stderr
    r = import_imap(server, dovecot.imap, "--merge")
    out = r.stdout.decode()
    assert "0 messages imported (0 bytes), 11 already imported" in out, out
    assert re.search(r"INBOX -> INBOX: 5 messages, 0 to fetch", r.stderr.decode()), r.stderr
    assert state(server.ports["imap"], ADDR, ALICE_PW)[0] == before
    assert server.cli("check", "--deep").stdout.decode().strip() == "ok"
    total = sum(v[2] for v in before_bodies.values())
    assert f"quota: {total} bytes used" in out, (total, out)


def test_import_imap_without_uidl_format_says_what_pop3_clients_do(dovecot, server):
    with __import__("smtplib").LMTP("127.0.0.1", dovecot.lmtp) as l:
        l.sendmail("s@example.org", [ADDR], message(1, "one"))
    r = import_imap(server, dovecot.imap)
    out = r.stdout.decode()
    assert "1 messages imported" in out, out
    assert "POP3 clients that leave mail on the server will download the INBOX again" in out, out
    assert "IMAP clients keep their caches" in out, out


def test_import_imap_resumes_after_interruption(dovecot, server, tmp_path):
    """Killed (SIGKILL) part way: the rerun fetches and stores only the rest."""
    import smtplib

    n = 600
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp) as l:
        for i in range(1, n + 1):
            l.sendmail("s@example.org", [ADDR], message(i, f"inbox {i}"))
    before, _ = state(dovecot.imap, ADDR, PASSWORD, ["INBOX"])
    assert len(before["INBOX"][2]) == n
    from conftest import BIN

    # Both runs go through one logging proxy: the source is named by its URL, so the
    # second run resumes the first.
    proxy = Proxy(dovecot.imap)
    p = subprocess.Popen(
        [str(BIN), "--config", str(server.config_path), "import", "imap", ADDR,
         "--from", f"imap://127.0.0.1:{proxy.port}", "--password-stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    p.stdin.write(PASSWORD.encode() + b"\n")
    p.stdin.close()
    while True:
        line = p.stderr.readline()
        assert line, "import ended without progress"
        if line.startswith(b"INBOX -> INBOX"):
            break
    # Let some messages in, then kill.
    deadline = time.time() + 30
    while time.time() < deadline:
        c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
        typ, data = c.status("INBOX", "(MESSAGES)")
        c.logout()
        if int(re.search(rb"MESSAGES (\d+)", data[0]).group(1)) > 0:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    partial, _ = state(server.ports["imap"], ADDR, ALICE_PW, ["INBOX"])
    got = len(partial["INBOX"][2])
    assert 0 < got < n, f"could not interrupt the import ({got} of {n})"

    proxy.reset()
    try:
        r = import_imap(server, proxy.port)
        cmds = proxy.commands()
    finally:
        proxy.close()
    out = r.stdout.decode()
    assert f"{n - got} messages imported" in out and f"{got} already imported" in out, out
    assert f"INBOX -> INBOX: {n} messages, {n - got} to fetch" in r.stderr.decode(), r.stderr
    # Only the missing UIDs were asked for.
    asked = set()
    for c in cmds:
        m = re.search(rb"UID FETCH ([\d:,]+) \(UID BODY\.PEEK\[\]\)", c)
        if m:
            for part in m.group(1).split(b","):
                a, _, b = part.partition(b":")
                asked.update(range(int(a), int(b or a) + 1))
    assert asked == set(before["INBOX"][2]) - set(partial["INBOX"][2])
    after, _ = state(server.ports["imap"], ADDR, ALICE_PW, ["INBOX"])
    assert after["INBOX"] == before["INBOX"]
    assert server.cli("check").stdout.decode().strip() == "ok"


def test_import_imap_errors(dovecot, server):
    # Wrong password: one line naming the refusal, exit 77 (EX_NOPERM), nothing stored.
    r = import_imap(server, dovecot.imap, password="wrong-password", check=False)
    err = r.stderr.decode()
    assert r.returncode == 77, (r.returncode, err)
    assert err.count("\n") == 1 and re.match(
        rf"letterbox: import imap: imap://127\.0\.0\.1:{dovecot.imap}: login as {re.escape(ADDR)} refused: "
        r"\[AUTHENTICATIONFAILED\] Authentication failed\.",
        err,
    ), err
    assert "wrong-password" not in err + r.stdout.decode()
    # Nothing half-done: a later real import is not a resume nor refused as a merge.
    c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
    assert b"MESSAGES 0" in c.status("INBOX", "(MESSAGES)")[1][0]
    c.logout()

    # Nobody listening: exit 69 (EX_UNAVAILABLE).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    r = import_imap(server, dead, check=False)
    assert r.returncode == 69, r
    assert re.match(rf"letterbox: import imap: imap://127\.0\.0\.1:{dead}: .*[Cc]onnection refused", r.stderr.decode()), r.stderr

    # A bad URL and a missing password: ordinary errors.
    r = server.cli("import", "imap", ADDR, "--from", "pop3://x", "--password-stdin", input="x\n", check=False)
    assert r.returncode == 1 and b"expected imap://HOST[:PORT] or imaps://HOST[:PORT]" in r.stderr, r.stderr
    r = server.cli("import", "imap", ADDR, "--from", f"imap://127.0.0.1:{dovecot.imap}", check=False)
    assert r.returncode == 1 and b"--password-stdin or --password-file" in r.stderr, r.stderr


def make_cert(tmp_path, name):
    """A CA and a certificate it signs for 127.0.0.1: (ca, cert, key)."""
    d = tmp_path / name
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={name} CA", "-keyout", d / "ca.key", "-out", d / "ca.pem")
    run("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", d / "key.pem", "-out", d / "req.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", d / "req.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", d / "ext", "-out", d / "cert.pem")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_import_imaps_from_another_letterbox(make_server, tmp_path):
    """Letterbox to Letterbox over imaps: the certificate checked against --tls-ca-file."""
    ca, cert, key = make_cert(tmp_path, "src")
    other, _, _ = make_cert(tmp_path, "other")
    src = make_server(**{"tls.cert": str(cert), "tls.key": str(key)})
    dst = make_server()
    c = imap_login(src.ports["imap"], ADDR, ALICE_PW)
    assert c.create("Work/2026")[0] == "OK"
    for i in range(3):
        assert c.append("INBOX", "(\\Seen urgent)" if i == 1 else None, None, message(i, f"m{i}"))[0] == "OK"
    assert c.append("Work/2026", "(\\Flagged)", None, message(9, "work"))[0] == "OK"
    c.logout()
    src_state, src_subs = state(src.ports["imap"], ADDR, ALICE_PW, ["INBOX", "Work/2026"])

    # Not trusted: the system roots do not know this certificate.
    r = import_imap(dst, src.ports["imaps"], password=ALICE_PW, check=False, scheme="imaps")
    assert r.returncode == 69 and b"certificate" in r.stderr.lower(), r.stderr
    r = import_imap(dst, src.ports["imaps"], "--tls-ca-file", other, password=ALICE_PW, check=False, scheme="imaps")
    assert r.returncode == 69 and b"certificate" in r.stderr.lower(), r.stderr

    r = import_imap(dst, src.ports["imaps"], "--tls-ca-file", ca, password=ALICE_PW, scheme="imaps")
    out = r.stdout.decode()
    assert "4 messages imported" in out and "0 with new UIDs" in out, out
    dst_state, dst_subs = state(dst.ports["imap"], ADDR, ALICE_PW, ["INBOX", "Work/2026"])
    assert dst_state == src_state
    assert dst_subs == src_subs
