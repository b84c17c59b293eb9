"""Issue 7 end to end, across the protocols (an independent review): STARTTLS/STLS on
IMAP and POP3 (capabilities re-announced, pipelined plaintext discarded, a second
STARTTLS refused, old TLS versions refused), the plaintext-password policy seen from a
non-loopback address on IMAP, POP3 and submission, real clients (imaplib/poplib/smtplib
over TLS, `openssl s_client -starttls`, `swaks --tls`), Dovecot password-hash imports
rewritten as Argon2id at the first login, and a SIGHUP certificate reload under a live
IMAP session. Abuse resistance and logs are in test_security_abuse.py."""

import hashlib
import imaplib
import os
import poplib
import signal
import smtplib
import ssl
import shutil
import subprocess
import warnings

import pytest

from security_util import (ALICE, ALICE_PW, Conn, also_listen_on, b64, client_context,
                           old_tls_context, other_ip, password_hash, plain, wait_for_log)


def remote_server(make_server, protocols=("imap", "pop3", "submission"), **overrides):
    """A server whose listeners named also listen on a non-loopback address; (server, ip)."""
    ip = other_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host and none can be added")
    s = make_server(start=False, **overrides)
    also_listen_on(s, ip, protocols)
    s.start()
    return s, ip


def caps_of(lines):
    for l in lines:
        if l.startswith("* CAPABILITY "):
            return l.split()[2:]
        if "[CAPABILITY " in l:
            return l.split("[CAPABILITY ", 1)[1].split("]", 1)[0].split()
    raise AssertionError(lines)


# --- IMAP STARTTLS ------------------------------------------------------------------------


def test_imap_plaintext_policy_and_starttls_from_non_loopback(make_server):
    s, ip = remote_server(make_server)
    c = Conn(s.ports["imap"], host=ip)
    greeting_caps = caps_of([c.greeting])
    assert "STARTTLS" in greeting_caps and "LOGINDISABLED" in greeting_caps, greeting_caps
    assert not any(x.startswith("AUTH=") for x in greeting_caps), greeting_caps
    caps = caps_of(c.imap("a1", "CAPABILITY"))
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps, caps
    assert c.imap("a2", f"LOGIN {ALICE} {ALICE_PW}")[-1].startswith("a2 NO [PRIVACYREQUIRED]")
    assert c.imap("a3", f"AUTHENTICATE PLAIN {plain(ALICE, ALICE_PW)}")[-1].startswith("a3 NO [PRIVACYREQUIRED]")
    # Without SASL-IR the refusal comes before any challenge: no password is ever sent.
    assert c.imap("a4", "AUTHENTICATE LOGIN")[-1].startswith("a4 NO [PRIVACYREQUIRED]")
    assert c.imap("a5", "STARTTLS")[-1].startswith("a5 OK")
    assert c.tls() in ("TLSv1.3", "TLSv1.2")
    # Capabilities re-announced: no STARTTLS, no LOGINDISABLED, the mechanisms offered.
    caps = caps_of(c.imap("b1", "CAPABILITY"))
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
    assert "AUTH=PLAIN" in caps and "AUTH=LOGIN" in caps, caps
    # STARTTLS again is refused, the session goes on.
    assert c.imap("b2", "STARTTLS")[-1].startswith("b2 BAD")
    assert c.imap("b3", f"LOGIN {ALICE} {ALICE_PW}")[-1].startswith("b3 OK")
    assert c.imap("b4", "STARTTLS")[-1].startswith("b4 BAD")
    assert c.imap("b5", "SELECT INBOX")[-1].startswith("b5 OK")
    c.imap("b6", "LOGOUT")
    c.close()


def test_imap_allow_plaintext_lifts_the_policy(make_server):
    s, ip = remote_server(make_server, **{"auth.allow_plaintext": True})
    c = Conn(s.ports["imap"], host=ip)
    caps = caps_of([c.greeting])
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, caps
    assert c.imap("a", f"AUTHENTICATE PLAIN {plain(ALICE, ALICE_PW)}")[-1].startswith("a OK")
    c.close()
    m = imaplib.IMAP4(ip, s.ports["imap"], timeout=15)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()


