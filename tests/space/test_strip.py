"""`letterbox attachments strip` (issue 15) through the real binary, checked over IMAP:
the placeholders in BODYSTRUCTURE, the other parts byte-identical, flags/keywords/date
kept, the quota freed by the removed size, QRESYNC's VANISHED plus the new UID, a signed
message refused, `--dry-run` changing nothing."""

import base64
import re

import sys
from pathlib import Path

# The IMAP helpers (Raw, login) live beside the IMAP tests. (Not in a conftest.py here:
# a second conftest module would shadow tests/conftest.py for `from conftest import`.)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))

from imap_util import ALICE, Raw

OLD_DATE = '"15-Mar-2021 09:30:00 +0100"'


def attachment(ctype, name, payload, disp_name=None):
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    dn = disp_name or f'filename="{name}"'
    return (
        f'Content-Type: {ctype}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f"Content-Disposition: attachment; {dn}\r\n\r\n"
    ).encode() + b64


TEXT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHere are the files.\r\n"
HTML = b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Here are the files.</p>\r\n"


def three_attachments():
    parts = [
        b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" + TEXT + b"--alt\r\n" + HTML + b"--alt--\r\n",
        attachment("application/pdf", "report.pdf", bytes(range(256)) * 80),
        attachment("image/png", "photo.png", b"\x89PNG" + b"\x01" * 30000),
        attachment("application/zip", "caf\u00e9.zip", b"PK" + b"\x02" * 12000, "filename*=utf-8''caf%C3%A9.zip"),
    ]
    body = b"".join(b"--mix\r\n" + p + b"\r\n" for p in parts) + b"--mix--\r\n"
    return (
        b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: files\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n" + body
    )


def signed():
    att = attachment("application/pdf", "contract.pdf", b"%PDF" + b"\x03" * 9000)
    inner = b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n" + TEXT + b"\r\n--in\r\n" + att + b"\r\n--in--\r\n"
    sig = b"Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nAAAA\r\n-----END PGP SIGNATURE-----\r\n"
    return (
        b"From: carol@example.org\r\nSubject: signed\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary=s\r\n\r\n'
        b"--s\r\n" + inner + b"\r\n--s\r\n" + sig + b"\r\n--s--\r\n"
    )


def append(c, message, flags="\\Flagged $Work"):
    return append_to(c, "INBOX", message, flags)


def append_to(c, mailbox, message, flags="\\Flagged $Work", date=OLD_DATE):
    r = c.cmd(f"APPEND {mailbox} ({flags}) {date} {{{len(message)}+}}\r\n".encode() + message)
    assert b" OK " in r[-1], r
    return int(re.search(rb"APPENDUID \d+ (\d+)", r[-1]).group(1))


def fetch(c, uid, item):
    return b"".join(c.cmd(f"UID FETCH {uid} ({item})")[:-1])


def used(c):
    """STORAGE usage in KiB (RFC 9208 GETQUOTAROOT)."""
    r = b"".join(c.cmd("GETQUOTAROOT INBOX"))
    return int(re.search(rb"STORAGE (\d+) ", r).group(1))


