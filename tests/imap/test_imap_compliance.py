"""What imaptest's compliance groups (issue 11) found, each through the real binary with
exact replies: \\Recent across sessions (RFC 3501 2.3.2), LIST patterns of atom
characters, a selected mailbox deleted by another session, LIST (SUBSCRIBED) of a
mailbox that is gone (RFC 5258), SORT (CC) and (DISPLAYTO) of groups (RFC 5256, RFC
5957), APPEND of a literal8 (RFC 3516), parents that CREATE does not make (RFC 9051
6.3.4, as Dovecot) and mbsync staying consistent with them."""

import os
import re
import shutil
import subprocess

import pytest

from imap_util import Raw

MSG = b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: test\r\n\r\nHello\r\n"


def T(c, rest):
    return b"t%d " % c.n + rest


def append(c, mailbox, msg=MSG, flags=""):
    r = c.cmd(b"APPEND %s %s{%d+}\r\n%s" % (mailbox.encode(), flags.encode(), len(msg), msg))
    assert b" OK [APPENDUID " in r[-1], r
    return r


def test_recent_belongs_to_one_session(server):
    """RFC 3501 2.3.2: a message is recent to exactly one session; EXAMINE and STATUS
    report what no session has claimed and claim nothing."""
    a, b, c = Raw(server), Raw(server), Raw(server)
    for s in (a, b, c):
        s.login()
    c.cmd("CREATE Box")
    append(c, "Box")
    append(c, "Box", flags="(\\Seen) ")
    # EXAMINE shows both as recent and claims nothing.
    r = a.cmd("EXAMINE Box")
    assert r[:2] == [b"* 2 EXISTS", b"* 2 RECENT"], r
    assert a.cmd("FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS (\\Recent))", b"* 2 FETCH (FLAGS (\\Seen \\Recent))"]
    assert c.cmd("STATUS Box (MESSAGES RECENT UNSEEN)")[0] == b"* STATUS Box (MESSAGES 2 RECENT 2 UNSEEN 1)"
    # The first SELECT takes them; the second finds none.
    r = a.cmd("SELECT Box")
    assert r[:2] == [b"* 2 EXISTS", b"* 2 RECENT"], r
    assert b.cmd("SELECT Box")[:2] == [b"* 2 EXISTS", b"* 0 RECENT"]
    assert b.cmd("FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS ())", b"* 2 FETCH (FLAGS (\\Seen))"]
    assert c.cmd("STATUS Box (RECENT)")[0] == b"* STATUS Box (RECENT 0)"
    # An arrival while both have the box selected: recent to the one that notices it first.
    append(c, "Box")
    assert c.cmd("STATUS Box (RECENT)")[0] == b"* STATUS Box (RECENT 1)"
    assert b.cmd("NOOP") == [b"* 3 EXISTS", b"* 1 RECENT", T(b, b"OK NOOP completed")]
    assert a.cmd("NOOP") == [b"* 3 EXISTS", T(a, b"OK NOOP completed")]
    assert b.cmd("FETCH 3 FLAGS")[0] == b"* 3 FETCH (FLAGS (\\Recent))"
    assert a.cmd("FETCH 3 FLAGS")[0] == b"* 3 FETCH (FLAGS ())"
    assert b.cmd("SEARCH RECENT")[0] == b"* SEARCH 3"
    assert a.cmd("SEARCH RECENT")[0] == b"* SEARCH 1 2"
    assert c.cmd("STATUS Box (RECENT)")[0] == b"* STATUS Box (RECENT 0)"
    # The session that appends to its own selected box gets its message.
    append(a, "Box")
    assert b.cmd("NOOP") == [b"* 4 EXISTS", T(b, b"OK NOOP completed")]
    assert a.cmd("FETCH 4 FLAGS")[0] == b"* 4 FETCH (FLAGS (\\Recent))"
    # An EXAMINE after the claims sees none.
    assert c.cmd("EXAMINE Box")[:2] == [b"* 4 EXISTS", b"* 0 RECENT"]
    # IMAP4rev2 sessions claim (one session per message) but never show \Recent.
    d = Raw(server)
    d.login()
    d.cmd("ENABLE IMAP4rev2")
    append(c, "Box")
    r = d.cmd("SELECT Box")
    assert not any(b"RECENT" in l for l in r), r
    assert c.cmd("STATUS Box (RECENT)")[0] == b"* STATUS Box (RECENT 0)"


