"""Durability: an acknowledged delivery survives `kill -9` at any moment.

Several threads deliver through `letterbox deliver` (each process acknowledges by exiting
0 after the store's fsynced commit) while another thread kills random deliveries with
SIGKILL mid-write. Afterwards: every acknowledged message is present and byte-identical,
killed deliveries left either a whole message or nothing, quota usage equals the sum of
sizes, no blob is orphaned after garbage collection, and UIDs are strictly increasing.
(The protocol listeners have their own kill -9 tests of the running server.)
"""

import random
import signal
import subprocess
import threading
import time

from conftest import BIN

ADDRS = ["alice@example.com", "bob@example.com"]


def body(thread, i):
    # Varied sizes, some large enough that the kill lands inside the blob write.
    filler = ("line %d of thread %d\r\n" % (i, thread)) * random.choice([1, 10, 3000, 20000])
    return f"Subject: t{thread}-{i}\r\nMessage-ID: <{thread}.{i}@test>\r\n\r\n{filler}".encode()


def test_kill9_during_concurrent_delivery(make_server):
    s = make_server(start=False)
    # Durability, not quota: no limit, so no quota warning joins the stored messages.
    for addr in ADDRS:
        s.cli("quota", "set", addr, "unlimited")
    acked = []  # (address, message bytes)
    killed = []
    lock = threading.Lock()
    live = {}
    stop = time.time() + 12

    def deliverer(t):
        i = 0
        while time.time() < stop:
            i += 1
            addr = ADDRS[i % 2]
            msg = body(t, i)
            p = subprocess.Popen(
                [str(BIN), "--config", str(s.config_path), "deliver", addr],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            with lock:
                live[p.pid] = p
            out, err = p.communicate(msg)
            with lock:
                live.pop(p.pid, None)
            if p.returncode == 0:
                assert out.startswith(b"delivered uid "), out
                acked.append((addr, msg, int(out.split()[2])))
            elif p.returncode == -signal.SIGKILL:
                killed.append((addr, msg))
            else:
                raise AssertionError(f"deliver failed: {p.returncode} {err!r}")

    def killer():
        while time.time() < stop:
            time.sleep(random.uniform(0.005, 0.08))
            with lock:
                victims = list(live.values())
            if victims:
                v = random.choice(victims)
                try:
                    v.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass

    threads = [threading.Thread(target=deliverer, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=killer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) > 20 and len(killed) > 3, (len(acked), len(killed))

    prefix = lambda a: f"Delivered-To: {a}\r\n".encode()
    for addr in ADDRS:
        uids = s.uids(addr)
        assert uids == sorted(set(uids)), "UIDs strictly increasing"
        stored = {uid: s.message(addr, "INBOX", uid) for uid in uids}
        for a, msg, uid in acked:
            if a == addr:
                assert stored.get(uid) == prefix(a) + msg, f"acknowledged UID {uid} lost or altered"
        # Whatever else is stored is a whole message that some killed delivery sent.
        killed_msgs = {prefix(a) + m for a, m in killed if a == addr}
        acked_uids = {uid for a, _, uid in acked if a == addr}
        for uid, data in stored.items():
            if uid not in acked_uids:
                assert data in killed_msgs, f"UID {uid} is not a whole message"
    # Crashes may leave blob files without a record; gc removes exactly those.
    s.cli("gc")
    assert s.cli("check", "--deep").stdout == b"ok\n"
    # Nothing was lost by gc: all acknowledged messages still read back.
    for a, msg, uid in acked[:10]:
        assert s.message(a, "INBOX", uid) == prefix(a) + msg
    # UIDs are never reused after the crashes.
    s.deliver("alice@example.com", b"Subject: after\r\n\r\nx\r\n")
    uids = s.uids("alice@example.com")
    assert uids[-1] == max(uids) and len(uids) == len(set(uids))
