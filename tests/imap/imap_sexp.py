"""Reads IMAP response data (RFC 9051 section 9) into Python values, so that answers
from two servers compare by meaning, not by their choice of quoting: a quoted string
and a literal (or literal8) with the same octets are equal. Strings become bytes, NIL
becomes None, atoms and numbers stay bytes, lists become Python lists."""

import re

_ATOM_END = b" ()[]{\"\r\n"


def parse(data: bytes):
    """All values of `data` (an untagged response line with its literals in line)."""
    out, i = [], 0
    while i < len(data):
        if data[i:i + 1] == b" ":
            i += 1
            continue
        v, i = _value(data, i)
        out.append(v)
    return out


def _value(d: bytes, i: int):
    c = d[i:i + 1]
    if c == b"(":
        items, i = [], i + 1
        while True:
            while d[i:i + 1] == b" ":
                i += 1
            if d[i:i + 1] == b")":
                return items, i + 1
            if i >= len(d):
                raise ValueError("unterminated list")
            v, i = _value(d, i)
            items.append(v)
    if c == b'"':
        s, i = bytearray(), i + 1
        while d[i:i + 1] != b'"':
            if d[i:i + 1] == b"\\":
                i += 1
            s += d[i:i + 1]
            i += 1
        return bytes(s), i + 1
    m = re.match(rb"~?\{(\d+)\+?\}\r\n", d[i:])
    if m:
        n, start = int(m.group(1)), i + m.end()
        return d[start:start + n], start + n
    j = i
    # An atom, possibly with a section and partial: BODY[1.HEADER.FIELDS (A B)]<0>.
    depth = 0
    while j < len(d):
        ch = d[j:j + 1]
        if ch == b"[":
            depth += 1
        elif ch == b"]":
            depth -= 1
        elif depth == 0 and ch in (b" ", b"(", b")", b"\r", b"\n", b'"', b"{"):
            break
        j += 1
    atom = d[i:j]
    if atom.upper() == b"NIL":
        return None, j
    return atom, j


def fetch_items(line: bytes):
    """`* n FETCH (k v k v ...)` as (n, {KEY: value}) with keys upper-cased."""
    vals = parse(line)
    assert vals[0] == b"*" and vals[2].upper() == b"FETCH", line
    items = vals[3]
    return int(vals[1]), {items[k].upper(): items[k + 1] for k in range(0, len(items), 2)}