def test_list_pattern_of_atom_characters(server):
    """imaptest's `atoms`: every atom character in a pattern is answered OK, listing what
    matches (a pattern that is not modified UTF-7 names nothing), and the session goes on."""
    c = Raw(server)
    c.login()
    assert c.cmd('LIST "" ~foo') == [T(c, b"OK LIST completed")]
    assert c.cmd("SELECT ~foo")[-1].startswith(T(c, b"NO "))
    pattern = b"!#$&'+,-.0123456789:;<=>?@^_`|[}%*"
    assert c.cmd(b'LIST "" ' + pattern) == [T(c, b"OK LIST completed")]
    assert c.cmd(b'LSUB "" ' + pattern) == [T(c, b"OK LSUB completed")]
    # Valid names with such characters are listed.
    assert c.cmd("CREATE a!#$&-+,.:;<=>?@^_`|[}")[-1].endswith(b"CREATE completed")
    assert c.cmd(b'LIST "" a!#*')[:-1] == [b'* LIST (\\HasNoChildren) "/" a!#$&-+,.:;<=>?@^_`|[}']
    assert c.cmd(b'LIST "" %]')[:-1] == []
    assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]


def test_selected_mailbox_deleted_by_another_session(server):
    """The session that has a mailbox selected when another deletes it is told `* BYE`
    at its next command (as Dovecot); a session that selects the recreated mailbox
    afterwards is not mistaken for it (imaptest's expunge, expunge2 and store groups:
    the recreated mailbox got the deleted one's row id)."""
    a, b, c = Raw(server), Raw(server), Raw(server)
    for s in (a, b, c):
        s.login()
    a.cmd("CREATE Box")
    append(a, "Box")
    assert b.cmd("SELECT Box")[-1] == T(b, b"OK [READ-WRITE] SELECT completed")
    # Deleted and recreated by A while C, authenticated, has heard of neither yet.
    assert a.cmd("DELETE Box") == [T(a, b"OK DELETE completed")]
    a.cmd("CREATE Box")
    append(a, "Box")
    append(a, "Box")
    # B had the old one selected: BYE, and the connection closes.
    b.send(b"t9 NOOP\r\n")
    assert b.line() == b"* BYE Selected mailbox was deleted"
    with pytest.raises((EOFError, ConnectionError)):
        b.line()
    # C selects the new one and works with it.
    r = c.cmd("SELECT Box")
    assert r[0] == b"* 2 EXISTS" and r[-1] == T(c, b"OK [READ-WRITE] SELECT completed"), r
    assert c.cmd("FETCH 1:2 UID")[:-1] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 2)"]
    assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]
    # A deletes the mailbox it has selected: it is deselected, no BYE.
    assert a.cmd("SELECT Box")[-1] == T(a, b"OK [READ-WRITE] SELECT completed")
    assert a.cmd("DELETE Box") == [T(a, b"OK DELETE completed")]
    assert a.cmd("FETCH 1 UID")[-1].startswith(T(a, b"BAD "))
    assert a.cmd("NOOP") == [T(a, b"OK NOOP completed")]


def test_list_subscribed_mailbox_that_is_gone(server):
    """RFC 5258 3.1: LIST (SUBSCRIBED) lists a subscribed name whose mailbox no longer
    exists with \\NonExistent (imaptest's listext); the plain LSUB lists it as it was."""
    c = Raw(server)
    c.login()
    for n in ["Lists/one", "Lists/two"]:
        c.cmd(f"CREATE {n}")
        c.cmd(f"SUBSCRIBE {n}")
    c.cmd("DELETE Lists/two")
    assert c.cmd('LIST (SUBSCRIBED) "" Lists/*')[:-1] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/one',
        b'* LIST (\\NonExistent \\Subscribed) "/" Lists/two',
    ]
    assert c.cmd('LIST "" Lists/* RETURN (SUBSCRIBED)')[:-1] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/one']
    assert c.cmd('LSUB "" Lists/*')[:-1] == [b'* LSUB () "/" Lists/one', b'* LSUB () "/" Lists/two']
    # RECURSIVEMATCH: CHILDINFO only for subscribed names the patterns leave out.
    assert c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" (Lists Lists/one Lists/two)')[:-1] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/one',
        b'* LIST (\\NonExistent \\Subscribed) "/" Lists/two',
    ]
    assert c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" Lists')[:-1] == [
        b'* LIST (\\NonExistent) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))',
    ]


