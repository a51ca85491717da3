"""What the review page and the goAML export read: the current snapshot, with the live decisions laid over it.

The snapshot (pipelines/snapshot.py) is a read-only DuckDB file the last scoring run published; decisions change
between runs, so they come from the casework database at each read and are registered on the connection under
the names the queries use: `alert_status` (the scorer's columns from the snapshot, the decision columns from the
casework database) and `fiu_decisions`. The store itself is never opened here.
"""

from __future__ import annotations

import atexit
import threading
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.casework_db import Casework
from pipelines.snapshot import current, open_current_with_path

_OPEN: dict[str, tuple[Path, duckdb.DuckDBPyConnection]] = {}  # store -> (snapshot file, its read-only database)
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Close the kept snapshots before the interpreter tears DuckDB's bindings down."""
    with _OPEN_LOCK:
        for _, con in _OPEN.values():
            con.close()
        _OPEN.clear()


def _snapshot_cursor(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """A fresh connection (cursor) to the current snapshot. Opening a DuckDB file costs tens of milliseconds, so each
    process keeps the current one open and hands out cursors (cheap, one per request, safe across threads); when the
    pointer names a new snapshot the next request opens that one. A replaced snapshot's file may be removed while
    requests still read it: they keep their open file to the end."""
    key = str(db_path)
    now = current(db_path)
    with _OPEN_LOCK:
        hit = _OPEN.get(key)
        if hit is None or hit[0] != now:
            hit = _OPEN[key] = open_current_with_path(db_path)
        return hit[1].cursor()


@contextmanager
def reading(db_path: str | Path, cw: Casework):
    """A read-only connection to the current snapshot with `alert_status` and `fiu_decisions` as of now."""
    con = _snapshot_cursor(db_path)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("cw_status", cw.statuses().to_arrow())
        con.execute("""CREATE TEMP VIEW alert_status AS
            SELECT s.alert_id, s.bank_id, s.account_id, coalesce(d.status, 'open') AS status, s.opened_run, s.last_run,
                   s.last_score, d.dismiss_reason, d.dismissed_score, d.dismissed_rules, d.reported_at, d.report_file, s.updated_at
            FROM alert_scores s LEFT JOIN cw_status d USING (alert_id)""")
        con.register("fiu_decisions", cw.fiu_decisions().to_arrow())
        yield con
    finally:
        con.close()
