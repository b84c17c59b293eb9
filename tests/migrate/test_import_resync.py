"""After `letterbox import maildir` from a real Dovecot 2.3 (issue 16), clients whose
state was made against Dovecot go on against Letterbox as if nothing had happened:

- fetchmail (POP3, `keep`, UIDL state in its idfile) downloaded and kept every message
  from Dovecot; pointed at Letterbox after the import it finds no mail (no RETR/TOP on
  the wire, exit code 1), and a message delivered afterwards is the one it fetches;
- a QRESYNC client (RFC 7162 3.2.5) that cached Dovecot's UIDVALIDITY, HIGHESTMODSEQ
  and UIDs resumes: SELECT ... (QRESYNC (uidvalidity modseq known-uids)) answers OK with
  the same UIDVALIDITY and every message's flags (a full flag resync, the MODSEQs being
  new ones), and a flag change made on Letterbox later is seen by a client resuming from
  the MODSEQ it cached from Dovecot (the mod-sequence never goes back under one
  UIDVALIDITY).

fetchmail keeps its UIDLs under `user@host`, not the port, so moving it from Dovecot's
port to Letterbox's on the same address is what a DNS switch does to it.
"""

import imaplib
import re
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dovecot_util import DOVECOT, PASSWORD, Dovecot  # noqa: E402
from test_import_maildir import ADDR, ALICE_PW, fill_dovecot, imap_login, message  # noqa: E402

pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot not installed")


@pytest.fixture
def dovecot():
    d = Dovecot()
    yield d
    d.stop()


