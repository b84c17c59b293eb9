"""Smaller extensions end to end, with exact answers: APPENDLIMIT (RFC 7889) and the
content budget for APPEND literals, STATUS=SIZE (RFC 8438), UNAUTHENTICATE (RFC 8437),
CREATE-SPECIAL-USE (RFC 6154), the special-folder aliases (`[imap]
special_use_aliases`), LIST-EXTENDED's CHILDINFO (RFC 5258) and mailbox-name rules."""

import re
import os
import shutil
import subprocess

import pytest

import messages
from imap_util import BOB, Raw



def no_id(lines):
    """Response lines without CREATE's `[MAILBOXID (...)]` code (RFC 8474; its value is
    checked in test_imap_sort_thread.py)."""
    return [re.sub(rb"\[MAILBOXID \([A-Za-z0-9_-]+\)\] ", b"", l) for l in lines]

def T(c, rest):
    """The tagged line of the client's last command."""
    return f"t{c.n} ".encode() + rest


def append(c, mailbox, body):
    return c.cmd(f'APPEND "{mailbox}" {{{len(body)}+}}\r\n'.encode() + body)


def lst(c, ref='""', pat="*"):
    return c.cmd(f"LIST {ref} {pat}")[:-1]


def bad_then_noop(c, commands):
    """Each command gets one tagged BAD and the session lives (a NOOP in between keeps
    the consecutive-bad-commands limit away)."""
    for bad in commands:
        r = c.cmd(bad)
        assert len(r) == 1 and r[0].startswith(T(c, b"BAD ")), (bad, r)
        assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]


# --- APPENDLIMIT and the content budget ---------------------------------------------


def test_appendlimit_in_capability_status_and_list(make_server):
    server = make_server(**{"imap.max_literal_size": "1M"})
    c = Raw(server)
    assert b" APPENDLIMIT=1048576" in c.greeting
    c.login()
    assert c.cmd("CAPABILITY")[0].endswith(b" APPENDLIMIT=1048576")
    assert c.cmd("STATUS INBOX (APPENDLIMIT MESSAGES)") == [
        b"* STATUS INBOX (APPENDLIMIT 1048576 MESSAGES 0)",
        T(c, b"OK STATUS completed"),
    ]
    assert c.cmd('LIST "" Sent RETURN (STATUS (APPENDLIMIT))')[:-1] == [
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b"* STATUS Sent (APPENDLIMIT 1048576)",
    ]
    # One octet over the limit: refused before the literal is sent; at the limit: stored.
    c.send(b"big APPEND INBOX {1048577}\r\n")
    assert c.line() == b"big NO [TOOBIG] Literal of 1048577 octets exceeds the limit of 1048576"
    body = b"Subject: x\r\n\r\n" + b"y" * (1048576 - 14)
    assert append(c, "INBOX", body)[-1].endswith(b" APPEND completed")
    assert server.message("alice@example.com", "INBOX", 1) == body


