"""What investigators decide about alerts, and the append-only audit log of every decision.

An alert's current state lives in `alert_status`; every change (and every export) is one row in
`audit_log` with who, when, what and the state before, so the history can be replayed. The review
page, the CLI and the goAML export all go through here.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import duckdb

from casework import audit_chain

# The current row of every alert: `alerts` keeps one row per alert per run.
LATEST_ALERTS = "SELECT * FROM alerts QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY created_at DESC) = 1"
DISMISS_REASONS = {
    "explained": "Explained by the customer or by known circumstances",
    "lawful_business": "Lawful business or employment",
    "data_error": "Data error or mis-categorised transactions",
    "already_known": "Already under investigation or reported elsewhere",
    "insufficient": "Insufficient grounds after review",
    "other": "Other (see note)",
}
# action -> (new status, statuses it may be taken from)
ACTIONS = {
    "escalate": ("escalated", ("open", "info_requested")),
    "dismiss": ("dismissed", ("open", "info_requested")),
    "request_info": ("info_requested", ("open",)),
    "reopen": ("open", ("dismissed", "info_requested")),
}


class DispositionError(ValueError):
    pass


AUDIT_FIELDS = (
    "seq",
    "event_id",
    "logged_at",
    "user_name",
    "action",
    "alert_id",
    "bank_id",
    "account_id",
    "previous_status",
    "new_status",
    "reason",
    "note",
    "details",
)


def audit(
    con: duckdb.DuckDBPyConnection,
    user: str,
    action: str,
    alert_id: str | None = None,
    bank_id: str | None = None,
    account_id: str | None = None,
    previous: str | None = None,
    new: str | None = None,
    reason: str | None = None,
    note: str | None = None,
    details: dict | None = None,
) -> str:
    """Append one event to the audit log, chained to the one before it (casework/audit_chain); returns its id.
    The one writer of the decision log: re-point this (and audit_rows) to move the log to another database."""
    entry = dict(
        event_id=uuid.uuid4().hex,
        logged_at=datetime.now(timezone.utc),
        user_name=user,
        action=action,
        alert_id=alert_id,
        bank_id=bank_id,
        account_id=account_id,
        previous_status=previous,
        new_status=new,
        reason=reason,
        note=note,
        details=json.dumps(details or {}, default=str),
    )
    last = con.execute("SELECT seq, entry_hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchall()
    entry |= audit_chain.link(last[0] if last else None, entry, AUDIT_FIELDS)
    cols = AUDIT_FIELDS + ("prev_hash", "entry_hash")
    con.execute(f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [entry[c] for c in cols])
    return entry["event_id"]


def audit_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], int, dict[int, str]]:
    """The chained audit entries in sequence order, how many entries predate the chain (written before it existed),
    and the anchors purges left (last purged seq -> its hash), for audit_chain.first_broken."""
    cols = AUDIT_FIELDS + ("prev_hash", "entry_hash")
    cur = con.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE seq IS NOT NULL ORDER BY seq")
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    legacy = con.execute("SELECT count(*) FROM audit_log WHERE seq IS NULL").fetchall()[0][0]
    anchors = {}
    for r in rows:
        if r["action"] == "purge_log":
            d = json.loads(r["details"] or "{}")
            anchors[int(d["purged_through"])] = d["anchor_hash"]
    return rows, legacy, anchors


def purge_audit(con: duckdb.DuckDBPyConnection, before, user: str) -> tuple[str, int]:
    """Retention for the audit log: delete the entries logged before `before` (with the unchained ones before it) and
    append a chained 'purge_log' entry naming the last one deleted, so the shortened log still verifies."""
    gone = con.execute(
        "SELECT seq, entry_hash FROM audit_log WHERE logged_at < ? AND seq IS NOT NULL ORDER BY seq", [before]
    ).fetchall()
    n = con.execute("DELETE FROM audit_log WHERE logged_at < ?", [before]).fetchall()[0][0]
    anchor = audit_chain.purge_anchor(gone)
    if anchor:
        details = {"purged_through": anchor[0], "anchor_hash": anchor[1], "deleted": n, "before": before}
        audit(con, user, "purge_log", details=details)
    return "audit_log", n


def alert_state(con: duckdb.DuckDBPyConnection, alert_id: str) -> dict:
    row = con.execute(
        """SELECT s.alert_id, s.bank_id, s.account_id, s.status, s.last_score, a.rules
                         FROM alert_status s LEFT JOIN (SELECT alert_id, arg_max(rules, created_at) AS rules FROM alerts GROUP BY 1) a
                         USING (alert_id) WHERE s.alert_id = ?""",
        [alert_id],
    ).fetchall()
    if not row:
        raise DispositionError(f"no alert {alert_id}")
    return dict(zip(("alert_id", "bank_id", "account_id", "status", "score", "rules"), row[0]))


def record_disposition(
    con: duckdb.DuckDBPyConnection, alert_id: str, action: str, user: str, reason: str | None = None, note: str | None = None
) -> dict:
    """Apply an investigator's decision to one alert, with its audit entry, in one transaction."""
    if action not in ACTIONS:
        raise DispositionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    new, allowed_from = ACTIONS[action]
    if action == "dismiss" and reason not in DISMISS_REASONS:
        raise DispositionError(f"dismissing needs a reason: one of {', '.join(DISMISS_REASONS)}")
    if action == "dismiss" and reason == "other" and not (note or "").strip():
        raise DispositionError("dismissing for 'other' needs a note")
    con.execute("BEGIN TRANSACTION")
    try:
        state = alert_state(con, alert_id)
        if state["status"] not in allowed_from:
            raise DispositionError(
                f"alert {alert_id} is {state['status']}; '{action}' applies to {' or '.join(allowed_from)} alerts"
            )
        con.execute(
            """UPDATE alert_status SET status = ?, updated_at = now(),
                         dismiss_reason = CASE WHEN ? = 'dismissed' THEN ? END,
                         dismissed_score = CASE WHEN ? = 'dismissed' THEN last_score END,
                         dismissed_rules = CASE WHEN ? = 'dismissed' THEN ? END
                       WHERE alert_id = ?""",
            [new, new, reason, new, new, state["rules"], alert_id],
        )
        audit(con, user, action, alert_id, state["bank_id"], state["account_id"], state["status"], new, reason, note)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {**state, "previous_status": state["status"], "status": new}


