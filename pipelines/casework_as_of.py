"""The casework as it stood at the end of a past day, for a replay (`--as-of DAY`).

A replay of a past month must not hold back an account dismissed only later, nor seed the network rules with an
escalation made later: per alert, the last decision in the audit log recorded by the end of that day (UTC) is its
state; an alert decided only later was open. `recorded_after` is the one test of "recorded after the as-of day" that
the re-ranker's fit and the backtest share (casework/dispositions.py names it too).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from pipelines.casework_db import Casework

# the audit actions that set an alert's status (casework/dispositions.py ACTIONS and mark_reported)
STATE_ACTIONS = ("escalate", "dismiss", "request_info", "reopen", "report_goaml")


def recorded_after(as_of) -> pl.Expr:
    """Decisions recorded after the end of `as_of` (UTC): not made yet when a past day is replayed."""
    return pl.col("decided_at") >= datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=timezone.utc)


def statuses_as_of(cw: Casework, as_of: date) -> pl.DataFrame:
    """Casework.statuses as they stood at the end of `as_of`, with `decided_at` (when that state was recorded).
    An alert whose status never changed in the audit log (moved in from an older store) keeps it: when is unknown.
    The dismissal's score and rules are today's when that dismissal is still the alert's latest state change, else
    NULL (the scorer reads them from the alert as its run raised it before `decided_at`)."""
    log = cw.audit_rows().with_row_index("order").filter(pl.col("action").is_in(STATE_ACTIONS) & pl.col("alert_id").is_not_null())
    log = log.select("order", "alert_id", pl.col("logged_at").alias("decided_at"), "new_status", "reason")
    last = log.group_by("alert_id").agg(pl.col("order").max().alias("last_order"))
    then = log.filter(~recorded_after(as_of)).sort("order").group_by("alert_id").last()
    s = cw.statuses().join(last, on="alert_id", how="left").join(then, on="alert_id", how="left")
    unknown = pl.col("last_order").is_null()
    status = pl.when(unknown).then(pl.col("status")).otherwise(pl.col("new_status").fill_null("open"))
    current = unknown | (pl.col("order") == pl.col("last_order"))  # that state is still today's
    dismissed, reported = status == "dismissed", status == "reported"
    return s.select(
        "alert_id",
        "bank_id",
        "account_id",
        status.alias("status"),
        "last_score",
        pl.when(dismissed).then(pl.when(unknown).then("dismiss_reason").otherwise("reason")).alias("dismiss_reason"),
        pl.when(dismissed & current).then("dismissed_score").alias("dismissed_score"),
        pl.when(dismissed & current).then("dismissed_rules").alias("dismissed_rules"),
        pl.when(reported).then("reported_at").alias("reported_at"),
        pl.when(reported).then("report_file").alias("report_file"),
        "decided_at",
    )
