"""Retention: delete what the store may no longer keep, per table, and count it in a purge record.

The periods come from the typed settings (`retention:`, schemas/settings.py): bookings and accounts for the scoring
window plus a margin; quarantined rows briefly; dismissed alerts, their evidence and FIU screening results for a set
period after the decision; escalated and reported alerts with their evidence, decisions, submissions, runs and the
logs for the legal period (Wwft: 5 years). Evidence of an alert that is kept is kept with it. Everything happens in
DuckDB SQL with the cut-off times bound, in one transaction: a purge happens whole or not at all, and a dry run is the
same purge rolled back. The audit and access logs are not the store's to touch directly: the entry points hand in
their purge functions (`LogPurger`), so the logs can live in another database.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from pipelines import store
from schemas.settings import Settings

# (con, cut-off, user) -> rows deleted from that log; a purger runs inside the purge's transaction
LogPurger = Callable[[duckdb.DuckDBPyConnection, datetime, str], tuple[str, int]]

EXPIRED_ALERTS = """SELECT alert_id FROM alert_status
    WHERE (status = 'dismissed' AND updated_at < $dismissed_cut) OR (status IN ('escalated', 'reported') AND updated_at < $legal_cut)"""
KEPT_EVIDENCE = "SELECT DISTINCT bank_id, unnest(evidence) AS txn_id FROM alerts"


@dataclass(frozen=True)
class Rule:
    table: str
    where: str  # code-owned SQL over the table with $cut-off parameters; never a value
    why: str


# In this order: alerts go first, so the evidence of the alerts that stay protects its bookings.
RULES: tuple[Rule, ...] = (
    Rule("alerts", f"alert_id IN ({EXPIRED_ALERTS})", "a dismissed alert after dismissed_days, a reported one after legal_years"),
    Rule("alert_status", f"alert_id IN ({EXPIRED_ALERTS})", "as its alert"),
    Rule(
        "cases",
        "created_at < $dismissed_cut AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.case_id = cases.case_id)",
        "a case none of whose alerts is kept",
    ),
    Rule(
        "transactions",
        f"""booked_at < $data_cut AND NOT EXISTS (SELECT 1 FROM ({KEPT_EVIDENCE}) e
              WHERE e.bank_id = transactions.bank_id AND e.txn_id = transactions.txn_id)""",
        "older than the window plus margin, unless evidence of a kept alert",
    ),
    Rule(
        "accounts",
        """coalesce((SELECT max(s.loaded_at) FROM submissions s WHERE s.submission_id = accounts.submission_id), $legal_cut)
              < $data_cut
           AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.bank_id = accounts.bank_id AND t.account_id = accounts.account_id)
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.bank_id = accounts.bank_id AND a.account_id = accounts.account_id)""",
        "submitted before the window plus margin, with no booking or alert left",
    ),
    Rule("quarantine", "quarantined_at < $quarantine_cut", "rows that failed a check, after quarantine_days"),
    Rule("fiu_reports", "booked_at < $legal_cut", "FIU reports after the legal period"),
    Rule("fiu_theme_hits", "created_at < $dismissed_cut", "screening results after dismissed_days"),
    Rule("fiu_subjects", "created_at < $dismissed_cut", "screening results after dismissed_days"),
    Rule("fiu_screens", "created_at < $dismissed_cut", "screening runs after dismissed_days"),
    Rule("fiu_decisions", "decided_at < $legal_cut", "FIU decisions after the legal period"),
    Rule("fiu_disseminations", "disseminated_at < $legal_cut", "disseminations after the legal period"),
    Rule("runs", "started_at < $legal_cut", "run records after the legal period"),
    Rule("submissions", "loaded_at < $legal_cut", "submission records after the legal period"),
)


@dataclass
class PurgeResult:
    purge_id: str
    dry_run: bool
    cutoffs: dict[str, datetime]
    deleted: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        rows = ", ".join(f"{t} {n}" for t, n in self.deleted.items() if n) or "nothing"
        return f"purge {self.purge_id} ({'dry run' if self.dry_run else 'recorded in purge_log'}): {verb} {rows}"


def _years_before(t: datetime, years: int) -> datetime:
    try:
        return t.replace(year=t.year - years)
    except ValueError:  # 29 February
        return t.replace(year=t.year - years, day=28)


def cutoffs(settings: Settings, as_of: datetime) -> dict[str, datetime]:
    r = settings.retention
    return {
        "data_cut": as_of - timedelta(days=settings.window.days + r.window_margin_days),
        "quarantine_cut": as_of - timedelta(days=r.quarantine_days),
        "dismissed_cut": as_of - timedelta(days=r.dismissed_days),
        "legal_cut": _years_before(as_of, r.legal_years),
    }


def _params(sql: str, cuts: dict[str, datetime]) -> dict[str, datetime]:
    """The cut-offs a statement names (DuckDB refuses named parameters a statement does not use)."""
    return {k: v for k, v in cuts.items() if re.search(rf"\${k}\b", sql)}


def purge_store(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    as_of: datetime | None = None,
    dry_run: bool = False,
    user: str = "purge",
    logs: Sequence[LogPurger] = (),
) -> PurgeResult:
    """Delete every expired row (RULES, then the logs through `logs`) in one transaction; record it unless a dry run."""
    as_of = as_of or datetime.now(timezone.utc)
    cuts = cutoffs(settings, as_of)
    res = PurgeResult(uuid.uuid4().hex[:12], dry_run, cuts)
    con.execute("BEGIN TRANSACTION")
    try:
        for rule in RULES:
            sql = f"DELETE FROM {rule.table} WHERE {rule.where}"
            res.deleted[rule.table] = con.execute(sql, _params(sql, cuts)).fetchall()[0][0]
        for purger in logs:
            table, n = purger(con, cuts["legal_cut"], user)
            res.deleted[table] = n
        if dry_run:
            con.execute("ROLLBACK")
            return res
        con.execute(
            "INSERT INTO purge_log VALUES (?, now(), false, ?, ?, ?)",
            [res.purge_id, user, json.dumps({k: v.isoformat() for k, v in cuts.items()}), json.dumps(res.deleted)],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return res


def purge(
    db: str | Path,
    settings: Settings,
    as_of: datetime | None = None,
    dry_run: bool = False,
    user: str = "purge",
    logs: Sequence[LogPurger] = (),
) -> PurgeResult:
    con = store.connect(db)
    try:
        return purge_store(con, settings, as_of, dry_run, user, logs)
    finally:
        con.close()