def test_imap_starttls_injection_is_discarded(server):
    """A command pipelined in the same packet as STARTTLS is never executed (RFC 9051
    6.2.1; CVE-2011-0411 style): here a LOGIN that would succeed on loopback."""
    c = Conn(server.require("imap"))
    c.send(f"a STARTTLS\r\nb LOGIN {ALICE} {ALICE_PW}\r\nc NOOP\r\n")
    assert c.line().startswith("a OK")
    c.tls()
    lines = c.imap("d", "SELECT INBOX")
    assert not any(l.startswith(("b ", "c ")) for l in lines), lines
    assert lines[-1].startswith("d BAD"), lines  # still not logged in
    assert c.imap("e", f"LOGIN {ALICE} {ALICE_PW}")[-1].startswith("e OK")
    c.close()


def test_imap_starttls_with_imaplib_and_refusals(server):
    m = imaplib.IMAP4("127.0.0.1", server.require("imap"), timeout=15)
    assert "STARTTLS" in m.capabilities
    m.starttls(ssl_context=client_context())
    assert "STARTTLS" not in m.capabilities  # imaplib re-asks after TLS
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.select("INBOX")
    m.logout()
    # On the implicit-TLS listener STARTTLS is neither offered nor accepted.
    c = Conn(server.require("imaps"), implicit_tls=True)
    assert "STARTTLS" not in caps_of([c.greeting])
    assert c.imap("a", "STARTTLS")[-1].startswith("a BAD")
    c.close()
    m = imaplib.IMAP4_SSL("127.0.0.1", server.require("imaps"), ssl_context=client_context(), timeout=15)
    assert m.login(ALICE, ALICE_PW)[0] == "OK"
    m.logout()


def test_imap_old_tls_versions_refused(server):
    c = Conn(server.require("imap"))
    assert c.imap("a", "STARTTLS")[-1].startswith("a OK")
    with pytest.raises((ssl.SSLError, OSError)):
        c.tls(old_tls_context())
    c.close()
    with pytest.raises((ssl.SSLError, OSError, EOFError)):
        Conn(server.require("imaps"), implicit_tls=True, context=old_tls_context())
    # TLS 1.2 exactly still works (so the refusal above is about the version).
    c = Conn(server.require("imap"))
    c.imap("a", "STARTTLS")
    assert c.tls(client_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert c.imap("b", "NOOP")[-1].startswith("b OK")
    c.close()


def openssl_starttls(port, proto, script: bytes, ca, host="127.0.0.1"):
    return subprocess.run(
        ["openssl", "s_client", "-starttls", proto, "-connect", f"{host}:{port}", "-crlf",
         "-quiet", "-verify_return_error", "-verify_hostname", "mail.example.com", "-CAfile", ca],
        input=script, capture_output=True, timeout=60,
    )


def test_openssl_s_client_starttls_imap_and_pop3(make_server):
    s, ip = remote_server(make_server)
    ca = str(s.data_dir / "tls" / "selfsigned-cert.pem")
    r = openssl_starttls(s.ports["imap"], "imap",
                         f"a CAPABILITY\nb LOGIN {ALICE} {ALICE_PW}\nc SELECT INBOX\nd LOGOUT\n".encode(), ca, ip)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr.decode())
    cap_line = next(l for l in out.splitlines() if l.startswith("* CAPABILITY"))
    assert "STARTTLS" not in cap_line and "LOGINDISABLED" not in cap_line and "AUTH=PLAIN" in cap_line, out
    assert "b OK" in out and "c OK" in out and "* BYE" in out, out
    r = openssl_starttls(s.ports["pop3"], "pop3",
                         f"CAPA\nUSER {ALICE}\nPASS {ALICE_PW}\nSTAT\nQUIT\n".encode(), ca, ip)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr.decode())
    assert "STLS" not in out and "\nUSER" in out.replace("\r", "") and "SASL PLAIN LOGIN" in out, out
    assert "+OK 0 0" in out, out


# --- POP3 STLS ---------------------------------------------------------------------------


