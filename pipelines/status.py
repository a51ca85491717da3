"""`thb-signals status`: what ran, what was loaded, what is open and what is waiting, without changing anything.

The store is opened read-only, so a status check never blocks a running batch and never creates tables; when
another process holds the store (DuckDB allows one writer, and then no reader in another process) the check
says so in one line instead of waiting or failing with a traceback.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from detectors.scoring import mask_identifiers
from pipelines import casework_db, store
from pipelines.batch import PROCESSED, REJECTED
from schemas.store import LATEST, current_version, too_new

WORKED = ("open", "info_requested", "escalated")  # alert states someone still has to act on


class StoreBusy(Exception):
    """Another process holds the store's lock."""


def _open_read_only(db: Path) -> duckdb.DuckDBPyConnection:
    try:
        return store.peek(db)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        pid = re.search(r"PID (\d+)", str(e))
        raise StoreBusy(
            f"{db} is in use by another process{f' (PID {pid.group(1)})' if pid else ''}, "
            "probably a batch run; try again when it has finished"
        ) from None


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _columns(con, table: str) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()
    }


def inbox_status(inbox: Path) -> dict:
    """Submission folders waiting in the inbox (as the batch will find them), without creating anything."""
    if not inbox.is_dir():
        return {"path": str(inbox), "exists": False, "waiting": []}
    waiting = []
    for p in sorted(
        x for x in inbox.iterdir() if x.is_dir() and x.name not in (PROCESSED, REJECTED) and not x.name.startswith(".")
    ):
        files = [f for f in p.rglob("*") if f.is_file()]
        waiting.append(
            {
                "name": p.name,
                "files": len(files),
                "bytes": sum(f.stat().st_size for f in files),
                "since": datetime.fromtimestamp(p.stat().st_mtime, timezone.utc),
            }
        )
    filed = {k: sum(1 for x in (inbox / k).iterdir() if x.is_dir()) if (inbox / k).is_dir() else 0 for k in (PROCESSED, REJECTED)}
    return {"path": str(inbox), "exists": True, "waiting": waiting, "filed": filed}


