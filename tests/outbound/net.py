"""A small internet on this machine for the outbound tests.

- `Dns`: a DNS server (dnslib) on 127.0.0.1, UDP and TCP, answering A, MX, TXT and TLSA
  from a dict the test fills; any other name is NXDOMAIN, a known name without the asked
  type is NOERROR with no answer (NODATA). Names in `secure` are answered with the AD bit,
  as a validating resolver does for DNSSEC-signed data (what Letterbox trusts for DANE).
- `Sink`: an SMTP server (aiosmtpd) on one loopback address, recording each transaction
  exactly as received; replies per recipient are chosen by the test (`rcpt_replies`, or
  `temp_once` for a 4xx the first time only); optional STARTTLS with a given certificate.
- `Pki`: a test CA and certificates made with openssl (trusted: signed by the CA, given
  to Letterbox as `[outbound] tls_ca_file`; untrusted: self-signed).
- `PolicyServer`: an HTTPS server for `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`.

Remote hosts are extra loopback addresses (127.X.Y.Z: Linux routes all of 127/8 to lo
without setup), each test with its own random 127.X.Y block and one shared port, so that
parallel runs do not meet.
"""

import asyncio
import http.server
import random
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP
from dnslib import AAAA, MX, QTYPE, RCODE, RR, TLSA, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer


def free_port_on(ip):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def address_block():
    """A random 127.X.Y prefix for one test's remote hosts."""
    return f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"


class _Resolver(BaseResolver):
    def __init__(self, zone, secure):
        self.zone = zone
        self.secure = secure

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        name = str(q.qname).rstrip(".").lower()
        # dnslib's reply() copies the query's flags, AD included (RFC 6840 5.7 queries
        # set it): a validating resolver sets it only for validated data.
        reply.header.ad = 1 if name in self.secure else 0
        records = self.zone.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        qt = QTYPE[q.qtype]
        for rtype, value in records:
            if rtype != qt:
                continue
            if rtype == "A":
                rd = A(value)
            elif rtype == "AAAA":
                rd = AAAA(value)
            elif rtype == "MX":
                pref, host = value
                rd = MX(host, pref)
            elif rtype == "TXT":
                rd = TXT(value)
            elif rtype == "TLSA":
                usage, selector, matching, data = value
                rd = TLSA(usage, selector, matching, data)
            else:
                continue
            reply.add_answer(RR(q.qname, getattr(QTYPE, rtype), rdata=rd, ttl=1))
        return reply


class Dns:
    """`zone`: name -> [(type, value)]; MX value (preference, host)."""

    def __init__(self):
        self.zone = {}
        self.secure = set()
        self.port = free_port_on("127.0.0.1")
        r = _Resolver(self.zone, self.secure)
        self.udp = DNSServer(r, port=self.port, address="127.0.0.1", tcp=False)
        self.tcp = DNSServer(r, port=self.port, address="127.0.0.1", tcp=True)
        self.udp.start_thread()
        self.tcp.start_thread()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def add(self, name, rtype, value):
        self.zone.setdefault(name.lower(), []).append((rtype, value))

    def sign(self, *names):
        """Answer these names with AD set (DNSSEC-validated)."""
        self.secure.update(n.lower() for n in names)

    def host(self, name, ip):
        self.add(name, "A", ip)

    def stop(self):
        self.udp.stop()
        self.tcp.stop()


class Transaction:
    def __init__(self, sender, rcpts, data, mail_options, rcpt_options, tls, auth=None):
        self.sender = sender
        self.rcpts = rcpts
        self.data = data
        self.mail_options = mail_options
        self.rcpt_options = rcpt_options
        self.tls = tls
        self.auth = auth


def _login(session):
    d = getattr(session, "auth_data", None)
    return d.decode() if isinstance(d, bytes) else None


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd always offers 8BITMIME with decode_data=False; a sink made with
        # eight_bit=False hides it, as an old MTA would.
        session.host_name = hostname
        if not self.sink.eight_bit:
            responses = [r for r in responses if r[4:] != "8BITMIME"]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        s = self.sink
        reply = s.rcpt_replies.get(address.lower())
        if reply is None and address.lower() in s.temp_once and address.lower() not in s.seen_temp:
            s.seen_temp.add(address.lower())
            reply = "451 4.3.0 try again later"
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.sink
        t = Transaction(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                        list(envelope.mail_options), list(envelope.rcpt_options),
                        session.ssl is not None,
                        _login(session))
        with s.lock:
            s.received.append(t)
        return s.data_reply


class Sink:
    """An aiosmtpd MTA on ip:port. `received` lists Transactions."""

    def __init__(self, ip, port, hostname="sink.test", tls_cert=None, data_reply="250 2.0.0 OK queued",
                 size=None, eight_bit=True, smtputf8=True, auth=None):
        self.ip, self.port = ip, port
        self.received = []
        self.lock = threading.Lock()
        self.rcpt_replies = {}
        self.temp_once = set()
        self.seen_temp = set()
        self.data_reply = data_reply
        self.eight_bit = eight_bit
        ctx = None
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*tls_cert)
        sink = self
        extra = {}
        if auth:
            from aiosmtpd.smtp import AuthResult, LoginPassword

            def authenticator(server, session, envelope, mechanism, data):
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == auth
                return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)
            extra = dict(authenticator=authenticator, auth_require_tls=False, auth_required=True)

        class _Ctl(Controller):
            def factory(self):
                smtp = AioSMTP(self.handler, hostname=hostname, tls_context=ctx,
                               require_starttls=False, enable_SMTPUTF8=smtputf8,
                               data_size_limit=size or 33554432, decode_data=False,
                               ident="sink", **extra)
                return smtp

        self.ctl = _Ctl(_Handler(sink), hostname=ip, port=port, ready_timeout=10)
        self.ctl.start()

    def wait(self, n=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.1)
        raise AssertionError(f"sink {self.ip}: {len(self.received)} transactions, wanted {n}")

    def stop(self):
        self.ctl.stop()


class Pki:
    """A CA and leaf certificates (openssl)."""

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.ca_key, self.ca_cert = dir / "ca.key", dir / "ca.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=Letterbox Test CA", "-keyout", self.ca_key, "-out", self.ca_cert,
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                       check=True, capture_output=True)

    def leaf(self, name, trusted=True):
        key, csr, cert = (self.dir / f"{name}.key", self.dir / f"{name}.csr",
                          self.dir / f"{name}{'' if trusted else '-self'}.pem")
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        if trusted:
            subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                            "-keyout", key, "-out", csr], check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
                           check=True, capture_output=True)
        else:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                            "-keyout", key, "-out", cert], check=True, capture_output=True)
        return (str(cert), str(key))


class PolicyServer:
    """HTTPS on ip:port serving one MTA-STS policy text."""

    def __init__(self, ip, port, cert, policy):
        body = policy.encode()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, port), H)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*cert)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
