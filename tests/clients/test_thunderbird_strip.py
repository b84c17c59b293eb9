"""Thunderbird opens a message whose attachments `letterbox attachments strip` removed
(issue 15) and shows them as its own deleted attachments: it downloads the stripped
octets; its message pane shows each placeholder under a "Deleted: NAME" rule (read
back from the screenshot by OCR, tesseract) and its attachment list draws each one with
Thunderbird's red "deleted attachment" cross (attachment-deleted.svg, which it uses
for `text/x-moz-deleted` parts only) and "0 bytes" in all. The screenshot is kept
(path printed; LETTERBOX_SCREENSHOT_DIR copies it)."""

import base64
import os
import re
import shutil
import subprocess
import time

from PIL import Image

from client_util import ALICE, Proxy, assert_clean_log, need
from test_thunderbird import Thunderbird, wait_until

A = ALICE[0]


def message():
    def att(ctype, name, payload):
        b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
        return (
            f'--mix\r\nContent-Type: {ctype}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
        ).encode() + b64 + b"\r\n"

    return (
        b"From: Carol Example <carol@example.org>\r\nTo: Alice <alice@example.com>\r\n"
        b"Subject: Quarterly figures\r\nDate: Tue, 1 Sep 2026 10:00:00 +0000\r\n"
        b"Message-ID: <strip1@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n'
        b"--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe figures are attached. tb-strip-marker\r\n"
        + att("application/pdf", "quarterly-report.pdf", b"%PDF-1.4" + bytes(range(256)) * 300)
        + att("image/png", "whiteboard-photo.png", b"\x89PNG\r\n\x1a\n" + b"\x07" * 50000)
        + b"--mix--\r\n"
    )


@need("thunderbird", "Xvfb", "xdotool", "import", "tesseract")
def test_thunderbird_shows_deleted_attachments(server, tmp_path):
    server.deliver(A, message())
    out = server.cli("attachments", "strip", A).stdout.decode()
    assert "removed 2 attachment(s) from 1 message(s)" in out, out
    [uid] = server.uids(A)
    stripped = server.message(A, "INBOX", uid)
    assert stripped.count(b"Content-Type: text/x-moz-deleted;") == 2

    proxy = Proxy(server.require("imap"), keep_replies=True)
    tb = Thunderbird(tmp_path, proxy.port)
    x = tb.x
    shot = tmp_path / "thunderbird-stripped.png"
    try:
        tb.login()
        x.wait_window(r"^Inbox - alice@example\.com - ", 60)
        inbox = tb.profile / "ImapMail" / "127.0.0.1" / "INBOX"
        wait_until(lambda: inbox.exists() and b"tb-strip-marker" in inbox.read_bytes(), 60,
                   "the offline copy of the stripped message")
        # Open it (the only message: first row of the list).
        x.run("xdotool", "mousemove", "420", "124", "click", "1")
        time.sleep(3)
        # Open the attachment list (the "2 attachments" bar at the bottom of the pane).
        x.run("xdotool", "mousemove", "598", "861", "click", "1")
        time.sleep(2)
        x.screenshot(shot)
    finally:
        tb.close()
        if os.environ.get("LETTERBOX_SCREENSHOT_DIR") and shot.exists():
            shutil.copy(shot, os.environ["LETTERBOX_SCREENSHOT_DIR"])
    print(f"screenshot: {shot}")
    mbox = inbox.read_bytes().replace(b"\r\n", b"\n")
    assert stripped.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n") in mbox
    # The message pane, enlarged three times for OCR.
    pane = tmp_path / "pane.png"
    subprocess.run(["convert", str(shot), "-crop", "566x715+587+185", "-resize", "300%", str(pane)], check=True)
    text = subprocess.run(["tesseract", str(pane), "-"], capture_output=True, text=True).stdout
    print(text)
    flat = text.replace(" ", "")
    for name in ("quarterly-report.pdf", "whiteboard-photo.png"):
        assert f"Deleted:{name}" in flat, text
        assert f'filename="{name}"' in flat, text  # the original headers, quoted
    assert "The attachment was removed from this message by the mail server." in text, text
    assert re.search(r"2 attachments\s+0 bytes", text), text
    # The attachment list (the row under the bar): two red crosses, Thunderbird's
    # deleted-attachment icon, one at the start of each item.
    img = Image.open(shot).convert("RGB")
    red = [x for x in range(590, 1150) for y in range(850, 870)
           if (lambda p: p[0] > 180 and p[1] < 90 and p[2] < 90)(img.getpixel((x, y)))]
    assert red, "no deleted-attachment icon"
    clusters = [x for i, x in enumerate(sorted(set(red))) if i == 0 or x - sorted(set(red))[i - 1] > 30]
    assert len(clusters) == 2, sorted(set(red))
    assert_clean_log(server)
