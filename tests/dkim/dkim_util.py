"""DKIM helpers for the tests: the records `letterbox domain dkim|dns` print, and
dkimpy (an independent verifier, PyPI `dkimpy`) answering DNS from those records only."""

import re

import dkim  # dkimpy

TXT = re.compile(r'^(\S+) (?:\d+ )?IN TXT (?:\( ((?:"[^"]*"\s*)+)\)|("[^"]*"))', re.M)


def txt_records(output: str) -> dict:
    """{owner name (with its final dot): joined TXT value} of zone-file output."""
    records = {}
    for m in TXT.finditer(output):
        strings = re.findall(r'"([^"]*)"', m.group(2) or m.group(3))
        records[m.group(1)] = "".join(strings)
    return records


def verify_all(message: bytes, records: dict):
    """[(selector, algorithm, verified)] for each DKIM-Signature of `message`, top down,
    looking keys up in `records` only."""

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        if not n.endswith("."):
            n += "."
        v = records.get(n)
        return v.encode() if v is not None else None

    d = dkim.DKIM(message)
    out = []
    sigs = [v for (k, v) in dkim.rfc822_parse(message)[0] if k.lower() == b"dkim-signature"]
    for i, sig in enumerate(sigs):
        tags = dict(
            (t.strip().split("=", 1) + [""])[:2]
            for t in re.sub(r"\s+", "", sig.decode()).split(";")
            if "=" in t
        )
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except Exception:  # dkimpy raises for some failures ("body hash mismatch", a key of the other algorithm)
            ok = False
        out.append((tags.get("s"), tags.get("a"), ok))
    return out
