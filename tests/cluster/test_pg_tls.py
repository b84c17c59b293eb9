"""TLS to PostgreSQL (issue 17, `crates/store/src/pg/tls.rs`), through the real binary
against a private PostgreSQL cluster that accepts only TLS connections from the network
(`hostssl ... trust`, `hostnossl ... reject` in pg_hba.conf), with a certificate issued
by a test CA that openssl makes here.

- The URL without sslmode stays plaintext: the server refuses it, and `letterbox
  migrate` fails with the server's reason.
- `sslmode=verify-full&sslrootcert=CA` connects: `migrate` applies the schema, `serve`
  delivers over LMTP and reads back byte for byte over IMAP, and every connection the
  node holds is encrypted (pg_stat_ssl).
- A certificate from another CA is refused (no connection, the error names the
  certificate, exit 75 as for an unreachable database); a missing sslrootcert file is a
  configuration error (exit 78).
"""

import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import Server  # noqa: E402
from pg_cluster import PgCluster, available  # noqa: E402

pytestmark = pytest.mark.skipif(
    not available() or shutil.which("openssl") is None,
    reason="PostgreSQL or openssl is not installed",
)

ALICE = ("alice@example.com", "alice-Secret1")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            cwd=d)
    return d / f"{name}.pem"


def issue_server_cert(d: Path, ca: str):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)


def pg_home(pg):
    f = pg.dir / "home"
    return Path(f.read_text().strip()) if f.exists() else pg.dir


@pytest.fixture
def tls_pg(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "testca")
    other_ca = make_ca(certs, "otherca")
    issue_server_cert(certs, "testca")
    with PgCluster(tmp_path / "pg") as pg:
        data = pg_home(pg) / "pgdata"
        for f in ("server.crt", "server.key"):
            shutil.copy(certs / f, data / f)
            os.chmod(data / f, 0o600)
            if os.getuid() == 0:
                shutil.chown(data / f, "postgres", "postgres")
        hba = data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        if os.getuid() == 0:
            shutil.chown(hba, "postgres", "postgres")
        # psql (sslmode=prefer by default) still gets in over TLS to turn TLS on for the
        # server: the connection is plaintext now, and reloading takes the new rules.
        pg.psql("ALTER SYSTEM SET ssl = on")
        pg.psql("ALTER SYSTEM SET ssl_cert_file = 'server.crt'")
        pg.psql("ALTER SYSTEM SET ssl_key_file = 'server.key'")
        pg.psql("SELECT pg_reload_conf()")
        assert pg.psql("SHOW ssl") == "on"
        yield pg, ca, other_ca


def overrides(url):
    return {"store.backend": "postgres", "store.url": url, "store.pool_size": 2}


def test_tls_to_postgres(tls_pg, tmp_path):
    pg, ca, other_ca = tls_pg

    # Plaintext (no sslmode): the server refuses it, and Letterbox does not claim success.
    plain = Server(tmp_path / "plain", overrides(pg.url))
    r = plain.cli("migrate", check=False)
    assert r.returncode != 0, r.stdout
    assert b"no encryption" in r.stderr, r.stderr

    # A certificate this CA did not issue: refused, and the error says why.
    wrong = Server(tmp_path / "wrong", overrides(f"{pg.url}?sslmode=verify-full&sslrootcert={other_ca}"))
    r = wrong.cli("migrate", check=False)
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert re.search(rb"certificate|UnknownIssuer", r.stderr), r.stderr

    # sslrootcert naming no file: a configuration error, not a temporary one.
    missing = Server(tmp_path / "missing", overrides(f"{pg.url}?sslmode=require&sslrootcert={tmp_path}/none.pem"))
    r = missing.cli("migrate", check=False)
    assert r.returncode == 78, (r.returncode, r.stderr)
    assert b"sslrootcert" in r.stderr, r.stderr

    # The right CA: the schema goes in over TLS, and a node serves mail over it.
    url = f"{pg.url}?sslmode=verify-full&sslrootcert={ca}"
    node = Server(tmp_path / "node", overrides(url))
    r = node.cli("migrate")
    assert re.fullmatch(rb"schema version \d+\n", r.stdout), r.stdout
    node.dir.mkdir(parents=True, exist_ok=True)
    node.cli("domain", "add", "example.com")
    node.add_user(*ALICE)
    node.start()
    try:
        msg = (b"From: carol@example.org\r\nTo: alice@example.com\r\nSubject: over TLS\r\n"
               b"Message-ID: <tls1@example.org>\r\n\r\n" + b"line of text\r\n" * 50)
        with smtplib.LMTP("127.0.0.1", node.require("lmtp")) as s:
            assert s.sendmail("carol@example.org", [ALICE[0]], msg) == {}
        c = imaplib.IMAP4("127.0.0.1", node.require("imap"))
        c.login(*ALICE)
        c.select("INBOX")
        typ, d = c.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "OK", d
        assert d[0][1].endswith(msg)
        c.logout()
        # Every connection the node holds to the database is encrypted.
        rows = pg.psql(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.datname = 'letterbox' AND a.pid <> pg_backend_pid() AND a.client_addr IS NOT NULL"
        ).split()
        assert rows and all(x == "t" for x in rows), rows
    finally:
        node.stop()
