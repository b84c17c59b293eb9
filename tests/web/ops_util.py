"""Shared by the portal-operations tests (metrics, autoconfiguration, app passwords, API
tokens): a server with the `http` listener, and a small cookie-keeping HTTP client."""

import http.client
import json
import re
import time

from conftest import free_ports


def web_server(make_server, users=None, **overrides):
    """A started server with `[listen] http` on a free loopback port (`s.http_port`)."""
    (port,) = free_ports(1)
    kw = {"listen.http": [f"127.0.0.1:{port}"], "auth.failure_delay_ms": 1}
    kw.update(overrides)
    s = make_server(users=users, start=False, **kw) if users is not None else make_server(start=False, **kw)
    s.http_port = port
    return s


def start(s):
    s.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        if re.search(rf"listening for http on 127\.0\.0\.1:{s.http_port}$", s.read_log()[s.log_start :], re.M):
            return s
        time.sleep(0.05)
    raise AssertionError("http listener did not start:\n" + s.read_log())


class Http:
    """One cookie jar, like one browser; `source` binds the client to a local address."""

    def __init__(self, server, source=None, host="127.0.0.1"):
        self.host = host
        self.port = server.http_port
        self.cookies = {}
        self.source = source
        self.csrf = None

    def request(self, method, path, body=None, headers=None, form=None):
        h = dict(headers or {})
        if form is not None:
            import urllib.parse

            body = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        src = (self.source, 0) if self.source else None
        c = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=src)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        r.body = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";")[0]
        c.close()
        return r

    def json(self, method, path, body=None, csrf=True, headers=None):
        h = dict(headers or {})
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        if body is None and method == "POST":
            body = {}
        r = self.request(method, path, body=body, headers=h)
        return r.status, (json.loads(r.body) if r.body else None)

    def login(self, address, password):
        status, me = self.json("POST", "/api/login", {"address": address, "password": password})
        assert status == 200, me
        self.csrf = me["csrf"]
        return me
