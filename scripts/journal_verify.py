#!/usr/bin/env python3
"""Verify an rms journal export without rms (docs/JOURNAL.md), with Python's standard library.

Usage: python3 scripts/journal_verify.py EXPORT.jsonl

An export is JSON lines: first a header {"format": "rms-journal-1", ...}, then one line per
journal entry, {"chain", "seq", "prev", "record", "hash"}, each chain's entries in order, then
the heads the device signed in that range, {"signed_head": {...}} (ECDSA P-256, checked here
with the curve's arithmetic: no library beyond Python's own). For
every entry: its seq follows the previous one of its chain (the events chain may jump at the
first event of an incarnation the header's "incarnations" names), its prev is the previous entry's
hash (the header's "prev" of that chain for the first exported one), its record names the same
chain and seq, and hash = SHA-256(bytes of prev || UTF-8 bytes of record). Prints what it checked
and exits 0, or names the first entry that does not verify and exits 1.
"""

import hashlib
import json
import sys

FORMAT = "rms-journal-1"


def event_number(event_id):
    """The number of an event id "<device>-<seq>", or None."""
    if not isinstance(event_id, str) or "-" not in event_id:
        return None
    number = event_id.split("-", 1)[1]
    return int(number) if number.isdigit() else None

ZERO = "0" * 64

# NIST P-256 (secp256r1): the curve of the device keys that sign the journal's heads.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def point_add(p, q):
    """Affine addition on P-256; None is the point at infinity."""
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + A) * pow(2 * p[1], -1, P) % P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, P) % P
    x = (slope * slope - p[0] - q[0]) % P
    return (x, (slope * (p[0] - x) - p[1]) % P)


def point_mul(k, p):
    result = None
    while k:
        if k & 1:
            result = point_add(result, p)
        p = point_add(p, p)
        k >>= 1
    return result


def ecdsa_p256_verify(key, message, signature):
    """ECDSA P-256 with SHA-256; `key` the uncompressed point (65 bytes), `signature` r || s."""
    if len(key) != 65 or key[0] != 4 or len(signature) != 64:
        return False
    q = (int.from_bytes(key[1:33], "big"), int.from_bytes(key[33:], "big"))
    if (q[1] * q[1] - (q[0] ** 3 + A * q[0] + B)) % P != 0:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    point = point_add(point_mul(e * w % N, G), point_mul(r * w % N, q))
    return point is not None and point[0] % N == r


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
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fail("line 1", f"the format is not {FORMAT}")
    # Where each chain stands: (seq, hash) of its last verified entry.
    heads = {chain: (start["seq"], start["hash"]) for chain, start in header.get("prev", {}).items()}
    # The first event of each incarnation after the first (docs/SYNC.md "Incarnations").
    incarnations = set(header.get("incarnations", []))
    # The event number of each chain's last verified entry (where a jump is checked against).
    numbers = {}
    counts = {}
    # The hash at each verified position, for the signed heads that follow the entries.
    hashes = {}
    signed = 0
    for number, line in enumerate(lines[1:], start=2):
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except ValueError as err:
            fail(where, f"not JSON ({err})")
        if not isinstance(entry, dict):
            fail(where, "not an entry")
        if "signed_head" in entry:
            check_signed_head(where, entry["signed_head"], hashes, header.get("device_id"))
            signed += 1
            continue
        try:
            chain, seq = entry["chain"], entry["seq"]
            prev, record, digest = entry["prev"], entry["record"], entry["hash"]
        except (ValueError, KeyError, TypeError) as err:
            fail(where, f"not an entry ({err})")
        where = f"{where} ({chain} #{seq})"
        last_seq, last_hash = heads.get(chain, (0, ZERO))
        if prev != last_hash:
            fail(where, "its prev is not the hash of the entry before it")
        try:
            content = json.loads(record)
        except (ValueError, TypeError) as err:
            fail(where, f"its record is not JSON ({err})")
        if not isinstance(content, dict):
            fail(where, "its record is not an object")
        # The events chain jumps (by as many positions as event numbers) at the first event of
        # each incarnation the header names; every other entry follows the one before it.
        number = event_number(content.get("event_id")) if chain == "events" else None
        last_number = numbers.get(chain)
        jumps = (chain == "events" and content.get("event_id") in incarnations
                 and isinstance(seq, int) and seq > last_seq
                 and (last_number is None or number is None
                      or number - last_number == seq - last_seq))
        if seq != last_seq + 1 and not jumps:
            fail(where, f"expected #{last_seq + 1} of {chain}: an entry is missing or out of order")
        numbers[chain] = number
        if content.get("chain") != chain or content.get("seq") != seq:
            fail(where, "its record names another chain or position")
        computed = hashlib.sha256(bytes.fromhex(prev) + record.encode("utf-8")).hexdigest()
        if computed != digest:
            fail(where, "its hash does not match its record: the record was changed")
        heads[chain] = (seq, digest)
        hashes[(chain, seq)] = digest
        counts[chain] = counts.get(chain, 0) + 1
    for chain in sorted(counts):
        seq, digest = heads[chain]
        print(f"{chain}: {counts[chain]} entries verify, head #{seq} {digest}")
    print(f"{signed} signed heads verify")
    print("OK")


def check_signed_head(where, head, hashes, device_id):
    """A head the device signed: its statement repeats the hash the chain has at its position,
    its signature verifies with its key, and its key is in its certificate. (Whether that
    certificate is the device's is the store's device list to say: its SHA-256 is printed.)"""
    try:
        statement = head["statement"]
        said = json.loads(statement)["journal_head"]
        if not isinstance(said, dict):
            raise TypeError("the statement is not a journal head")
        key, signature = bytes.fromhex(head["key"]), bytes.fromhex(head["signature"])
        certificate = bytes.fromhex(head["certificate"])
        chain, seq = said["chain"], said["seq"]
    except (ValueError, KeyError, TypeError) as err:
        fail(where, f"not a signed head ({err})")
    where = f"{where} (signed head {chain} #{seq})"
    if said.get("device_id") != device_id:
        fail(where, "it names another device")
    if hashes.get((chain, seq)) != said.get("hash"):
        fail(where, "the chain does not have the hash the device signed there: it was rewritten")
    if key not in certificate:
        fail(where, "its key is not the key of its certificate")
    if not ecdsa_p256_verify(key, statement.encode("utf-8"), signature):
        fail(where, "its signature does not verify")
    fingerprint = hashlib.sha256(certificate).hexdigest()
    print(f"signed head {chain} #{seq}: signature verifies (certificate SHA-256 {fingerprint})")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2])
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as export:
        # Split on newlines only: a record may hold U+2028 and the like, which JSON leaves as is.
        lines = [line.rstrip("\r") for line in export.read().split("\n") if line.strip()]
    verify(lines)


if __name__ == "__main__":
    main()