def test_sort_cc_and_displayto_of_groups(server):
    """SORT (CC) sorts on the first address's mailbox (RFC 5256), SORT (DISPLAYTO) on its
    display name or address (RFC 5957); a header that starts with a group sorts on the
    group's name, as Dovecot (imaptest's sort-addresses and sort-display-to)."""
    cc = [
        b"Cc: user2@domain2.org (foo bar)",
        b"Cc: user2: blah@domain1.org;",
        b"Cc: user1@domain1.org",
    ]
    to = [
        b"To: foo bar <a@b.c>",
        b"To: b@c.d",
        b"To: d",
        b"To: =?iso-8859-1?q?foo_aar?= <e@f.g>",
        b"To: =?iso-8859-1?q?foo_car?= <f@g.h>",
        b"To: a: xx@xx.org, yy@yy.org;",
        b"To: z: aa@aa.org, bb@bb.org;",
        b"To: empty:;",
    ]
    c = Raw(server)
    c.login()
    c.cmd("CREATE Cc")
    c.cmd("CREATE To")
    for i, h in enumerate(cc):
        # Arrival in this order (INTERNALDATE a minute apart).
        date = '"01-Feb-2008 00:%02d:00 +0000" ' % i
        append(c, "Cc", b"From: x@y\r\n%s\r\nSubject: %d\r\n\r\n%d\r\n" % (h, i, i), flags=date)
    for i, h in enumerate(to):
        append(c, "To", b"From: x@y\r\n%s\r\nSubject: %d\r\n\r\n%d\r\n" % (h, i, i))
    c.cmd("SELECT Cc")
    assert c.cmd("SORT (CC) US-ASCII ALL")[0] == b"* SORT 3 1 2"
    assert c.cmd("SORT (REVERSE CC) US-ASCII ALL")[0] == b"* SORT 1 2 3"
    assert c.cmd("SORT (CC REVERSE ARRIVAL) US-ASCII ALL")[0] == b"* SORT 3 2 1"
    c.cmd("SELECT To")
    assert c.cmd("SORT (DISPLAYTO) US-ASCII ALL")[0] == b"* SORT 6 2 3 8 4 1 5 7"
    assert c.cmd("SORT (REVERSE DISPLAYTO) US-ASCII ALL")[0] == b"* SORT 7 5 1 4 8 3 2 6"
    # TO: mailboxes a (1), group a (6, tie: sequence order), b, d, e, group empty, f, group z.
    assert c.cmd("SORT (TO) US-ASCII ALL")[0] == b"* SORT 1 6 2 3 4 8 5 7"


def test_append_binary_literal(server):
    """RFC 3516 4.4: a literal8 APPEND; the binary part is stored in base64 (as Dovecot),
    BODY[1] is that base64, BINARY[1] the octets sent."""
    c = Raw(server)
    c.login()
    caps = c.cmd("CAPABILITY")[0]
    assert b" BINARY" in caps
    content = b"\x00-\xe4\r\n\r\n"
    msg = (b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\nMime-Version: 1.0\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + content)
    r = c.cmd(b"APPEND INBOX ~{%d+}\r\n%s" % (len(msg), msg))
    assert re.fullmatch(rb"t3 OK \[APPENDUID \d+ 1\] APPEND completed", r[-1]), r
    stored = msg.replace(b"Encoding: binary\r\n\r\n" + content, b"Encoding: base64\r\n\r\nAC3kDQoNCg==\r\n")
    assert server.message("alice@example.com", "INBOX", 1) == stored
    c.cmd("SELECT INBOX")
    assert c.cmd("FETCH 1 (BODY.PEEK[1])")[0] == b"* 1 FETCH (BODY[1] {14}\r\nAC3kDQoNCg==\r\n)"
    assert c.cmd("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")[0] == b"* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n" + content + b")"
    assert c.cmd("FETCH 1 RFC822.SIZE")[0] == b"* 1 FETCH (RFC822.SIZE %d)" % len(stored)
    # A plain literal is stored as sent, and so is a literal8 with no binary part.
    plain = b"From: a@b\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe4\r\n"
    c.cmd(b"APPEND INBOX ~{%d+}\r\n%s" % (len(plain), plain))
    assert server.message("alice@example.com", "INBOX", 2) == plain
    eight = msg.replace(content, b"\xe4-\xe4\r\n")
    c.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(eight), eight))
    assert server.message("alice@example.com", "INBOX", 3) == eight


