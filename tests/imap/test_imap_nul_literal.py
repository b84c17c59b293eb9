"""A NUL octet in a literal that is not a literal8 (RFC 9051 4.3, RFC 3501 4.3: CHAR8
excludes NUL; only RFC 3516's `~{n}` may carry it): APPEND (synchronising or LITERAL+,
MULTIAPPEND's second message) and LOGIN answer BAD with a clear text, nothing is stored,
and the session and the server go on. Dovecot 2.3.19 stores such a message (checked
by hand); Letterbox refuses, as it already did in every other literal."""

from imap_util import Raw


def test_nul_in_literal_is_bad(server):
    r = Raw(server)
    # LOGIN with a NUL in the user name's literal (refused before this test, too).
    r.send(b"a1 LOGIN {6+}\r\nal\x00ice \"alice-Secret1\"\r\n")
    resp = r.until("a1")
    assert resp[-1].startswith(b"a1 BAD "), resp
    r.login()
    for data in (
        b"b1 APPEND INBOX {5+}\r\nab\x00cd\r\n",
        b"b2 APPEND INBOX (\\Seen) {15+}\r\nSubject: x\r\n\r\n\x00\r\n\r\n",
        b"b3 APPEND INBOX {3+}\r\nabc {3+}\r\na\x00c\r\n",
    ):
        r.send(data)
        tag = data.split(b" ")[0].decode()
        resp = r.until(tag)
        assert resp[-1] == (
            tag.encode() + b" BAD NUL octet in a literal; binary content needs a literal8 (~{n}, RFC 3516)"
        ), resp
    # The synchronising form: the continuation is sent, then the whole command refused.
    r.send(b"b4 APPEND INBOX {5}\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b"ab\x00cd\r\n")
    assert r.until("b4")[-1].startswith(b"b4 BAD NUL octet in a literal")
    assert b"* 0 EXISTS" in r.cmd("SELECT INBOX")
    # Binary content in a literal8 is still taken, and the session goes on.
    r.send(b"b5 APPEND INBOX ~{5+}\r\nab\x00cd\r\n")
    assert b" OK [APPENDUID " in r.until("b5")[-1]
    assert r.cmd("NOOP")[-1].endswith(b" OK NOOP completed")
    r.close()
    assert server.proc.poll() is None
    assert len(server.uids("alice@example.com")) == 1
