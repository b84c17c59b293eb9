"""Durability over LMTP: `250` means stored. Several threads deliver over LMTP while the
server is killed with SIGKILL mid-stream; after a restart every message that got its 250
is present and byte-identical, nothing else but whole messages is stored, and the store's
invariants hold (`letterbox check`)."""

import random
import smtplib
import threading
import time

from smtp_util import bodies, lmtp, lmtp_send, smtp

ADDRS = ["alice@example.com", "bob@example.com"]


def make_body(t, i):
    size = random.choice([200, 5_000, 60_000, 400_000])
    line = f"thread {t} message {i} ".encode().ljust(76, b"-") + b"\r\n"
    return f"Subject: t{t}-{i}\r\nMessage-ID: <{t}.{i}@durability.test>\r\n\r\n".encode() + line * (size // 78 + 1)


def test_kill9_during_lmtp_delivery(make_server):
    s = make_server()
    acked = []  # (address, body)
    sent = []  # every body that was sent, acknowledged or not
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def deliverer(t):
        i = 0
        try:
            with lmtp(s) as c:
                c.ehlo("durability")
                while not stop.is_set():
                    i += 1
                    body = make_body(t, i)
                    rcpts = random.choice([[ADDRS[0]], [ADDRS[1]], ADDRS])
                    with lock:
                        sent.append(body)
                    res = lmtp_send(c, "d@example.org", rcpts, body)
                    with lock:
                        for r, (code, _) in res.items():
                            assert code == 250, res
                            acked.append((r, body))
        except (smtplib.SMTPException, OSError, AssertionError) as e:
            if not stop.is_set():
                errors.append(e)

    threads = [threading.Thread(target=deliverer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    # Let deliveries flow, then kill the server in the middle of them.
    deadline = time.time() + 30
    while len(acked) < 150 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.2))
    stop.set()
    s.kill9()
    for t in threads:
        t.join(60)
    # Errors before the kill would be real failures; after it, they are the point.
    assert not [e for e in errors if not isinstance(e, (smtplib.SMTPException, OSError))], errors
    assert len(acked) >= 150, len(acked)
    assert len(sent) > len({b for _, b in acked}), "the kill landed between deliveries only"

    s.start()
    for addr in ADDRS:
        stored = bodies(s, addr)
        for a, body in acked:
            if a == addr:
                assert body in stored, f"acknowledged message lost or altered for {addr}"
        # Anything else stored is a whole message that was sent (acknowledged or in flight).
        sent_set = set(sent)
        for b in stored:
            assert b in sent_set, "a stored message is not a whole sent message"
        # Each acknowledged message is stored once.
        mine = [b for a, b in acked if a == addr]
        assert len(stored) >= len(mine)
        assert len(set(stored)) == len(stored)
    # A crash may leave a blob file whose transaction never committed; nothing else.
    r = s.cli("check", check=False)
    problems = [l for l in r.stdout.decode().splitlines() if l != "ok"]
    assert all("not in the database" in p for p in problems), problems
    s.cli("gc")
    assert s.cli("check", "--deep").stdout == b"ok\n"
    # The restarted server takes mail as before.
    with smtp(s) as c:
        assert c.sendmail("", [ADDRS[0]], b"Subject: after restart\r\n\r\nok\r\n") == {}
    assert bodies(s, ADDRS[0])[-1] == b"Subject: after restart\r\n\r\nok\r\n"
