"""QUOTA (RFC 9208) end to end: GETQUOTA/GETQUOTAROOT/SETQUOTA with exact answers, the
OVERQUOTA refusals that store nothing (APPEND, COPY, an atomic MULTIAPPEND), MOVE and
EXPUNGE never refused, STATUS DELETED-STORAGE, and the `* OK [ALERT]` at login and SELECT
once usage reaches the highest `[quota] warn_at` threshold."""

import base64
import math

from imap_util import ALICE, BOB, Raw


def msg(n, tag=b"x"):
    """A message of exactly n octets."""
    head = b"From: a@example.com\r\nSubject: " + tag + b"\r\n\r\n"
    return head + b"y" * (n - len(head))


def append(c, mailbox, body, flags=""):
    flags = f"({flags}) " if flags else ""
    return c.cmd(f'APPEND "{mailbox}" {flags}{{{len(body)}+}}\r\n'.encode() + body)


def T(c, rest):
    """The tagged line of the client's last command."""
    return f"t{c.n} ".encode() + rest


def used(server, address):
    """Usage as `letterbox quota show` reports it (`0`, `5.9K`...)."""
    line = server.cli("quota", "show", address).stdout.decode().splitlines()[0]
    return line.split("\t")[1]


def test_getquotaroot_and_getquota_report_storage_in_kib(server):
    c = Raw(server)
    c.login()
    caps = c.cmd("CAPABILITY")[0]
    assert b" QUOTA QUOTA=RES-STORAGE " in caps
    assert b"QUOTASET" not in caps
    assert c.cmd("GETQUOTAROOT INBOX") == [
        b'* QUOTAROOT INBOX ""',
        b'* QUOTA "" (STORAGE 0 204800)',
        T(c, b"OK GETQUOTAROOT completed"),
    ]
    # 1025 octets in INBOX and 1 in Archive: 1026 octets are 2 KiB rounded up.
    assert append(c, "INBOX", msg(1025))[-1].startswith(T(c, b"OK [APPENDUID "))
    assert append(c, "Archive", b"z")[-1].startswith(T(c, b"OK [APPENDUID "))
    assert used(server, "alice@example.com") == "1.0K"
    assert c.cmd('GETQUOTA ""') == [b'* QUOTA "" (STORAGE 2 204800)', T(c, b"OK GETQUOTA completed")]
    # Every mailbox has the same root; the name is echoed as asked.
    assert c.cmd("GETQUOTAROOT archive/../x")[-1] == T(c, b"NO [NONEXISTENT] No such mailbox or message")
    assert c.cmd("GETQUOTAROOT Archive")[:2] == [b'* QUOTAROOT Archive ""', b'* QUOTA "" (STORAGE 2 204800)']
    assert c.cmd('GETQUOTAROOT "Sent Items"')[0] == b'* QUOTAROOT "Sent Items" ""'
    assert c.cmd("GETQUOTAROOT Nope") == [T(c, b"NO [NONEXISTENT] No such mailbox or message")]
    assert c.cmd('GETQUOTA "User quota"') == [T(c, b"NO [NONEXISTENT] No such quota root")]
    # Limits are the operator's: SETQUOTA is refused, and changes nothing.
    assert c.cmd('SETQUOTA "" (STORAGE 1000000)') == [
        T(c, b"NO [NOPERM] Quotas are set by the administrator")
    ]
    assert c.cmd('GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 2 204800)'
    # Bob's account is his own: his usage is zero.
    b = Raw(server)
    b.login(BOB)
    assert b.cmd('GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 0 204800)'
    # A raised limit is seen at once by a running session.
    server.cli("quota", "set", "alice@example.com", "1G")
    assert c.cmd('GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 2 1048576)'


def test_unlimited_account_has_no_quota_root(server):
    server.cli("quota", "set", "bob@example.com", "unlimited")
    c = Raw(server)
    c.login(BOB)
    assert c.cmd("GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX", T(c, b"OK GETQUOTAROOT completed")]
    assert c.cmd('GETQUOTA ""') == [T(c, b"NO [NONEXISTENT] No such quota root")]


def test_malformed_quota_commands(server):
    c = Raw(server)
    assert c.cmd("GETQUOTAROOT INBOX") == [T(c, b"BAD GETQUOTAROOT not allowed now: Log in first")]
    c.login()
    for bad in [
        "GETQUOTA",
        "GETQUOTA (x)",
        "GETQUOTAROOT",
        "GETQUOTAROOT INBOX extra",
        'SETQUOTA ""',
        'SETQUOTA "" STORAGE 5',
        'SETQUOTA "" (STORAGE)',
        'SETQUOTA "" (STORAGE -1)',
        'SETQUOTA "" (STORAGE 1',
        "STATUS INBOX (DELETED-STORAGE FOO)",
    ]:
        r = c.cmd(bad)
        assert len(r) == 1 and r[0].startswith(f"t{c.n} BAD ".encode()), (bad, r)
        # (a NOOP between them, so the session does not end for too many bad commands)
        assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]
    assert c.cmd("NOOP") == [f"t{c.n} OK NOOP completed".encode()]


def test_over_quota_append_and_copy_store_nothing_move_and_expunge_work(server):
    server.cli("quota", "set", "alice@example.com", "10K")
    c = Raw(server)
    c.login()
    validity = c.cmd("STATUS INBOX (UIDVALIDITY)")[0].split(b" ")[-1].rstrip(b")")
    assert append(c, "INBOX", msg(6000, b"first"))[-1] == T(c, b"OK [APPENDUID %s 1] APPEND completed" % validity)
    r = append(c, "INBOX", msg(6000, b"second"))
    assert r == [T(c, b"NO [OVERQUOTA] Quota exceeded")]
    r = append(c, "Sent Items", msg(6000, b"third"))
    assert r == [T(c, b"NO [OVERQUOTA] Quota exceeded")]
    assert used(server, "alice@example.com") == "5.9K"
    assert server.uids("alice@example.com") == [1]
    assert server.uids("alice@example.com", "Sent") == []
    c.cmd("SELECT INBOX")
    assert c.cmd("COPY 1 Archive") == [T(c, b"NO [OVERQUOTA] Quota exceeded")]
    assert server.uids("alice@example.com", "Archive") == []
    # Bob is not affected by Alice's quota.
    b = Raw(server)
    b.login(BOB)
    assert append(b, "INBOX", msg(6000))[-1].endswith(b"APPEND completed")
    # Moving inside the account is never refused, and expunging frees the space.
    r = c.cmd("MOVE 1 Trash")
    assert r[-1] == T(c, b"OK MOVE completed"), r
    assert used(server, "alice@example.com") == "5.9K"
    c.cmd("SELECT Trash")
    assert c.cmd("STATUS Trash (DELETED DELETED-STORAGE SIZE)")[0] == b"* STATUS Trash (DELETED 0 DELETED-STORAGE 0 SIZE 6000)"
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("STATUS Trash (DELETED DELETED-STORAGE SIZE)")[0] == b"* STATUS Trash (DELETED 1 DELETED-STORAGE 6 SIZE 6000)"
    assert c.cmd("EXPUNGE")[-1] == T(c, b"OK EXPUNGE completed")
    assert used(server, "alice@example.com") == "0"
    assert append(c, "INBOX", msg(6000))[-1].endswith(b"APPEND completed")


def test_multiappend_is_atomic_under_quota(server):
    server.cli("quota", "set", "alice@example.com", "10K")
    c = Raw(server)
    c.login()
    assert b" MULTIAPPEND " in c.cmd("CAPABILITY")[0]
    parts = [msg(4000, b"one"), msg(4000, b"two"), msg(4000, b"three")]
    cmd = b"APPEND Archive"
    for i, p in enumerate(parts):
        flags = b" (\\Seen)" if i == 1 else b""
        cmd += flags + b" {%d+}\r\n" % len(p) + p
    # 12000 octets together do not fit in 10 KiB: nothing is stored.
    assert c.cmd(cmd) == [T(c, b"NO [OVERQUOTA] Quota exceeded")]
    assert used(server, "alice@example.com") == "0"
    assert server.uids("alice@example.com", "Archive") == []
    # Two fit: both stored, one APPENDUID with the UID set.
    validity = c.cmd("STATUS Archive (UIDVALIDITY)")[0].split(b" ")[-1].rstrip(b")")
    cmd = b"APPEND Archive {4000+}\r\n" + parts[0] + b' (\\Seen) " 7-Feb-1994 21:52:25 -0800" {4000+}\r\n' + parts[1]
    assert c.cmd(cmd) == [T(c, b"OK [APPENDUID %s 1:2] APPEND completed") % validity]
    assert used(server, "alice@example.com") == "7.8K"
    assert server.message("alice@example.com", "Archive", 2) == parts[1]
    c.cmd("EXAMINE Archive")
    # (EXAMINE shows the \\Recent no session has claimed, as Dovecot.)
    assert c.cmd("FETCH 1:2 (FLAGS INTERNALDATE)")[:2] == [
        b'* 1 FETCH (FLAGS (\\Recent) INTERNALDATE "%s")' % c.cmd("FETCH 1 INTERNALDATE")[0].split(b'"')[1],
        b'* 2 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "08-Feb-1994 05:52:25 +0000")',
    ]
    # A bad message anywhere refuses the whole command: an empty one, a bad flag.
    r = c.cmd(b"APPEND Archive {3+}\r\nabc {0+}\r\n")
    assert r == [T(c, b"NO [CANNOT] Empty message")]
    r = c.cmd(b"APPEND Archive {3+}\r\nabc (\\Recent) {3+}\r\ndef")
    assert r == [T(c, b"BAD \\Recent cannot be set")]
    r = c.cmd(b"APPEND Nowhere {3+}\r\nabc {3+}\r\ndef")
    assert r == [T(c, b"NO [TRYCREATE] No such mailbox")]
    assert server.uids("alice@example.com", "Archive") == [1, 2]
    assert used(server, "alice@example.com") == "7.8K"
    # Malformed forms: BAD, nothing stored, the session lives.
    for bad in [
        b"APPEND Archive {3+}\r\nabc ",
        b"APPEND Archive {3+}\r\nabc (\\Seen)",
        b"APPEND Archive {3+}\r\nabc  {3+}\r\ndef",
        b'APPEND Archive {3+}\r\nabc "bad date" {3+}\r\ndef',
        b"APPEND Archive {3+}\r\nabc {3+}\r\ndef)",
    ]:
        r = c.cmd(bad)
        assert len(r) == 1 and r[0].startswith(T(c, b"BAD ")), (bad, r)
        assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]
    assert server.uids("alice@example.com", "Archive") == [1, 2]
    # Into an alias: the special folder.
    r = c.cmd(b"APPEND \"Sent Items\" {3+}\r\nabc {3+}\r\ndef")
    assert r[-1].startswith(T(c, b"OK [APPENDUID ")) and r[-1].endswith(b" 1:2] APPEND completed"), r
    assert server.uids("alice@example.com", "Sent") == [1, 2]


def test_alert_at_login_and_select_above_the_highest_threshold(make_server):
    server = make_server(**{"quota.warn_at": [80, 95]})
    server.cli("quota", "set", "alice@example.com", "10K")
    c = Raw(server)
    c.login()
    # 9216 octets: 90%, above 80 but below the highest threshold: no alert.
    append(c, "INBOX", msg(9216))
    d = Raw(server)
    r = d.login()
    assert not any(b"ALERT" in l for l in r), r
    assert not any(b"ALERT" in l for l in d.cmd("SELECT INBOX"))
    # 9900 octets: 96%.
    append(c, "Trash", msg(684))
    alert = b"* OK [ALERT] Your mailbox is 96% full (9.7 KiB of 10 KiB); delete or move mail to avoid bounces"
    # Sessions already logged in hear it at their next SELECT or EXAMINE, once.
    r = d.cmd("SELECT Trash")
    assert r[-2:] == [alert, T(d, b"OK [READ-WRITE] SELECT completed")], r
    r = d.cmd("EXAMINE INBOX")
    assert r[-1] == T(d, b"OK [READ-ONLY] EXAMINE completed") and not any(b"ALERT" in l for l in r), r
    r = c.cmd("EXAMINE INBOX")
    assert r[-2:] == [alert, T(c, b"OK [READ-ONLY] EXAMINE completed")], r
    # A new session hears it at login, and again at its first SELECT (many programs
    # show only what opening a folder says, issue 11), not at the next ones.
    e = Raw(server)
    r = e.login()
    assert r[0] == alert and r[1].startswith(T(e, b"OK [CAPABILITY ")), r
    r = e.cmd("SELECT INBOX")
    assert r[-2:] == [alert, T(e, b"OK [READ-WRITE] SELECT completed")], r
    assert not any(b"ALERT" in l for l in e.cmd("SELECT Trash"))
    assert not any(b"ALERT" in l for l in e.cmd("EXAMINE INBOX"))
    # AUTHENTICATE too; and Bob, nearly empty, hears nothing.
    f = Raw(server)
    ir = base64.b64encode(b"\0" + ALICE[0].encode() + b"\0" + ALICE[1].encode()).decode()
    r = f.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert r[0] == alert and r[1].startswith(T(f, b"OK [CAPABILITY ")), r
    b = Raw(server)
    assert not any(b"ALERT" in l for l in b.login(BOB))
    # Freeing space stops the alert; filling up again brings it back, once.
    d.cmd("SELECT Trash")
    d.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    d.cmd("EXPUNGE")
    assert not any(b"ALERT" in l for l in d.cmd("SELECT INBOX"))
    append(c, "Trash", msg(684))
    r = d.cmd("SELECT Trash")
    assert r[-2:] == [alert, T(d, b"OK [READ-WRITE] SELECT completed")], r
    assert not any(b"ALERT" in l for l in d.cmd("SELECT INBOX"))
    # Fuller than at the session's last ALERT (96% -> 98%): told again, once.
    append(c, "Trash", msg(200))
    alert98 = b"* OK [ALERT] Your mailbox is 98% full (9.9 KiB of 10 KiB); delete or move mail to avoid bounces"
    r = d.cmd("SELECT Trash")
    assert r[-2:] == [alert98, T(d, b"OK [READ-WRITE] SELECT completed")], r
    assert not any(b"ALERT" in l for l in d.cmd("SELECT INBOX"))
    r = e.cmd("EXAMINE Trash")
    assert r[-2:] == [alert98, T(e, b"OK [READ-ONLY] EXAMINE completed")], r
    assert not any(b"ALERT" in l for l in e.cmd("SELECT INBOX"))


def test_alert_when_over_quota_after_the_limit_was_lowered(server):
    c = Raw(server)
    c.login()
    append(c, "INBOX", msg(3 * 1024 * 1024))
    server.cli("quota", "set", "alice@example.com", "2M")
    d = Raw(server)
    r = d.login()
    assert r[0] == (
        b"* OK [ALERT] Your mailbox is 150% full (3 MiB of 2 MiB); delete or move mail to avoid bounces"
    ), r
    assert d.cmd('GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE %d 2048)' % math.ceil(3 * 1024 * 1024 / 1024)
