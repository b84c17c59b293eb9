"""Freeing space from the usage page: removing attachments (issue 14, with the server-side
strip of issue 15) and the Trash/Junk autoexpunge shown to the user.

- in Debian's chromium (JavaScript off), a user presses "Remove" beside an attachment of
  one of their largest messages, sees the exact space it frees (nothing changes yet),
  confirms, and the quota drops by exactly that; over IMAP the message (a new UID, the
  old one gone) has Thunderbird's `text/x-moz-deleted` placeholder and every other octet
  as it was;
- "remove old attachments" by age and size, previewed then done, in the browser;
- the API (`POST /api/attachments/remove`, documented in the OpenAPI document): dry run,
  signed messages refused, CSRF required, and usage always equals the stored sizes;
- the usage page says when Trash and Junk are emptied by the server (`[expire]` and
  `letterbox expire set`).
"""

import imaplib
import re
import time

from test_portal import (  # noqa: F401  (fixtures)
    ALICE,
    ALICE_PW,
    Http,
    attachment_message,
    browser,
    browser_login,
    check_screenshot,
    new_page,
    portal,
)


def imap(server):
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login(ALICE, ALICE_PW)
    return c


def storage(server):
    c = imap(server)
    typ, data = c.getquotaroot("INBOX")
    c.logout()
    m = re.search(rb"STORAGE (\d+) (\d+)", data[1][0])
    return int(m.group(1)), int(m.group(2))


def used(server):
    """Quota usage in octets, as the store keeps it (the portal's API)."""
    h = Http(server)
    h.login(ALICE, ALICE_PW)
    return h.json("GET", "/api/usage")[1]["used"]


def test_remove_one_attachment_in_the_browser(portal, browser, tmp_path):
    original = portal.message(ALICE, "INBOX", 1)
    before = used(portal)
    kib_before = storage(portal)[0]
    page = new_page(browser, phone=True)
    browser_login(page, portal, ALICE, ALICE_PW)
    button = page.locator("a.button.small[title='Remove beach.jpg from this message']")
    assert button.count() == 1
    button.click()
    page.wait_for_load_state()
    text = page.inner_text("main")
    m = re.search(r"Removing 1 attachment\(s\) from 1 message\(s\) frees (\S+ \S+): your mailbox goes from", text)
    assert m, text
    assert "beach.jpg" in text and "image/jpeg" in text
    check_screenshot(page, tmp_path / "remove-preview.png", ["Remove 1 attachment(s)", "beach.jpg"])
    # The preview changed nothing.
    assert used(portal) == before and portal.uids(ALICE) == [1, 2]
    # The exact figure, from the same dry run through the API.
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    status, dry = h.json("POST", "/api/attachments/remove",
                         {"folder": "INBOX", "uid": 1, "sections": ["2"], "dry_run": True}, csrf=h.csrf)
    assert status == 200 and dry["dry_run"] and dry["attachments"] == 1, dry
    assert dry["removed"][0]["filename"] == "beach.jpg" and dry["removed"][0]["new_uid"] is None
    freed = dry["freed"]
    assert freed > 11000 and dry["used_after"] == before - freed

    page.click("form[action='/usage/attachments'] button.danger")
    page.wait_for_load_state()
    assert page.url.endswith("/usage")
    assert "Removed 1 attachment(s) from 1 message(s)" in page.inner_text("main")
    # The attachment is gone from the list, the note remains as a placeholder part.
    assert page.locator("a.button.small[title='Remove beach.jpg from this message']").count() == 0

    # The quota dropped by exactly what the preview said, IMAP included.
    assert used(portal) == before - freed
    assert storage(portal)[0] < kib_before
    # Over IMAP: UID 1 is gone, UID 3 is the stripped copy with the placeholder.
    c = imap(portal)
    c.select("INBOX")
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"2", b"3"], data
    typ, data = c.uid("FETCH", "3", "(BODYSTRUCTURE)")
    assert re.search(rb'\("TEXT" "X-MOZ-DELETED" \("NAME" "Deleted: beach.jpg"\)', data[0], re.I), data[0]
    typ, data = c.uid("FETCH", "3", "(BODY.PEEK[])")
    c.logout()
    stored = data[0][1]
    assert stored.startswith(b"X-Letterbox-Attachments-Removed: 1 part(s), ")
    assert b'Content-Type: text/x-moz-deleted; name="Deleted: beach.jpg"\r\n' in stored
    assert b"QUJDQUJD" not in stored
    # Everything but the part is the original, octet for octet.
    head, _, rest = original.partition(b'--b1\r\nContent-Type: image/jpeg')
    assert stored.split(b"\r\n", 1)[1].startswith(head + b"--b1\r\nContent-Type: text/x-moz-deleted")
    assert stored.endswith(b"Content-Transfer-Encoding: base64\r\n--b1--\r\n")
    assert portal.cli("check").stdout.decode().strip() == "ok"


