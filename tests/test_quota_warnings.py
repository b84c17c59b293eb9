"""Quota warnings arrive exactly once per crossing, whichever path crossed."""

import imaplib
import smtplib
import time


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def warnings_in(s, address):
    return [u for u in s.uids(address) if b"Auto-Submitted: auto-generated" in s.message(address, "INBOX", u)]


def test_imap_append_crossing_warns_once(make_server):
    s = make_server(users={}, start=False, **{"quota.warning_interval": 1})
    s.add_user("alice@example.com", "alice-pw", quota="20K")
    s.start()
    imap = imaplib.IMAP4("127.0.0.1", s.require("imap"))
    imap.login("alice@example.com", "alice-pw")
    msg = b"Subject: draft\r\n\r\n" + b"d" * 16500 + b"\r\n"
    typ, _ = imap.append("Drafts", None, None, msg)
    assert typ == "OK"
    assert wait_for(lambda: len(warnings_in(s, "alice@example.com")) == 1), s.read_log()[-2000:]
    text = s.message("alice@example.com", "INBOX", warnings_in(s, "alice@example.com")[0])
    assert b"80%" in text and b"postmaster@example.com" in text
    time.sleep(2.5)  # more sweeps: still exactly one
    assert len(warnings_in(s, "alice@example.com")) == 1
    imap.logout()


def test_smtp_crossing_is_not_sent_twice(make_server):
    s = make_server(users={}, start=False, **{"quota.warning_interval": 1})
    s.add_user("bob@example.com", "bob-pw", quota="20K")
    s.start()
    with smtplib.SMTP("127.0.0.1", s.require("smtp")) as c:
        c.sendmail("x@elsewhere.org", ["bob@example.com"], b"Subject: big\r\n\r\n" + b"b" * 16500 + b"\r\n")
    assert wait_for(lambda: len(warnings_in(s, "bob@example.com")) == 1)
    time.sleep(2.5)
    assert len(warnings_in(s, "bob@example.com")) == 1
