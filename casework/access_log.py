"""Who looked at what: an append-only, hash-chained log of every page and export that shows an account, an alert,
a case or a report (who, when, what, from where, and why when a protected detail was revealed).

The one place that writes and reads the access log, like casework/dispositions.audit for decisions. The log lives in
the casework database (pipelines/casework_db.py, beside the audit log), so the page that writes it never writes the
DuckDB store. The chain is casework/audit_chain's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from casework import audit_chain
from pipelines.casework_db import ACCESS_FIELDS, Casework

REVEAL_MINUTES = 60  # a reveal with a reason opens a victim's protected details to that user for this long


def _link(last: tuple[int, str] | None, row: dict) -> dict:
    return audit_chain.link(last, row, ACCESS_FIELDS)


def log_access(
    cw: Casework,
    user: str,
    role: str,
    action: str,
    object_kind: str,
    object_id: str | None = None,
    bank_id: str | None = None,
    address: str | None = None,
    reason: str | None = None,
    c=None,
) -> int:
    """Append one access, chained to the one before (inside the transaction `c` when given); returns its seq. What a
    request typed (a filter, a reason) is stored masked: the log keeps no raw IBAN, e-mail address or phone number."""
    from detectors.scoring import mask_identifiers

    object_id, bank_id, reason = (None if v is None else mask_identifiers(str(v)) for v in (object_id, bank_id, reason))
    entry = dict(
        logged_at=datetime.now(timezone.utc),
        user_name=user,
        role=role,
        action=action,
        object_kind=object_kind,
        object_id=object_id,
        bank_id=bank_id,
        address=address,
        reason=reason,
    )
    if c is not None:
        return cw.append(c, "access_log", entry, _link)["seq"]
    with cw.tx() as c:
        return cw.append(c, "access_log", entry, _link)["seq"]


def access_rows(cw: Casework) -> tuple[list[dict], int, dict[int, str]]:
    """Every entry in sequence order, 0 unchained entries, and the anchors purges left (for audit_chain.first_broken)."""
    rows, legacy = cw.chain("access_log")
    anchors = {int(r["object_id"]): r["reason"] for r in rows if r["action"] == "purge_log"}
    return rows, legacy, anchors


def entries(cw: Casework, limit: int = 500) -> pl.DataFrame:
    """The newest entries for the auditors' page."""
    return cw.access_entries(limit)


def revealed(cw: Casework, user: str, object_id: str, minutes: int = REVEAL_MINUTES) -> bool:
    """Did this user reveal this object's protected details, with a reason, in the last `minutes`?"""
    return cw.revealed_since(user, object_id, datetime.now(timezone.utc) - timedelta(minutes=minutes))


def purge_access(cw: Casework, before, user: str, c=None) -> tuple[str, int]:
    """Retention for the access log: delete entries logged before `before`, then a chained 'purge_log' entry whose
    object_id/reason name the last one deleted (the anchor the shortened log starts from)."""
    if c is None:
        with cw.tx() as c:
            return purge_access(cw, before, user, c)
    gone, n = cw.delete_before(c, "access_log", before)
    anchor = audit_chain.purge_anchor(gone)
    if anchor:
        log_access(cw, user, "system", "purge_log", "log", str(anchor[0]), reason=anchor[1], c=c)
    return "access_log", n


def verify(cw: Casework) -> list[tuple[str, int | None, int, int, str]]:
    """Both chained logs: (log, first broken seq or None, entries checked, unchained entries, why)."""
    from casework.dispositions import AUDIT_FIELDS, audit_rows

    out = []
    for name, (rows, legacy, anchors), fields in (
        ("audit_log", audit_rows(cw), AUDIT_FIELDS),
        ("access_log", access_rows(cw), ACCESS_FIELDS),
    ):
        broken, n, why = audit_chain.first_broken(rows, fields, anchors)
        out.append((name, broken, n, legacy, why))
    return out
