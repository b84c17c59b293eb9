"""Thunderbird (Debian's package, under Xvfb) sets up an account from the address alone,
through Letterbox's autoconfiguration (issue 14), then reads the mail.

Thunderbird's Account Hub asks for a name and an address; Thunderbird then fetches
`http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=...` and
`http://example.com/.well-known/autoconfig/mail/config-v1.1.xml?...` (its
`fetchConfigFromISP`; the https forms fail here, nothing listens on 443). The machine has no DNS and port 80 is not ours to take, so the
profile sends plain-HTTP requests through an HTTP proxy that is the portal listener
itself (hyper takes the absolute-form request target, RFC 9112 3.2.2, and the Host is
`autoconfig.example.com`), with a recording TCP relay in between, and resolves every
name to 127.0.0.1 (`network.dns.forceResolve`), so `mail.example.com` (the host the
autoconfig document names) reaches our listeners. The generated self-signed certificate
is trusted for mail.example.com's ports as after "Confirm Security Exception".

Checked: the request Thunderbird made and our answer; the account Thunderbird saved in
prefs.js (IMAP on mail.example.com, the `imaps` port, socketType 3 = SSL/TLS, user name
the address; SMTP on the `submissions` port, SSL/TLS, the same user name): exactly the
first (preferred) entries of our document; and the INBOX's messages in Thunderbird's
offline store (it logged in over implicit TLS and downloaded them). About 60 s.
"""

import os
import re
import signal
import subprocess
import time

from client_util import ALICE, Proxy, assert_clean_log, need
from conftest import free_ports
from test_thunderbird import MESSAGES, X, wait_until


def js(v):
    return ("true" if v else "false") if isinstance(v, bool) else str(v) if isinstance(v, int) else f'"{v}"'


def saved_prefs(profile):
    """prefs.js as a dict (Thunderbird writes it when the account is created)."""
    f = profile / "prefs.js"
    if not f.exists():
        return {}
    out = {}
    for m in re.finditer(r'^user_pref\("([^"]+)", (.*)\);$', f.read_text(errors="replace"), re.M):
        v = m.group(2)
        out[m.group(1)] = int(v) if re.fullmatch(r"-?\d+", v) else v.strip('"') if v.startswith('"') else v == "true"
    return out


