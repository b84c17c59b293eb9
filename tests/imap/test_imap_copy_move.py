"""IMAP STORE, COPY, MOVE and their UID forms, with COPYUID (UIDPLUS)."""

import re

import messages
from imap_util import Raw


def test_store_forms(server):
    for _ in range(3):
        server.deliver("alice@example.com", messages.SIMPLE)
    c = Raw(server)
    c.login()
    c.cmd("SELECT INBOX")
    assert c.cmd("STORE 1:2 +FLAGS (\\Seen)") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))", b"* 2 FETCH (FLAGS (\\Seen \\Recent))", b"t3 OK STORE completed"]
    assert c.cmd("UID STORE 2 FLAGS (\\Answered)") == [b"* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent))", b"t4 OK STORE completed"]
    assert c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)") == [b"t5 OK STORE completed"]
    assert c.cmd("FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS (\\Recent))", b"* 2 FETCH (FLAGS (\\Answered \\Recent))"]
    assert c.cmd("STORE 1 +FLAGS (\\Bogus)")[-1] == b"t7 BAD Unknown flag \\Bogus"
    assert c.cmd("STORE 1 +FLAGS \\Draft") == [b"* 1 FETCH (FLAGS (\\Draft \\Recent))", b"t8 OK STORE completed"]


def test_copy_and_move(server):
    for _ in range(4):
        server.deliver("alice@example.com", messages.SIMPLE)
    c = Raw(server)
    c.login()
    r = c.cmd("STATUS Archive (UIDVALIDITY)")
    uv = re.search(rb"UIDVALIDITY (\d+)", r[0]).group(1)
    c.cmd("SELECT INBOX")
    assert c.cmd("COPY 2:3 Archive") == [b"t4 OK [COPYUID " + uv + b" 2:3 1:2] COPY completed"]
    assert c.cmd("UID COPY 4 Archive") == [b"t5 OK [COPYUID " + uv + b" 4 3] COPY completed"]
    assert c.cmd("COPY 1 Nope") == [b"t6 NO [TRYCREATE] No such mailbox"]
    assert c.cmd("MOVE 1,3 Archive") == [
        b"* OK [COPYUID " + uv + b" 1,3 4:5] Moved", b"* 1 EXPUNGE", b"* 2 EXPUNGE", b"t7 OK MOVE completed"]
    assert c.cmd("UID MOVE 4 Archive") == [b"* OK [COPYUID " + uv + b" 4 6] Moved", b"* 2 EXPUNGE", b"t8 OK MOVE completed"]
    assert c.cmd("UID FETCH 1:* UID") == [b"* 1 FETCH (UID 2)", b"t9 OK FETCH completed"]
    assert c.cmd("STATUS Archive (MESSAGES)")[0] == b"* STATUS Archive (MESSAGES 6)"
    assert c.cmd("UID MOVE 99 Archive") == [b"t11 OK MOVE completed"]
