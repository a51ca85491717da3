"""What investigators decide about alerts, and the append-only audit log of every decision.

An alert's current state lives in the casework database's `alert_status` (pipelines/casework_db.py, apart from
the DuckDB store so the page can decide while a batch holds the store); every change (and every export) is one
row in `audit_log` with who, when, what and the state before, so the history can be replayed. The review page,
the CLI and the goAML export all go through here; the first argument is the casework database (`open_casework`).
The log is hash-chained (casework/audit_chain): `audit` is its one writer, `audit_rows` what verify-audit reads.
"""

from __future__ import annotations

import json
import re
import unicodedata

import duckdb
import polars as pl
from sqlalchemy.engine import Connection

from casework import audit_chain
from pipelines.casework_as_of import recorded_after  # noqa: F401  (learning and backtest read it from here)
from pipelines.casework_db import AUDIT_FIELDS, Casework, now

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


def _link(last: tuple[int, str] | None, row: dict) -> dict:
    return audit_chain.link(last, row, AUDIT_FIELDS)


def audit(
    cw: Casework,
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
    c: Connection | None = None,
) -> str:
    """Append one event to the audit log, chained to the one before it (inside the transaction `c` when given);
    returns its id."""
    fields = dict(
        alert_id=alert_id,
        bank_id=bank_id,
        account_id=account_id,
        previous_status=previous,
        new_status=new,
        reason=reason,
        note=note,
        details=details,
    )
    if c is not None:
        return cw.add_audit(c, user, action, link=_link, **fields)
    with cw.tx() as c:
        return cw.add_audit(c, user, action, link=_link, **fields)


def audit_rows(cw: Casework) -> tuple[list[dict], int, dict[int, str]]:
    """The chained audit entries in sequence order, how many entries predate the chain (written before it existed),
    and the anchors purges left (last purged seq -> its hash), for audit_chain.first_broken."""
    rows, legacy = cw.chain("audit_log")
    anchors = {}
    for r in rows:
        if r["action"] == "purge_log":
            d = json.loads(r["details"] or "{}")
            if "purged_through" in d:  # not one that removed only entries from before the chain
                anchors[int(d["purged_through"])] = d["anchor_hash"]
    return rows, legacy, anchors


def purge_audit(cw: Casework, before, user: str, c: Connection | None = None) -> tuple[str, int]:
    """Retention for the audit log: delete the entries logged before `before` (with the unchained ones before it) and
    append a chained 'purge_log' entry naming the last one deleted, so the shortened log still verifies."""
    if c is None:
        with cw.tx() as c:
            return purge_audit(cw, before, user, c)
    gone, n = cw.delete_before(c, "audit_log", before)
    anchor = audit_chain.purge_anchor(gone)
    if anchor:
        details = {"purged_through": anchor[0], "anchor_hash": anchor[1], "deleted": n, "before": before}
        audit(cw, user, "purge_log", details=details, c=c)
    elif n:  # only entries from before the chain went: the log keeps a record of it, so it is not left empty
        audit(cw, user, "purge_log", details={"deleted": n, "before": before, "unchained": True}, c=c)
    return "audit_log", n


def _state(cw: Casework, c: Connection, alert_id: str, for_update: bool = False) -> dict:
    row = cw.state(c, alert_id, for_update)
    if row is None:
        raise DispositionError(f"no alert {alert_id}")
    return {
        "alert_id": alert_id,
        "bank_id": row["bank_id"],
        "account_id": row["account_id"],
        "status": row["status"],
        "score": row["last_score"],
        "rules": row["rules"],
    }


def alert_state(cw: Casework, alert_id: str) -> dict:
    """An alert's current decision state: alert_id, bank_id, account_id, status, score, rules."""
    with cw.engine.connect() as c:
        return _state(cw, c, alert_id)


MAX_NOTE = 4000  # characters: a note says why, the evidence stays in the store


def _control(ch: str) -> bool:
    """A control character or a line/paragraph separator (C0, DEL, C1 such as NEL, U+2028/9)."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def clean_note(note: str | None, what: str = "a note") -> str | None:
    """A decision's note as the log keeps it: control characters (NUL and the like) and invisible format characters
    (zero-width spaces, direction overrides that make text read otherwise) dropped, tabs and line breaks kept, an IBAN,
    e-mail address or phone number typed into it masked (the log, exports and FIU packages keep no raw identifier; the
    page masked them only when showing them); longer than MAX_NOTE is refused with one line."""
    from detectors.scoring import mask_identifiers

    if note is None:
        return None
    note = "".join(ch for ch in note if ch in "\t\n" or not (_control(ch) or unicodedata.category(ch) == "Cf"))
    if len(note) > MAX_NOTE:
        raise DispositionError(f"{what} is at most {MAX_NOTE:,} characters (this one is {len(note):,})")
    return mask_identifiers(note)


def check_user(user: str | None) -> None:
    """The audit log's "who": never blank, never two lines."""
    if not (user or "").strip() or any(_control(ch) for ch in user):
        raise DispositionError("a decision needs a user: a name without control characters")


