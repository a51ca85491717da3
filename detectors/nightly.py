"""The nightly run: keep the features' per-account parts of the scored window, so the next day only adds and removes.

A bank submits one day at a time and the store already holds the rest of the window. The feature stage's work is
then mostly the same as the night before: the counts and cent sums per account (detectors/features.py `parts`), the
last time each (account, counterparty/city/device) was seen, and the daily totals pass-through is built from. The
store keeps them (migration 10: `feature_cache*`); a run whose window only moved forward adds the parts of the new
bookings and subtracts those of the bookings that left the window. Parts are integers (bookings, cents) and the
features are made from parts the same way from scratch, so both give the same figures.

The kept parts are used only when they describe the bookings of the last window: same window length and feature
definitions (`fingerprint`), no booking of that window deleted or replaced since (a correction for a closed day, a
purge) and the new window starts inside the old one. Bookings a later submission added to days already kept (a bank
whose day came in after the others' day was scored) are added like a new day's (`late_bookings`). Anything else
rebuilds from scratch and keeps the new parts. Purge and rekey empty the tables (pipelines/purge.py, rekey.py).
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl

from detectors.features import (
    CENTS,
    DAILY_SQL,
    FEATURES,
    INPUTS,
    PASS_THROUGH_SQL,
    days_sql,
    distinct_columns,
    distinct_features,
    feature_inputs,
    features_from,
    parts,
    parts_sql,
    pass_through_sql,
    values_sql,
    window_start,
)
from detectors.window import NIGHT_FROM, NIGHT_TO, ROW_COLUMNS, TIMEZONE, Window, category_sql

VERSION = 2  # of the kept parts' layout; a change rebuilds every store's parts once
# with the kept window (detectors/nightly_window.py): purge and rekey empty them all
CACHE_TABLES = (
    "feature_cache_parts",
    "feature_cache_values",
    "feature_cache_days",
    "feature_cache",
    "window_cache_tx",
    "window_cache",
)
CACHE_KEY = "bank_id, account_id"


def fingerprint(window_days: int, categories: dict) -> str:
    """What the kept parts depend on besides the bookings: a change makes them unusable."""
    what = {
        "version": VERSION,
        "days": window_days,
        "features": [(n, repr(f)) for n, _, f in FEATURES],
        "categories": {k: [list(v[0]), list(v[1])] for k, v in sorted(categories.items())},
        "local": [TIMEZONE, NIGHT_FROM, NIGHT_TO, ROW_COLUMNS],
        "parts_sql": [CENTS, DAILY_SQL, PASS_THROUGH_SQL],  # how the kept parts are made: a change in code rebuilds them
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


LATE = """SELECT bank_id, txn_id FROM transactions WHERE booked_at > ? AND booked_at <= ?
              AND submission_id IN (SELECT submission_id FROM submissions WHERE loaded_at > ?)"""


def late_bookings(con: duckdb.DuckDBPyConnection, state: dict) -> int:
    """nightly_late: (bank_id, txn_id) of the bookings that submissions loaded after `state` was kept added to the days
    it holds; returns how many. `unusable` makes it and lets them through only when those submissions replaced nothing:
    pure additions."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE nightly_late AS {LATE}",
        [state["window_start"], state["window_end"], state["submissions_until"]],
    )
    return kept_late(con)


def kept_late(con: duckdb.DuckDBPyConnection) -> int:
    """How many late bookings `unusable` let through (nightly_late). Most nights have none, and the carry-forwards then
    leave them out of their queries (an OR with a lookup would keep DuckDB from skipping old days by booking time)."""
    return con.execute("SELECT count(*) FROM nightly_late").fetchall()[0][0]


