"""mbsync (isync) and offlineimap against a 10,000-message account, through a logging
proxy: the initial sync brings every message byte for byte; a sync with nothing changed
fetches no message body and little else; after 1% of the mailbox changed on the server
(flags, expunges, new mail) the next sync fetches just the new bodies and the local
Maildir ends up equal to the server; after 1% changed locally the next sync uploads
just that (APPEND, STORE, EXPUNGE) and the server ends up equal to the Maildir. And
mbsync over IMAPS and STARTTLS with the generated self-signed certificate pinned.

Neither client uses CONDSTORE/QRESYNC (isync 1.4 and offlineimap 8 do not implement it):
an incremental sync lists UID and FLAGS (offlineimap: and INTERNALDATE) of every
message, 35 to 80 octets each. The tests bound what they transfer by that.

mbsync syncs alice's 10,000 messages. offlineimap syncs bob's smaller account: it fetches
one message per round trip and spends ~5 ms of its own per message (the server answers
such a FETCH in ~0.4 ms in a debug build), so 10,000 messages take it 50-100 s on the CI
machine; `LETTERBOX_OFFLINEIMAP_MESSAGES=10000` runs it at full size (checked by hand:
passes, initial sync 55-80 s).
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from client_util import (
    offlineimap_conf,
    ALICE, BOB, Imap, Proxy, assert_clean_log, body_fetches, fill, make_messages, maildir, need, uid_flags,
)
from conftest import CLUSTER, USERS, Server

# The issue asks for a 10,000-message account. On the 2-core CI machine (debug build) the
# fill takes 10-30 s, mbsync's initial sync 3-5 s, offlineimap's (at 10,000) 55-80 s.
N = 10_000
OFFLINEIMAP_N = int(os.environ.get("LETTERBOX_OFFLINEIMAP_MESSAGES", 2_000))
ARCHIVE = 40  # a second folder, so the clients walk more than INBOX
# What a sync may receive per message when nothing changed: one FETCH line with UID,
# FLAGS and INTERNALDATE, e.g.
# `* 9999 FETCH (UID 9999 FLAGS (\Seen \Answered) INTERNALDATE "26-Nov-2026 14:35:50 +0000")`.
PER_MESSAGE = 96


@pytest.fixture(scope="module")
def template(tmp_path_factory, letterbox_bin):
    """A stopped server's data directory holding the big account, filled once per module;
    each test starts its own server on a copy."""
    tmp = tmp_path_factory.mktemp("template")
    s = Server(tmp, {"log.level": "info"})
    s.keep = True  # cluster mode: its database outlives the first test (tests/cluster_mode.py)
    s.cli("domain", "add", "example.com")
    for address, password in USERS.items():
        s.add_user(address, password)
    s.start()
    try:
        t = time.time()
        contents = {}
        for user, n in ((ALICE, N), (BOB, OFFLINEIMAP_N)):
            contents[user] = {
                "INBOX": fill(s.ports["imap"], "INBOX", make_messages(n), user=user),
                "Archive": fill(s.ports["imap"], "Archive", make_messages(ARCHIVE, start=n + 1), 2, user),
            }
        print(f"filled {N} + {OFFLINEIMAP_N} + 2 * {ARCHIVE} messages in {time.time() - t:.1f} s")
    finally:
        s.stop()
        s.log.close()
    return s, contents


@pytest.fixture
def big(make_server, template):
    src, contents = template
    s = make_server(start=False)
    shutil.rmtree(s.data_dir)
    shutil.copytree(src.data_dir, s.data_dir)
    if CLUSTER:  # the store is the template's database (tests/cluster_mode.py)
        from cluster_mode import copy_database

        copy_database(src, s)
    s.start()
    return s, {u: {k: dict(v) for k, v in c.items()} for u, c in contents.items()}


def strip_tuid(data):
    return b"".join(l for l in data.splitlines(True) if not l.startswith(b"X-TUID:"))


def check_maildir(local, port, user, contents, uid_re):
    """The Maildir holds exactly the server's messages with the server's flags, each the
    delivered octets with LF line ends."""
    for folder, msgs in contents.items():
        have = maildir(local / folder, uid_re)
        server = uid_flags(port, folder, user)
        assert set(have) == set(server) == set(msgs), folder
        wrong = [u for u, (flags, _) in have.items() if flags != server[u] - {"\\Recent"}]
        assert not wrong, [(u, have[u][0], server[u]) for u in wrong[:5]]
        for uid, (_, path) in have.items():
            assert strip_tuid(path.read_bytes()) == msgs[uid].replace(b"\r\n", b"\n"), (folder, uid)


def fetched_uids(commands):
    """UIDs whose bodies the client fetched (from `UID FETCH set (... BODY.PEEK[] ...)`)."""
    out = set()
    for c in body_fetches(commands):
        m = re.search(rb"UID FETCH ([0-9:,*]+) ", c, re.I)
        assert m and b"*" not in m.group(1), c
        for part in m.group(1).split(b","):
            a, _, b = part.partition(b":")
            out.update(range(int(a), int(b or a) + 1))
    return out


def change_one_percent(port, user, contents):
    """On the server: flags on 0.5% of INBOX, expunge 0.3%, deliver 0.2% new. Returns
    the new UIDs."""
    uids = sorted(contents["INBOX"])
    n = len(uids)
    flagged, seen = uids[1 : n // 4 : 100], uids[n // 4 : n // 2 : 100]  # 0.25% each
    gone = uids[n // 2 : : 100][: n * 3 // 1000]
    c = Imap(port, user)
    c.cmd("SELECT INBOX")
    for uids_, flags in ((flagged, "\\Flagged"), (seen, "\\Seen \\Answered"), (gone, "\\Deleted")):
        r = c.cmd("UID STORE " + ",".join(map(str, uids_)) + f" +FLAGS.SILENT ({flags})")
        assert r[-1].split()[1] == b"OK", r
    assert c.cmd("EXPUNGE")[-1].split()[1] == b"OK"
    c.close()
    for u in gone:
        del contents["INBOX"][u]
    new = fill(port, "INBOX", make_messages(n // 500, start=n + 1000), 2, user)
    contents["INBOX"].update(new)
    assert len(flagged) + len(seen) + len(gone) + len(new) == n // 100
    return set(new)


def change_one_percent_locally(inbox, uid_re, contents):
    """In the Maildir: \\Flagged on 0.4% of the messages, delete 0.4%, write 0.2% new
    ones (LF line ends, as Maildir keeps them). Returns the new messages' octets."""
    have = maildir(inbox, uid_re)
    uids = sorted(have)
    n = len(uids)
    flag, gone = uids[3 : n // 2 : 250], uids[n // 2 + 3 :: 250]
    for uid in flag:
        path = have[uid][1]
        base, _, info = path.name.partition(":2,")
        path.rename(inbox / "cur" / (base + ":2," + "".join(sorted(set(info) | {"F"}))))
    for uid in gone:
        have[uid][1].unlink()
        del contents["INBOX"][uid]
    new = [m.replace(b"\r\n", b"\n") for m in make_messages(n // 500, start=n + 5000)]
    for i, m in enumerate(new):
        (inbox / "new" / f"{int(time.time())}.local{i}.host").write_bytes(m)
    return set(new)


def mbsync(port, user, tmp_path, mail):
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""FSync no

IMAPAccount t
Host 127.0.0.1
Port {port}
User {user[0]}
Pass {user[1]}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account t

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel ch
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    t = time.time()
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return time.time() - t


def offlineimap(port, user, tmp_path, mail):
    rc = offlineimap_conf(tmp_path, port, mail, user)
    t = time.time()
    r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr
    return time.time() - t


def run_sync_cycle(big, tmp_path, sync, user, uid_re):
    server, contents = big
    contents = contents[user]
    proxy = Proxy(server.require("imap"))
    mail = tmp_path / "mail"
    mail.mkdir()
    total = sum(len(m) for msgs in contents.values() for m in msgs.values())
    count = sum(len(msgs) for msgs in contents.values())
    report = {}

    # 1. Initial sync: every message, byte for byte.
    report["initial"] = sync(proxy.port, user, tmp_path, mail)
    check_maildir(mail, server.require("imap"), user, contents, uid_re)
    assert fetched_uids(proxy.commands()) >= set(contents["INBOX"])
    assert proxy.received > total

    # 2. Nothing changed: no body, and about one short FETCH line per message.
    proxy.reset()
    report["unchanged"] = sync(proxy.port, user, tmp_path, mail)
    cmds = proxy.commands()
    assert body_fetches(cmds) == [], body_fetches(cmds)[:5]
    assert proxy.received < PER_MESSAGE * count + 20_000, (proxy.received, count)
    report["unchanged_octets"] = proxy.received

    # 3. 1% changed on the server: just the new bodies come, and the Maildir follows.
    new = change_one_percent(server.require("imap"), user, contents)
    proxy.reset()
    report["changed"] = sync(proxy.port, user, tmp_path, mail)
    cmds = proxy.commands()
    assert fetched_uids(cmds) == new
    new_octets = sum(len(contents["INBOX"][u]) for u in new)
    assert proxy.received < PER_MESSAGE * count + new_octets + 20_000, (proxy.received, new_octets)
    report["changed_octets"] = proxy.received
    check_maildir(mail, server.require("imap"), user, contents, uid_re)

    # 4. 1% changed locally: flags, deletions and new messages go up, and nothing else.
    local_new = change_one_percent_locally(mail / "INBOX", uid_re, contents)
    proxy.reset()
    report["pushed"] = sync(proxy.port, user, tmp_path, mail)
    cmds = proxy.commands()
    assert body_fetches(cmds) == [], body_fetches(cmds)[:5]
    appends = [c for c in cmds if re.search(rb"^\S+ APPEND ", c, re.I)]
    assert len(appends) == len(local_new), appends
    server_flags = uid_flags(server.require("imap"), "INBOX", user)
    have = maildir(mail / "INBOX", uid_re)
    # The new messages got UIDs (in their file names) and the server holds their octets.
    added = set(server_flags) - set(contents["INBOX"])
    assert len(added) == len(local_new) and set(have) == set(server_flags), (len(added), len(have), len(server_flags))
    c = Imap(server.require("imap"), user)
    c.cmd("EXAMINE INBOX")
    for uid in added:
        body = re.search(rb"\{\d+\}\r\n(.*)\)$", c.cmd(f"UID FETCH {uid} BODY.PEEK[]")[0], re.S).group(1)
        assert strip_tuid(body).replace(b"\r\n", b"\n") in local_new, body[:300]
        contents["INBOX"][uid] = strip_tuid(body)
    c.close()
    check_maildir(mail, server.require("imap"), user, contents, uid_re)
    proxy.close()
    assert_clean_log(server)
    print(f"{sync.__name__}: {count} messages ({total} octets)", report)
    return report


@need("mbsync")
def test_mbsync_10000_initial_and_incremental(big, tmp_path):
    run_sync_cycle(big, tmp_path, mbsync, ALICE, r",U=(\d+)")


@need("offlineimap")
def test_offlineimap_initial_and_incremental(big, tmp_path):
    run_sync_cycle(big, tmp_path, offlineimap, BOB, r",U=(\d+),")


@need("mbsync")
@pytest.mark.parametrize("mode", ["IMAPS", "STARTTLS"])
def test_mbsync_over_tls(server, tmp_path, mode):
    """The same sync over implicit TLS and STARTTLS, mbsync trusting exactly the server's
    generated self-signed certificate (as a user would pin it)."""
    sent = fill(server.require("imap"), "INBOX", make_messages(20), connections=2)
    cert = server.data_dir / "tls" / "selfsigned-cert.pem"
    port = server.require("imaps" if mode == "IMAPS" else "imap")
    mail = tmp_path / "mail"
    mail.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount t
Host 127.0.0.1
Port {port}
User {ALICE[0]}
Pass {ALICE[1]}
SSLType {mode}
CertificateFile {cert}

IMAPStore remote
Account t

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX

Channel ch
Far :remote:
Near :local:
Patterns INBOX
Create Both
SyncState *
"""
    )
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Password is being sent in the clear" not in r.stderr, r.stdout + r.stderr
    check_maildir(mail, server.require("imap"), ALICE, {"INBOX": sent}, r",U=(\d+)")
    assert_clean_log(server)
