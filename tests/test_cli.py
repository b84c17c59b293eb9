"""The admin command line, as the contract (shared/INTERFACE.md) describes it."""

import os
import subprocess

from conftest import BIN


def test_domains_users_and_errors(make_server):
    s = make_server(users={}, start=False)
    assert s.cli("domain", "list").stdout == b"example.com\n"
    r = s.cli("domain", "add", "example.com", check=False)
    assert r.returncode != 0 and b"already exists" in r.stderr
    r = s.cli("domain", "add", "bad domain", check=False)
    assert r.returncode != 0 and b"invalid domain" in r.stderr

    s.add_user("alice@example.com", "pw1")
    r = s.cli("user", "add", "alice@example.com", "--password-stdin", input="x\n", check=False)
    assert r.returncode != 0 and r.stderr.count(b"\n") == 1 and b"already exists" in r.stderr
    r = s.cli("user", "add", "carol@elsewhere.org", "--password-stdin", input="x\n", check=False)
    assert r.returncode != 0 and b"not local" in r.stderr
    r = s.cli("user", "add", "not-an-address", "--password-stdin", input="x\n", check=False)
    assert r.returncode != 0 and b"invalid address" in r.stderr
    r = s.cli("user", "add", "dave@example.com", "--password-stdin", "--quota", "12X", input="x\n", check=False)
    assert r.returncode != 0 and b"malformed size '12X'" in r.stderr
    # Nothing half-written: dave does not exist.
    assert b"dave" not in s.cli("user", "list").stdout
    r = s.cli("user", "add", "dave@example.com", "--password-hash", "{MD5}abc", check=False)
    assert r.returncode != 0 and b"unsupported password scheme" in r.stderr
    s.cli("user", "add", "dave@example.com", "--password-hash",
          "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    users = s.cli("user", "list").stdout.decode()
    assert "alice@example.com" in users and "dave@example.com" in users

    r = s.cli("domain", "remove", "example.com", check=False)
    assert r.returncode != 0 and b"remove them first" in r.stderr


def test_quota_sizes_and_show(make_server):
    s = make_server(users={"alice@example.com": "pw"}, start=False)
    out = s.cli("quota", "show", "alice@example.com").stdout.decode()
    assert out.startswith("alice@example.com\t0\t200M (default)\t0%")
    for size, shown in [("512K", "512K"), ("2G", "2G"), ("200MB", "200M"), ("300MiB", "300M"), ("1T", "1T"), ("1048576", "1M")]:
        out = s.cli("quota", "set", "alice@example.com", size).stdout.decode()
        assert f"\t{shown}\t" in out, (size, out)
    assert "\tunlimited\t" in s.cli("quota", "set", "alice@example.com", "unlimited").stdout.decode()
    assert "(default)" in s.cli("quota", "set", "alice@example.com", "default").stdout.decode()
    for bad in ["12X", "-1", "1.5G", ""]:
        r = s.cli("quota", "set", "alice@example.com", bad, check=False)
        assert r.returncode != 0, bad
    r = s.cli("quota", "set", "nobody@example.com", "1G", check=False)
    assert r.returncode != 0 and b"does not exist" in r.stderr


def test_quota_usage_tracks_deliveries_and_recalc(make_server):
    s = make_server(users={"alice@example.com": "pw"}, start=False)
    msg = b"Subject: one\r\n\r\nbody\r\n"
    s.deliver("alice@example.com", msg)
    stored = s.message("alice@example.com", "INBOX", 1)
    assert stored == b"Delivered-To: alice@example.com\r\n" + msg
    out = s.cli("quota", "show", "alice@example.com").stdout.decode()
    assert out.split("\t")[1] == str(len(stored))
    out = s.cli("quota", "recalc").stdout.decode()
    assert out == f"alice@example.com\t{len(stored)} -> {len(stored)}\n"
    assert s.cli("check", "--deep").stdout == b"ok\n"


def test_remove_user_with_mail_needs_force(make_server):
    s = make_server(users={"alice@example.com": "pw"}, start=False)
    s.deliver("alice@example.com", b"Subject: x\r\n\r\ny\r\n")
    r = s.cli("user", "remove", "alice@example.com", check=False)
    assert r.returncode != 0 and b"--force" in r.stderr
    s.cli("user", "remove", "alice@example.com", "--force")
    assert s.cli("user", "list").stdout == b""
    blobs = [p for p in (s.data_dir / "blobs").glob("??/*")]
    assert blobs == [], "the removed user's blobs are freed"
    assert s.cli("check").stdout == b"ok\n"


def test_aliases(make_server):
    s = make_server(start=False)
    s.cli("alias", "add", "team@example.com", "alice@example.com", "bob@example.com")
    s.cli("alias", "add", "@example.com", "bob@example.com")
    out = s.cli("alias", "list").stdout.decode()
    assert out == "@example.com\tbob@example.com\nteam@example.com\talice@example.com bob@example.com\n"
    s.deliver("team@example.com", b"Subject: t\r\n\r\nt\r\n")
    s.deliver("whoever@example.com", b"Subject: c\r\n\r\nc\r\n")
    s.deliver("alice+news@example.com", b"Subject: n\r\n\r\nn\r\n")
    assert s.uids("alice@example.com") == [1, 2]
    assert s.uids("bob@example.com") == [1, 2]
    r = s.cli("alias", "add", "x@other.org", "alice@example.com", check=False)
    assert r.returncode != 0
    r = s.cli("deliver", "nobody@other.org", input=b"x", check=False)
    assert r.returncode == 67


def test_retention_setting(make_server):
    s = make_server(users={"alice@example.com": "pw"}, start=False)
    for v in ["delete", "30d", "keep", "default"]:
        s.cli("user", "set", "alice@example.com", "pop3-retention", v)
    for bad in ["0d", "sometimes", "30"]:
        r = s.cli("user", "set", "alice@example.com", "pop3-retention", bad, check=False)
        assert r.returncode != 0 and b"malformed retention" in r.stderr
    r = s.cli("user", "set", "alice@example.com", "color", "blue", check=False)
    assert r.returncode != 0 and b"unknown setting" in r.stderr


def test_config_errors_name_the_key(tmp_path, letterbox_bin):
    cases = {
        "bogus = 1\n": b"`bogus`",
        '[quota]\ndefault = "12X"\n': b"`quota.default`",
        '[listen]\nimap = ["nowhere"]\n': b"`listen.imap",
        '[pop3]\nretention = "often"\n': b"`pop3.retention`",
    }
    for text, key in cases.items():
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        for cmd in (["user", "list"], ["serve"]):
            r = subprocess.run([str(BIN), "--config", str(cfg), *cmd], capture_output=True, timeout=30)
            assert r.returncode == 78 and key in r.stderr, (text, r.stderr)
    r = subprocess.run([str(BIN), "--config", str(tmp_path / "missing.toml"), "user", "list"], capture_output=True)
    assert r.returncode != 0 and b"cannot read config file" in r.stderr
    # $LETTERBOX_CONFIG is honoured.
    cfg.write_text("bogus = 2\n")
    r = subprocess.run([str(BIN), "user", "list"], capture_output=True, env={**os.environ, "LETTERBOX_CONFIG": str(cfg)})
    assert r.returncode == 78


def test_reader_cache_bytes_is_checked(tmp_path, letterbox_bin):
    # `[store] reader_cache_bytes`: a size between 64K and 1G; anything else stops every
    # command with one line that names the key (exit 78, EX_CONFIG).
    cfg = tmp_path / "c.toml"
    for bad, why in [("12X", b"malformed size '12X'"), ("1K", b"between 64K and 1G"),
                     ("2G", b"between 64K and 1G"), ("-5", b"cannot be negative")]:
        value = bad if bad.startswith("-") else f'"{bad}"'
        cfg.write_text(f'data_dir = "{tmp_path}/data"\n[store]\nreader_cache_bytes = {value}\n')
        for cmd in (["user", "list"], ["serve"]):
            r = subprocess.run([str(BIN), "--config", str(cfg), *cmd], capture_output=True, timeout=30)
            assert r.returncode == 78, (bad, r.stderr)
            assert b"`store.reader_cache_bytes`" in r.stderr and why in r.stderr, (bad, r.stderr)
            assert r.stderr.count(b"\n") == 1, r.stderr
    cfg.write_text(f'data_dir = "{tmp_path}/data"\n[store]\nreader_cache_bytes = "16M"\n')
    r = subprocess.run([str(BIN), "--config", str(cfg), "domain", "list"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr

def test_unwritable_data_dir(tmp_path, letterbox_bin):
    target = tmp_path / "file-not-dir"
    target.write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{target}/sub"\n')
    r = subprocess.run([str(BIN), "--config", str(cfg), "domain", "list"], capture_output=True)
    assert r.returncode != 0 and b"data directory" in r.stderr and r.stderr.count(b"\n") == 1


def test_admin_changes_reach_running_server(server):
    # The running server and the CLI share the store; a user added now exists at once.
    server.add_user("carol@example.com", "carol-pw")
    assert "carol@example.com" in server.cli("user", "list").stdout.decode()
    server.deliver("carol@example.com", b"Subject: hi\r\n\r\nhi\r\n")
    assert server.uids("carol@example.com") == [1]


def test_deliver_warns_and_records_sender(make_server):
    s = make_server(users={}, start=False)
    s.add_user("alice@example.com", "pw", quota="20K")
    msg = b"Subject: big\r\n\r\n" + b"x" * 16500 + b"\r\n"
    out = s.cli("deliver", "--from", "sender@elsewhere.org", "alice@example.com", input=msg).stdout
    assert out == b"delivered uid 1\n"
    stored = s.message("alice@example.com", "INBOX", 1)
    assert stored == b"Return-Path: <sender@elsewhere.org>\r\nDelivered-To: alice@example.com\r\n" + msg
    # 16.5K of 20K crossed 80%: one warning in the INBOX, from the domain's postmaster.
    assert s.uids("alice@example.com") == [1, 2]
    warning = s.message("alice@example.com", "INBOX", 2)
    assert b"postmaster@example.com" in warning and b"80%" in warning
    # Full: refused with EX_CANTCREAT, nothing stored.
    r = s.cli("deliver", "alice@example.com", input=msg, check=False)
    assert r.returncode == 73 and b"quota" in r.stderr
    assert s.uids("alice@example.com") == [1, 2]
    r = s.cli("deliver", "--from", "a>b", "alice@example.com", input=msg, check=False)
    assert r.returncode == 1 and b"--from" in r.stderr


def test_usage_errors_are_one_line_and_sizes_are_never_clamped(make_server):
    """INTERFACE.md: non-zero with one clear line on standard error. `--quota -5M` was
    clap's paragraph about an unexpected argument '-5'; a quota over the store's signed
    64-bit range was accepted and stored as 9223372036854775807."""
    s = make_server(users={"alice@example.com": "pw"}, start=False)
    for args, message in [
        (["user", "add", "dave@example.com", "--password-stdin", "--quota", "-5M"],
         "letterbox: malformed size '-5M' (expected e.g. 512K, 200M, 2G, 1T or a byte count)"),
        (["user", "add", "dave@example.com", "--password-stdin", "--quota", "18446744073709551615"],
         "letterbox: size '18446744073709551615' is too large (at most 9223372036854775807 bytes)"),
        (["quota", "set", "alice@example.com", "-5M"],
         "letterbox: malformed size '-5M' (expected e.g. 512K, 200M, 2G, 1T or a byte count)"),
        (["quota", "set", "alice@example.com", "8388608T"],
         "letterbox: size '8388608T' is too large (at most 9223372036854775807 bytes)"),
        (["user", "set", "alice@example.com", "pop3-retention", "-1d"],
         "letterbox: malformed retention '-1d' (expected keep, delete or a number of days such as 30d)"),
        (["alias", "add", "staff@example.com"],
         "letterbox: the following required arguments were not provided: <TARGETS>... (see letterbox --help)"),
        (["user", "frob"], "letterbox: unrecognized subcommand 'frob' (see letterbox --help)"),
        (["quota", "show", "--frob"], "letterbox: unexpected argument '--frob' found (see letterbox --help)"),
    ]:
        r = s.cli(*args, input="pw\n", check=False)
        assert r.returncode != 0, args
        assert r.stderr.decode() == message + "\n", args
    # Nothing half-done.
    assert b"dave" not in s.cli("user", "list").stdout
    out = s.cli("quota", "show", "alice@example.com").stdout.decode()
    assert out.startswith("alice@example.com\t0\t200M (default)\t0%"), out
    # The largest size the store holds is taken as given.
    out = s.cli("quota", "set", "alice@example.com", "9223372036854775807").stdout.decode()
    assert "\t9223372036854775807\t" in out, out
    # Help and version still print normally, with status 0.
    assert s.cli("--version").stdout.decode().startswith("letterbox ")
    assert b"Usage:" in s.cli("quota", "--help").stdout