def unusable(con: duckdb.DuckDBPyConnection, state: dict | None, fp: str, window: Window) -> str | None:
    """Why the kept parts cannot be carried to `window` (None: they can). When they can, nightly_late holds the late
    bookings to add (`late_bookings`)."""
    if state is None:
        return "nothing kept yet"
    if state["fingerprint"] != fp:
        return "window length, categories or feature definitions changed"
    if window.end < state["window_end"]:
        return "the window ends before the kept one"
    if window.start >= state["window_end"]:
        return "the window does not overlap the kept one"
    replaced = con.execute(
        "SELECT coalesce(sum(rows_replaced), 0) FROM submissions WHERE loaded_at > ?", [state["submissions_until"]]
    ).fetchall()[0][0]
    if replaced:
        return f"a later submission replaced {replaced:,} bookings (late bookings or corrections)"
    bounds = [state["window_start"], state["window_end"]]
    now = con.execute("SELECT count(*) FROM transactions WHERE booked_at > ? AND booked_at <= ?", bounds).fetchall()[0][0]
    late = late_bookings(con, state)
    if now != state["window_rows"] + late:
        return (
            f"bookings of the kept window were added or deleted since ({state['window_rows']:,} then, {now:,} now, "
            f"{late:,} of them from later submissions)"
        )
    return None


def _state(con) -> dict | None:
    rows = con.execute(
        "SELECT window_days, fingerprint, window_start, window_end, window_rows, submissions_until FROM feature_cache"
    ).fetchall()
    if len(rows) != 1:
        return None
    keys = ("window_days", "fingerprint", "window_start", "window_end", "window_rows", "submissions_until")
    return dict(zip(keys, rows[0]))