def test_strip_three_attachments_over_imap(server):
    c = Raw(server)
    c.login()
    assert b" OK " in c.cmd("ENABLE QRESYNC")[-1]
    msg = three_attachments()
    uid = append(c, msg)
    sel = b"".join(c.cmd("SELECT INBOX"))
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", sel).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))
    text_before = fetch(c, uid, "BODY.PEEK[1]")
    header_before = fetch(c, uid, "BODY.PEEK[HEADER]")
    before = used(c)
    stored = server.message(ALICE[0], "INBOX", uid)
    assert stored == msg

    # Dry run: lists, changes nothing.
    out = server.cli("attachments", "strip", ALICE[0], "--dry-run").stdout.decode()
    assert out.count(f"INBOX {uid} part ") == 3, out
    assert 'part 2: application/pdf "report.pdf"' in out, out
    assert 'part 4: application/zip "café.zip"' in out, out
    assert "would remove 3 attachment(s) from 1 message(s)" in out, out
    assert server.uids(ALICE[0]) == [uid]
    assert server.message(ALICE[0], "INBOX", uid) == msg

    out = server.cli("attachments", "strip", ALICE[0], "--folder", "INBOX").stdout.decode()
    m = re.search(rf"INBOX {uid}: replaced by UID (\d+), freed (\d+) octets", out)
    assert m, out
    new_uid, freed = int(m.group(1)), int(m.group(2))
    assert new_uid > uid
    assert server.uids(ALICE[0]) == [new_uid]
    new = server.message(ALICE[0], "INBOX", new_uid)
    assert len(msg) - len(new) == freed > 50000

    # Every other octet unchanged: header first line added, then the original up to the
    # first attachment's header, the boundaries kept.
    first, rest = new.split(b"\r\n", 1)
    assert first.startswith(b"X-Letterbox-Attachments-Removed: 3 part(s), %d octets removed, " % (len(msg) - len(rest))), first
    assert first.endswith(b"; rule: letterbox attachments strip --folder INBOX"), first
    cut = msg.index(b'Content-Type: application/pdf')
    assert rest[:cut] == msg[:cut]
    assert rest.endswith(b"\r\n--mix--\r\n")
    assert rest.count(b"--mix\r\n") == msg.count(b"--mix\r\n")
    assert b'X-Mozilla-Altered: AttachmentDeleted; date="' in rest
    assert b'Content-Type: text/x-moz-deleted; name="Deleted: report.pdf"\r\n' in rest
    assert b'Content-Disposition: inline; filename="Deleted: report.pdf"\r\n' in rest
    assert b"Content-Type: text/x-moz-deleted; name=\"=?UTF-8?B?RGVsZXRlZDogY2Fmw6kuemlw?=\"\r\n" in rest
    assert b"Content-Disposition: inline; filename*=UTF-8''Deleted%3A%20caf%C3%A9.zip\r\n" in rest
    assert b"The original MIME headers for the attachment were:\r\nContent-Type: image/png; name=\"photo.png\"\r\n" in rest

    # Over IMAP: a QRESYNC client resyncing sees the old UID vanish and the new one.
    q = Raw(server)
    q.login()
    assert b" OK " in q.cmd("ENABLE QRESYNC")[-1]
    r = q.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert f"* VANISHED (EARLIER) {uid}".encode() in r, r
    assert any(l.startswith(b"* 1 FETCH (UID %d " % new_uid) for l in r), r
    # The session that had it selected (QRESYNC enabled) hears VANISHED and EXISTS
    # (RFC 7162 3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled).
    r = c.cmd("NOOP")
    assert r[:2] == [b"* VANISHED %d" % uid, b"* 1 EXISTS"], r

    bs = fetch(q, new_uid, "BODYSTRUCTURE")
    assert bs.count(b'"text" "x-moz-deleted"') == 3, bs
    assert b'("text" "plain" ("charset" "utf-8")' in bs and b'("text" "html" ("charset" "utf-8")' in bs, bs
    assert b'"application" "pdf"' not in bs
    assert fetch(q, new_uid, "BODY.PEEK[1]").replace(b"UID %d" % new_uid, b"") == text_before.replace(b"UID %d" % uid, b"")
    hb = fetch(q, new_uid, "BODY.PEEK[HEADER]")
    assert hb.split(b"\r\n", 1)[1].split(b"\r\n", 1)[1] == header_before.split(b"\r\n", 1)[1], (hb, header_before)
    f = fetch(q, new_uid, "FLAGS INTERNALDATE")
    assert b"\\Flagged" in f and b"$Work" in f, f
    assert b'INTERNALDATE "15-Mar-2021 08:30:00 +0000"' in f, f  # the same instant, in UTC

    # Usage drops by the removed size (KiB, rounded), and `check` verifies usage is
    # exactly the sum of the stored sizes, i.e. the new message's size.
    after = used(q)
    assert abs((before - after) - freed / 1024) <= 1, (before, after, freed)
    assert before * 1024 >= len(msg) > (before - 1) * 1024
    assert after * 1024 >= len(new) > (after - 1) * 1024
    assert server.cli("check").returncode == 0

    # Placeholders are never removed again.
    out = server.cli("attachments", "strip", ALICE[0]).stdout.decode()
    assert "removed 0 attachment(s) from 0 message(s)" in out, out
    assert server.uids(ALICE[0]) == [new_uid]


def test_signed_refused_unless_forced_and_filters(server):
    c = Raw(server)
    c.login()
    s = signed()
    suid = append(c, s, "\\Seen")
    r = server.cli("attachments", "strip", ALICE[0], check=False)
    assert r.returncode != 0
    assert f"INBOX {suid}: refused: signed or encrypted (use --force)" in r.stdout.decode(), r.stdout
    assert server.message(ALICE[0], "INBOX", suid) == s

    # Filters: too small, wrong sender, too recent: nothing happens.
    plain = three_attachments()
    puid = append(c, plain, "\\Seen")
    for args in (["--larger-than", "1M"], ["--from", "dave@example.org"], ["--older-than", "10y"]):
        out = server.cli("attachments", "strip", ALICE[0], *args, check=False).stdout.decode()
        assert f"INBOX {puid}" not in out, (args, out)
    assert server.message(ALICE[0], "INBOX", puid) == plain
    # --larger-than 20K takes the PDF and the PNG (base64 > 20K), not the zip (~16K).
    out = server.cli("attachments", "strip", ALICE[0], "--larger-than", "20K", "--from", "CAROL@example.org", "--older-than", "1y").stdout.decode()
    assert out.count(f"INBOX {puid} part") == 2, out

    # --force rewrites the signed message (the signature is then broken, as asked).
    out = server.cli("attachments", "strip", ALICE[0], "--force").stdout.decode()
    assert 'application/pdf "contract.pdf"' in out, out
    assert server.cli("check").returncode == 0