def old_message(size, names):
    """A message with several attachments of `size` octets (base64 lines)."""
    payload = "QUJD" * (size // 4)
    lines = "\r\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    parts = "".join(
        f'--b2\r\nContent-Type: application/pdf; name="{n}"\r\n'
        f'Content-Disposition: attachment; filename="{n}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{lines}\r\n"
        for n in names
    )
    return (
        "From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Old reports\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b2"\r\n\r\n'
        "--b2\r\nContent-Type: text/plain\r\n\r\nThe reports.\r\n" + parts + "--b2--\r\n"
    ).encode()


SIGNED = (
    b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Signed\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pgp-signature"; '
    b'micalg=pgp-sha256; boundary="s1"\r\n\r\n'
    b'--s1\r\nContent-Type: multipart/mixed; boundary="s2"\r\n\r\n'
    b"--s2\r\nContent-Type: text/plain\r\n\r\nsigned\r\n"
    b'--s2\r\nContent-Type: application/zip; name="s.zip"\r\nContent-Disposition: attachment; filename="s.zip"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + b"QUJD" * 40000 + b"\r\n--s2--\r\n"
    b'\r\n--s1\r\nContent-Type: application/pgp-signature; name="signature.asc"\r\n\r\n'
    b"-----BEGIN PGP SIGNATURE-----\r\nx\r\n-----END PGP SIGNATURE-----\r\n--s1--\r\n"
)


def test_remove_old_attachments_by_age_and_size(portal, browser, tmp_path):
    portal.cli("quota", "set", ALICE, "10M")
    c = imap(portal)
    c.create("Archive")
    old = time.mktime((2020, 3, 1, 12, 0, 0, 0, 0, -1))
    # Old with two 200K attachments; old and signed; recent with one (kept).
    assert c.append("Archive", None, imaplib.Time2Internaldate(old), old_message(200_000, ["a.pdf", "b.pdf"]))[0] == "OK"
    assert c.append("Archive", None, imaplib.Time2Internaldate(old), SIGNED)[0] == "OK"
    assert c.append("Archive", None, None, old_message(200_000, ["new.pdf"]))[0] == "OK"
    c.logout()
    before = used(portal)

    page = new_page(browser)
    browser_login(page, portal, ALICE, ALICE_PW)
    page.click("a[href^='/usage/attachments?folder=Archive']")
    page.wait_for_load_state()
    page.fill("input[name=older_than_days]", "365")
    page.select_option("select[name=larger_than]", str(100 << 10))
    page.click("form[action='/usage/attachments'] button[type=submit]")
    page.wait_for_load_state()
    text = page.inner_text("main")
    assert "Removing 2 attachment(s) from 1 message(s)" in text, text
    assert "a.pdf" in text and "b.pdf" in text and "new.pdf" not in text
    assert "signed or encrypted" in text
    check_screenshot(page, tmp_path / "remove-old.png", ["a.pdf", "Other attachments"])
    assert used(portal) == before
    page.click("form[action='/usage/attachments'][method=post] button.danger")
    page.wait_for_load_state()
    assert "Removed 2 attachment(s) from 1 message(s)" in page.inner_text("main")
    after = used(portal)
    assert before - after > 2 * 200_000

    c = imap(portal)
    c.select("Archive", readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT X-LETTERBOX-ATTACHMENTS-REMOVED)])")
    c.logout()
    got = {int(re.search(rb"UID (\d+)", d[0]).group(1)): d[1] for d in data if isinstance(d, tuple)}
    assert sorted(got) == [2, 3, 4], got  # 1 replaced by 4; the signed (2) and recent (3) untouched
    assert b"X-Letterbox-Attachments-Removed: 2 part(s)" in got[4]
    assert b"X-Letterbox" not in got[2] and b"X-Letterbox" not in got[3]
    assert portal.cli("check").stdout.decode().strip() == "ok"