def test_append_literals_count_against_the_content_budget(make_server):
    # 64K is one reservation unit: one small message fits, 100000 octets do not.
    server = make_server(**{"limits.max_buffered_content": "64K"})
    c = Raw(server)
    c.login()
    busy = b"NO [UNAVAILABLE] The server is receiving too much mail at once, try again later"
    # A synchronizing literal is refused before it is sent.
    c.send(b"a1 APPEND INBOX {100000}\r\n")
    assert c.line() == b"a1 " + busy
    assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]
    # A non-synchronizing one is read and dropped, the session lives.
    c.send(b"a2 APPEND INBOX {100000+}\r\n" + b"x" * 100000 + b"\r\n")
    assert c.line() == b"a2 " + busy
    # A MULTIAPPEND whose second message no longer fits stores nothing.
    c.send(b"a3 APPEND INBOX {40000+}\r\n" + b"x" * 40000 + b" {40000+}\r\n" + b"y" * 40000 + b"\r\n")
    assert c.line() == b"a3 " + busy
    assert c.cmd("STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 0)"
    # The budget was given back: a message that fits is stored.
    assert append(c, "INBOX", messages.SIMPLE)[-1].endswith(b" APPEND completed")
    assert append(c, "INBOX", b"Subject: 60K\r\n\r\n" + b"z" * 60000)[-1].endswith(b" APPEND completed")
    assert server.uids("alice@example.com") == [1, 2]
    # Before login nothing is reserved (LOGIN with literals works as ever).
    d = Raw(server)
    d.send(b'l LOGIN {17+}\r\nalice@example.com "alice-Secret1"\r\n')
    assert d.until("l")[-1].startswith(b"l OK [CAPABILITY ")


# --- STATUS=SIZE ----------------------------------------------------------------------


def test_status_size(server):
    c = Raw(server)
    c.login()
    assert b" STATUS=SIZE " in c.cmd("CAPABILITY")[0]
    append(c, "Drafts", messages.SIMPLE)
    append(c, "Drafts", messages.GROUPS)
    assert c.cmd("STATUS Drafts (SIZE MESSAGES)")[0] == b"* STATUS Drafts (SIZE %d MESSAGES 2)" % (
        len(messages.SIMPLE) + len(messages.GROUPS)
    )
    assert c.cmd("STATUS Trash (SIZE)")[0] == b"* STATUS Trash (SIZE 0)"
    bad_then_noop(c, ["STATUS Drafts (SIZE", "STATUS Drafts SIZE", "STATUS Drafts (SIZES)"])


# --- UNAUTHENTICATE -------------------------------------------------------------------


def test_unauthenticate_returns_to_not_authenticated(server):
    c = Raw(server)
    assert c.cmd("UNAUTHENTICATE") == [T(c, b"BAD UNAUTHENTICATE not allowed now: Log in first")]
    c.login()
    assert b" UNAUTHENTICATE " in c.cmd("CAPABILITY")[0]
    c.cmd("ENABLE IMAP4rev2")
    c.cmd("SELECT INBOX")
    bad_then_noop(c, ["UNAUTHENTICATE now"])
    assert c.cmd("UNAUTHENTICATE") == [T(c, b"OK UNAUTHENTICATE completed")]
    assert c.cmd("SELECT INBOX") == [T(c, b"BAD SELECT not allowed now: Log in first")]
    caps = c.cmd("CAPABILITY")[0]
    assert b" AUTH=PLAIN " in caps
    # Log in again as someone else: Bob's mailbox, and nothing of Alice's arrives.
    c.login(BOB)
    append_r = append(c, "INBOX", messages.SIMPLE)
    assert append_r[-1].endswith(b" APPEND completed")
    r = c.cmd("SELECT INBOX")
    assert r[0] == b"* 1 EXISTS"
    # ENABLE was reset: an IMAP4rev1 session again (RECENT is sent).
    assert r[1] == b"* 1 RECENT"
    server.deliver("alice@example.com", messages.SIMPLE)
    assert c.cmd("NOOP") == [T(c, b"OK NOOP completed")]
    assert server.uids("bob@example.com") == [1]


# --- CREATE-SPECIAL-USE -----------------------------------------------------------------


def test_create_special_use(server):
    c = Raw(server)
    c.login()
    assert b" CREATE-SPECIAL-USE " in c.cmd("CAPABILITY")[0]
    # The account has a \Sent folder already: a second one is refused, nothing made.
    assert no_id(c.cmd("CREATE MySent (USE (\\Sent))")) == [T(c, b"NO [USEATTR] Another mailbox already has \\Sent")]
    assert no_id(c.cmd("CREATE Both (USE (\\Sent \\Trash))")) == [T(c, b"NO [USEATTR] A mailbox has one special use at most")]
    assert no_id(c.cmd("CREATE Every (USE (\\All))")) == [T(c, b"NO [USEATTR] Special use \\All is not supported")]
    assert no_id(c.cmd("CREATE Flag (USE (\\Flagged))")) == [T(c, b"NO [USEATTR] Special use \\Flagged is not supported")]
    assert no_id(c.cmd("CREATE Odd (USE (\\Important))")) == [T(c, b"NO [USEATTR] Special use \\Important is not supported")]
    assert lst(c, '""', "%") == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
    ]
    # Without its \Sent folder, the account takes a new one, found by its attribute.
    assert c.cmd("DELETE Sent") == [T(c, b"OK DELETE completed")]
    assert no_id(c.cmd("CREATE Outbox/Sent (USE (\\sent))")) == [T(c, b"OK CREATE completed")]
    assert no_id(c.cmd("CREATE Plain (USE ())")) == [T(c, b"OK CREATE completed")]
    assert c.cmd('LIST (SPECIAL-USE) "" *')[:-1] == [
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
        b'* LIST (\\HasNoChildren \\Sent) "/" Outbox/Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
    ]
    assert lst(c, '""', "Plain") == [b'* LIST (\\HasNoChildren) "/" Plain']
    # And "Sent Items" now leads there.
    append(c, "Sent Items", messages.SIMPLE)
    assert server.uids("alice@example.com", "Outbox/Sent") == [1]
    bad_then_noop(
        c,
        [
            "CREATE x (USE)",
            "CREATE x (USE \\Sent)",
            "CREATE x (USE (Sent))",
            "CREATE x (FOO (\\Sent))",
            "CREATE x ()",
            "CREATE x (USE (\\Sent)",
            "CREATE x (USE (\\Sent) USE (\\Junk))",
        ],
    )
    assert lst(c, '""', "x") == []


