"""API tokens for scripts and the OpenAPI document (issue 14).

`letterbox admin token add NAME` prints a token once; `Authorization: Bearer TOKEN` gets
operator rights on /api/ without a session or CSRF token; a wrong or revoked token is 401;
a bearer header cannot be used to skip a cookie session's CSRF check. The OpenAPI 3
document at /api/openapi.json validates (openapi-spec-validator), lists exactly the
/api/ routes the code registers, and every documented GET answers with a documented
status on a live server."""

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from ops_util import Http, start, web_server

ROOT = Path(__file__).resolve().parents[2]
ALICE, ALICE_PW = "alice@example.com", "alice-Secret1"


@pytest.fixture
def srv(make_server):
    return start(web_server(make_server))


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_token_gives_operator_rights_until_revoked(srv):
    token = srv.cli("admin", "token", "add", "backup-script").stdout.decode().strip()
    assert re.fullmatch(r"lbx_[A-Za-z0-9_-]{43}", token), token
    h = Http(srv)
    status, rows = h.json("GET", "/api/admin/accounts?sort=address", headers=bearer(token))
    assert status == 200
    assert [r["address"] for r in rows] == [ALICE, "bob@example.com"]
    # A write needs no CSRF token with a bearer token, and takes effect.
    status, row = h.json("POST", "/api/admin/accounts/quota", {"address": ALICE, "quota": "2M"}, headers=bearer(token))
    assert (status, row["limit"], row["quota"]) == (200, 2 << 20, str(2 << 20))
    assert srv.cli("quota", "show", ALICE).stdout.decode().split("\t")[2] == "2M"
    status, me = h.json("GET", "/api/me", headers=bearer(token))
    assert (status, me["address"], me["role"]) == (200, "token:backup-script", "operator")
    # A user's own pages are no token's.
    assert h.json("GET", "/api/usage", headers=bearer(token))[0] == 404

    listed = srv.cli("admin", "token", "list").stdout.decode().splitlines()
    assert [l.split("\t")[0] for l in listed] == ["backup-script"]
    assert listed[0].split("\t")[2] != "never"
    assert token not in srv.read_log()

    # Wrong, malformed and revoked tokens: 401, like no session.
    for t in (token[:-1] + ("A" if token[-1] != "A" else "B"), "lbx_short", "nonsense"):
        assert h.json("GET", "/api/admin/accounts", headers=bearer(t)) == (401, {"error": "log in first"})
    srv.cli("admin", "token", "remove", "backup-script")
    assert h.json("GET", "/api/admin/accounts", headers=bearer(token)) == (401, {"error": "log in first"})
    r = srv.cli("admin", "token", "remove", "backup-script", check=False)
    assert (r.returncode, r.stderr.decode()) == (1, "letterbox: API token 'backup-script' does not exist\n")
    assert srv.cli("admin", "token", "list").stdout == b""


def test_bearer_header_does_not_skip_a_sessions_csrf(srv):
    h = Http(srv)
    h.login(ALICE, ALICE_PW)
    # Cookie session, no CSRF token, a junk bearer header: refused, nothing created.
    status, body = h.json("POST", "/api/app-passwords", {"name": "x", "protocols": ["imap"]}, csrf=False, headers=bearer("junk"))
    assert status == 401
    status, body = h.json("POST", "/api/app-passwords", {"name": "x", "protocols": ["imap"]}, csrf=False)
    assert (status, body) == (403, {"error": "missing or wrong CSRF token"})
    assert h.json("GET", "/api/app-passwords")[1] == {"app_passwords": []}
    # Another authorization scheme does not count as a token either.
    status, created = h.json("POST", "/api/app-passwords", {"name": "y", "protocols": ["imap"]})
    assert status == 201
    basic = {"Authorization": "Basic YWxpY2U6eA=="}
    assert h.json("DELETE", "/api/app-passwords/y", csrf=False, headers=basic) == (403, {"error": "missing or wrong CSRF token"})
    assert [p["name"] for p in h.json("GET", "/api/app-passwords")[1]["app_passwords"]] == ["y"]
    # A mailbox user's session has no operator rights (tokens are the operator's).
    assert h.json("GET", "/api/admin/accounts")[0] == 403


def registered_routes():
    """(method, path) of every /api/ route the code registers."""
    routes = set()
    for f in (ROOT / "crates/web/src/api").glob("*.rs"):
        text = f.read_text()
        for m in re.finditer(r'\.route\(\s*"(/api/[^"]*)",\s*((?:get|post|delete|put|patch)\(\w+\)(?:\s*\.\s*(?:get|post|delete|put|patch)\(\w+\))*)', text):
            for method in re.findall(r"(get|post|delete|put|patch)\(", m.group(2)):
                routes.add((method, m.group(1)))
    return routes


def test_openapi_document(srv):
    h = Http(srv)
    r = h.request("GET", "/api/openapi.json")
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    doc = json.loads(r.body)
    validate(doc)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    code = registered_routes()
    assert len(code) > 20
    assert documented == code, (sorted(code - documented), sorted(documented - code))

    # Every documented GET answers with a status the document lists, for a user session
    # and for an operator token.
    token = srv.cli("admin", "token", "add", "openapi").stdout.decode().strip()
    user = Http(srv)
    user.login(ALICE, ALICE_PW)
    for path, ops in doc["paths"].items():
        if "get" not in ops or "{" in path:
            continue
        allowed = {int(c) for c in ops["get"]["responses"]}
        for client, headers in ((user, {}), (Http(srv), bearer(token))):
            r = client.request("GET", path, headers=headers)
            assert r.status in allowed, (path, r.status, r.body[:200])
            if r.status == 200:
                json.loads(r.body)
