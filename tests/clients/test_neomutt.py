"""NeoMutt, driven through tmux like a person at a terminal: it opens the account over
IMAP, shows the index, reads a message, saves (moves) one to a folder with a non-ASCII
name and expunges, runs into the quota, and resyncs by CONDSTORE.

NeoMutt (20220429, Debian 12) has no quota display: it sends no GETQUOTAROOT and shows
neither `* OK [ALERT]` nor other untagged OK text (with `imap_servernoise` it shows
untagged NO and failed commands). What a NeoMutt user sees of the quota is the refusal:
a copy into a full account fails with the server's `[OVERQUOTA] Quota exceeded` in the
message log. When the server advertises QUOTA, the login ALERT of a nearly full account
is checked in what NeoMutt received (its debug log).
"""

import os
import re
import time

import pytest

from client_util import Imap, Proxy, Tmux, assert_clean_log, fill, make_messages, need

# The CONDSTORE resync's mailbox. At 10,000 (checked by hand, debug build): the first
# open fetches 5.4 MB of headers in ~2 s; reopening unchanged exchanges 1.4 KB, after
# three flag changes 1.6 KB in 0.2 s.
CONDSTORE_N = int(os.environ.get("LETTERBOX_NEOMUTT_MESSAGES", 2_000))

MESSAGES = [
    (
        f"From: Carol Example <carol@example.org>\r\n"
        f"To: alice@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Tue, 1 Sep 2026 10:0{i}:00 +0000\r\n"
        f"Message-ID: <nm{i}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
    for i, (subject, body) in enumerate(
        [
            ("Lunch on Friday", "Shall we meet at noon? The usual place."),
            ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Die Stra\u00dfe ist nass; the zebra-crossing is closed."),
            ("Quarterly numbers", "Revenue went up by 12 percent, costs by 3."),
        ]
    )
]


@pytest.fixture
def neomutt(server, tmp_path):
    for m in MESSAGES:
        server.deliver("alice@example.com", m)
    port = server.require("imap")
    rc = tmp_path / "muttrc"
    rc.write_text(
        f"""set imap_user = "alice@example.com"
set imap_pass = "alice-Secret1"
set folder = "imap://127.0.0.1:{port}/"
set spoolfile = "+INBOX"
set ssl_starttls = no
set ssl_force_tls = no
set imap_servernoise = yes
set header_cache = ""
set message_cachedir = ""
set confirmappend = no
set delete = yes
set move = no
set wait_key = no
set sort = date
"""
    )
    sessions = []

    def start(debug_level=1):
        t = Tmux(
            f"neomutt{len(sessions)}",
            ["neomutt", "-n", "-F", str(rc), "-d", str(debug_level), "-l", str(tmp_path / "neomutt.log")],
            {"HOME": str(tmp_path), "TERM": "xterm-256color", "LANG": "C.UTF-8"},
        )
        sessions.append(t)
        return t

    yield start
    for t in sessions:
        t.close()


def usage(server):
    """Octets in alice's account (all of it is in INBOX here), from the admin listing."""
    out = server.cli("message", "list", "alice@example.com", "INBOX").stdout.decode()
    return sum(int(l.split("\t")[1]) for l in out.splitlines())


@need("neomutt", "tmux")
def test_neomutt_reads_and_moves_a_message(server, neomutt):
    inbox = server.uids("alice@example.com")
    moved = server.message("alice@example.com", "INBOX", inbox[1])
    # A folder with a non-ASCII name (modified UTF-7 on the wire; NeoMutt enables
    # UTF8=ACCEPT and then sees UTF-8).
    c = Imap(server.require("imap"))
    assert c.cmd('CREATE "Reisen/K&APY-ln"')[-1].split()[1] == b"OK"
    c.close()
    t = neomutt()
    s = t.wait_for(r"Quarterly numbers")
    # The index: sender, decoded subject, in date order, all new.
    assert re.search(r"1 N .*Carol Example .*Lunch on Friday", s), s
    assert re.search(r"2 N .*Carol Example .*Grüße aus Köln", s), s
    assert re.search(r"3 N .*Carol Example .*Quarterly numbers", s), s
    assert "Msgs:3 New:3" in s, s

    # Read message 2: its headers and 8-bit text on screen. (NeoMutt fetches with
    # BODY.PEEK[] and stores \Seen later, with its next change to the mailbox.)
    t.keys("j", "Enter")
    s = t.wait_for(r"zebra-crossing")
    assert "Subject: Grüße aus Köln" in s, s
    assert "Die Straße ist nass; the zebra-crossing is closed." in s, s

    # Save it to Reisen/Köln (copy + delete), then sync the mailbox ($ expunges).
    t.keys("i")
    t.wait_for(r"Msgs:3 New:2")
    t.keys("s")
    t.wait_for(r"Save to mailbox")
    t.type("=Reisen/Köln")
    t.keys("Enter")
    s = t.wait_for(r"Del:1")
    assert re.search(r"2 +D .*Grüße aus Köln", s), s
    t.keys("$")
    s = t.wait_for(r"Msgs:2 ")
    assert "Grüße" not in s, s

    assert server.uids("alice@example.com") == [inbox[0], inbox[2]]
    target = server.cli("message", "list", "alice@example.com", "Reisen/Köln").stdout.decode().splitlines()
    assert len(target) == 1 and target[0].endswith("(\\Seen)"), target
    assert server.message("alice@example.com", "Reisen/Köln", int(target[0].split("\t")[0])) == moved

    # NeoMutt opens that folder too.
    t.keys("c")
    t.wait_for(r"Open mailbox")
    t.type("=Reisen/Köln")
    t.keys("Enter")
    s = t.wait_for(r"Reisen/Köln.*Msgs:1")
    assert re.search(r"1 .*Carol Example .*Grüße aus Köln", s), s
    t.keys("q")
    assert_clean_log(server)


@need("neomutt", "tmux")
def test_neomutt_runs_into_the_quota(server, neomutt):
    used = usage(server)
    # Room for less than one more message.
    server.cli("quota", "set", "alice@example.com", used + len(MESSAGES[0]) // 2)
    t = neomutt()
    t.wait_for(r"Quarterly numbers")
    t.keys("C")
    t.wait_for(r"Copy to mailbox")
    t.type("=Sent")
    t.keys("Enter")
    # NeoMutt tries COPY, then FETCH + APPEND; both are refused, nothing is stored.
    s = t.wait_for(r"Error copying message")
    t.type(":exec error-history")
    t.keys("Enter")
    s = t.wait_for(r"messages \(end\)|\(end\)")
    assert "[OVERQUOTA] Quota exceeded" in s, s
    assert server.uids("alice@example.com", "Sent") == []
    t.keys("q")
    assert_clean_log(server)


@need("neomutt", "tmux")
def test_neomutt_receives_the_quota_alert(server, neomutt, tmp_path):
    c = Imap(server.require("imap"))
    caps = b" ".join(c.cmd("CAPABILITY"))
    c.close()
    if b" QUOTA" not in caps:
        # Checked by hand that NeoMutt's level-5 log records every server line as
        # `< * OK [...]`, so the assertion below sees an ALERT once there is one.
        pytest.skip("this build does not advertise QUOTA (RFC 9208) yet: no login ALERT to check")
    server.cli("quota", "set", "alice@example.com", usage(server) * 100 // 97)  # 97% full
    t = neomutt(debug_level=5)
    t.wait_for(r"Quarterly numbers")
    log = (tmp_path / "neomutt.log0").read_text(errors="replace")
    assert re.search(r"< \* (OK|NO) \[ALERT\] ", log), log[-3000:]


@need("neomutt", "tmux")
def test_neomutt_resyncs_with_condstore(server, tmp_path):
    """With a header cache and `imap_condstore`/`imap_qresync`, reopening the mailbox asks
    only for what changed (`UID FETCH 1:n (FLAGS) (CHANGEDSINCE m VANISHED)`) and headers
    of new messages only; when nothing changed it fetches nothing (HIGHESTMODSEQ tells). After an expunge this NeoMutt falls back to a flags-only
    refetch (`UID FETCH 1:n (UID FLAGS)`); it does the same against Dovecot 2.3 (compared
    by hand: identical command sequence), so that is the client's way."""
    port = server.require("imap")
    c = Imap(port)
    caps = b" ".join(c.cmd("CAPABILITY"))
    c.close()
    if b" CONDSTORE" not in caps or b" QRESYNC" not in caps:
        pytest.skip("this build does not advertise CONDSTORE and QRESYNC (RFC 7162) yet")
    n = CONDSTORE_N
    fill(port, "INBOX", make_messages(n), connections=8)
    proxy = Proxy(port)
    (tmp_path / "hcache").mkdir()
    rc = tmp_path / "muttrc"
    rc.write_text(
        f"""set imap_user = "alice@example.com"
set imap_pass = "alice-Secret1"
set folder = "imap://127.0.0.1:{proxy.port}/"
set spoolfile = "+INBOX"
set ssl_starttls = no
set ssl_force_tls = no
set header_cache = "{tmp_path}/hcache/"
set imap_condstore = yes
set imap_qresync = yes
set mark_old = no
set sort = date
"""
    )

    def session(i, expect):
        proxy.reset()
        t = Tmux(f"nmcs{i}", ["neomutt", "-n", "-F", str(rc)],
                 {"HOME": str(tmp_path), "TERM": "xterm-256color", "LANG": "C.UTF-8"})
        try:
            s = t.wait_for(expect)
            t.keys("q")
            time.sleep(0.5)
        finally:
            t.close()
        return s, [l.decode(errors="replace") for l in proxy.commands()], proxy.received

    header_fetch = re.compile(r"FETCH (\S+) \(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK\[HEADER.FIELDS", re.I)
    _, cmds, first = session(1, rf"Msgs:{n} New:{n} ")
    assert [m.group(1) for c in cmds if (m := header_fetch.search(c))] == [f"1:{n}"], cmds
    assert any(re.search(r"SELECT \"INBOX\" \((CONDSTORE|QRESYNC)", c) for c in cmds), "\n".join(cmds)

    # Nothing changed: SELECT's HIGHESTMODSEQ equals the cached one, so NeoMutt fetches
    # nothing at all (no flags, no header, no body).
    _, cmds, unchanged = session(0, rf"Msgs:{n} New:{n} ")
    assert not any(re.search(r"\bFETCH\b", c, re.I) for c in cmds), "\n".join(cmds)
    assert unchanged < 3000, (unchanged, first)

    # A flag and a new message on the server: only those come back.
    c = Imap(port)
    c.cmd("SELECT INBOX")
    c.cmd("UID STORE 5 +FLAGS.SILENT (\\Flagged)")
    c.close()
    fill(port, "INBOX", make_messages(1, start=n + 1), connections=1)
    s, cmds, second = session(2, rf"Msgs:{n + 1} New:{n + 1} Flag:1 ")
    assert any(re.search(rf"UID FETCH 1:{n} \(FLAGS\) \(CHANGEDSINCE \d+ VANISHED\)", c) for c in cmds), "\n".join(cmds)
    assert [m.group(1) for c in cmds if (m := header_fetch.search(c))] == [str(n + 1)], cmds
    assert not any(re.search(r"FETCH 1:\S+ \(UID FLAGS\)", c) for c in cmds), "\n".join(cmds)
    assert second < first / 10, (second, first)

    # An expunge and another flag: the index follows (NeoMutt refetches flags only).
    c = Imap(port)
    c.cmd("SELECT INBOX")
    c.cmd("UID STORE 9 +FLAGS.SILENT (\\Flagged)")
    c.cmd("UID STORE 7 +FLAGS.SILENT (\\Deleted)")
    c.cmd("EXPUNGE")
    c.close()
    s, cmds, third = session(3, rf"Msgs:{n} New:{n} Flag:2 ")
    assert not any(re.search(r"FETCH 1:\S+ \(UID FLAGS INTERNALDATE", c) for c in cmds), "\n".join(cmds)
    assert third < first / 2, (third, first)
    proxy.close()
    assert_clean_log(server)


@need("neomutt", "tmux")
def test_neomutt_over_imaps(server, tmp_path):
    """Implicit TLS, NeoMutt trusting the server's generated self-signed certificate (in
    its `certificate_file`; the name is mail.example.com, so no host check on 127.0.0.1)."""
    server.deliver("alice@example.com", MESSAGES[2])
    rc = tmp_path / "muttrc"
    rc.write_text(
        f"""set imap_user = "alice@example.com"
set imap_pass = "alice-Secret1"
set folder = "imaps://127.0.0.1:{server.require('imaps')}/"
set spoolfile = "+INBOX"
set certificate_file = "{server.data_dir / 'tls' / 'selfsigned-cert.pem'}"
set ssl_verify_host = no
set header_cache = ""
"""
    )
    t = Tmux("neomutt-tls", ["neomutt", "-n", "-F", str(rc)],
             {"HOME": str(tmp_path), "TERM": "xterm-256color", "LANG": "C.UTF-8"})
    try:
        s = t.wait_for(r"Msgs:1 ")
        assert re.search(r"1 N .*Carol Example .*Quarterly numbers", s), s
        t.keys("Enter")
        t.wait_for(r"Revenue went up by 12 percent")
        t.keys("q")
    finally:
        t.close()
    assert_clean_log(server)
