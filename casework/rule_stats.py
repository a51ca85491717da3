"""Rule effectiveness: per rule, over a period, how often it fired and what investigators did with its alerts.

The period selects the successful scoring runs whose window ends in it. Firing comes from each run's measured
rates (`runs.rule_rates`: accounts hit of accounts scored, per bank); alerts from the runs' `alerts` rows (an alert
raised again in a later run counts once); an alert is driven by a rule when that rule is its top reason (the first
of its `rules`, which fusion orders by weight). Decisions come only through casework.dispositions.decisions_frame.
`banks` limits every figure to those banks (the review page passes the user's scope).
"""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from casework.dispositions import DISMISS_REASONS, decisions_frame

OPEN_STATUSES = ("open", "info_requested")


def _runs(con, since: date | None, until: date | None) -> list[tuple[str, str | None]]:
    return con.execute(
        """SELECT run_id, CAST(rule_rates AS VARCHAR) FROM runs
           WHERE kind = 'score' AND outcome = 'ok'
             AND (CAST(? AS DATE) IS NULL OR CAST(window_end AS DATE) >= CAST(? AS DATE))
             AND (CAST(? AS DATE) IS NULL OR CAST(window_end AS DATE) <= CAST(? AS DATE))
           ORDER BY started_at""",
        [since, since, until, until],
    ).fetchall()


def _firing(runs: list[tuple[str, str | None]], banks: list[str] | None) -> pl.DataFrame:
    """Per rule: accounts hit and scored, summed over the runs (and the chosen banks)."""
    rows = []
    for _, rates in runs:  # one JSON document per run, a handful of runs: not row data
        for rule, r in (json.loads(rates) if rates else {}).items():
            for bank, b in r.get("by_bank", {}).items():
                if banks is None or bank in banks:
                    rows.append((rule, b["accounts_hit"], b["accounts_scored"]))
    schema = {"rule_id": pl.Utf8, "accounts_hit": pl.Int64, "accounts_scored": pl.Int64}
    return (
        pl.DataFrame(rows, schema=schema, orient="row")
        .group_by("rule_id")
        .agg(pl.col("accounts_hit").sum(), pl.col("accounts_scored").sum())
    )


def rule_stats(con, cw, since: date | None = None, until: date | None = None, banks: list[str] | None = None) -> dict:
    """{'period', 'runs', 'rules': {rule_id: figures}} for the successful runs whose window ends in [since, until].
    `con`: the store or the page's snapshot (runs, alerts); `cw`: the casework database (decisions)."""
    runs = _runs(con, since, until)
    run_ids = [r[0] for r in runs]
    alerts = con.sql(
        """SELECT alert_id, arg_max(bank_id, created_at) AS bank_id, arg_max(rules, created_at) AS rules
           FROM alerts WHERE list_contains(CAST(? AS VARCHAR[]), run_id)
             AND (CAST(? AS VARCHAR[]) IS NULL OR list_contains(CAST(? AS VARCHAR[]), bank_id))
           GROUP BY alert_id""",
        params=[run_ids, banks, banks],
    ).pl()
    decisions = decisions_frame(cw, banks).select("alert_id", "status", "dismiss_reason")
    per_rule = (
        alerts.with_columns(pl.col("rules").list.first().alias("top"))
        .explode("rules")
        .rename({"rules": "rule_id"})
        .filter(pl.col("rule_id").is_not_null())
        .join(decisions, on="alert_id", how="left")
        .with_columns((pl.col("rule_id") == pl.col("top")).alias("is_top"), pl.col("status").fill_null("open"))
    )
    driven = per_rule.filter(pl.col("is_top"))
    counts = per_rule.group_by("rule_id").agg(
        pl.col("alert_id").n_unique().alias("alerts_with_rule"), pl.col("is_top").sum().alias("alerts_driven")
    )
    status = driven.group_by("rule_id", "status").len()
    reasons = driven.filter(pl.col("status") == "dismissed").group_by("rule_id", "dismiss_reason").len()
    firing = _firing(runs, banks)
    rules = sorted(set(firing["rule_id"].to_list()) | set(counts["rule_id"].to_list()))
    fired, cnt = {r[0]: r for r in firing.iter_rows()}, {r[0]: r for r in counts.iter_rows()}
    st: dict[str, dict[str, int]] = {}
    for rule, s, n in status.iter_rows():
        st.setdefault(rule, {})[s] = n
    rs: dict[str, dict[str, int]] = {}
    for rule, reason, n in reasons.iter_rows():
        rs.setdefault(rule, {})[reason or "unknown"] = n
    out = {}
    for rule in rules:
        hit, scored = (fired[rule][1], fired[rule][2]) if rule in fired else (0, 0)
        s = st.get(rule, {})
        decided = s.get("escalated", 0) + s.get("reported", 0) + s.get("dismissed", 0)
        out[rule] = {
            "accounts_hit": hit,
            "accounts_scored": scored,
            "share": round(hit / scored, 6) if scored else None,
            "alerts_with_rule": cnt[rule][1] if rule in cnt else 0,
            "alerts_driven": cnt[rule][2] if rule in cnt else 0,
            "escalated": s.get("escalated", 0),
            "reported": s.get("reported", 0),
            "dismissed": s.get("dismissed", 0),
            "dismissed_by_reason": {k: v for k, v in sorted(rs.get(rule, {}).items())},
            "still_open": sum(s.get(k, 0) for k in OPEN_STATUSES),
            "escalation_rate": round((s.get("escalated", 0) + s.get("reported", 0)) / decided, 4) if decided else None,
        }
    return {"period": {"since": since, "until": until}, "runs": len(runs), "banks": banks, "rules": out}


def format_stats(stats: dict) -> str:
    p = stats["period"]
    head = f"{stats['runs']} scoring runs with a window ending {p['since'] or 'any time'} .. {p['until'] or 'now'}" + (
        f", banks {', '.join(stats['banks'])}" if stats["banks"] else ""
    )
    cols = f"{'rule':<30} {'fired':>7} {'share':>7} {'alerts':>7} {'driven':>7} {'escal':>6} {'rep':>5} {'dism':>5} {'open':>5}  dismissed by reason"
    lines = [head, "", cols]
    for rule, r in stats["rules"].items():
        share = "-" if r["share"] is None else f"{r['share']:.2%}"
        why = ", ".join(f"{k} {v}" for k, v in r["dismissed_by_reason"].items())
        lines.append(
            f"{rule:<30} {r['accounts_hit']:>7} {share:>7} {r['alerts_with_rule']:>7} {r['alerts_driven']:>7} "
            f"{r['escalated']:>6} {r['reported']:>5} {r['dismissed']:>5} {r['still_open']:>5}  {why}"
        )
    lines += ["", "fired: account-hits over the runs; driven: alerts whose top reason is the rule (decisions are on those)"]
    lines.append("dismissal reasons: " + ", ".join(DISMISS_REASONS))
    return "\n".join(lines)