def fetchmail(home, port, password):
    """One fetchmail run (leave on server, UIDLs in home/ids); returns (exit code,
    messages delivered by this run, the POP3 commands it sent)."""
    out = home / "out"
    out.mkdir(exist_ok=True)
    save = home / "save.py"
    save.write_text(
        "import os, sys, uuid\n"
        "open(os.path.join(sys.argv[1], uuid.uuid4().hex), 'wb').write(sys.stdin.buffer.read())\n"
    )
    rc = home / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\nset no syslog\nset invisible\n"
        f"poll 127.0.0.1 with proto POP3 port {port} auth password timeout 60 uidl\n"
        f'  user "{ADDR}" there with password "{password}" is "root" here\n'
        "  options keep no rewrite no stripcr sslproto ''\n"
        f'  mda "{shutil.which("python3")} {save} {out}"\n'
    )
    rc.chmod(0o600)
    before = set(out.iterdir())
    r = subprocess.run(
        ["fetchmail", "-f", str(rc), "-N", "-v", "-v", "--idfile", str(home / "ids"), "--pidfile", str(home / "pid")],
        env={"HOME": str(home), "FETCHMAILHOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = r.stdout + r.stderr
    assert r.returncode in (0, 1), log  # 0: mail fetched, 1: no mail
    sent = re.findall(r"POP3> (\S+)", log)
    new = sorted(f.read_bytes() for f in set(out.iterdir()) - before)
    return r.returncode, new, sent, log


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is installed by scripts/install-test-deps")
def test_fetchmail_keeping_mail_on_dovecot_sees_nothing_new_after_the_import(dovecot, server, tmp_path):
    fill_dovecot(dovecot)
    home = tmp_path / "fetchmail"
    home.mkdir()
    rc, got, sent, log = fetchmail(home, dovecot.pop3, PASSWORD)
    assert rc == 0 and len(got) == 5, log
    assert sent.count("RETR") + sent.count("TOP") == 5, sent
    # Against Dovecot itself a second run finds nothing new: the state works.
    rc, got, sent, log = fetchmail(home, dovecot.pop3, PASSWORD)
    assert rc == 1 and got == [] and "RETR" not in sent, log

    r = server.cli("import", "maildir", ADDR, dovecot.maildir(ADDR))
    assert "11 messages imported" in r.stdout.decode(), r.stdout

    rc, got, sent, log = fetchmail(home, server.ports["pop3"], ALICE_PW)
    assert "UIDL" in sent, log  # it asked, and every UIDL was one it had
    assert rc == 1 and got == [], log
    assert "RETR" not in sent and "TOP" not in sent, sent

    # Not a dead maildrop: a message delivered to Letterbox now is fetched, only it.
    new = message(99, "after the move")
    with smtplib.LMTP("127.0.0.1", server.ports["lmtp"]) as l:
        l.sendmail("s@example.org", [ADDR], new)
    rc, got, sent, log = fetchmail(home, server.ports["pop3"], ALICE_PW)
    assert rc == 0 and len(got) == 1 and b"Subject: after the move" in got[0], log
    assert sent.count("RETR") + sent.count("TOP") == 1, sent


def qresync_select(port, password, folder, uidvalidity, modseq, known):
    """ENABLE QRESYNC, then SELECT with the cached state; returns (tagged status,
    UIDVALIDITY, HIGHESTMODSEQ, {uid: flags} of the FETCHes, VANISHED lines)."""
    c = imap_login(port, ADDR, password)
    typ, _ = c._simple_command("ENABLE", "QRESYNC")
    assert typ == "OK"
    typ, data = c._simple_command("SELECT", f'"{folder}"', f"(QRESYNC ({uidvalidity} {modseq} {known}))")
    oks = b" ".join(c.untagged_responses.get("OK", []))
    uv = re.search(rb"UIDVALIDITY (\d+)", oks)
    hm = re.search(rb"HIGHESTMODSEQ (\d+)", oks)
    fetched = {}
    for item in c.untagged_responses.get("FETCH", []):
        line = item.decode() if isinstance(item, bytes) else item[0].decode()
        uid = int(re.search(r"UID (\d+)", line).group(1))
        fetched[uid] = set(re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()) - {"\\Recent"}
    vanished = c.untagged_responses.get("VANISHED", [])
    c.logout()
    return typ, int(uv.group(1)) if uv else None, int(hm.group(1)) if hm else None, fetched, vanished


def condstore_state(port, password, folder):
    """What a CONDSTORE/QRESYNC client caches: UIDVALIDITY, HIGHESTMODSEQ, {uid: flags}."""
    c = imap_login(port, ADDR, password)
    typ, data = c._simple_command("SELECT", f'"{folder}"', "(CONDSTORE)")
    assert typ == "OK", data
    c.state = "SELECTED"  # imaplib's select() takes no parameters; SELECT was sent by hand
    uv = int(c.untagged_responses["UIDVALIDITY"][0])
    oks = b" ".join(c.untagged_responses.get("OK", []))
    hm = int(re.search(rb"HIGHESTMODSEQ (\d+)", oks).group(1))
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    flags = {}
    for item in data:
        line = item.decode() if isinstance(item, bytes) else item[0].decode()
        uid = int(re.search(r"UID (\d+)", line).group(1))
        flags[uid] = set(re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()) - {"\\Recent"}
    c.logout()
    return uv, hm, flags


def test_qresync_client_resumes_from_dovecots_modseq(dovecot, server):
    fill_dovecot(dovecot)
    cached = {f: condstore_state(dovecot.imap, PASSWORD, f) for f in ("INBOX", "Lists/rust")}
    server.cli("import", "maildir", ADDR, dovecot.maildir(ADDR))

    for folder, (uv, hm, flags) in cached.items():
        known = ",".join(str(u) for u in sorted(flags))
        typ, uv2, hm2, fetched, vanished = qresync_select(server.ports["imap"], ALICE_PW, folder, uv, hm, known)
        assert typ == "OK", (folder, typ)
        assert uv2 == uv, (folder, uv, uv2)
        # Every message comes back with its flags: the client's view is refreshed in full,
        # and nothing it knew vanished.
        assert fetched == flags, (folder, fetched, flags)
        assert vanished == [], (folder, vanished)
        assert hm2 > hm, (folder, hm, hm2)

    # Later changes on Letterbox are seen by a client that resumes from Dovecot's MODSEQ.
    uv, hm, flags = cached["INBOX"]
    c = imap_login(server.ports["imap"], ADDR, ALICE_PW)
    c.select("INBOX")
    c.uid("STORE", "4", "+FLAGS", "(\\Seen $Later)")
    c.logout()
    known = ",".join(str(u) for u in sorted(flags))
    typ, _, _, fetched, _ = qresync_select(server.ports["imap"], ALICE_PW, "INBOX", uv, hm, known)
    assert typ == "OK"
    assert fetched.get(4) == flags[4] | {"\\Seen", "$Later"}, fetched