def test_pop3_plaintext_policy_and_stls_from_non_loopback(make_server):
    s, ip = remote_server(make_server)
    c = Conn(s.ports["pop3"], host=ip)
    assert c.greeting.startswith("+OK")
    first, caps = c.pop_multi("CAPA")
    assert "STLS" in caps, caps
    assert "USER" not in caps and not any(x.startswith("SASL") for x in caps), caps
    assert c.pop(f"USER {ALICE}").startswith("-ERR [AUTH]")
    assert c.pop(f"PASS {ALICE_PW}").startswith("-ERR")
    assert c.pop(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").startswith("-ERR [AUTH]")
    assert c.pop("AUTH LOGIN").startswith("-ERR")  # refused before any challenge
    assert c.pop("STLS").startswith("+OK")
    c.tls()
    first, caps = c.pop_multi("CAPA")
    assert "STLS" not in caps and "USER" in caps and "SASL PLAIN LOGIN" in caps, caps
    assert c.pop("STLS").startswith("-ERR")
    assert c.pop(f"USER {ALICE}").startswith("+OK")
    assert c.pop(f"PASS {ALICE_PW}").startswith("+OK")
    assert c.pop("STLS").startswith("-ERR")
    assert c.pop("QUIT").startswith("+OK")
    c.close()


def test_pop3_allow_plaintext_lifts_the_policy(make_server):
    s, ip = remote_server(make_server, **{"auth.allow_plaintext": True})
    p = poplib.POP3(ip, s.ports["pop3"], timeout=15)
    caps = p.capa()
    assert "USER" in caps and "SASL" in caps, caps
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    p.quit()


def test_pop3_stls_injection_is_discarded(server):
    c = Conn(server.require("pop3"))
    c.send(f"STLS\r\nUSER {ALICE}\r\nNOOP\r\n")
    assert c.line().startswith("+OK")
    c.tls()
    # The USER sent with STLS was dropped: PASS has no user to go with.
    assert c.pop(f"PASS {ALICE_PW}").startswith("-ERR"), "pipelined USER was executed"
    assert c.pop(f"USER {ALICE}").startswith("+OK")
    assert c.pop(f"PASS {ALICE_PW}").startswith("+OK")
    c.pop("QUIT")
    c.close()


def test_pop3_stls_with_poplib_and_old_tls(server):
    p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=15)
    assert "STLS" in p.capa()
    p.stls(context=client_context())
    assert "STLS" not in p.capa()
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    p.quit()
    c = Conn(server.require("pop3"))
    assert c.pop("STLS").startswith("+OK")
    with pytest.raises((ssl.SSLError, OSError)):
        c.tls(old_tls_context())
    c.close()
    with pytest.raises((ssl.SSLError, OSError, EOFError)):
        Conn(server.require("pop3s"), implicit_tls=True, context=old_tls_context())
    # pop3s never offers STLS.
    c = Conn(server.require("pop3s"), implicit_tls=True)
    _, caps = c.pop_multi("CAPA")
    assert "STLS" not in caps and "USER" in caps, caps
    assert c.pop("STLS").startswith("-ERR")
    c.close()


# --- submission from a non-loopback address, swaks ----------------------------------------


