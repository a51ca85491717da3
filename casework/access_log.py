"""Who looked at what: an append-only, hash-chained log of every page and export that shows an account, an alert,
a case or a report (who, when, what, from where, and why when a protected detail was revealed).

The one place that writes and reads the access log, like casework/dispositions.audit for decisions: re-point these
functions to keep the log in another database. The chain is casework/audit_chain's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb

from casework import audit_chain

ACCESS_FIELDS = (
    "seq",
    "logged_at",
    "user_name",
    "role",
    "action",
    "object_kind",
    "object_id",
    "bank_id",
    "address",
    "reason",
)
COLUMNS = ACCESS_FIELDS + ("prev_hash", "entry_hash")
REVEAL_MINUTES = 60  # a reveal with a reason opens a victim's protected details to that user for this long


def log_access(
    con: duckdb.DuckDBPyConnection,
    user: str,
    role: str,
    action: str,
    object_kind: str,
    object_id: str | None = None,
    bank_id: str | None = None,
    address: str | None = None,
    reason: str | None = None,
) -> int:
    """Append one access, chained to the one before; returns its sequence number."""
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
    last = con.execute("SELECT seq, entry_hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchall()
    entry |= audit_chain.link(last[0] if last else None, entry, ACCESS_FIELDS)
    con.execute(
        f"INSERT INTO access_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})", [entry[c] for c in COLUMNS]
    )
    return entry["seq"]


def access_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], int, dict[int, str]]:
    """Every entry in sequence order, 0 unchained entries, and the anchors purges left (for audit_chain.first_broken)."""
    rows = [dict(zip(COLUMNS, r)) for r in con.execute(f"SELECT {', '.join(COLUMNS)} FROM access_log ORDER BY seq").fetchall()]
    anchors = {int(r["object_id"]): r["reason"] for r in rows if r["action"] == "purge_log"}
    return rows, 0, anchors


def entries(con: duckdb.DuckDBPyConnection, limit: int = 500):
    """The newest entries for the auditors' page."""
    return con.sql(
        f"""SELECT seq, logged_at, user_name, role, action, object_kind, object_id, bank_id, address, reason
            FROM access_log ORDER BY seq DESC LIMIT {int(limit)}"""
    ).pl()


def revealed(con: duckdb.DuckDBPyConnection, user: str, object_id: str, minutes: int = REVEAL_MINUTES) -> bool:
    """Did this user reveal this object's protected details, with a reason, in the last `minutes`?"""
    since = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    return bool(
        con.execute(
            "SELECT count(*) FROM access_log WHERE action = 'reveal' AND user_name = ? AND object_id = ? AND logged_at >= ?",
            [user, object_id, since],
        ).fetchall()[0][0]
    )


def purge_access(con: duckdb.DuckDBPyConnection, before, user: str) -> tuple[str, int]:
    """Retention for the access log: delete entries logged before `before`, then a chained 'purge_log' entry whose
    object_id/reason name the last one deleted (the anchor the shortened log starts from)."""
    gone = con.execute("SELECT seq, entry_hash FROM access_log WHERE logged_at < ? ORDER BY seq", [before]).fetchall()
    n = con.execute("DELETE FROM access_log WHERE logged_at < ?", [before]).fetchall()[0][0]
    anchor = audit_chain.purge_anchor(gone)
    if anchor:
        log_access(con, user, "system", "purge_log", "log", str(anchor[0]), reason=anchor[1])
    return "access_log", n


def verify(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int | None, int, int, str]]:
    """Both chained logs: (log, first broken seq or None, entries checked, unchained entries, why)."""
    from casework.dispositions import AUDIT_FIELDS, audit_rows

    out = []
    for name, (rows, legacy, anchors), fields in (
        ("audit_log", audit_rows(con), AUDIT_FIELDS),
        ("access_log", access_rows(con), ACCESS_FIELDS),
    ):
        broken, n, why = audit_chain.first_broken(rows, fields, anchors)
        out.append((name, broken, n, legacy, why))
    return out