# --- special-folder aliases ---------------------------------------------------------------


def test_aliases_land_in_the_special_folders(server):
    c = Raw(server)
    c.login()
    # CREATE of an alias: nothing created, the real folder is used.
    assert no_id(c.cmd('CREATE "Sent Items"')) == [T(c, b"OK CREATE completed: the \\Sent folder")]
    assert no_id(c.cmd('CREATE "Deleted Messages"')) == [T(c, b"OK CREATE completed: the \\Trash folder")]
    assert [l.split(b'"/" ')[1] for l in lst(c)] == [b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]
    # APPEND, STATUS (answered under the name asked), SELECT.
    assert append(c, "Sent Items", messages.SIMPLE)[-1].endswith(b" APPEND completed")
    assert append(c, "sent messages", messages.GROUPS)[-1].endswith(b" APPEND completed")
    assert server.uids("alice@example.com", "Sent") == [1, 2]
    assert server.message("alice@example.com", "Sent", 2) == messages.GROUPS
    assert c.cmd('STATUS "Sent Items" (MESSAGES)') == [
        b'* STATUS "Sent Items" (MESSAGES 2)',
        T(c, b"OK STATUS completed"),
    ]
    r = c.cmd('SELECT "Sent Messages"')
    assert r[0] == b"* 2 EXISTS" and r[-1] == T(c, b"OK [READ-WRITE] SELECT completed")
    # COPY and MOVE to aliases.
    assert c.cmd('COPY 1 "Deleted Items"')[-1].startswith(T(c, b"OK [COPYUID "))
    assert server.uids("alice@example.com", "Trash") == [1]
    assert c.cmd('MOVE 2 "Junk E-mail"')[-1] == T(c, b"OK MOVE completed")
    assert c.cmd("MOVE 1 Spam")[-1] == T(c, b"OK MOVE completed")
    assert server.uids("alice@example.com", "Junk") == [1, 2]
    assert server.uids("alice@example.com", "Sent") == []
    # SUBSCRIBE subscribes the real folder.
    c.cmd("UNSUBSCRIBE Junk")
    assert c.cmd('SUBSCRIBE "Junk Email"') == [T(c, b"OK SUBSCRIBE completed")]
    assert c.cmd('LSUB "" Junk*')[:-1] == [b'* LSUB () "/" Junk']
    # DELETE and RENAME take names literally: the alias is not a folder.
    assert c.cmd('DELETE "Sent Items"') == [T(c, b"NO [NONEXISTENT] No such mailbox or message")]
    assert c.cmd('RENAME "Deleted Items" Other')[-1].startswith(T(c, b"NO [NONEXISTENT]"))
    # Renaming the real folder keeps the alias working.
    assert c.cmd('RENAME Sent "Sent 2026"') == [T(c, b"OK RENAME completed")]
    append(c, "Sent Items", messages.SIMPLE)
    # (UIDs are never reused: the two earlier ones were moved out.)
    assert server.uids("alice@example.com", "Sent 2026") == [3]
    # Bob's aliases lead to his own folders.
    b = Raw(server)
    b.login(BOB)
    append(b, "Sent Items", messages.SIMPLE)
    assert server.uids("bob@example.com", "Sent") == [1]
    assert server.uids("alice@example.com", "Sent 2026") == [3]


