"""Message contents and credentials never reach the log on PostgreSQL (issue 17), even at
`log.level = "debug"`: the PostgreSQL client logs every statement's parameters at debug
level (inline bodies as octet lists, addresses), so `serve` keeps its target at info."""

import imaplib
import smtplib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pg_cluster import PgCluster, available  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed")


@pytest.fixture
def pg(tmp_path):
    with PgCluster(tmp_path / "pg") as c:
        yield c


def test_debug_log_holds_no_body_and_no_password(make_server, pg):
    secret_body = "zebra-quartz-7731 is the body's own secret"
    server = make_server(**{"store.backend": "postgres", "store.url": pg.url, "log.level": "debug"})
    msg = f"From: carol@example.org\r\nSubject: s\r\n\r\n{secret_body}\r\n".encode()
    with smtplib.LMTP("127.0.0.1", server.require("lmtp")) as s:
        assert s.sendmail("carol@example.org", ["alice@example.com"], msg) == {}
    c = imaplib.IMAP4("127.0.0.1", server.require("imap"))
    c.login("alice@example.com", "alice-Secret1")
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1].endswith(msg), data
    c.logout()
    log = server.read_log()
    # The debug level is on (the test would prove nothing otherwise)...
    assert " DEBUG " in log and "delivered" in log
    # ...and neither the body, nor the password, nor its stored hash is in the log.
    stored = pg.psql("SELECT password_hash FROM accounts WHERE address = 'alice@example.com'")
    for secret in (secret_body, "alice-Secret1", stored):
        assert secret not in log, secret
        # Nor as the decimal octet list a debug dump of a BYTEA parameter shows.
        assert ", ".join(map(str, secret.encode()[:12])) not in log, secret