def test_create_makes_no_parent(server):
    """RFC 9051 6.3.4 allows either; as Dovecot 2.3, `CREATE Local/Notes` makes no `Local`:
    LIST shows it \\Noselect \\HasChildren (IMAP4rev1), \\NonExistent with LIST-EXTENDED
    or IMAP4rev2; it cannot be selected or deleted; RENAME of it renames its children."""
    c = Raw(server)
    c.login()
    assert c.cmd("CREATE Local/Notes")[-1].endswith(b"CREATE completed")
    assert c.cmd('LIST "" Local*')[:-1] == [
        b'* LIST (\\Noselect \\HasChildren) "/" Local',
        b'* LIST (\\HasNoChildren) "/" Local/Notes',
    ]
    assert b'* LIST (\\Noselect \\HasChildren) "/" Local' in c.cmd('LIST "" %')
    assert c.cmd('LIST () "" Local*')[:-1] == [
        b'* LIST (\\NonExistent \\HasChildren) "/" Local',
        b'* LIST (\\HasNoChildren) "/" Local/Notes',
    ]
    assert c.cmd("SELECT Local")[-1] == T(c, b"NO [NONEXISTENT] No such mailbox or message")
    assert c.cmd("STATUS Local (MESSAGES)")[-1] == T(c, b"NO [NONEXISTENT] No such mailbox or message")
    assert c.cmd("DELETE Local")[-1] == T(c, b"NO [NONEXISTENT] No such mailbox or message")
    assert c.cmd("APPEND Local {1+}\r\nx")[-1] == T(c, b"NO [TRYCREATE] No such mailbox")
    assert c.cmd("RENAME Local Home")[-1] == T(c, b"OK RENAME completed")
    assert c.cmd('LIST "" Home*')[:-1] == [
        b'* LIST (\\Noselect \\HasChildren) "/" Home',
        b'* LIST (\\HasNoChildren) "/" Home/Notes',
    ]
    assert c.cmd('LIST "" Local*')[:-1] == []
    # RENAME to a deeper name makes no parent either; the old parent goes with its child.
    assert c.cmd("RENAME Home/Notes Archive2/2024/Notes")[-1] == T(c, b"OK RENAME completed")
    assert c.cmd('LIST "" Archive2*')[:-1] == [
        b'* LIST (\\Noselect \\HasChildren) "/" Archive2',
        b'* LIST (\\Noselect \\HasChildren) "/" Archive2/2024',
        b'* LIST (\\HasNoChildren) "/" Archive2/2024/Notes',
    ]
    assert c.cmd('LIST "" Home*')[:-1] == []
    c.cmd("ENABLE IMAP4rev2")
    assert c.cmd('LIST "" Archive2/%')[:-1] == [b'* LIST (\\NonExistent \\HasChildren) "/" Archive2/2024']
    # Creating the parent makes it a mailbox like any other.
    assert c.cmd("CREATE Archive2")[-1].endswith(b"CREATE completed")
    assert c.cmd('LIST "" Archive2')[:-1] == [b'* LIST (\\HasChildren) "/" Archive2']


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync not installed")
def test_mbsync_creates_no_extra_parent_folder(server, tmp_path):
    """issue 11: after mbsync created `Local/Notes` on the server, the server had a `Local`
    folder that the next sync pulled down. Now the server makes no `Local`, and mbsync
    (Patterns *, Create Both) stays consistent over further syncs."""
    mail = tmp_path / "mail"
    notes = mail / "Local" / "Notes"
    for sub in ("cur", "new", "tmp"):
        (notes / sub).mkdir(parents=True)
    (notes / "cur" / "1.local:2,S").write_bytes(b"From: alice@example.com\nSubject: note\n\nremember\n")
    server.deliver("alice@example.com", MSG)
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount t
Host 127.0.0.1
Port {server.require('imap')}
User alice@example.com
Pass alice-Secret1
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
Sync All
SyncState *
"""
    )

    def sync():
        r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr

    def local_folders():
        return sorted(
            os.path.relpath(d, mail)
            for d, subs, _ in os.walk(mail)
            if {"cur", "new", "tmp"} <= set(subs)
        )

    sync()
    c = Raw(server)
    c.login()
    names = [l.split(b'"/" ')[1] for l in c.cmd('LIST "" *')[:-1]]
    assert names == [b"INBOX", b"Archive", b"Drafts", b"Junk", b"Local", b"Local/Notes", b"Sent", b"Trash"]
    assert c.cmd('LIST "" Local')[0] == b'* LIST (\\Noselect \\HasChildren) "/" Local'
    assert server.uids("alice@example.com", "Local/Notes") == [1]
    note = server.message("alice@example.com", "Local/Notes", 1)
    assert note.startswith(b"From: alice@example.com\r\nSubject: note\r\n") and note.endswith(b"\r\n\r\nremember\r\n"), note
    expected = ["Archive", "Drafts", "INBOX", "Junk", "Local/Notes", "Sent", "Trash"]
    assert local_folders() == expected
    # Again, and once more after new mail: nothing appears on either side.
    sync()
    server.deliver("alice@example.com", MSG)
    sync()
    assert local_folders() == expected
    assert [l.split(b'"/" ')[1] for l in c.cmd('LIST "" *')[:-1]] == names
    assert c.cmd("SELECT Local")[-1].startswith(T(c, b"NO "))
    inbox = os.listdir(mail / "INBOX" / "cur") + os.listdir(mail / "INBOX" / "new")
    assert len(inbox) == 2


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="offlineimap not installed")
def test_offlineimap_keeps_a_parent_that_is_no_folder_out(server, tmp_path):
    """offlineimap skips the \\Noselect parent: it syncs `Local/Notes` both ways, makes no
    local `Local` folder, and creates nothing more on the server over further syncs."""
    c = Raw(server)
    c.login()
    c.cmd("CREATE Local/Notes")
    append(c, "Local/Notes")
    mail = tmp_path / "mail"
    rc = tmp_path / "offlineimap.conf"
    rc.write_text(
        f"""[general]
