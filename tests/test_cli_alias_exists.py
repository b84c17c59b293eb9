"""`letterbox alias add` of an alias that exists (INTERFACE.md: a command that cannot do
what was asked exits non-zero with one clear line and changes nothing): the same
targets again is nothing to do (exit 0); other targets are refused (exit 1), the alias
as it was."""


def test_alias_add_existing(make_server):
    s = make_server(start=False)
    s.cli("alias", "add", "team@example.com", "alice@example.com", "bob@example.com")
    # The same targets (another order, another case): nothing to do.
    assert s.cli("alias", "add", "Team@example.com", "BOB@example.com", "alice@example.com").returncode == 0
    for targets in (["carol@example.com"], ["alice@example.com"], ["alice@example.com", "bob@example.com", "carol@example.com"]):
        r = s.cli("alias", "add", "team@example.com", *targets, check=False)
        assert r.returncode == 1, r
        assert r.stderr == (
            b"letterbox: alias team@example.com already exists with target(s) alice@example.com bob@example.com;"
            b" nothing changed (`alias remove team@example.com` first to replace it)\n"
        ), r.stderr
    assert s.cli("alias", "list").stdout == b"team@example.com\talice@example.com bob@example.com\n"
    # The catch-all too.
    s.cli("alias", "add", "@example.com", "alice@example.com")
    r = s.cli("alias", "add", "@example.com", "bob@example.com", check=False)
    assert r.returncode == 1 and b"alias @example.com already exists" in r.stderr, r.stderr
    # Replacing, as the message says.
    s.cli("alias", "remove", "team@example.com")
    s.cli("alias", "add", "team@example.com", "carol@example.com")
    assert s.cli("alias", "list", "team@example.com").stdout == b"team@example.com\tcarol@example.com\n"