def store_status(db: str | Path, inbox: str | Path | None = None, last_runs: int = 10) -> dict:
    """Everything `status` shows, as plain data. Raises StoreBusy, FileNotFoundError."""
    db = Path(db)
    if not db.is_file():
        raise FileNotFoundError(f"{db}: no store there")
    wal = Path(str(db) + ".wal")
    out: dict = {
        "db": str(db),
        "bytes": db.stat().st_size + (wal.stat().st_size if wal.exists() else 0),
        "runs": [],
        "submissions": {},
        "recent_submissions": [],
        "alerts_open": [],
        "rows": {},
    }
    con = _open_read_only(db)
    try:
        found = current_version(con)
        if found > LATEST:  # an older store is read as it is; a newer one's tables this code cannot know
            raise too_new(found, f"store {db}")
        tables = _tables(con)
        for t in ("transactions", "accounts", "fiu_reports", "quarantine", "alerts"):
            if t in tables:
                out["rows"][t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        if "runs" in tables:
            error = "error" if "error" in _columns(con, "runs") else "NULL"
            out["runs"] = [
                dict(
                    zip(
                        (
                            "run_id",
                            "kind",
                            "outcome",
                            "started_at",
                            "seconds",
                            "rows_in",
                            "rows_quarantined",
                            "alerts_out",
                            "alerts_new",
                            "error",
                        ),
                        r,
                    )
                )
                for r in con.execute(
                    f"""
                SELECT run_id, kind, outcome, started_at, date_diff('millisecond', started_at, ended_at) / 1000.0, rows_in,
                       rows_quarantined, alerts_out, alerts_new, {error}
                FROM runs ORDER BY started_at DESC LIMIT ?""",
                    [last_runs],
                ).fetchall()
            ]
        if "submissions" in tables:
            out["submissions"] = dict(con.execute("SELECT outcome, count(*) FROM submissions GROUP BY 1 ORDER BY 1").fetchall())
            out["recent_submissions"] = [
                dict(
                    zip(
                        (
                            "submission_id",
                            "bank_id",
                            "outcome",
                            "rows_loaded",
                            "rows_quarantined",
                            "loaded_at",
                            "message",
                            "path",
                        ),
                        r,
                    )
                )
                for r in con.execute("""
                SELECT submission_id, bank_id, outcome, rows_loaded, rows_quarantined, loaded_at, message, path
                FROM submissions ORDER BY loaded_at DESC LIMIT 5""").fetchall()
            ]
        if "alert_status" in tables:
            cw_path = casework_db.default_path(db)
            if os.environ.get("THB_CASEWORK_URL") or cw_path.exists():  # decisions live there: the store's copy lags a run
                con.register("alert_status", casework_db.open_casework(db, create=False).statuses().to_arrow())
            out["alerts_open"] = con.execute(
                """
                SELECT bank_id, count(*) FILTER (status = 'open'), count(*) FILTER (status = 'info_requested'),
                       count(*) FILTER (status = 'escalated')
                FROM alert_status WHERE status IN (SELECT unnest(?)) GROUP BY 1 ORDER BY 1""",
                [list(WORKED)],
            ).fetchall()
    finally:
        con.close()
    if inbox is not None:
        out["inbox"] = inbox_status(Path(inbox))
    return out


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024


def _when(t) -> str:
    return "-" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def format_status(s: dict) -> str:
    rows = ", ".join(f"{k} {v:,}" for k, v in s["rows"].items()) or "no tables yet"
    lines = [f"store {s['db']}: {_size(s['bytes'])} ({rows})", "", "last runs:"]
    if not s["runs"]:
        lines.append("  none recorded")
    for r in s["runs"]:
        took = "-" if r["seconds"] is None else f"{float(r['seconds']):.1f} s"
        counts = f"rows in {r['rows_in'] or 0:,}, alerts {r['alerts_out'] or 0:,} ({r['alerts_new'] or 0:,} new)"
        if r["rows_quarantined"]:
            counts += f", quarantined {r['rows_quarantined']:,}"
        lines.append(f"  {_when(r['started_at'])}  {r['kind']:<6} {r['outcome'] or '?':<7} {took:>9}  {counts}  [{r['run_id']}]")
        if r["error"]:
            lines.append(f"      error: {' '.join(mask_identifiers(r['error']).split())[:300]}")
    subs = s["submissions"]
    loaded = sum(n for k, n in subs.items() if k and k.startswith("loaded"))
    lines += ["", f"submissions: {loaded} loaded, {subs.get('rejected', 0)} rejected, {subs.get('duplicate', 0)} duplicates"]
    for r in s["recent_submissions"]:
        lines.append(
            f"  {_when(r['loaded_at'])}  {r['bank_id'] or Path(r['path'] or '?').name:<10} {r['outcome']:<22} {mask_identifiers(r['message'] or '')[:160]}"
        )
    lines += ["", "alerts to work per bank (open / info requested / escalated):"]
    lines += [f"  {bank}: {o} / {i} / {e}" for bank, o, i, e in s["alerts_open"]] or ["  none"]
    if "inbox" in s:
        ib = s["inbox"]
        lines.append("")
        if not ib["exists"]:  # the batch refuses an inbox that is not a folder; it creates none
            what = "is a file, not a folder" if Path(ib["path"]).exists() else "does not exist"
            lines.append(f"inbox {ib['path']}: {what} (the batch needs an existing folder)")
        else:
            lines.append(
                f"inbox {ib['path']}: {len(ib['waiting'])} submissions waiting"
                f" ({ib['filed'][PROCESSED]} processed, {ib['filed'][REJECTED]} rejected so far)"
            )
            lines += [f"  {w['name']}: {w['files']} files, {_size(w['bytes'])}, since {_when(w['since'])}" for w in ib["waiting"]]
    return "\n".join(lines)