def test_names_below_an_alias_are_below_the_special_folder(server):
    c = Raw(server)
    c.login()
    assert no_id(c.cmd('CREATE "Sent Items/2024"')) == [T(c, b"OK CREATE completed")]
    assert [l.split(b'"/" ')[1] for l in lst(c, '""', "Sent*")] == [b"Sent", b"Sent/2024"]
    assert lst(c, '""', "Sent") == [b'* LIST (\\HasChildren \\Sent) "/" Sent']
    append(c, "Sent Items/2024", messages.SIMPLE)
    append(c, "Sent Items", messages.GROUPS)
    assert server.uids("alice@example.com", "Sent/2024") == [1]
    assert server.uids("alice@example.com", "Sent") == [1]
    assert server.message("alice@example.com", "Sent", 1) == messages.GROUPS
    assert c.cmd('STATUS "sent items/2024" (MESSAGES)')[0] == b'* STATUS "sent items/2024" (MESSAGES 1)'
    assert c.cmd('RENAME "Sent Items/2024" "Sent Items/2025"') == [T(c, b"OK RENAME completed")]
    assert [l.split(b'"/" ')[1] for l in lst(c, '""', "Sent*")] == [b"Sent", b"Sent/2025"]
    assert c.cmd('SELECT "Sent Items/2025"')[0] == b"* 1 EXISTS"
    assert c.cmd('DELETE "Sent Items/2025"') == [T(c, b"OK DELETE completed")]
    assert c.cmd('DELETE "Sent Items"') == [T(c, b"NO [NONEXISTENT] No such mailbox or message")]
    assert [l.split(b'"/" ')[1] for l in lst(c, '""', "Sent*")] == [b"Sent"]
    assert server.uids("alice@example.com", "Sent") == [1]


def test_a_real_folder_named_like_an_alias_is_kept(make_server):
    # Made while aliases were off (e.g. migrated), the folder stays the client's.
    server = make_server(**{"imap.special_use_aliases": []})
    c = Raw(server)
    c.login()
    assert no_id(c.cmd("CREATE Spam")) == [T(c, b"OK CREATE completed")]
    append(c, "Spam", messages.SIMPLE)
    server.stop()
    server.overrides.pop("imap.special_use_aliases")
    server.write_config()
    server.start()
    c = Raw(server)
    c.login()
    assert no_id(c.cmd("CREATE Spam")) == [T(c, b"NO [ALREADYEXISTS] Mailbox already exists")]
    append(c, "Spam", messages.GROUPS)
    assert server.uids("alice@example.com", "Spam") == [1, 2]
    assert server.uids("alice@example.com", "Junk") == []
    # Junk keeps the attribute; the Spam folder does not borrow it.
    assert lst(c, '""', "Spam") == [b'* LIST (\\HasNoChildren) "/" Spam']
    # Another alias of \Junk still leads to Junk.
    append(c, "Junk E-mail", messages.SIMPLE)
    assert server.uids("alice@example.com", "Junk") == [1]


def test_alias_without_the_special_folder_creates_it_with_the_attribute(server):
    c = Raw(server)
    c.login()
    c.cmd("DELETE Trash")
    assert c.cmd('STATUS "Deleted Items" (MESSAGES)') == [T(c, b"NO [NONEXISTENT] No such mailbox or message")]
    assert append(c, "Deleted Items", messages.SIMPLE) == [T(c, b"NO [TRYCREATE] No such mailbox")]
    assert no_id(c.cmd('CREATE "Deleted Items"')) == [T(c, b"OK CREATE completed")]
    assert lst(c, '""', '"Deleted Items"') == [b'* LIST (\\HasNoChildren \\Trash) "/" "Deleted Items"']
    # Now every \Trash alias leads there.
    append(c, "Deleted Messages", messages.SIMPLE)
    assert server.uids("alice@example.com", "Deleted Items") == [1]


# --- LIST-EXTENDED ---------------------------------------------------------------------------


