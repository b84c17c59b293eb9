"""TLS on the implicit-TLS listeners: versions, the self-signed certificate, reload."""

import poplib
import signal
import socket
import ssl
import subprocess
import time
import warnings

from conftest import BIN


def client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def peer_cert_pem(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context().wrap_socket(raw) as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)), tls.version()


def subject_of(pem, tmp_path):
    f = tmp_path / "peer.pem"
    f.write_text(pem)
    return subprocess.run(["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName", "-in", str(f)],
                          capture_output=True, text=True).stdout


def test_pop3s_login_and_versions(server, tmp_path):
    port = server.require("pop3s")
    pop = poplib.POP3_SSL("127.0.0.1", port, context=client_context(), timeout=10)
    assert pop.getwelcome().startswith(b"+OK")
    pop.user("alice@example.com")
    assert pop.pass_("alice-Secret1").startswith(b"+OK")
    assert pop.stat() == (0, 0)
    pop.quit()
    # TLS 1.3 and 1.2 are offered; anything older is refused.
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_context(version, version).wrap_socket(raw) as tls:
                assert tls.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            ctx.wrap_socket(raw)
            raise AssertionError("TLS 1.1 accepted")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass


def test_self_signed_certificate_is_reused(server, tmp_path):
    pem1, _ = peer_cert_pem(server.require("imaps"))
    assert "mail.example.com" in subject_of(pem1, tmp_path)
    assert "self-signed certificate" in server.read_log()
    server.restart()
    pem2, _ = peer_cert_pem(server.require("imaps"))
    assert pem1 == pem2


def test_configured_certificate_and_sighup_reload(make_server, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def make_cert(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={cn}", "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
                       check=True, capture_output=True)

    make_cert("first.example.com")
    s = make_server(**{"tls.cert": str(certs / "cert.pem"), "tls.key": str(certs / "key.pem")})
    port = s.require("pop3s")
    pem, _ = peer_cert_pem(port)
    assert "first.example.com" in subject_of(pem, tmp_path)
    # A session opened before the reload keeps working after it.
    pop = poplib.POP3_SSL("127.0.0.1", port, context=client_context(), timeout=10)
    make_cert("second.example.com")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "TLS certificate reloaded" not in s.read_log() and time.time() < deadline:
        time.sleep(0.05)
    pem, _ = peer_cert_pem(port)
    assert "second.example.com" in subject_of(pem, tmp_path)
    pop.user("alice@example.com")
    assert pop.pass_("alice-Secret1").startswith(b"+OK")
    pop.quit()
    # A broken file on reload keeps the old certificate and says so.
    (certs / "cert.pem").write_text("garbage")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "TLS reload failed" not in s.read_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "TLS reload failed" in s.read_log()
    pem, _ = peer_cert_pem(port)
    assert "second.example.com" in subject_of(pem, tmp_path)


def test_bad_certificate_config_stops_serve(make_server, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("nothing")
    s = make_server(start=False, **{"tls.cert": str(bad), "tls.key": str(bad)})
    proc = subprocess.run([str(BIN), "--config", str(s.config_path), "serve"],
                          capture_output=True, timeout=30)
    assert proc.returncode != 0 and b"tls.cert" in proc.stderr
