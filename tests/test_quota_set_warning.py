"""A quota lowered below the usage warns once, at the next delivery (found with
Thunderbird: two identical "95% full" messages arrived after `quota set`; the change
left a pending warning for serve's sweep while the delivery crossed the threshold again)."""

import time


def warnings_in(s, address):
    return [u for u in s.uids(address) if b"Auto-Submitted: auto-generated" in s.message(address, "INBOX", u)]


def test_lowered_quota_warns_once(make_server):
    s = make_server(**{"quota.warning_interval": 1})
    a = "alice@example.com"
    for i in range(5):
        s.deliver(a, b"Subject: m%d\r\n\r\n" % i + b"x" * 4000 + b"\r\n")
    used = sum(int(l.split("\t")[1]) for l in s.cli("message", "list", a, "INBOX").stdout.decode().splitlines())
    s.cli("quota", "set", a, used * 100 // 96)
    time.sleep(2.5)  # two sweeps: the change alone sends nothing
    assert warnings_in(s, a) == []
    s.deliver(a, b"Subject: next\r\n\r\nsmall\r\n")
    time.sleep(2.5)  # and the sweeps add nothing to the delivery's own warning
    found = warnings_in(s, a)
    assert len(found) == 1, [s.message(a, "INBOX", u)[:300] for u in found]
    assert b"95%" in s.message(a, "INBOX", found[0])