accounts = t
metadata = {tmp_path}/meta
fsync = false
[Account t]
localrepository = local
remoterepository = remote
[Repository local]
type = Maildir
localfolders = {mail}
[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.require('imap')}
remoteuser = alice@example.com
remotepass = alice-Secret1
ssl = no
starttls = no
maxconnections = 1
"""
    )

    def sync():
        r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr

    def local_folders():
        return sorted(d.name for d in mail.iterdir() if (d / "cur").is_dir())

    before = [l.split(b'"/" ')[1] for l in c.cmd('LIST "" *')[:-1]]
    sync()
    assert local_folders() == ["Archive", "Drafts", "INBOX", "Junk", "Local.Notes", "Sent", "Trash"]
    assert len(os.listdir(mail / "Local.Notes" / "cur") + os.listdir(mail / "Local.Notes" / "new")) == 1
    # A message written locally goes up; nothing else appears on either side.
    (mail / "Local.Notes" / "new" / "1.local").write_bytes(b"From: alice@example.com\nSubject: local note\n\nx\n")
    sync()
    sync()
    assert server.uids("alice@example.com", "Local/Notes") == [1, 2]
    assert local_folders() == ["Archive", "Drafts", "INBOX", "Junk", "Local.Notes", "Sent", "Trash"]
    assert [l.split(b'"/" ')[1] for l in c.cmd('LIST "" *')[:-1]] == before
    assert c.cmd('LIST "" Local')[0] == b'* LIST (\\Noselect \\HasChildren) "/" Local'