def test_submission_auth_only_after_starttls_and_swaks(make_server):
    s, ip = remote_server(make_server)
    c = Conn(s.ports["submission"], host=ip)
    ehlo = c.smtp("EHLO client.example.org")
    assert any("STARTTLS" in l for l in ehlo) and not any(l[4:].startswith("AUTH") for l in ehlo), ehlo
    assert c.smtp(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")[0].startswith("538 5.7.11")
    assert c.smtp("STARTTLS")[0].startswith("220")
    c.tls()
    ehlo = c.smtp("EHLO client.example.org")
    assert any(l[4:].startswith("AUTH PLAIN LOGIN") for l in ehlo) and not any("STARTTLS" in l for l in ehlo), ehlo
    assert c.smtp("STARTTLS")[0].startswith("503")
    assert c.smtp(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")[0].startswith("235")
    c.smtp("QUIT")
    c.close()
    # swaks --tls with AUTH from the non-loopback address delivers.
    r = subprocess.run(
        ["swaks", "--server", f"{ip}:{s.ports['submission']}", "--tls", "--auth", "LOGIN",
         "--auth-user", ALICE, "--auth-password", ALICE_PW, "--from", ALICE, "--to", "bob@example.com",
         "--header", "Subject: swaks submission", "--body", "hello"],
        capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "235 2.7.0" in out, out
    assert len(s.uids("bob@example.com")) == 1
    # Without --tls, swaks cannot authenticate from there.
    r = subprocess.run(
        ["swaks", "--server", f"{ip}:{s.ports['submission']}", "--auth", "PLAIN",
         "--auth-user", ALICE, "--auth-password", ALICE_PW, "--from", ALICE, "--to", "bob@example.com"],
        capture_output=True, timeout=60)
    assert r.returncode != 0
    assert len(s.uids("bob@example.com")) == 1


def test_smtplib_over_implicit_tls_and_starttls(server):
    c = smtplib.SMTP_SSL("127.0.0.1", server.require("submissions"), context=client_context(), timeout=30)
    assert c.login(ALICE, ALICE_PW)[0] == 235
    c.sendmail(ALICE, ["bob@example.com"], b"Subject: s\r\n\r\nx\r\n")
    c.quit()
    c = smtplib.SMTP("127.0.0.1", server.require("submission"), timeout=30)
    c.starttls(context=client_context())
    assert c.login(ALICE, ALICE_PW)[0] == 235
    c.quit()
    assert len(server.uids("bob@example.com")) == 1


# --- password imports ---------------------------------------------------------------------


def ssha(digest, password, salt=os.urandom(8)):
    return b64(digest(password.encode() + salt).digest() + salt)


def bcrypt_hash(password):
    """$2b$ / $2y$ bcrypt: Python's crypt module (glibc/libxcrypt) or `htpasswd -B`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
        if h and h.startswith("$2"):
            return h
    except (ImportError, ValueError):
        pass
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbBC", "5", "u", password], capture_output=True,
                             check=True).stdout.decode().strip()
        return out.split(":", 1)[1]
    pytest.skip("no bcrypt generator (python crypt or apache2-utils' htpasswd)")


def imported_hashes(password, argon2id):
    return {
        "ARGON2ID": "{ARGON2ID}" + argon2id.removeprefix("{ARGON2ID}"),
        "BLF-CRYPT": "{BLF-CRYPT}" + bcrypt_hash(password),
        "SHA512-CRYPT": "{SHA512-CRYPT}" + subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=password.encode(), capture_output=True,
            check=True).stdout.decode().strip(),
        "SHA256-CRYPT": "{SHA256-CRYPT}" + subprocess.run(
            ["openssl", "passwd", "-5", "-stdin"], input=password.encode(), capture_output=True,
            check=True).stdout.decode().strip(),
        "SSHA512": "{SSHA512}" + ssha(hashlib.sha512, password),
        "SSHA256": "{SSHA256}" + ssha(hashlib.sha256, password),
    }


def test_dovecot_hash_imports_log_in_and_are_rewritten(server):
    password = "Migr@ted pass 7"
    # An Argon2id hash made by another installation: Letterbox's own, copied over.
    server.add_user("source@example.com", password)
    argon2id = password_hash(server, "source@example.com")
    assert argon2id.startswith("{ARGON2ID}$argon2id$")
    for i, (scheme, h) in enumerate(imported_hashes(password, argon2id).items()):
        user = f"import{i}@example.com"
        server.cli("user", "add", user, "--password-hash", h)
        assert password_hash(server, user) == h, scheme
        # A wrong password fails and leaves the hash as it was.
        c = Conn(server.require("imap"))
        assert c.imap("a", f'LOGIN {user} "not it"')[-1].startswith("a NO"), scheme
        c.close()
        assert password_hash(server, user) == h, scheme
        proto = "imap" if i % 2 == 0 else "pop3"
        if proto == "imap":
            m = imaplib.IMAP4("127.0.0.1", server.require("imap"), timeout=30)
            assert m.login(user, password)[0] == "OK", scheme
            m.logout()
        else:
            p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
            p.user(user)
            assert p.pass_(password).startswith(b"+OK"), scheme
            p.quit()
        new = password_hash(server, user)
        assert new.startswith("{ARGON2ID}$argon2id$"), (scheme, new)
        if scheme != "ARGON2ID":
            assert new != h, scheme
        # The rewritten hash works on the other protocols.
        m = imaplib.IMAP4_SSL("127.0.0.1", server.require("imaps"), ssl_context=client_context(), timeout=30)
        assert m.login(user, password)[0] == "OK", scheme
        m.logout()
        p = poplib.POP3_SSL("127.0.0.1", server.require("pop3s"), context=client_context(), timeout=30)
        p.user(user)
        assert p.pass_(password).startswith(b"+OK"), scheme
        p.quit()


def test_cached_login_follows_password_changes_and_never_caches_failures(make_server):
    """`[auth] cache_ttl`: a verified password is remembered, but a password changed with
    the CLI while serve runs takes effect at the next login, and wrong ones always fail."""
    server = make_server(**{"auth.cache_ttl": 600})
    user = "cached@example.com"
    server.add_user(user, "first Pass 1")

    def imap_login(password):
        c = Conn(server.require("imap"))
        ok = c.imap("a", f'LOGIN {user} "{password}"')[-1].startswith("a OK")
        c.close()
        return ok

    def pop3_login(password):
        p = poplib.POP3("127.0.0.1", server.require("pop3"), timeout=30)
        p.user(user)
        try:
            return p.pass_(password).startswith(b"+OK")
        except poplib.error_proto:
            return False
        finally:
            p.close()

    assert not imap_login("first Pass 2")
    assert imap_login("first Pass 1")
    assert imap_login("first Pass 1")  # from the cache
    assert pop3_login("first Pass 1")  # one gate for every protocol
    assert not imap_login("first Pass 2"), "a wrong password is not let in by the cache"
    server.cli("user", "passwd", user, "--password-stdin", input="second Pass 1\n")
    assert not imap_login("first Pass 1"), "the old password stops working at once"
    assert not pop3_login("first Pass 1")
    assert imap_login("second Pass 1")
    assert imap_login("second Pass 1")


def test_malformed_or_unknown_hash_is_refused(server):
    for bad in ("{MD5}abc", "nobrace", "{SHA512-CRYPT}$1$x$y", "{SSHA256}!!!", "{BLF-CRYPT}short"):
        r = server.cli("user", "add", "x@example.com", "--password-hash", bad, check=False)
        assert r.returncode != 0 and r.stderr.strip(), bad
        assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr
    assert b"x@example.com" not in server.cli("user", "list").stdout


# --- SIGHUP reload -----------------------------------------------------------------------


def test_sighup_reload_keeps_imap_sessions(make_server, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def make_cert(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                        "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
                       check=True, capture_output=True)

    def peer_cn(port):
        c = Conn(port, implicit_tls=True, greeting=False)
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        pem = ssl.DER_cert_to_PEM_cert(der)
        return subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(),
                              capture_output=True).stdout.decode()

    make_cert("first.example.com")
    s = make_server(**{"tls.cert": str(certs / "cert.pem"), "tls.key": str(certs / "key.pem")})
    s.deliver(ALICE, b"Subject: before\r\n\r\nbody\r\n")
    imaps = imaplib.IMAP4_SSL("127.0.0.1", s.require("imaps"), ssl_context=client_context(), timeout=30)
    imaps.login(ALICE, ALICE_PW)
    imaps.select("INBOX")
    st = imaplib.IMAP4("127.0.0.1", s.require("imap"), timeout=30)
    st.starttls(ssl_context=client_context())
    st.login(ALICE, ALICE_PW)
    st.select("INBOX")
    assert "first.example.com" in peer_cn(s.require("imaps"))
    make_cert("second.example.com")
    s.proc.send_signal(signal.SIGHUP)
    wait_for_log(s, "TLS certificate reloaded")
    assert "second.example.com" in peer_cn(s.require("imaps"))
    # Both sessions opened before the reload are still usable, in both directions.
    for m in (imaps, st):
        assert m.noop()[0] == "OK"
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: before" in data[0][1]
    s.deliver(ALICE, b"Subject: after\r\n\r\nbody\r\n")
    for m in (imaps, st):
        m.noop()
        typ, data = m.search(None, "ALL")
        assert data[0].split() == [b"1", b"2"]
        m.logout()
    # A new STARTTLS session gets the new certificate.
    c = Conn(s.require("imap"))
    c.imap("a", "STARTTLS")
    c.tls()
    pem = ssl.DER_cert_to_PEM_cert(c.sock.getpeercert(binary_form=True))
    assert "second.example.com" in subprocess.run(["openssl", "x509", "-noout", "-subject"],
                                                  input=pem.encode(), capture_output=True).stdout.decode()
    c.close()
