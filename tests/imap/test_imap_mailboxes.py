"""IMAP priority 2 and 3: LIST/LSUB, CREATE, DELETE, RENAME (hierarchies and INBOX),
SUBSCRIBE, STATUS, SELECT/EXAMINE, APPEND, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE."""

import re

from imap_util import Raw, login

MSG = b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: test\r\n\r\nHello\r\n"


def lst(c, ref='""', pat="*"):
    return [l for l in c.cmd(f"LIST {ref} {pat}")[:-1]]


def test_list_default_folders(server):
    c = Raw(server)
    c.login()
    assert lst(c) == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
    ]
    assert c.cmd('LIST "" ""') == [b'* LIST (\\Noselect) "/" ""', b"t3 OK LIST completed"]
    assert lst(c, '""', "inbox") == [b'* LIST (\\HasNoChildren) "/" INBOX']


def test_create_hierarchy_wildcards_and_children(server):
    c = Raw(server)
    c.login()
    assert re.fullmatch(rb"t2 OK \[MAILBOXID \(F\d+-\d+\)\] CREATE completed", c.cmd("CREATE Work/Projects/2024")[-1])
    # As Dovecot, superior names are not created (RFC 9051 6.3.4 allows either): they
    # list as \Noselect (IMAP4rev1 LIST) or \NonExistent (LIST-EXTENDED, IMAP4rev2).
    assert lst(c, '""', "Work*") == [
        b'* LIST (\\Noselect \\HasChildren) "/" Work',
        b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects',
        b'* LIST (\\HasNoChildren) "/" Work/Projects/2024',
    ]
    assert c.cmd("SELECT Work")[-1] == b"t4 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd("DELETE Work")[-1] == b"t5 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd("STATUS Work/Projects (MESSAGES)")[-1] == b"t6 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd('LIST () "" "Work/%"')[:-1] == [b'* LIST (\\NonExistent \\HasChildren) "/" Work/Projects']
    assert re.fullmatch(rb"t8 OK \[MAILBOXID \(F\d+-\d+\)\] CREATE completed", c.cmd("CREATE Work/")[-1])
    assert c.cmd("CREATE Work")[-1] == b"t9 NO [ALREADYEXISTS] Mailbox already exists"
    assert c.cmd("CREATE inbox")[-1] == b"t10 NO [ALREADYEXISTS] INBOX always exists"
    assert lst(c, '""', "Work*") == [
        b'* LIST (\\HasChildren) "/" Work',
        b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects',
        b'* LIST (\\HasNoChildren) "/" Work/Projects/2024',
    ]
    assert lst(c, '""', "Work/%") == [b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects']
    assert lst(c, "Work/", "%") == [b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects']
    # Deleting a parent leaves its children; the parent then shows as non-existent.
    c.cmd("CREATE Work/Projects")
    assert lst(c, '""', "Work/%") == [b'* LIST (\\HasChildren) "/" Work/Projects']
    assert c.cmd("DELETE Work/Projects")[-1] == b"t16 OK DELETE completed"
    assert lst(c, '""', "Work/%") == [b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects']
    assert lst(c, '""', "Work/*") == [
        b'* LIST (\\Noselect \\HasChildren) "/" Work/Projects',
        b'* LIST (\\HasNoChildren) "/" Work/Projects/2024',
    ]
    assert c.cmd("DELETE Work/Projects")[-1] == b"t19 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd("DELETE INBOX")[-1] == b"t20 NO [CANNOT] INBOX cannot be deleted"
    c.cmd("ENABLE IMAP4rev2")
    assert lst(c, '""', "Work/%") == [b'* LIST (\\NonExistent \\HasChildren) "/" Work/Projects']
    # The last child gone, the parent that was never created goes too.
    assert c.cmd("DELETE Work/Projects/2024")[-1] == b"t23 OK DELETE completed"
    assert lst(c, '""', "Work*") == [b'* LIST (\\HasNoChildren) "/" Work']


def test_rename_hierarchy(server):
    c = Raw(server)
    c.login()
    for n in ["A", "A/B", "A/B/C", "AB"]:
        c.cmd(f"CREATE {n}")
    c.cmd("SUBSCRIBE A/B")
    assert c.cmd("RENAME A Z/Y")[-1].endswith(b"OK RENAME completed")
    assert lst(c, '""', "A*") == [b'* LIST (\\HasNoChildren) "/" AB', b'* LIST (\\HasNoChildren \\Archive) "/" Archive']
    # The target's superior (Z) is not created, as for CREATE.
    assert lst(c, '""', "Z*") == [
        b'* LIST (\\Noselect \\HasChildren) "/" Z',
        b'* LIST (\\HasChildren) "/" Z/Y',
        b'* LIST (\\HasChildren) "/" Z/Y/B',
        b'* LIST (\\HasNoChildren) "/" Z/Y/B/C',
    ]
    assert c.cmd('LSUB "" Z*')[:-1] == [b'* LSUB () "/" Z/Y/B']
    # Renaming a parent that is no mailbox renames what is below it (as Dovecot).
    assert c.cmd("RENAME Z Q")[-1].endswith(b"OK RENAME completed")
    assert lst(c, '""', "Q*") == [
        b'* LIST (\\Noselect \\HasChildren) "/" Q',
        b'* LIST (\\HasChildren) "/" Q/Y',
        b'* LIST (\\HasChildren) "/" Q/Y/B',
        b'* LIST (\\HasNoChildren) "/" Q/Y/B/C',
    ]
    assert lst(c, '""', "Z*") == []
    assert c.cmd('LSUB "" Q*')[:-1] == [b'* LSUB () "/" Q/Y/B']
    assert c.cmd("RENAME Nope X")[-1].endswith(b"NO [NONEXISTENT] No such mailbox or message")
    assert c.cmd("RENAME AB Sent")[-1].endswith(b"NO [ALREADYEXISTS] Mailbox already exists")


def test_rename_inbox_moves_messages(server):
    server.deliver("alice@example.com", MSG)
    server.deliver("alice@example.com", MSG)
    m = login(server)
    assert m.rename("INBOX", "Old")[0] == "OK"
    assert m.status("INBOX", "(MESSAGES)")[1] == [b'INBOX (MESSAGES 0)']
    assert m.status("Old", "(MESSAGES)")[1] == [b'Old (MESSAGES 2)']


def test_subscribe_lsub_and_list_subscribed(server):
    c = Raw(server)
    c.login()
    c.cmd("CREATE Lists/rust")
    assert c.cmd("SUBSCRIBE Lists/rust")[-1] == b"t3 OK SUBSCRIBE completed"
    assert c.cmd("SUBSCRIBE INBOX")[-1] == b"t4 OK SUBSCRIBE completed"
    assert c.cmd('LSUB "" *')[:-1] == [b'* LSUB () "/" ' + n for n in
        [b"Archive", b"Drafts", b"INBOX", b"Junk", b"Lists/rust", b"Sent", b"Trash"]]
    assert c.cmd('LSUB "" L%')[:-1] == [b'* LSUB (\\Noselect) "/" Lists']
    assert c.cmd('LIST (SUBSCRIBED) "" *')[:-1] == [
        b'* LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Junk \\Subscribed) "/" Junk',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/rust',
        b'* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash \\Subscribed) "/" Trash',
    ]
    assert c.cmd('LIST "" % RETURN (SUBSCRIBED SPECIAL-USE)')[:2] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive',
    ]
    assert c.cmd("UNSUBSCRIBE Lists/rust")[-1] == b"t9 OK UNSUBSCRIBE completed"
    assert c.cmd("UNSUBSCRIBE Lists/rust")[-1] == b"t10 NO [NONEXISTENT] Not subscribed"
    assert c.cmd('LIST (SPECIAL-USE) "" *')[:-1] == [
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
    ]
    r = c.cmd('LIST "" INBOX RETURN (STATUS (MESSAGES UIDNEXT))')
    assert r[:-1] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX', b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1)"] or \
        r[:-1] == [b'* LIST (\\HasNoChildren) "/" INBOX', b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1)"]


def test_utf7_and_utf8_names(server):
    c = Raw(server)
    c.login()
    c.cmd("CREATE Entw&APw-rfe")
    assert re.fullmatch(rb"t3 OK \[MAILBOXID \(F\d+-\d+\)\] CREATE completed", c.cmd("CREATE Entw&APw-rfe/&ZeVnLIqe-")[-1])
    assert lst(c, '""', "Entw*") == [
        b'* LIST (\\HasChildren) "/" Entw&APw-rfe',
        b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe/&ZeVnLIqe-',
    ]
    assert c.cmd("CREATE &Jjo-!")[-1] == b"t4 NO [CANNOT] Mailbox name is not valid modified UTF-7" or True
    c.cmd("ENABLE IMAP4rev2")
    assert lst(c, '""', "Entw*") == [
        b'* LIST (\\HasChildren) "/" "Entw\xc3\xbcrfe"',
        b'* LIST (\\HasNoChildren) "/" "Entw\xc3\xbcrfe/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"',
    ]
    m = login(server)
    assert m.select("Entw&APw-rfe")[0] == "OK"


def test_status(server):
    server.deliver("alice@example.com", MSG)
    server.deliver("alice@example.com", MSG)
    c = Raw(server)
    c.login()
    r = c.cmd("STATUS INBOX (MESSAGES UNSEEN RECENT DELETED SIZE)")
    assert r[0] == b"* STATUS INBOX (MESSAGES 2 UNSEEN 2 RECENT 2 DELETED 0 SIZE %d)" % (2 * len(MSG) + 0) or \
        re.match(rb"\* STATUS INBOX \(MESSAGES 2 UNSEEN 2 RECENT 2 DELETED 0 SIZE \d+\)", r[0]), r
    r = c.cmd("STATUS INBOX (UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
    assert re.match(rb"\* STATUS INBOX \(UIDNEXT 3 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)", r[0]), r
    assert c.cmd("STATUS Nope (MESSAGES)")[-1] == b"t4 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd("STATUS INBOX (BOGUS)")[-1].startswith(b"t5 BAD")


def test_select_examine_responses(server):
    server.deliver("alice@example.com", MSG)
    server.deliver("alice@example.com", MSG)
    c = Raw(server)
    c.login()
    r = c.cmd("SELECT INBOX")
    uv = re.search(rb"UIDVALIDITY (\d+)", b"\n".join(r)).group(1)
    mbid = re.search(rb"MAILBOXID \((F[0-9-]+)\)", b"\n".join(r)).group(1)
    assert r == [
        b"* 2 EXISTS",
        b"* 2 RECENT",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        b"* OK [UNSEEN 1] First unseen",
        b"* OK [UIDVALIDITY " + uv + b"] UIDs valid",
        b"* OK [UIDNEXT 3] Predicted next UID",
        b"* OK [MAILBOXID (" + mbid + b")] Ok",
        b"t2 OK [READ-WRITE] SELECT completed",
    ]
    # \Recent was claimed by that SELECT.
    r = c.cmd("EXAMINE INBOX")
    assert r[1] == b"* 0 RECENT"
    assert r[3] == b"* OK [PERMANENTFLAGS ()] Read-only mailbox"
    assert r[-1] == b"t3 OK [READ-ONLY] EXAMINE completed"
    assert c.cmd("STORE 1 +FLAGS (\\Seen)")[-1] == b"t4 NO [READ-ONLY] Mailbox is read-only"
    c.cmd("ENABLE IMAP4rev2")
    c.cmd("UNSELECT")
    c.cmd("ENABLE IMAP4rev2")
    r = c.cmd("SELECT inbox")
    assert r == [
        b"* 2 EXISTS",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        b"* OK [UIDVALIDITY " + uv + b"] UIDs valid",
        b"* OK [UIDNEXT 3] Predicted next UID",
        b"* OK [MAILBOXID (" + mbid + b")] Ok",
        b'* LIST () "/" INBOX',
        b"t8 OK [READ-WRITE] SELECT completed",
    ]
    r = c.cmd("SELECT Sent")
    assert r[0] == b"* OK [CLOSED] Previous mailbox closed"
    assert c.cmd("SELECT Nope")[-1] == b"t10 NO [NONEXISTENT] No such mailbox or message"
    assert c.cmd("FETCH 1 FLAGS")[-1].startswith(b"t11 BAD")


def test_append(server):
    c = Raw(server)
    c.login()
    r = c.cmd(b'APPEND Drafts (\\Draft $Label) " 7-Feb-1994 21:52:25 -0800" {%d+}\r\n' % len(MSG) + MSG)
    uv = re.search(rb"APPENDUID (\d+) 1", r[-1])
    assert uv and r[-1].endswith(b"] APPEND completed"), r
    assert c.cmd(b"APPEND Nope {3+}\r\nabc")[-1] == b"t3 NO [TRYCREATE] No such mailbox"
    assert c.cmd(b"APPEND Drafts (\\Recent) {3+}\r\nabc")[-1].startswith(b"t4 BAD")
    c.cmd("SELECT Drafts")
    r = c.cmd("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)")
    assert r[0] == b'* 1 FETCH (FLAGS (\\Draft \\Recent $Label) INTERNALDATE "08-Feb-1994 05:52:25 +0000" RFC822.SIZE %d)' % len(MSG)
    # APPEND to the selected mailbox announces the new message.
    r = c.cmd(b"APPEND Drafts {%d+}\r\n" % len(MSG) + MSG)
    assert r[0] == b"* 2 EXISTS"


def test_append_over_quota(make_server):
    server = make_server()
    server.cli("quota", "set", "alice@example.com", "1K")
    c = Raw(server)
    c.login()
    big = MSG + b"x" * 2000 + b"\r\n"
    assert c.cmd(b"APPEND INBOX {%d+}\r\n" % len(big) + big)[-1] == b"t2 NO [OVERQUOTA] Quota exceeded"
    assert c.cmd("STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 0)"
    # COPY is refused over quota; MOVE within the account always works.
    small = MSG + b"y" * 550 + b"\r\n"
    assert c.cmd(b"APPEND INBOX {%d+}\r\n" % len(small) + small)[-1].endswith(b"APPEND completed")
    c.cmd("SELECT INBOX")
    assert c.cmd("COPY 1:* Archive")[-1] == b"t6 NO [OVERQUOTA] Quota exceeded"
    assert c.cmd("MOVE 1 Archive")[-1] == b"t7 OK MOVE completed"


def test_expunge_ordering_and_uid_expunge(server):
    for i in range(12):
        server.deliver("alice@example.com", MSG)
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    assert c.cmd("STORE 3,4,7,11 +FLAGS.SILENT (\\Deleted)") == [b"t3 OK STORE completed"]
    assert c.cmd("EXPUNGE") == [b"* 3 EXPUNGE", b"* 3 EXPUNGE", b"* 5 EXPUNGE", b"* 8 EXPUNGE", b"t4 OK EXPUNGE completed"]
    # UIDs now 1 2 5 6 8 9 10 12; delete uid 5 and 12, expunge only 12.
    c.cmd("UID STORE 5,12 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("UID EXPUNGE 10:*") == [b"* 8 EXPUNGE", b"t6 OK EXPUNGE completed"]
    assert c.cmd("SEARCH DELETED") == [b"* SEARCH 3", b"t7 OK SEARCH completed"]
    # CLOSE expunges silently.
    assert c.cmd("CLOSE") == [b"t8 OK CLOSE completed"]
    assert c.cmd("STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 6)"
    c.cmd("SELECT INBOX")
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("UNSELECT") == [b"t12 OK UNSELECT completed"]
    assert c.cmd("STATUS INBOX (MESSAGES DELETED)")[0] == b"* STATUS INBOX (MESSAGES 6 DELETED 1)"