def mark_reported(
    con: duckdb.DuckDBPyConnection, alert_id: str, user: str, report_file: str, details: dict | None = None
) -> None:
    """An escalated alert's FIU report was written: record it on the alert and in the audit log."""
    state = alert_state(con, alert_id)
    con.execute(
        "UPDATE alert_status SET status = 'reported', reported_at = now(), report_file = ?, updated_at = now() WHERE alert_id = ?",
        [report_file, alert_id],
    )
    audit(
        con,
        user,
        "report_goaml",
        alert_id,
        state["bank_id"],
        state["account_id"],
        state["status"],
        "reported",
        note=report_file,
        details=details,
    )


# FIU analysts decide on unusual-transaction reports (not on bank alerts): declared suspicious, a report can be
# disseminated to the investigative services; the decision is kept per report and, like every decision, audited.
FIU_DECISIONS = ("suspicious", "not_suspicious")


def record_fiu_decision(
    con: duckdb.DuckDBPyConnection, report_id: str, decision: str, user: str, typology: str | None = None, note: str | None = None
) -> dict:
    """Declare one FIU report suspicious or not, with its audit entry, in one transaction. A later decision supersedes."""
    if decision not in FIU_DECISIONS:
        raise DispositionError(f"unknown decision {decision!r}; one of {', '.join(FIU_DECISIONS)}")
    if decision == "suspicious" and not (typology or "").strip():
        raise DispositionError("declaring a report suspicious needs a typology")
    if not (user or "").strip():
        raise DispositionError("a decision needs a user")
    rows = con.execute("SELECT bank_id, account_id FROM fiu_reports WHERE report_id = ? LIMIT 1", [report_id]).fetchall()
    if not rows:
        raise DispositionError(f"no FIU report {report_id}")
    prev = con.execute(
        "SELECT decision FROM fiu_decisions WHERE report_id = ? ORDER BY decided_at DESC LIMIT 1", [report_id]
    ).fetchall()
    previous = prev[0][0] if prev else "undecided"
    con.execute("BEGIN TRANSACTION")
    try:
        event_id = audit(
            con,
            user,
            f"fiu_{decision}",
            None,
            rows[0][0],
            rows[0][1],
            previous,
            decision,
            typology,
            note,
            {"report_id": report_id},
        )
        con.execute(
            "INSERT INTO fiu_decisions VALUES (?, ?, ?, ?, ?, ?, now())", [event_id, report_id, decision, typology, note, user]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {"report_id": report_id, "previous": previous, "decision": decision, "typology": typology, "event_id": event_id}


# ---- decisions as data (tuning: backtest, rule effectiveness, labels, re-ranker) -------------------------------------
# The ONE place that reads decisions for analysis: when decisions move to another database, only this changes.
POSITIVE_STATUSES = ("escalated", "reported")  # an investigator found grounds: a positive label
NEGATIVE_REASONS = ("explained", "lawful_business")  # dismissed on the merits: a negative label (data_error etc. are not)


def decisions_frame(con: duckdb.DuckDBPyConnection, banks: list[str] | None = None):
    """Every alert's current decision as a polars frame: alert_id, bank_id, account_id, status, dismiss_reason,
    decided_at (the last decision in the audit log; NULL while nothing was decided) and label (1 positive,
    0 negative, NULL: open, or dismissed for a reason that says nothing about the account). `banks`: only these."""
    import polars as pl

    rows = con.execute(
        """SELECT s.alert_id, s.bank_id, s.account_id, s.status, s.dismiss_reason, d.decided_at,
                  CASE WHEN s.status IN (SELECT unnest(CAST(? AS VARCHAR[]))) THEN 1
                       WHEN s.status = 'dismissed' AND s.dismiss_reason IN (SELECT unnest(CAST(? AS VARCHAR[]))) THEN 0 END
                  AS label
           FROM alert_status s
           LEFT JOIN (SELECT alert_id, max(logged_at) AS decided_at FROM audit_log
                      WHERE action IN ('escalate', 'dismiss', 'report_goaml') GROUP BY 1) d USING (alert_id)
           WHERE ? IS NULL OR list_contains(CAST(? AS VARCHAR[]), s.bank_id)
           ORDER BY s.bank_id, s.account_id, s.alert_id""",
        [list(POSITIVE_STATUSES), list(NEGATIVE_REASONS), banks, banks],
    ).fetchall()
    schema = {
        "alert_id": pl.Utf8,
        "bank_id": pl.Utf8,
        "account_id": pl.Utf8,
        "status": pl.Utf8,
        "dismiss_reason": pl.Utf8,
        "decided_at": pl.Datetime("us", "UTC"),
        "label": pl.Int8,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