def test_api_refusals_and_csrf(portal):
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    before = used(portal)
    # No CSRF token (API) / no token or a wrong one (form): 403, nothing removed.
    assert h.json("POST", "/api/attachments/remove", {"folder": "INBOX", "uid": 1})[0] == 403
    for form in ({"folder": "INBOX", "uid": "1"}, {"folder": "INBOX", "uid": "1", "csrf": "0" * 64}):
        r = h.request("POST", "/usage/attachments", form=form)
        assert r.status == 403
    assert used(portal) == before and portal.uids(ALICE) == [1, 2]
    # Bad requests get 400 with a reason; an unknown message 404.
    status, err = h.json("POST", "/api/attachments/remove", {"uid": 1}, csrf=h.csrf)
    assert status == 400 and "folder" in err["error"]
    assert h.json("POST", "/api/attachments/remove", {"folder": "INBOX", "uid": 99}, csrf=h.csrf)[0] == 404
    # The body of a message is not an attachment: nothing to remove from message 2.
    status, r = h.json("POST", "/api/attachments/remove", {"folder": "INBOX", "uid": 2}, csrf=h.csrf)
    assert status == 200 and r["attachments"] == 0 and r["skipped"], r
    # The whole account, for real, through the API: the attachment goes.
    status, r = h.json("POST", "/api/attachments/remove", {}, csrf=h.csrf)
    assert status == 200 and r["attachments"] == 1 and r["removed"][0]["new_uid"] == 3, r
    assert r["used_after"] == before - r["freed"] == used(portal)
    # A POP3 user whose mail is deleted after download: INBOX is left alone, with why.
    portal.deliver(ALICE, attachment_message("Again", "again.jpg", 4000))
    assert h.json("POST", "/api/reading/retention", {"retention": "delete"}, csrf=h.csrf)[0] == 200
    status, r = h.json("POST", "/api/attachments/remove", {"dry_run": True}, csrf=h.csrf)
    assert status == 200 and r["attachments"] == 0 and "POP3" in r["skipped"][0], r


def test_usage_page_shows_trash_and_junk_expiry(portal, browser):
    h = Http(portal)
    h.login(ALICE, ALICE_PW)
    exp = h.json("GET", "/api/usage")[1]["expire"]
    assert exp == {"trash_days": 30, "junk_days": 30}, exp  # [expire]'s defaults
    portal.cli("expire", "set", "example.com", "trash", "7d")
    portal.cli("expire", "set", ALICE, "junk", "0")
    assert h.json("GET", "/api/usage")[1]["expire"] == {"trash_days": 7, "junk_days": 0}
    page = new_page(browser)
    browser_login(page, portal, ALICE, ALICE_PW)
    text = page.inner_text("main")
    assert "Messages in Trash are deleted 7 days after they were put there." in text, text
    assert "Messages in Junk are kept until you delete them." in text
    rows = {r.split("\t")[0].strip(): r for r in page.locator("tbody tr").all_inner_texts()}
    assert "Auto-emptied after 7 day(s)." in rows["Trash"], rows
    assert "Never emptied automatically." in rows["Junk"], rows