@need("thunderbird", "Xvfb", "xdotool", "import", "openssl")
def test_thunderbird_sets_up_the_account_from_the_address(make_server, tmp_path):
    (http_port,) = free_ports(1)
    s = make_server(start=False, **{"listen.http": [f"127.0.0.1:{http_port}"]})
    s.start()
    for m in MESSAGES:
        s.deliver(ALICE[0], m)
    relay = Proxy(http_port, keep_replies=True)
    profile = tmp_path / "profile"
    profile.mkdir()
    prefs = {
        # No first-run noise, no calls home; but the Account Hub opens (no account yet).
        "mail.shell.checkDefaultClient": False,
        "mailnews.start_page.enabled": False,
        "mail.rights.version": 1,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.healthreport.uploadEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "app.update.auto": False,
        "app.update.disabledForTesting": True,
        "mail.inappnotifications.enabled": False,
        # Thunderbird's own database of providers (ISPDB) is not asked: only ours answers.
        "mailnews.auto_config_url": "",
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": relay.port,
        "network.proxy.share_proxy_settings": False,
        "network.proxy.no_proxies_on": "",
        "network.dns.forceResolve": "127.0.0.1",
    }
    (profile / "user.js").write_text("".join(f'user_pref("{k}", {js(v)});\n' for k, v in prefs.items()))
    cert = s.data_dir / "tls" / "selfsigned-cert.pem"
    fp = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                        capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    (profile / "cert_override.txt").write_text("# PRIVATE FILE\n" + "".join(
        f"mail.example.com:{s.ports[p]}:\tOID.2.16.840.1.101.3.4.2.1\t{fp}\t\n"
        for p in ("imaps", "imap", "submissions", "submission", "pop3s", "pop3")))
    x = X(tmp_path)
    proc = subprocess.Popen(
        ["thunderbird", "--profile", str(profile), "--no-remote"],
        env=dict(x.env, HOME=str(tmp_path), MOZ_CRASHREPORTER_DISABLE="1"),
        stdout=open(tmp_path / "thunderbird.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    shot = tmp_path / "autoconfig.png"

    def asked():
        return any(b"config-v1.1.xml" in sent for sent in relay.sent)

    try:
        # The hub's first page: "Full name" (prefilled, focused), then the address.
        x.wait_window(r"Mozilla Thunderbird$", 90)
        time.sleep(8)
        for k in (["key", "ctrl+a"], ["type", "--delay", "10", "Alice"], ["key", "Tab"],
                  ["type", "--delay", "10", ALICE[0]], ["key", "Return"]):
            x.run("xdotool", *k)
            time.sleep(0.3)
        wait_until(asked, 60, "Thunderbird to fetch the autoconfig document")
        # "Account settings found automatically": Continue, then the password.
        time.sleep(4)
        x.screenshot(shot)
        x.run("xdotool", "mousemove", "874", "685", "click", "1")
        time.sleep(4)
        x.run("xdotool", "type", "--delay", "10", ALICE[1])
        x.run("xdotool", "key", "Return")
        wait_until(lambda: "mail.example.com" in saved_prefs(profile).values(), 90, "the account to be created")
        store = profile / "ImapMail" / "mail.example.com" / "INBOX"
        wait_until(lambda: store.exists() and store.read_bytes().count(b"marker.") == len(MESSAGES), 90,
                   "the INBOX's messages in Thunderbird's offline store")
        x.screenshot(tmp_path / "autoconfig-done.png")
    except BaseException:
        x.screenshot(tmp_path / "autoconfig-failed.png")
        print(f"screenshots in {tmp_path}")
        raise
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        x.close()
        relay.close()

    # What Thunderbird asked (through the proxy: absolute form) and what we answered.
    # (It also POSTs Microsoft Autodiscover, maybe on the same kept-alive connection, and
    # prefers the ISP's config-v1.1.xml when both answer.)
    # It asks both URLs at once and takes the first answer, dropping the other connection,
    # which may then have no reply recorded: look at the ones that were answered.
    get = re.compile(rb"^GET http://(autoconfig\.example\.com/mail|example\.com/\.well-known/autoconfig/mail)"
                     rb"/config-v1\.1\.xml\?emailaddress=alice%40example\.com HTTP/1\.1\r\n"
                     rb"Host: (autoconfig\.)?example\.com\r\n", re.M)
    conns = [i for i, sent in enumerate(relay.sent) if get.search(sent)]
    assert conns, relay.sent
    answered = [relay.replies[i] for i in conns if relay.replies[i]]
    assert answered, (relay.sent, relay.replies)
    answer = answered[0]
    assert re.search(rb"HTTP/1\.1 200 OK\r\n(?:[^\r]+\r\n)*content-type: text/xml; charset=utf-8\r\n", answer, re.I), answer[:300]
    assert b"<clientConfig" in answer

    # The account, as Thunderbird saved it: the first incoming and outgoing entries.
    p = saved_prefs(profile)
    imap = next(k.rsplit(".", 1)[0] for k, v in p.items()
                if re.fullmatch(r"mail\.server\.server\d+\.type", k) and v == "imap")
    assert p[f"{imap}.hostname"] == "mail.example.com"
    assert p[f"{imap}.port"] == s.ports["imaps"]
    assert p[f"{imap}.socketType"] == 3  # SSL/TLS
    assert p[f"{imap}.userName"] == ALICE[0]
    smtp = next(k.rsplit(".", 1)[0] for k, v in p.items()
                if re.fullmatch(r"mail\.smtpserver\.\w+\.hostname", k) and v == "mail.example.com")
    assert p[f"{smtp}.port"] == s.ports["submissions"], p
    assert p.get(f"{smtp}.try_ssl") == 3, p
    assert p[f"{smtp}.username"] == ALICE[0]
    # The offline copies are the messages' bodies.
    mbox = store.read_bytes().replace(b"\r\n", b"\n")
    for m in MESSAGES:
        assert m.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n") in mbox
    print(f"screenshot: {shot}")
    assert_clean_log(s)