def test_list_extended_childinfo_and_return_options(server):
    c = Raw(server)
    c.login()
    for name in ["a/b", "c", "c/d", "e"]:
        c.cmd(f"CREATE {name}")
    for name in ["a/b", "c", "c/d", "nope/x"]:
        assert c.cmd(f"SUBSCRIBE {name}")[-1] == T(c, b"OK SUBSCRIBE completed")
    assert b" LIST-EXTENDED LIST-STATUS " in c.cmd("CAPABILITY")[0]
    # (The default folders are subscribed; a pattern that leaves them out.)
    for name in ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]:
        c.cmd(f"UNSUBSCRIBE {name}")
    # RECURSIVEMATCH: parents of subscribed names get CHILDINFO, subscribed or not, as in
    # RFC 5258's examples (and Dovecot), when the pattern leaves those names out. `a` of
    # `CREATE a/b` is no mailbox; LIST-EXTENDED says \\NonExistent (as Dovecot 2.3).
    assert c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')[:-1] == [
        b'* LIST (\\NonExistent) "/" a ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasChildren \\Subscribed) "/" c ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\NonExistent) "/" nope ("CHILDINFO" ("SUBSCRIBED"))',
    ]
    assert c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"')[:-1] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b',
        b'* LIST (\\HasChildren \\Subscribed) "/" c ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" c/d',
        b'* LIST (\\NonExistent \\Subscribed) "/" nope/x',
    ]
    assert c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" ("c" "a/b")')[:-1] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b',
        b'* LIST (\\HasChildren \\Subscribed) "/" c ("CHILDINFO" ("SUBSCRIBED"))',
    ]
    # Without RECURSIVEMATCH, no CHILDINFO and only subscribed names.
    assert c.cmd('LIST (SUBSCRIBED) "" "%"')[:-1] == [b'* LIST (\\HasChildren \\Subscribed) "/" c']
    # RETURN (SUBSCRIBED CHILDREN SPECIAL-USE) on a plain selection.
    assert c.cmd('LIST "" "%" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)')[:-1] == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
        b'* LIST (\\NonExistent \\HasChildren) "/" a',
        b'* LIST (\\HasChildren \\Subscribed) "/" c',
        b'* LIST (\\HasNoChildren) "/" e',
    ]
    bad_then_noop(
        c,
        [
            'LIST (RECURSIVEMATCH) "" "*"',
            'LIST (SUBSCRIBED BOGUS) "" "*"',
            'LIST "" "*" RETURN (BOGUS)',
            'LIST "" "*" RETURN SUBSCRIBED',
            'LIST "" "*" RETURN (STATUS)',
        ],
    )


# --- mailbox names -------------------------------------------------------------------------


def test_mailbox_names_with_path_like_levels_are_refused(server):
    c = Raw(server)
    c.login()
    for name in ['"a/../b"', "..", '"./x"', '"a/."', '"a//b"', '"/a"', "~bob", '"~/x"']:
        r = c.cmd(f"CREATE {name}")
        assert len(r) == 1 and r[0].startswith(T(c, b"NO [CANNOT] invalid mailbox name: ")), (name, r)
    c.cmd("CREATE Work")
    assert c.cmd('RENAME Work "x/../y"') == [
        T(c, b"NO [CANNOT] invalid mailbox name: '.' and '..' are not allowed as hierarchy levels")
    ]
    assert c.cmd("RENAME Work ~work") == [T(c, b"NO [CANNOT] invalid mailbox name: it cannot begin with '~'")]
    # Dots and tildes inside a level are ordinary characters; a trailing delimiter is dropped.
    assert no_id(c.cmd('CREATE "v1.2/a..b/x~y/"')) == [T(c, b"OK CREATE completed")]
    assert [l.split(b'"/" ')[1] for l in lst(c)] == [
        b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash", b"Work", b"v1.2", b"v1.2/a..b", b"v1.2/a..b/x~y",
    ]


# --- a real client ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync not installed")
def test_mbsync_syncing_sent_items_uses_the_sent_folder(server, tmp_path):
    """isync configured the Outlook way, with a `Sent Items` folder on the server: its
    messages go to and come from the account's \\Sent folder."""
    mail = tmp_path / "sent"
    for sub in ("cur", "new", "tmp"):
        (mail / sub).mkdir(parents=True)
    (mail / "cur" / "1.local:2,S").write_bytes(b"From: alice@example.com\nSubject: sent offline\n\nhi\n")
    server.deliver("alice@example.com", messages.SIMPLE)
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    c.cmd("MOVE 1 Sent")
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
Path {tmp_path}/
Inbox {tmp_path}/inbox

Channel sent
Far :remote:"Sent Items"
Near :local:sent
Sync All
SyncState *
"""
    )
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # Up: the local message is in Sent; down: Sent's message is in the local folder.
    assert server.uids("alice@example.com", "Sent") == [1, 2]
    assert server.message("alice@example.com", "Sent", 2).startswith(b"From: alice@example.com\r\nSubject: sent offline\r\n")
    local = sorted(os.listdir(mail / "cur") + os.listdir(mail / "new"))
    assert len(local) == 2, local
    assert [l.split(b'"/" ')[1] for l in lst(c)] == [b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]
