"""Tamper evidence for append-only logs, independent of where they are stored (DuckDB, SQLite, PostgreSQL).

Each entry carries `seq` (1, 2, 3 ...), `prev_hash` (the previous entry's hash; GENESIS for the first) and
`entry_hash` = SHA-256 over the previous hash and the entry's canonical serialisation. Changing, deleting or
reordering any entry breaks the link at that entry and every one after it, so `first_broken` finds the earliest
entry that no longer fits. The logs' writers (casework/dispositions.audit, casework/access_log) call `link`; the
`verify-audit` command reads the rows in `seq` order and calls `first_broken`. No storage code here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone

GENESIS = "0" * 64
CHAIN_COLUMNS = ("seq", "prev_hash", "entry_hash")


def _plain(value):
    """One spelling per value, whichever database returned it: datetimes as UTC ISO with microseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def canonical(entry: Mapping, fields: Iterable[str]) -> str:
    """The entry's content as one JSON text: the named fields (chain columns excluded), sorted keys, no spaces."""
    body = {f: _plain(entry.get(f)) for f in fields if f not in ("prev_hash", "entry_hash")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, entry: Mapping, fields: Iterable[str]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(entry, fields)}".encode()).hexdigest()


def link(last: tuple[int, str] | None, entry: Mapping, fields: Iterable[str]) -> dict:
    """The chain columns of a new entry after `last` ((seq, entry_hash) of the log's last entry, None if empty)."""
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    with_seq = {**entry, "seq": seq}
    return {"seq": seq, "prev_hash": prev, "entry_hash": entry_hash(prev, with_seq, fields)}


def first_broken(
    rows: Iterable[Mapping], fields: Iterable[str], anchors: Mapping[int, str] | None = None
) -> tuple[int | None, int, str]:
    """Walk the entries in seq order: (the first broken seq or None, entries checked, why it broke).
    Broken: a gap or repeat in seq, a prev_hash that is not the previous entry's hash, or content that no longer
    hashes to its entry_hash. A log whose first entries were purged after the legal period starts later: its first
    entry must point to an anchor, the hash of the last purged entry that the (chained) purge entry recorded."""
    fields, anchors = tuple(fields), anchors or {}
    prev, expected, n = None, None, 0
    for row in rows:
        n += 1
        seq = row.get("seq")
        if expected is None:  # the first entry: seq 1 from the genesis hash, or just after a recorded purge
            expected = seq if isinstance(seq, int) and seq > 0 else 1
            prev = GENESIS if expected == 1 else anchors.get(expected - 1)
            if prev is None:
                return seq, n, "the entries before it were removed without a purge record"
        if seq != expected:
            return (seq if seq is not None else expected), n, f"entry {expected} is missing or out of order"
        if row.get("prev_hash") != prev:
            return seq, n, "it does not point to the entry before it"
        if entry_hash(prev, row, fields) != row.get("entry_hash"):
            return seq, n, "its content was changed after it was written"
        prev, expected = row["entry_hash"], expected + 1
    return None, n, ""


def purge_anchor(deleted: list[tuple[int, str]]) -> tuple[int, str] | None:
    """(seq, entry_hash) of the last of the purged entries: what the log's new first entry must point to."""
    return max(deleted) if deleted else None
