"""The nightly run: keep the features' per-account parts of the scored window, so the next day only adds and removes.

A bank submits one day at a time and the store already holds the rest of the window. The feature stage's work is
then mostly the same as the night before: the counts and cent sums per account (detectors/features.py `parts`), the
last time each (account, counterparty/city/device) was seen, and the daily totals pass-through is built from. The
store keeps them (migration 10: `feature_cache*`); a run whose window only moved forward adds the parts of the new
bookings and subtracts those of the bookings that left the window. Parts are integers (bookings, cents) and the
features are made from parts the same way from scratch, so both give the same figures.

The kept parts are used only when they describe exactly the bookings of the last window: same window length and
feature definitions (`fingerprint`), no booking of that window deleted or added since (a late booking or a
correction for a closed day, a replaced booking, a purge) and the new window starts inside the old one. Anything
else rebuilds from scratch and keeps the new parts. Purge and rekey empty the tables (pipelines/purge.py, rekey.py).
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl

from detectors.features import FEATURES, days_sql, distinct_columns, feature_inputs, features_from, parts, parts_sql, values_sql
from detectors.window import NIGHT_FROM, NIGHT_TO, ROW_COLUMNS, TIMEZONE, Window, category_sql

VERSION = 1  # of the kept parts' layout; a change rebuilds every store's parts once
CACHE_TABLES = ("feature_cache_parts", "feature_cache_values", "feature_cache_days", "feature_cache")
CACHE_KEY = "bank_id, account_id"


def fingerprint(window_days: int, categories: dict) -> str:
    """What the kept parts depend on besides the bookings: a change makes them unusable."""
    what = {
        "version": VERSION,
        "days": window_days,
        "features": [(n, repr(f)) for n, _, f in FEATURES],
        "categories": {k: [list(v[0]), list(v[1])] for k, v in sorted(categories.items())},
        "local": [TIMEZONE, NIGHT_FROM, NIGHT_TO, ROW_COLUMNS],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def unusable(con: duckdb.DuckDBPyConnection, state: dict | None, fp: str, window: Window) -> str | None:
    """Why the kept parts cannot be carried to `window` (None: they can)."""
    if state is None:
        return "nothing kept yet"
    if state["fingerprint"] != fp:
        return "window length or feature definitions changed"
    if window.end < state["window_end"]:
        return "the window ends before the kept one"
    if window.start >= state["window_end"]:
        return "the window does not overlap the kept one"
    now = con.execute(
        "SELECT count(*) FROM transactions WHERE booked_at > ? AND booked_at <= ?", [state["window_start"], state["window_end"]]
    ).fetchall()[0][0]
    if now != state["window_rows"]:
        return f"bookings of the kept window were added or deleted since ({state['window_rows']:,} then, {now:,} now)"
    late = con.execute(
        """SELECT count(*) FROM transactions WHERE booked_at <= ? AND submission_id IN
               (SELECT submission_id FROM submissions WHERE loaded_at > ?)""",
        [state["window_end"], state["submissions_until"]],
    ).fetchall()[0][0]
    if late:
        return f"a later submission booked {late:,} rows into days already scored (late bookings or corrections)"
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
            out = features_from(con, window.days, "acct_parts", "feature_cache_values", "feature_cache_days")
        else:
            feature_inputs(con)
            out = features_from(con, window.days)
            info = _keep(con)
        info = {"used": why is None, **({"why_not": why} if why else {}), **info}
        until = con.execute("SELECT max(loaded_at) FROM submissions").fetchall()[0][0]
        con.execute("DELETE FROM feature_cache")
        con.execute(
            "INSERT INTO feature_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
            [window.days, fp, window.start, window.end, rows_in, until, run_id, "carried" if why is None else "rebuilt"],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for t in ("acct_parts", "acct_values", "acct_days", "nightly_new", "nightly_gone"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    info |= {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}
    return out, info


def _wide(n: int) -> str:
    return ", ".join(f"parts[{i + 1}] AS p{i}" for i in range(n))


def _keep(con) -> dict:
    """Replace the kept parts by the temp tables a from-scratch run made."""
    n = len(parts())
    for t in CACHE_TABLES[:3]:
        con.execute(f"DELETE FROM {t}")
    con.execute(f"INSERT INTO feature_cache_parts SELECT {CACHE_KEY}, [{', '.join(f'p{i}' for i in range(n))}] FROM acct_parts")
    con.execute("INSERT INTO feature_cache_values SELECT * FROM acct_values")
    con.execute("INSERT INTO feature_cache_days SELECT * FROM acct_days")
    return {"accounts": con.execute("SELECT count(*) FROM acct_parts").fetchall()[0][0]}


def _carry_forward(con, state: dict, window: Window, categories: dict) -> dict:
    """Add the new bookings' parts, subtract those of the bookings that left the window; leaves acct_parts (wide)."""
    con.execute("SET VARIABLE cache_end = CAST(? AS TIMESTAMPTZ)", [state["window_end"]])
    con.execute("SET VARIABLE cache_start = CAST(? AS TIMESTAMPTZ)", [state["window_start"]])
    con.execute("CREATE OR REPLACE TEMP TABLE nightly_new AS SELECT * FROM win_tx WHERE booked_at > getvariable('cache_end')")
    cat, cat_params = category_sql(categories)
    start = f"getvariable('window_end') - INTERVAL {int(window.days)} DAY"  # as define_window's
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE nightly_gone AS SELECT {ROW_COLUMNS}, {cat} AS category FROM transactions t
            WHERE t.booked_at > getvariable('cache_start') AND t.booked_at <= {start}""",
        cat_params,
    )
    added, removed = (con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("nightly_new", "nightly_gone"))
    n = len(parts())
    p = [f"p{i}" for i in range(n)]
    # parts: kept + new - gone, per account (integers: exact); accounts left with no booking are dropped
    con.execute(f"""CREATE OR REPLACE TEMP TABLE acct_parts AS
        SELECT {CACHE_KEY}, {", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in p)} FROM (
            SELECT {CACHE_KEY}, {_wide(n)} FROM feature_cache_parts
            UNION ALL SELECT * FROM ({parts_sql("nightly_new")})
            UNION ALL SELECT {CACHE_KEY}, {", ".join(f"-{c} AS {c}" for c in p)} FROM ({parts_sql("nightly_gone")}))
        GROUP BY ALL HAVING sum(p0) > 0""")
    con.execute("DELETE FROM feature_cache_parts")
    con.execute(f"INSERT INTO feature_cache_parts SELECT {CACHE_KEY}, [{', '.join(p)}] FROM acct_parts")
    # last seen: the new bookings are later than anything kept, so theirs win where they have one
    new_values = " UNION ALL ".join(values_sql(c, "nightly_new") for c in distinct_columns())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE acct_values AS
        SELECT n.bank_id, n.account_id, n.kind, n.value,
               CASE WHEN o.last_seen IS NULL THEN n.last_seen
                    ELSE list_transform(range(1, len(n.last_seen) + 1), lambda i: coalesce(n.last_seen[i], o.last_seen[i])) END AS last_seen
        FROM ({new_values}) n
        LEFT JOIN feature_cache_values o
          ON o.bank_id = n.bank_id AND o.account_id = n.account_id AND o.kind = n.kind AND o.value = n.value""")
    con.execute("""DELETE FROM feature_cache_values o USING acct_values n
                   WHERE o.bank_id = n.bank_id AND o.account_id = n.account_id AND o.kind = n.kind AND o.value = n.value""")
    con.execute("INSERT INTO feature_cache_values SELECT * FROM acct_values")
    con.execute(f"DELETE FROM feature_cache_values WHERE coalesce(list_max(last_seen) > {start}, false) = false")
    # daily totals: the days touched by new or gone bookings are summed again from kept + new - gone
    con.execute(f"""CREATE OR REPLACE TEMP TABLE acct_days AS
        SELECT bank_id, account_id, day, CAST(sum(din) AS BIGINT) AS din, CAST(sum(dout) AS BIGINT) AS dout FROM (
            SELECT * FROM ({days_sql("nightly_new")})
            UNION ALL SELECT bank_id, account_id, day, -din, -dout FROM ({days_sql("nightly_gone")})
            UNION ALL SELECT o.* FROM feature_cache_days o SEMI JOIN (
                SELECT DISTINCT bank_id, account_id, day FROM nightly_new UNION SELECT DISTINCT bank_id, account_id, day FROM nightly_gone) k
              ON k.bank_id = o.bank_id AND k.account_id = o.account_id AND k.day = o.day)
        GROUP BY ALL""")
    con.execute("""DELETE FROM feature_cache_days o USING acct_days k
                   WHERE k.bank_id = o.bank_id AND k.account_id = o.account_id AND k.day = o.day""")
    con.execute("INSERT INTO feature_cache_days SELECT * FROM acct_days WHERE din <> 0 OR dout <> 0")
    return {
        "bookings_added": added,
        "bookings_removed": removed,
        "accounts": con.execute("SELECT count(*) FROM acct_parts").fetchall()[0][0],
    }


def clear(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Forget every kept part (purge, rekey): the next run rebuilds from the store. Rows deleted per table."""
    return {t: con.execute(f"DELETE FROM {t}").fetchall()[0][0] for t in CACHE_TABLES}
