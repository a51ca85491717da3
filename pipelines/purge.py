"""Retention: delete what the store may no longer keep, per table, and count it in a purge record.

The periods come from the typed settings (`retention:`, schemas/settings.py): bookings and accounts for the scoring
window plus a margin; quarantined rows briefly; dismissed alerts, their evidence and FIU screening results for a set
period after the decision; escalated and reported alerts with their evidence, decisions, submissions, runs and the
logs for the legal period (Wwft: 5 years). Evidence of an alert that is kept is kept with it. Everything happens in
DuckDB SQL with the cut-off times bound, in one transaction: a purge happens whole or not at all, and a dry run is the
same purge rolled back. Decisions (alert_status, fiu_decisions) and the audit and access logs live in the casework
database (pipelines/casework_db.py): an alert expires by its decision there, its decision row goes with it, and the
logs are purged by their own functions (`LogPurger`, handed in by the entry points since the chain code is casework's)
in one casework transaction, committed just after the store's (rolled back too on a dry run): should that commit fail,
the next purge finds the same expired decisions and log entries again (and counts them: a purge's record holds the
casework database's counts only once they are committed), and no alert the store dropped comes back.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from detectors.nightly import CACHE_TABLES
from pipelines import snapshot, store
from pipelines.casework_db import Casework, open_casework
from schemas.settings import Settings

# (casework, cut-off, user, its transaction) -> (log, rows deleted); runs inside the purge's casework transaction
LogPurger = Callable[[Casework, datetime, str, object], tuple[str, int]]

# `decided`: the casework database's alert_id, status, updated_at, registered on the store's connection by purge_store
EXPIRED_ALERTS = """SELECT alert_id FROM decided
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
    # the nightly run's kept feature parts (detectors/nightly.py) are derived from the bookings: emptied on every purge
    # (not dry run), so nothing the purge removed lives on in them; the next scoring run rebuilds them
    *(Rule(t, "true", "derived from bookings: rebuilt by the next scoring run") for t in CACHE_TABLES),
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


class _DryRun(Exception):
    """Rolls the casework transaction back after counting."""


class CaseworkNotPurged(RuntimeError):
    """The store's part of a purge committed and the casework database's did not: one line saying so."""


def purge_store(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    as_of: datetime | None = None,
    dry_run: bool = False,
    user: str = "purge",
    logs: Sequence[LogPurger] = (),
    cw: Casework | None = None,
) -> PurgeResult:
    """Delete every expired row (RULES, then the casework database's decisions and logs) in one transaction per
    database; record it unless a dry run. Without `cw` the store's own copy of the decisions decides (no logs)."""
    as_of = as_of or datetime.now(timezone.utc)
    cuts = cutoffs(settings, as_of)
    res = PurgeResult(uuid.uuid4().hex[:12], dry_run, cuts)
    if cw is not None:
        con.register("cw_decided", cw.status_times().to_arrow())
        con.execute("CREATE OR REPLACE TEMP VIEW decided AS SELECT alert_id, status, updated_at FROM cw_decided")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW decided AS SELECT alert_id, status, updated_at FROM main.alert_status")
    committed = False
    con.execute("BEGIN TRANSACTION")
    try:
        expired = [r[0] for r in con.execute(EXPIRED_ALERTS, _params(EXPIRED_ALERTS, cuts)).fetchall()]
        for rule in RULES:
            sql = f"DELETE FROM {rule.table} WHERE {rule.where}"
            res.deleted[rule.table] = con.execute(sql, _params(sql, cuts)).fetchall()[0][0]
        store_part = dict(res.deleted)
        with cw.tx() if cw is not None else nullcontext() as c:
            if cw is not None:
                res.deleted["casework_alert_status"] = cw.delete_alerts(c, expired)
                res.deleted["casework_fiu_decisions"] = cw.delete_fiu_decisions(c, cuts["legal_cut"])
                for purger in logs:
                    table, n = purger(cw, cuts["legal_cut"], user, c)
                    res.deleted[table] = n
            if dry_run:
                raise _DryRun  # both transactions roll back
            con.execute(  # the store's part; the casework database's counts join it once that part is committed too
                "INSERT INTO purge_log VALUES (?, now(), false, ?, ?, ?)",
                [res.purge_id, user, json.dumps({k: v.isoformat() for k, v in cuts.items()}), json.dumps(store_part)],
            )
            # The store commits first, the casework database as this block ends. Should its commit fail, the expired
            # decisions and log entries wait there for the next purge, which finds them again. The other order could
            # leave the store's copy of an alert whose decision was gone, and the next refresh would hand that alert
            # back to the investigators' queue as a new one, past its retention.
            con.execute("COMMIT")
            committed = True
    except _DryRun:
        con.execute("ROLLBACK")
        return res
    except Exception as e:
        if not committed:
            con.execute("ROLLBACK")
            raise
        raise CaseworkNotPurged(
            f"purge {res.purge_id}: the store is purged, the casework database is not ({str(e).splitlines()[0][:200]}); "
            "its expired decisions and log entries wait for the next purge"
        ) from e
    except BaseException:
        if not committed:
            con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP VIEW IF EXISTS decided")
        if cw is not None:
            con.unregister("cw_decided")
    if res.deleted != store_part:  # the casework database committed its part: count it (best effort, never twice)
        try:
            con.execute("UPDATE purge_log SET deleted = ? WHERE purge_id = ?", [json.dumps(res.deleted), res.purge_id])
        except duckdb.Error:
            pass
    return res


def _republish(con: duckdb.DuckDBPyConnection, db: str | Path) -> None:
    """The page's copy forgets what the store forgot."""
    if snapshot.current(db) is not None:
        keep = snapshot.publish(con, db)
        snapshot.prune(db, keep={keep.name})


def purge(
    db: str | Path,
    settings: Settings,
    as_of: datetime | None = None,
    dry_run: bool = False,
    user: str = "purge",
    logs: Sequence[LogPurger] = (),
    casework_url: str | None = None,
) -> PurgeResult:
    """Purge a store and its casework database (beside it, or at `casework_url`), under the store's write lock."""
    from pipelines.store_lock import exclusive

    with exclusive(db, "purge"):
        con = store.connect(db)
        try:
            try:
                res = purge_store(con, settings, as_of, dry_run, user, logs, open_casework(db, casework_url))
            except CaseworkNotPurged:
                _republish(con, db)  # the store's part is done all the same
                raise
            if not dry_run:
                _republish(con, db)
            return res
        finally:
            con.close()
