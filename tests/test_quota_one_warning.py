"""One delivery, one warning: the quota warning message itself never triggers another.

A delivery that takes the box from below 80% to 94% crosses 80%; the warning message
(about 2 KiB) then takes it past 95%. Before the fix that stored a second warning ("95%
full") at once; now the warning's own octets arm nothing.
"""

import smtplib
import time

from test_quota_warnings import warnings_in


def test_warning_does_not_warn(make_server):
    s = make_server(users={}, start=False, **{"quota.warning_interval": 1, "quota.warn_at": [80, 95]})
    s.add_user("carol@example.com", "carol-pw", quota="20K")
    s.start()
    body = b"Subject: big one\r\n\r\n" + b"c" * 19000 + b"\r\n"
    with smtplib.LMTP("127.0.0.1", s.require("lmtp")) as c:
        c.sendmail("x@elsewhere.org", ["carol@example.com"], body)
    # The SMTP/LMTP path stores the warning before its reply; the sweep runs every
    # second: give it a few rounds to (wrongly) find a second crossing.
    time.sleep(3)
    warned = warnings_in(s, "carol@example.com")
    assert len(warned) == 1, s.read_log()[-3000:]
    text = s.message("carol@example.com", "INBOX", warned[0])
    assert b"Subject: Your mailbox is 80% full\r\n" in text
    # Usage is still the sum of the stored sizes, warning included, and over 95%.
    out = s.cli("quota", "show", "carol@example.com").stdout.decode()
    sizes = [len(s.message("carol@example.com", "INBOX", u)) for u in s.uids("carol@example.com")]
    assert len(sizes) == 2 and sum(sizes) > 0.95 * 20480, (sizes, out)
    assert s.cli("check").returncode == 0
