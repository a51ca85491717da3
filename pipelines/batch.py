"""Plain functions behind the batch flows: the inbox, filing submissions, transient faults, summaries.

Kept free of Prefect so they are tested directly; `pipelines/flows.py` only wires them into tasks.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipelines import store
from pipelines.ingest import IngestOutcome
from pipelines.report import html_report
from pipelines.submission import SubmissionRejected

PROCESSED, REJECTED = "processed", "rejected"


def new_submissions(inbox: str | Path) -> list[Path]:
    """Submission folders waiting in the inbox (anything but processed/ and rejected/), oldest name first."""
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    return sorted(p for p in inbox.iterdir() if p.is_dir() and p.name not in (PROCESSED, REJECTED) and not p.name.startswith("."))


def file_submission(path: str | Path, accepted: bool, report_html: str | None) -> Path:
    """Move a submission to processed/ or rejected/ with its validation report beside it; never overwrite."""
    path = Path(path)
    dest_root = path.parent / (PROCESSED if accepted else REJECTED)
    dest_root.mkdir(exist_ok=True)
    dest = dest_root / path.name
    if dest.exists():
        dest = dest_root / f"{path.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    shutil.move(str(path), dest)
    if report_html:
        (dest_root / f"{dest.name}.validation.html").write_text(report_html, encoding="utf-8")
    return dest


def is_transient(exc: BaseException | None) -> bool:
    """Worth a retry: a locked database file or an I/O error. Never a validation failure."""
    if exc is None or isinstance(exc, (SubmissionRejected, ValueError)):
        return False
    text = str(exc).lower()
    if isinstance(exc, duckdb.IOException) or "lock" in text:
        return True
    return isinstance(exc, (OSError, TimeoutError))


def outcome_record(out: IngestOutcome) -> dict:
    """What a flow keeps of an ingest (JSON-serialisable), plus the HTML report for filing."""
    v = out.validation
    return {
        "path": out.path,
        "submission_id": out.submission_id,
        "outcome": out.outcome,
        "accepted": out.accepted,
        "message": out.message,
        "rows_loaded": out.rows_loaded,
        "rows_quarantined": out.rows_quarantined,
        "rows_in": sum((v.rows or {}).values()) if v is not None else 0,
        "report_html": html_report(v) if v is not None else None,
    }


def top_alerts_table(alerts: list[dict], n: int = 25) -> list[dict]:
    """Rows for the Prefect table artifact: no identifiers at all, only what an analyst triages by."""
    return [
        {
            "rank": int(a["rank"]),
            "score": round(float(a["score"]), 3),
            "typology": a["typology"],
            "reasons": (a["reasons"] or "")[:300],
        }
        for a in alerts[:n]
    ]


def typology_counts(db: str | Path, run_id: str) -> dict[str, int]:
    with store.writing(db, "batch") as con:
        return dict(
            con.execute("SELECT typology, count(*) FROM alerts WHERE run_id = ? GROUP BY 1 ORDER BY 1", [run_id]).fetchall()
        )


def previous_run(db: str | Path, run_id: str) -> str | None:
    with store.writing(db, "batch") as con:
        row = con.execute(
            """SELECT run_id FROM runs WHERE kind = 'score' AND run_id <> ? AND started_at <
                             (SELECT started_at FROM runs WHERE run_id = ?) ORDER BY started_at DESC LIMIT 1""",
            [run_id, run_id],
        ).fetchone()
        return row[0] if row else None


def run_summary_markdown(submissions: list[dict], score: dict | None, now: dict[str, int], before: dict[str, int] | None) -> str:
    lines = ["# thb-signals batch run", ""]
    acc = [s for s in submissions if s["accepted"]]
    rej = [s for s in submissions if not s["accepted"]]
    lines += [f"**Submissions:** {len(acc)} accepted, {len(rej)} rejected", ""]
    if submissions:
        lines += ["| submission | outcome | rows loaded | rows quarantined | message |", "| --- | --- | --- | --- | --- |"]
        for s in submissions:
            lines.append(
                f"| {Path(s['path']).name} | {s['outcome']} | {sum(s['rows_loaded'].values())} | "
                f"{sum(s['rows_quarantined'].values())} | {s['message'].replace('|', '/')} |"
            )
        lines.append("")
    if score:
        lines += [
            f"**Scoring run** `{score['run_id']}`: {score['alerts']} alerts ({score['new']} new), rules `{score['rule_set_hash']}`, "
            f"model `{score['model_version']}`",
            "",
            "| typology | alerts | previous run | change |",
            "| --- | --- | --- | --- |",
        ]
        for t in sorted(set(now) | set(before or {})):
            b = (before or {}).get(t)
            change = "" if b is None else f"{now.get(t, 0) - b:+d}"
            lines.append(f"| {t} | {now.get(t, 0)} | {'-' if b is None else b} | {change} |")
        lines += _fusion_report_markdown(score)
    else:
        lines.append("No scoring: nothing is loaded yet.")
    return "\n".join(lines) + "\n"


def _or_dash(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _fusion_report_markdown(score: dict) -> list[str]:
    """Rules over their firing-rate ceiling (loud: a rule measuring the population) and what the alert budget cut."""
    lines = []
    over = score.get("rules_over_ceiling") or {}
    if over:
        lines += [
            "",
            "**Warning: rules over their firing-rate ceiling** (their weight in fusion is scaled down by ceiling / rate)",
            "",
            "| rule | accounts hit | rate | ceiling | per bank (rate, weight factor) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for rule, r in over.items():
            banks = ", ".join(f"{b}: {v['rate']:.1%}, x{v['weight_factor']:.3g}" for b, v in r["by_bank"].items())
            lines.append(
                f"| {rule} | {r['accounts_hit']} of {r['accounts_scored']} | {r['rate']:.1%} | {r['ceiling']:.1%} | {banks} |"
            )
    cut = score.get("budget_cut") or []
    if cut:
        lines += [
            "",
            "**Alert budget** (per bank, best first)",
            "",
            "| bank | accounts scored | budget | candidates | kept | cut | lowest score kept | highest score cut |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in cut:
            lines.append(
                f"| {c['bank_id']} | {c['accounts_scored']} | {_or_dash(c['allowed'], 'd')} | {c['candidates']} | "
                f"{c['kept']} | {c['cut']} | {_or_dash(c['lowest_kept'], '.3f')} | {_or_dash(c['highest_cut'], '.3f')} |"
            )
    return lines


def record_batch_run(
    db: str | Path,
    run_id: str,
    flow_run_id: str | None,
    started: datetime,
    params: dict,
    submissions: list[dict],
    score: dict | None,
    outcome: str,
    error: str | None = None,
) -> None:
    from detectors.scoring import record_run

    with store.writing(db, "batch") as con:
        sc = score or {}
        record_run(
            con,
            run_id=run_id,
            flow_run_id=flow_run_id,
            kind="batch",
            started_at=started,
            parameters=json.dumps(params, default=str),
            rule_set_hash=sc.get("rule_set_hash"),
            model_version=sc.get("model_version"),
            window_start=sc.get("window_start"),
            window_end=sc.get("window_end"),
            rows_in=sum(s["rows_in"] for s in submissions),
            rows_quarantined=sum(sum(s["rows_quarantined"].values()) for s in submissions),
            alerts_out=sc.get("alerts", 0),
            alerts_new=sc.get("new", 0),
            outcome=outcome,
            error=error,
        )
