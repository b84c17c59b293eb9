"""Automatic attachment removal (issue 15) through the real binary: per-domain and
per-account policies (`letterbox attachments policy set|clear|show`), applied by
`letterbox attachments run` and by `serve` every `[attachments] policy_interval`; what
an IMAP session sees (EXPUNGE + EXISTS); the POP3-retention INBOX skipped; and the
account's space log (`letterbox space log`) recording strips and Trash expiry."""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "web"))

from imap_util import ALICE, BOB, Raw
from ops_util import Http, start, web_server
from test_strip import append_to, three_attachments

DAY = 86400
RECENT = time.strftime('"%d-%b-%Y %H:%M:%S +0000"', time.gmtime(time.time() - 5 * DAY))


def cli(server, *args, check=True):
    r = server.cli(*args, check=check)
    return r.stdout.decode() + r.stderr.decode()


def test_domain_and_account_policies(make_server):
    server = make_server()
    a = Raw(server)
    a.login()
    b = Raw(server, timeout=10)
    b.login(BOB)
    msg = three_attachments()
    sent_old = append_to(a, "Sent", msg)
    sent_new = append_to(a, "Sent", msg, date=RECENT)
    archive_old = append_to(a, "Archive", msg, flags="\\Seen \\Answered")
    inbox_old = append_to(a, "INBOX", msg)
    drafts_old = append_to(a, "Drafts", msg)
    bob_sent = append_to(b, "Sent", msg)

    # Default: no policy at all (the operator must choose one).
    assert "(config) none" in cli(server, "attachments", "policy", "show")
    assert "policies: stripped 0 message(s), freed 0 octets" in cli(server, "attachments", "run")

    cli(server, "attachments", "policy", "set", "example.com", "--older-than", "1y",
        "--larger-than", "20K", "--folder", "\\Sent", "--folder", "Archive", "--folder", "INBOX")
    cli(server, "attachments", "policy", "set", BOB[0], "--older-than", "0", "--larger-than", "0")
    shown = cli(server, "attachments", "policy", "show")
    assert "example.com older than 365d larger than 20K in \\Sent, Archive, INBOX" in shown, shown
    assert f"{BOB[0]} none" in shown, shown
    assert f"{ALICE[0]} older than 365d" in cli(server, "attachments", "policy", "show", ALICE[0])
    # Bad input: one clear line, nothing changed.
    r = server.cli("attachments", "policy", "set", "nowhere.example", "--older-than", "1y", "--larger-than", "1M", "--folder", "Sent", check=False)
    assert r.returncode != 0 and b"nowhere.example" in r.stderr, r
    r = server.cli("attachments", "policy", "set", "example.com", "--older-than", "1y", "--larger-than", "1M", check=False)
    assert r.returncode != 0 and b"--folder" in r.stderr, r
    # POP3 retention `delete`: the INBOX is left alone (a new UIDL would be fetched again).
    cli(server, "user", "set", ALICE[0], "pop3-retention", "delete")

    # Alice's session has Sent selected (no QRESYNC): it hears EXPUNGE and EXISTS.
    a.cmd("SELECT Sent")
    out = cli(server, "attachments", "run")
    assert f"{ALICE[0]} INBOX: skipped (POP3 retention delete)" in out, out
    m = re.search(rf"{ALICE[0]} Sent {sent_old}: replaced by UID (\d+), freed (\d+) octets", out)
    assert m, out
    new_sent, freed_sent = int(m.group(1)), int(m.group(2))
    assert re.search(rf"{ALICE[0]} Archive {archive_old}: replaced by UID \d+", out), out
    # Only the two attachments over 20K (the PDF and the PNG), not the 16K zip.
    assert out.count(f"{ALICE[0]} Sent {sent_old} part ") == 2, out
    assert f"Sent {sent_new}" not in out and "Drafts" not in out and BOB[0] not in out, out
    assert "policies: stripped 2 message(s)" in out, out

    assert server.uids(ALICE[0], "Sent") == [sent_new, new_sent]
    assert server.uids(ALICE[0], "INBOX") == [inbox_old]
    assert server.uids(ALICE[0], "Drafts") == [drafts_old]
    assert server.uids(BOB[0], "Sent") == [bob_sent]
    stripped = server.message(ALICE[0], "Sent", new_sent)
    first, rest = stripped.split(b"\r\n", 1)
    # The header counts the octets the parts lost; `freed` is net of the header itself.
    assert first.startswith(b"X-Letterbox-Attachments-Removed: 2 part(s), %d octets removed, " % (len(msg) - len(rest))), first
    assert first.endswith(b"; rule: policy (alice@example.com): attachments over 20480 octets older than 365 days in \\Sent, Archive, INBOX"), first
    assert stripped.count(b"Content-Type: text/x-moz-deleted;") == 2
    assert b'filename*=utf-8\'\'caf%C3%A9.zip' in stripped  # the zip kept as it was
    assert len(msg) - len(stripped) == freed_sent

    r = a.cmd("NOOP")
    pos = {l for l in r[:-1]}
    assert b"* 1 EXPUNGE" in pos and b"* 2 EXISTS" in pos, r
    f = b"".join(a.cmd(f"UID FETCH {new_sent} (FLAGS INTERNALDATE)"))
    assert b"\\Flagged" in f and b"$Work" in f and b'"15-Mar-2021 08:30:00 +0000"' in f, f
    a.cmd("SELECT Archive")
    f = b"".join(a.cmd("FETCH 1 (FLAGS)"))
    assert b"\\Answered" in f and b"\\Seen" in f, f

    # The user's record: what went, when, by which rule; then the freed total per day.
    log = cli(server, "space", "log", ALICE[0])
    assert re.search(rf"strip Sent uid {sent_old} -> {new_sent}: 1 message\(s\), {freed_sent} octets freed; part 2 application/pdf \"report.pdf\" \d+ octets; part 3 image/png \"photo.png\" \d+ octets; rule: policy \(alice@example.com\)", log), log
    assert re.search(r"strip Archive uid \d+ -> \d+: 1 message\(s\)", log), log
    day = re.search(r"day \d{4}-\d\d-\d\d: attachments (\d+) octets, expiry 0 octets", log)
    assert day and int(day.group(1)) == 2 * freed_sent, log
    assert cli(server, "space", "log", BOB[0]).strip() == ""

    # Applying again changes nothing; clearing the domain's policy returns to none.
    assert "policies: stripped 0 message(s)" in cli(server, "attachments", "run")
    cli(server, "attachments", "policy", "clear", "example.com")
    assert f"{ALICE[0]} none" in cli(server, "attachments", "policy", "show", ALICE[0])
    assert server.cli("check").returncode == 0