def features(
    con: duckdb.DuckDBPyConnection, window: Window, categories: dict, rows_in: int, run_id: str
) -> tuple[pl.DataFrame, dict]:
    """The features of the window (win_tx, win_accounts), from the kept parts when they can be carried forward, else
    from scratch; keeps the new parts either way. Returns the features and what the cache did (for `runs`)."""
    fp = fingerprint(window.days, categories)
    state = _state(con)
    why = unusable(con, state, fp, window)
    con.execute("BEGIN TRANSACTION")
    try:
        if why is None:
            info = _carry_forward(con, state, window, categories)
        else:
            # the kept last-seen values and daily totals written once, straight from win_tx (no temp copies)
            feature_inputs(con, window.days, values="feature_cache_values", days="feature_cache_days")
            info = {"accounts": con.execute("SELECT count(*) FROM acct_parts").fetchall()[0][0]}
        _keep_parts(con)
        out = features_from(con, window.days)
        info = {"used": why is None, **({"why_not": why} if why else {}), **info}
        until = con.execute("SELECT max(loaded_at) FROM submissions").fetchall()[0][0]
        # the start as the features' SQL makes it (window_end - n days in the session's time zone), so the kept bounds
        # and the carried parts cannot disagree by a DST hour
        start = window_start(window.days)
        start_at = con.execute(f"SELECT {start}").fetchall()[0][0]
        con.execute("DELETE FROM feature_cache")
        con.execute(
            "INSERT INTO feature_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
            [window.days, fp, start_at, window.end, rows_in, until, run_id, "carried" if why is None else "rebuilt"],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for t in (*INPUTS, "kept", "values_delta", "near", "pt_before", "nightly_new", "nightly_gone", "nightly_late"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    info |= {"window_start": start_at.isoformat(), "window_end": window.end.isoformat()}
    return out, info


def _list(prefix: str, n: int) -> str:
    return "[" + ", ".join(f"{prefix}{i}" for i in range(n)) + "]"


def _keep_parts(con) -> None:
    """feature_cache_parts from acct_parts, acct_counts and acct_pt (every account with a booking in the window)."""
    con.execute("DELETE FROM feature_cache_parts")
    zeros = ", ".join(f"coalesce(c.d{i}, 0) AS d{i}" for i in range(len(distinct_features())))
    con.execute(f"""INSERT INTO feature_cache_parts
        SELECT p.bank_id, p.account_id, {_list("p.p", len(parts()))}, {_list("c.d", len(distinct_features()))},
               coalesce(t.pt_num, 0), coalesce(t.pt_den, 0)
        FROM acct_parts p
        LEFT JOIN (SELECT bank_id, account_id, {zeros} FROM acct_counts c) c USING (bank_id, account_id)
        LEFT JOIN acct_pt t USING (bank_id, account_id)""")


def _sum_by_account(columns: list[str], *sources: str, having: str = "") -> str:
    """One row per account summing `columns` over the union of `sources` (integers: exact)."""
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in columns)
    union = " UNION ALL ".join(f"SELECT {CACHE_KEY}, {', '.join(columns)} FROM ({q})" for q in sources)
    return f"SELECT {CACHE_KEY}, {sums} FROM ({union}) GROUP BY ALL {having}"


def _negated(columns: list[str], query: str) -> str:
    return f"SELECT {CACHE_KEY}, {', '.join(f'-{c} AS {c}' for c in columns)} FROM ({query})"


SAME_VALUE = "v.bank_id = o.bank_id AND v.account_id = o.account_id AND v.kind = o.kind AND v.value = o.value"
SAME_DAY = "k.bank_id = d.bank_id AND k.account_id = d.account_id AND k.day = d.day"


def _carry_forward(con, state: dict, window: Window, categories: dict) -> dict:
    """Add the new bookings' parts and subtract those of the bookings that left the window, update the last-seen
    values and the daily totals near the changed days; leaves acct_parts, acct_counts and acct_pt."""
    con.execute("SET VARIABLE cache_end = CAST(? AS TIMESTAMPTZ)", [state["window_end"]])
    con.execute("SET VARIABLE cache_start = CAST(? AS TIMESTAMPTZ)", [state["window_start"]])
    old_start, start = "getvariable('cache_start')", window_start(window.days)
    # a bank's day that came in late: added like the new day's, never counted as gone
    late = kept_late(con) > 0
    also_late = " OR (bank_id, txn_id) IN (SELECT bank_id, txn_id FROM nightly_late)" if late else ""
    not_late = " AND (t.bank_id, t.txn_id) NOT IN (SELECT bank_id, txn_id FROM nightly_late)" if late else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE nightly_new AS SELECT * FROM win_tx WHERE booked_at > getvariable('cache_end'){also_late}"
    )
    cat, cat_params = category_sql(categories)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE nightly_gone AS SELECT {ROW_COLUMNS}, {cat} AS category FROM transactions t
            WHERE t.booked_at > {old_start} AND t.booked_at <= {start}{not_late}""",
        cat_params,
    )
    added, removed = (con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("nightly_new", "nightly_gone"))
    n_parts, n_counts = len(parts()), len(distinct_features())
    p, d, pt = [f"p{i}" for i in range(n_parts)], [f"d{i}" for i in range(n_counts)], ["pt_num", "pt_den"]
    wide = [f"parts[{i + 1}] AS p{i}" for i in range(n_parts)] + [f"counts[{i + 1}] AS d{i}" for i in range(n_counts)]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE kept AS SELECT {CACHE_KEY}, {', '.join(wide)}, pt_num, pt_den FROM feature_cache_parts"
    )

    # parts: kept + new - gone; an account left without bookings is dropped
    merged = _sum_by_account(
        p, "SELECT * FROM kept", parts_sql("nightly_new"), _negated(p, parts_sql("nightly_gone")), having="HAVING sum(p0) > 0"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE acct_parts AS {merged}")

    # last seen: the later of the kept and the new (a late day's bookings may be earlier than what is kept). A distinct
    # count gains the values seen again that it did not count, and loses those last seen between the old and the new
    # start and not seen again.
    new_values = " UNION ALL ".join(values_sql(c, "nightly_new") for c in distinct_columns())
    # kept_row: the kept row of the same value, found once here; the counts and the update below join on it (one integer)
    # instead of joining the kept values by their four key columns again (they are unique by them)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE values_delta AS
        SELECT v.bank_id, v.account_id, v.kind, v.value, v.last_seen AS new_last, o.last_seen AS old_last, o.rowid AS kept_row,
               CASE WHEN o.last_seen IS NULL THEN v.last_seen
                    ELSE list_transform(range(1, len(v.last_seen) + 1), lambda i: greatest(v.last_seen[i], o.last_seen[i])) END AS last_seen
        FROM ({new_values}) v LEFT JOIN feature_cache_values o ON {SAME_VALUE}""")
    gained = ", ".join(
        f"count(*) FILTER (kind = '{c}' AND new_last[{k + 1}] IS NOT NULL AND NOT coalesce(old_last[{k + 1}] > {old_start}, false)) AS d{i}"
        for i, (_, c, k) in enumerate(distinct_features())
    )
    lost = ", ".join(
        f"-count(*) FILTER (o.kind = '{c}' AND o.last_seen[{k + 1}] > {old_start} AND o.last_seen[{k + 1}] <= {start}"
        f" AND v.new_last[{k + 1}] IS NULL) AS d{i}"
        for i, (_, c, k) in enumerate(distinct_features())
    )
    expiring = f"SELECT *, rowid AS kept_row FROM feature_cache_values WHERE list_max(last_seen) > {old_start} AND list_min(last_seen) <= {start}"
    counts = _sum_by_account(
        d,
        "SELECT * FROM kept",
        f"SELECT {CACHE_KEY}, {gained} FROM values_delta GROUP BY ALL",
        f"SELECT o.bank_id, o.account_id, {lost} FROM ({expiring}) o LEFT JOIN values_delta v ON v.kept_row = o.kept_row GROUP BY ALL",
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE acct_counts AS {counts}")
    con.execute("DELETE FROM feature_cache_values WHERE rowid IN (SELECT kept_row FROM values_delta WHERE kept_row IS NOT NULL)")
    con.execute("INSERT INTO feature_cache_values SELECT bank_id, account_id, kind, value, last_seen FROM values_delta")
    con.execute(f"DELETE FROM feature_cache_values WHERE coalesce(list_max(last_seen) > {start}, false) = false")

    # daily totals: the days touched are summed again from kept + new - gone. Pass-through changes only on those days
    # and the days before them: their terms are taken out before the update and put back after it.
    con.execute("""CREATE OR REPLACE TEMP TABLE near AS SELECT DISTINCT bank_id, account_id, day FROM (
        SELECT bank_id, account_id, day FROM nightly_new UNION ALL SELECT bank_id, account_id, day FROM nightly_gone
        UNION ALL SELECT bank_id, account_id, day - 1 FROM nightly_new UNION ALL SELECT bank_id, account_id, day - 1 FROM nightly_gone)""")
    near_days = f"(SELECT d.* FROM feature_cache_days d SEMI JOIN near k ON {SAME_DAY})"
    con.execute(f"CREATE OR REPLACE TEMP TABLE pt_before AS {pass_through_sql('feature_cache_days', near_days)}")
    touched = "(SELECT DISTINCT bank_id, account_id, day FROM nightly_new UNION SELECT DISTINCT bank_id, account_id, day FROM nightly_gone)"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE acct_days AS
        SELECT bank_id, account_id, day, CAST(sum(din) AS BIGINT) AS din, CAST(sum(dout) AS BIGINT) AS dout FROM (
            SELECT * FROM ({days_sql("nightly_new")})
            UNION ALL SELECT bank_id, account_id, day, -din, -dout FROM ({days_sql("nightly_gone")})
            UNION ALL SELECT d.* FROM feature_cache_days d SEMI JOIN {touched} k ON {SAME_DAY})
        GROUP BY ALL""")
    con.execute(f"DELETE FROM feature_cache_days d USING acct_days k WHERE {SAME_DAY}")
    con.execute("INSERT INTO feature_cache_days SELECT * FROM acct_days WHERE din <> 0 OR dout <> 0")
    after = pass_through_sql("feature_cache_days", near_days)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE acct_pt AS {
            _sum_by_account(pt, "SELECT * FROM kept", after, _negated(pt, "SELECT * FROM pt_before"))
        }"""
    )
    accounts = con.execute("SELECT count(*) FROM acct_parts").fetchall()[0][0]
    return {"bookings_added": added, "bookings_removed": removed, "accounts": accounts}


def clear(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Forget every kept part (purge, rekey): the next run rebuilds from the store. Rows deleted per table."""
    return {t: con.execute(f"DELETE FROM {t}").fetchall()[0][0] for t in CACHE_TABLES}
