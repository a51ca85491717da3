"""The nightly run's kept window: win_tx stays in the store, so the next night only deletes the bookings that left it.

Building the window derives every booking's local time, night flag and category again, each night, although only
one day changed. The store keeps the window's bookings as win_tx holds them (migration 12: `window_cache_tx`, and one
row in `window_cache` saying which window they are); a run whose window only moved forward deletes the bookings
that left it and adds the new ones with their derived columns. The kept window is used under the same conditions
as the kept feature parts (detectors/nightly.py `unusable`: same window length and categories, no booking of the
kept window deleted or replaced since, the new window starts inside the old one; bookings a later submission added
to its days are added like new ones); anything else rebuilds
it from the bookings (rows as detectors/window.py derives them) straight into the kept table, and keeps it. Purge
and rekey empty both tables.

win_tx is then, carried or rebuilt, a temp view of the kept table: the detectors read a stored table as fast as a temp
one (measured at 1 M bookings), and copying it into a temp table would cost most of what the kept window saves. A
rebuild (a first load) writes the window once: building a temp win_tx and copying it into the store cost 1.2 CPU s
more at 2.5 M bookings (writing a stored table, compressed, is the dearer half).

The rules read win_tx fast because it is stored in CLUSTER_BY order (detectors/window.py): each rule's slice lies in
a few row groups. A night appends its bookings in that order among themselves, but one night is about one row group,
so after weeks of nights the order would be gone. When the bookings appended since the window was last stored in
order pass RESORT_SHARE of it, the night stores the whole kept window in order again (a sort of the window, about as
dear as building it: once every few weeks of nights at the default share).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import duckdb

from detectors.nightly import kept_late, unusable
from detectors.window import (
    CLUSTER_BY,
    NIGHT_FROM,
    NIGHT_TO,
    ROW_COLUMNS,
    TIMEZONE,
    Window,
    categorise,
    define_accounts,
    drop_win_tx,
    insert_clustered,
    rows_sql,
)

VERSION = 1  # of the kept window's layout; a change rebuilds every store's kept window once
WINDOW_TABLES = ("window_cache_tx", "window_cache")
STATE = ("window_days", "fingerprint", "window_start", "window_end", "window_rows", "submissions_until", "unsorted_rows")
RESORT_SHARE = 0.25  # of the kept window's bookings appended out of cluster order before it is stored in order again


def fingerprint(window_days: int, categories: dict) -> str:
    """What the kept window depends on besides the bookings: a change makes it unusable."""
    what = {
        "version": VERSION,
        "days": window_days,
        "categories": {k: [list(v[0]), list(v[1])] for k, v in sorted(categories.items())},
        "local": [TIMEZONE, NIGHT_FROM, NIGHT_TO, ROW_COLUMNS],
        "rows_sql": rows_sql("WHERE"),  # how a kept booking's derived columns are made: a change in code rebuilds it
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def state(con: duckdb.DuckDBPyConnection) -> dict | None:
    rows = con.execute(f"SELECT {', '.join(STATE)} FROM window_cache").fetchall()
    return dict(zip(STATE, rows[0])) if len(rows) == 1 else None


def define_kept_window(con: duckdb.DuckDBPyConnection, days: int, categories: dict, run_id: str) -> tuple[Window, dict]:
    """win_tx and win_accounts over the last `days` days of the store, as detectors/window.py define_window makes
    them, from the kept window when it can be carried forward; keeps the new window either way. Returns the window
    and what the kept window did."""
    end = con.execute("SELECT max(booked_at) FROM transactions").fetchall()[0][0]
    if end is None:
        raise ValueError("the store has no transactions to score")
    window = Window(end - timedelta(days=days), end, days)
    fp = fingerprint(days, categories)
    kept = state(con)
    why = unusable(con, kept, fp, window)
    con.execute("BEGIN TRANSACTION")
    try:
        if why is None:
            info = _carry_forward(con, kept, days, end, categories)
        else:
            _rebuild(con, days, end, categories)
            info = {}
        start, rows = con.execute(
            f"SELECT getvariable('window_end') - INTERVAL {int(days)} DAY, (SELECT count(*) FROM window_cache_tx)"
        ).fetchall()[0]
        unsorted = (kept["unsorted_rows"] or 0) + info["bookings_added"] if why is None else 0
        if unsorted > RESORT_SHARE * rows:
            _store_in_order(con)
            info["resorted"], unsorted = True, 0
        until = con.execute("SELECT max(loaded_at) FROM submissions").fetchall()[0][0]
        con.execute("DELETE FROM window_cache")
        con.execute(
            f"INSERT INTO window_cache ({', '.join(STATE)}, run_id, built, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [days, fp, start, end, rows, until, unsorted, run_id, "carried" if why is None else "rebuilt"],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS nightly_late")  # unusable's
    drop_win_tx(con)
    con.execute("CREATE TEMP VIEW win_tx AS SELECT * FROM window_cache_tx")
    define_accounts(con)
    return window, {"used": why is None, **({"why_not": why} if why else {}), **info}


def _rebuild(con, days: int, end, categories: dict) -> None:
    """The kept window from scratch, as define_window builds win_tx, written straight into the kept table (win_tx is
    then a view of it, as on a carried night): a temp win_tx copied into the store cost as much again."""
    con.execute("SET VARIABLE window_end = CAST(? AS TIMESTAMPTZ)", [end.isoformat()])
    where = f"t.booked_at > getvariable('window_end') - INTERVAL {int(days)} DAY AND t.booked_at <= getvariable('window_end')"
    categorise(con, categories, where)
    con.execute("DELETE FROM window_cache_tx")
    insert_clustered(con, "window_cache_tx", where)


def _store_in_order(con) -> None:
    """The kept window's bookings stored again in CLUSTER_BY order (rows and values unchanged), one bank's at a time as
    insert_clustered sorts them."""
    con.execute("CREATE OR REPLACE TEMP TABLE window_resort AS SELECT * FROM window_cache_tx")
    con.execute("DELETE FROM window_cache_tx")
    for (bank,) in con.execute("SELECT DISTINCT bank_id FROM window_resort ORDER BY 1").fetchall():
        con.execute(
            f"INSERT INTO window_cache_tx SELECT * FROM window_resort WHERE bank_id IS NOT DISTINCT FROM ? ORDER BY {CLUSTER_BY}",
            [bank],
        )
    con.execute("DROP TABLE window_resort")


def _carry_forward(con, kept: dict, days: int, end, categories: dict) -> dict:
    """Delete the kept bookings that left the window, add those booked after the kept window's end and those a later
    submission added to the days it holds (a bank's late day)."""
    con.execute("SET VARIABLE window_end = CAST(? AS TIMESTAMPTZ)", [end.isoformat()])
    con.execute("SET VARIABLE kept_end = CAST(? AS TIMESTAMPTZ)", [kept["window_end"]])
    start = f"getvariable('window_end') - INTERVAL {int(days)} DAY"  # as define_window bounds it
    removed = con.execute(f"DELETE FROM window_cache_tx WHERE booked_at <= {start}").fetchall()[0][0]
    new = "t.booked_at > getvariable('kept_end')"
    if kept_late(con):  # a bank's late day
        new = f"({new} OR (t.bank_id, t.txn_id) IN (SELECT bank_id, txn_id FROM nightly_late))"
    where = f"{new} AND t.booked_at > {start} AND t.booked_at <= getvariable('window_end')"
    categorise(con, categories, where)
    added = insert_clustered(con, "window_cache_tx", where)
    return {"bookings_added": added, "bookings_removed": removed}