def test_serve_applies_the_configured_policy_and_logs_expiry(make_server):
    server = start(web_server(make_server, **{
        "attachments.policy_older_than": "365d",
        "attachments.policy_larger_than": "10K",
        "attachments.policy_folders": ["\\Sent"],
        "attachments.policy_interval": "1s",
        # The first run at once, not a minute after the start (the default).
        "store.maintenance_delay": 0,
    }))
    a = Raw(server)
    a.login()
    uid = append_to(a, "Sent", three_attachments())
    # serve applies it on its own within a few intervals.
    deadline = time.time() + 60
    while server.uids(ALICE[0], "Sent") == [uid] and time.time() < deadline:
        time.sleep(0.5)
    uids = server.uids(ALICE[0], "Sent")
    assert len(uids) == 1 and uids[0] > uid, (uids, server.read_log()[-3000:])
    assert re.search(rf"attachments: policy: {ALICE[0]} Sent uid {uid} -> {uids[0]}: removed 3 part\(s\), freed \d+ octets", server.read_log()), server.read_log()[-3000:]
    assert b"Content-Type: text/x-moz-deleted" in server.message(ALICE[0], "Sent", uids[0])

    # Expiry shows in the same log and in the per-day figures.
    t = append_to(a, "Trash", b"Subject: gone\r\n\r\n" + b"y" * 3000 + b"\r\n")
    out = cli(server, "expire", "run", "--now", str(int(time.time()) + 31 * DAY))
    assert "Trash: expunged 1 message(s)" in out, out
    log = cli(server, "space", "log", ALICE[0])
    size = len(b"Subject: gone\r\n\r\n" + b"y" * 3000 + b"\r\n")
    assert f"expire Trash: 1 message(s), {size} octets freed; older than 30 days" in log, log
    assert re.search(rf"day \S+: attachments \d+ octets, expiry {size} octets", log), log
    assert t not in server.uids(ALICE[0], "Trash")
    assert server.cli("check").returncode == 0

    # The user sees the same record through the portal's JSON API.
    h = Http(server)
    h.login(*ALICE)
    status, body = h.json("GET", "/api/space")
    assert status == 200, body
    kinds = [(e["kind"], e["folder"]) for e in body["entries"]]
    assert kinds == [("expire", "Trash"), ("strip", "Sent")], body
    strip = body["entries"][1]
    assert (strip["uid"], strip["new_uid"], strip["messages"]) == (uid, uids[0], 1), strip
    assert 'part 2 application/pdf "report.pdf"' in strip["detail"], strip
    assert body["entries"][0]["freed"] == size and body["entries"][0]["uid"] is None
    assert [(d["attachments"], d["expiry"]) for d in body["days"]] == [(strip["freed"], size)], body
    assert h.json("GET", "/api/space?days=0")[0] == 400
    assert Http(server).json("GET", "/api/space")[0] == 401
