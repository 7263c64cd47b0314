#!/usr/bin/env python3
"""Verify an rms journal export without rms (docs/JOURNAL.md), with Python's standard library.

Usage: python3 scripts/journal_verify.py EXPORT.jsonl

An export is JSON lines: first a header {"format": "rms-journal-1", ...}, then one line per
journal entry, {"chain", "seq", "prev", "record", "hash"}, each chain's entries in order. For
every entry: its seq follows the previous one of its chain, its prev is the previous entry's
hash (the header's "prev" of that chain for the first exported one), its record names the same
chain and seq, and hash = SHA-256(bytes of prev || UTF-8 bytes of record). Prints what it checked
and exits 0, or names the first entry that does not verify and exits 1.
"""

import hashlib
import json
import sys

FORMAT = "rms-journal-1"
ZERO = "0" * 64


def fail(where, why):
    print(f"BROKEN at {where}: {why}")
    sys.exit(1)


def verify(lines):
    if not lines:
        fail("line 1", "the export is empty")
    try:
        header = json.loads(lines[0])
    except ValueError as err:
        fail("line 1", f"the header is not JSON ({err})")
    if header.get("format") != FORMAT:
        fail("line 1", f"the format is not {FORMAT}")
    # Where each chain stands: (seq, hash) of its last verified entry.
    heads = {chain: (start["seq"], start["hash"]) for chain, start in header.get("prev", {}).items()}
    counts = {}
    for number, line in enumerate(lines[1:], start=2):
        where = f"line {number}"
        try:
            entry = json.loads(line)
            chain, seq = entry["chain"], entry["seq"]
            prev, record, digest = entry["prev"], entry["record"], entry["hash"]
        except (ValueError, KeyError, TypeError) as err:
            fail(where, f"not an entry ({err})")
        where = f"{where} ({chain} #{seq})"
        last_seq, last_hash = heads.get(chain, (0, ZERO))
        if seq != last_seq + 1:
            fail(where, f"expected #{last_seq + 1} of {chain}: an entry is missing or out of order")
        if prev != last_hash:
            fail(where, "its prev is not the hash of the entry before it")
        try:
            content = json.loads(record)
        except ValueError as err:
            fail(where, f"its record is not JSON ({err})")
        if content.get("chain") != chain or content.get("seq") != seq:
            fail(where, "its record names another chain or position")
        computed = hashlib.sha256(bytes.fromhex(prev) + record.encode("utf-8")).hexdigest()
        if computed != digest:
            fail(where, "its hash does not match its record: the record was changed")
        heads[chain] = (seq, digest)
        counts[chain] = counts.get(chain, 0) + 1
    for chain in sorted(counts):
        seq, digest = heads[chain]
        print(f"{chain}: {counts[chain]} entries verify, head #{seq} {digest}")
    print("OK")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2])
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as export:
        lines = [line for line in export.read().splitlines() if line.strip()]
    verify(lines)


if __name__ == "__main__":
    main()