def record_disposition(
    cw: Casework, alert_id: str, action: str, user: str, reason: str | None = None, note: str | None = None
) -> dict:
    """Apply an investigator's decision to one alert, with its audit entry, in one transaction."""
    if action not in ACTIONS:
        raise DispositionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    new, allowed_from = ACTIONS[action]
    note = clean_note(note)  # first: a note of control characters only is no note
    if action == "dismiss" and reason not in DISMISS_REASONS:
        raise DispositionError(f"dismissing needs a reason: one of {', '.join(DISMISS_REASONS)}")
    if action == "dismiss" and reason == "other" and not (note or "").strip():
        raise DispositionError("dismissing for 'other' needs a note")
    check_user(user)
    if action != "dismiss":
        reason = None  # a dismissal reason on another action would sit in the log as if it were one
    with cw.tx() as c:
        state = _state(cw, c, alert_id, for_update=True)
        if state["status"] not in allowed_from:
            raise DispositionError(
                f"alert {alert_id} is {state['status']}; '{action}' applies to {' or '.join(allowed_from)} alerts"
            )
        dismissed = new == "dismissed"
        cw.set_status(
            c,
            alert_id,
            status=new,
            dismiss_reason=reason if dismissed else None,
            dismissed_score=state["score"] if dismissed else None,
            dismissed_rules=state["rules"] if dismissed else None,
        )
        audit(cw, user, action, alert_id, state["bank_id"], state["account_id"], state["status"], new, reason, note, c=c)
    return {**state, "previous_status": state["status"], "status": new}


def mark_reported(cw: Casework, alert_id: str, user: str, report_file: str, details: dict | None = None) -> None:
    """An escalated alert's FIU report was written: record it on the alert and in the audit log."""
    with cw.tx() as c:
        state = _state(cw, c, alert_id, for_update=True)
        cw.set_status(c, alert_id, status="reported", reported_at=now(), report_file=report_file)
        audit(
            cw,
            user,
            "report_goaml",
            alert_id,
            state["bank_id"],
            state["account_id"],
            state["status"],
            "reported",
            note=report_file,
            details=details,
            c=c,
        )


# FIU analysts decide on unusual-transaction reports (not on bank alerts): declared suspicious, a report can be
# disseminated to the investigative services; the decision is kept per report and, like every decision, audited.
FIU_DECISIONS = ("suspicious", "not_suspicious")


RE_TYPOLOGY = re.compile(r"[a-z][a-z0-9_]{1,60}")  # one word, as themes name theirs (cross_border); used with fullmatch


def record_fiu_decision(
    cw: Casework,
    report_id: str,
    decision: str,
    user: str,
    typology: str | None = None,
    note: str | None = None,
    reports: duckdb.DuckDBPyConnection | None = None,
) -> dict:
    """Declare one FIU report suspicious or not, with its audit entry, in one transaction. A later decision supersedes.
    `reports`: a connection holding `fiu_reports` (the page's snapshot, or the store) to check the report exists."""
    if decision not in FIU_DECISIONS:
        raise DispositionError(f"unknown decision {decision!r}; one of {', '.join(FIU_DECISIONS)}")
    note, typology = clean_note(note), clean_note(typology, "a typology")  # first: control characters are nothing
    if decision == "suspicious" and not (typology or "").strip():
        raise DispositionError("declaring a report suspicious needs a typology")
    if (typology or "").strip() and not RE_TYPOLOGY.fullmatch(typology):  # the packages group reports by it
        raise DispositionError(f"a typology is one lower-case word such as sexual_exploitation or cross_border, not {typology!r}")
    check_user(user)
    rows = (
        reports.execute("SELECT bank_id, account_id FROM fiu_reports WHERE report_id = ? LIMIT 1", [report_id]).fetchall()
        if reports is not None
        else []
    )
    if not rows:
        raise DispositionError(f"no FIU report {report_id}")
    with cw.tx() as c:
        previous = cw.latest_fiu_decision(c, report_id, for_update=True) or "undecided"
        event_id = audit(
            cw,
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
            c=c,
        )
        cw.add_fiu_decision(c, event_id, report_id, decision, typology, note, user)
    return {"report_id": report_id, "previous": previous, "decision": decision, "typology": typology, "event_id": event_id}


# ---- decisions as data (tuning: backtest, rule effectiveness, labels, re-ranker) -------------------------------------
# The ONE place that reads decisions for analysis (from the casework database).
POSITIVE_STATUSES = ("escalated", "reported")  # an investigator found grounds: a positive label
NEGATIVE_REASONS = ("explained", "lawful_business")  # dismissed on the merits: a negative label (data_error etc. are not)


def decisions_frame(cw: Casework, banks: list[str] | None = None) -> pl.DataFrame:
    """Every alert's current decision as a polars frame: alert_id, bank_id, account_id, status, dismiss_reason,
    decided_at (the last decision in the audit log; NULL while nothing was decided) and label (1 positive,
    0 negative, NULL: open, or dismissed for a reason that says nothing about the account). `banks`: only these."""
    return cw.decisions(banks).with_columns(
        pl.when(pl.col("status").is_in(POSITIVE_STATUSES))
        .then(1)
        .when((pl.col("status") == "dismissed") & pl.col("dismiss_reason").is_in(NEGATIVE_REASONS))
        .then(0)
        .otherwise(None)
        .cast(pl.Int8)
        .alias("label")
    )
