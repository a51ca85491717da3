"""`thb-signals backtest`: what a config change would do to the list, without touching the investigators' queue.

Both lists are made by detectors.whatif.scratch_run (the store attached READ_ONLY, nothing written), over the same
window: the new config, and either the config of the last successful scoring run (the current one) or the alerts a
named run raised (`--against RUN_ID`, whose window is replayed unless `--as-of` says otherwise). Alerts are compared
per account, and the accounts are joined with what investigators decided (casework.dispositions.decisions_frame):
which escalated or reported accounts the change would lose, which dismissed ones it would drop, per rule, typology
and bank, and the list against the budget. Output as text, JSON and an HTML page with inline SVG plots.
"""

from __future__ import annotations

import json
from datetime import date
from html import escape
from pathlib import Path

import polars as pl

from casework.dispositions import decisions_frame, recorded_after
from pipelines import store
from pipelines.casework_as_of import statuses_as_of
from pipelines.casework_db import open_casework
from schemas.settings import Settings, parse_settings

KEYS = ["bank_id", "account_id"]
STATUS_ORDER = {"reported": 5, "escalated": 4, "dismissed": 3, "info_requested": 2, "open": 1}


class BacktestError(ValueError):
    """A named run that does not exist, or a store that was never scored: one line for the user."""


def account_decisions(cw, banks: list[str] | None = None, as_of: date | None = None) -> pl.DataFrame:
    """Per account, the strongest decision on any of its alerts (reported > escalated > dismissed > open) and its reason.
    With `as_of`, a decision recorded after that day (UTC) counts as not made yet: the alert was open then."""
    d = decisions_frame(cw, banks)
    if as_of is not None:
        later = recorded_after(as_of)
        d = d.with_columns(
            pl.when(later).then(pl.lit("open")).otherwise(pl.col("status")).alias("status"),
            pl.when(later).then(None).otherwise(pl.col("dismiss_reason")).alias("dismiss_reason"),
        )
    if d.height == 0:
        return pl.DataFrame(schema={"bank_id": pl.Utf8, "account_id": pl.Utf8, "decision": pl.Utf8, "reason": pl.Utf8})
    return (
        d.with_columns(pl.col("status").replace_strict(STATUS_ORDER, default=0).alias("_o"))
        .sort("_o", descending=True)
        .group_by(KEYS, maintain_order=True)
        .first()
        .select(*KEYS, pl.col("status").alias("decision"), pl.col("dismiss_reason").alias("reason"))
    )


def _baseline_settings(con, as_of: date | None) -> tuple[Settings, str]:
    row = con.execute(
        """SELECT run_id, parameters FROM runs WHERE kind = 'score' AND outcome = 'ok'
           ORDER BY started_at DESC LIMIT 1"""
    ).fetchall()
    if not row:
        return Settings().with_overrides(**{"window.as_of": as_of}), "the default settings (the store has no successful run)"
    recorded = (json.loads(row[0][1] or "{}") or {}).get("settings") or {}
    recorded.get("window", {}).pop("as_of", None)
    return parse_settings(recorded, f"settings of run {row[0][0]}").with_overrides(**{"window.as_of": as_of}), (
        f"the current config (settings of run {row[0][0]})"
    )


def backtest(
    db: str | Path,
    settings: Settings,
    against: str | None = None,
    models_dir: str | Path | None = None,
    mode: str = "fused",
    memory_limit: str | None = None,
    casework_url: str | None = None,
) -> dict:
    """Score `settings` in scratch and compare with the current config (or run `against`); returns the report dict."""
    from detectors.whatif import scratch_run

    con = store.connect(db, read_only=True)
    try:
        as_of = settings.window.as_of
        if against:
            run = con.execute(
                "SELECT window_end FROM runs WHERE run_id = ? AND outcome = 'ok' AND kind = 'score'", [against]
            ).fetchall()
            if not run:  # a batch run's id names no alerts (they carry its scoring run's id): it compared against nothing
                raise BacktestError(
                    f"no successful scoring run {against} in store {db} (thb-signals status lists the runs; "
                    "for a batch, give the id of the scoring run it started)"
                )
            as_of = as_of or run[0][0].date()
            before = con.sql(
                "SELECT bank_id, account_id, score, typology, rules FROM alerts WHERE run_id = ?", params=[against]
            ).pl()
            baseline_name, base_settings = f"the alerts of run {against}", None
        else:
            base_settings, baseline_name = _baseline_settings(con, as_of)
        cw = open_casework(db, casework_url, create=False)
        decisions = account_decisions(cw, as_of=settings.window.as_of)  # as they stood then
        # --as-of: both runs see the casework of that day (the network rules' seeds, the re-ranker)
        then = {"casework_as_of": settings.window.as_of}
        if settings.window.as_of is not None:
            then["decisions"] = statuses_as_of(cw, settings.window.as_of)
    finally:
        con.close()
    settings = settings.with_overrides(**{"window.as_of": as_of})
    after_run = scratch_run(db, settings, models_dir, mode, memory_limit, run_id="backtest-new", **then)
    if base_settings is not None:
        before = scratch_run(db, base_settings, models_dir, mode, memory_limit, run_id="backtest-base", **then)["alerts"]
    after = after_run["alerts"]
    report = compare(before.select(*KEYS, "typology", "rules"), after.select(*KEYS, "typology", "rules"), decisions)
    window = after_run["window"]
    report["baseline"] = baseline_name
    report["window"] = {"start": window.start.isoformat(), "end": window.end.isoformat(), "days": window.days}
    report["budget"] = [
        {k: r[k] for k in ("bank_id", "accounts_scored", "allowed", "candidates", "kept", "cut")} for r in after_run["budget_cut"]
    ]
    return report


def _with_decisions(alerts: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    return alerts.unique(KEYS, keep="first").join(decisions, on=KEYS, how="left")


def _count(df: pl.DataFrame, by: str) -> dict:
    return dict(df.group_by(by).len().iter_rows()) if df.height else {}


def compare(before: pl.DataFrame, after: pl.DataFrame, decisions: pl.DataFrame) -> dict:
    """Accounts alerted before and after (bank_id, account_id, typology, rules), with the decisions on them (per account:
    decision, reason) -> gained and lost per rule, typology and bank; the decided accounts the change loses or drops."""
    b, a = _with_decisions(before, decisions), _with_decisions(after, decisions)
    lost = b.join(a.select(KEYS), on=KEYS, how="anti")
    gained = a.join(b.select(KEYS), on=KEYS, how="anti")
    positive = pl.col("decision").is_in(["escalated", "reported"])

    def per_rule(df: pl.DataFrame) -> pl.DataFrame:
        return df.explode("rules").rename({"rules": "rule_id"}).filter(pl.col("rule_id").is_not_null())

    rb, ra, rl, rg = per_rule(b), per_rule(a), per_rule(lost), per_rule(gained)
    rules = sorted(set(rb["rule_id"].to_list()) | set(ra["rule_id"].to_list()))

    def rate(df: pl.DataFrame, rule: str) -> float | None:
        x = df.filter((pl.col("rule_id") == rule) & pl.col("decision").is_in(["escalated", "reported", "dismissed"]))
        return round(float(x.select(positive.mean()).item()), 4) if x.height else None

    cb, ca, cl, cg = (_count(x, "rule_id") for x in (rb, ra, rl, rg))
    by_rule = {
        r: {
            "before": cb.get(r, 0),
            "after": ca.get(r, 0),
            "gained": cg.get(r, 0),
            "lost": cl.get(r, 0),
            "escalation_rate_before": rate(rb, r),
            "escalation_rate_after": rate(ra, r),
        }
        for r in rules
    }

    def table(by: str) -> dict:
        cb, ca, cl, cg = (_count(x, by) for x in (b, a, lost, gained))
        keys = sorted(set(cb) | set(ca), key=str)
        return {
            str(k): {"before": cb.get(k, 0), "after": ca.get(k, 0), "gained": cg.get(k, 0), "lost": cl.get(k, 0)} for k in keys
        }

    dismissed_lost = lost.filter(pl.col("decision") == "dismissed")
    return {
        "alerts_before": b.height,
        "alerts_after": a.height,
        "gained": gained.height,
        "lost": lost.height,
        "lost_escalated": int((lost["decision"] == "escalated").sum()),
        "lost_reported": int((lost["decision"] == "reported").sum()),
        "dropped_dismissed": dismissed_lost.height,
        "dropped_dismissed_by_reason": dict(sorted(_count(dismissed_lost, "reason").items(), key=lambda kv: str(kv[0]))),
        "gained_dismissed": int((gained["decision"] == "dismissed").sum()),
        "by_rule": by_rule,
        "by_typology": table("typology"),
        "by_bank": table("bank_id"),
    }


def _pct(v) -> str:
    return "-" if v is None else f"{v:.0%}"


def format_text(r: dict) -> str:
    w = r["window"]
    lines = [
        f"backtest over {w['start'][:10]} .. {w['end'][:10]} ({w['days']} days), against {r['baseline']}",
        f"alerts: {r['alerts_before']} -> {r['alerts_after']} (gained {r['gained']}, lost {r['lost']})",
        f"decided accounts lost: {r['lost_escalated']} escalated, {r['lost_reported']} reported to the FIU",
        f"dismissed accounts dropped: {r['dropped_dismissed']}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in r['dropped_dismissed_by_reason'].items())})" if r["dropped_dismissed"] else "")
        + f"; dismissed accounts raised again: {r['gained_dismissed']}",
        "",
        f"{'rule':<30} {'before':>7} {'after':>7} {'gained':>7} {'lost':>6}  escalation rate before -> after",
    ]
    for rule, v in r["by_rule"].items():
        lines.append(
            f"{rule:<30} {v['before']:>7} {v['after']:>7} {v['gained']:>7} {v['lost']:>6}  "
            f"{_pct(v['escalation_rate_before'])} -> {_pct(v['escalation_rate_after'])}"
        )
    for title, key in (("typology", "by_typology"), ("bank", "by_bank")):
        lines += ["", f"{title:<30} {'before':>7} {'after':>7} {'gained':>7} {'lost':>6}"]
        lines += [f"{k:<30} {v['before']:>7} {v['after']:>7} {v['gained']:>7} {v['lost']:>6}" for k, v in r[key].items()]
    lines += ["", "budget (new config): bank, accounts scored, allowed, candidates, kept"]
    lines += [f"  {b['bank_id']}: {b['accounts_scored']}, {b['allowed']}, {b['candidates']}, {b['kept']}" for b in r["budget"]]
    return "\n".join(lines)


def bars_svg(title: str, rows: list[tuple[str, float | None, float | None]], fmt=str, width: int = 760) -> str:
    """Horizontal paired bars (before grey, after blue) per label: a plot without a script or a network."""
    bar, gap, label_w = 9, 8, 250
    top = max([v for _, x, y in rows for v in (x, y) if v is not None] + [1e-9])
    height = 30 + len(rows) * (2 * bar + gap) + 10
    scale = (width - label_w - 70) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{width - 150}" y="4" width="10" height="10" fill="#9aa5b1"/><text x="{width - 136}" y="13" font-size="11">before</text>',
        f'<rect x="{width - 80}" y="4" width="10" height="10" fill="#2a6f97"/><text x="{width - 66}" y="13" font-size="11">after</text>',
    ]
    y = 30
    for label, x0, x1 in rows:
        parts.append(f'<text x="0" y="{y + bar + 3}" font-size="11">{escape(label[:38])}</text>')
        for i, (v, colour) in enumerate(((x0, "#9aa5b1"), (x1, "#2a6f97"))):
            yy = y + i * bar
            if v is not None:
                parts.append(
                    f'<rect x="{label_w}" y="{yy}" width="{max(v * scale, 0.5):.1f}" height="{bar - 1}" fill="{colour}"/>'
                )
            parts.append(
                f'<text x="{label_w + (v or 0) * scale + 4:.1f}" y="{yy + bar - 1}" font-size="9">{escape("-" if v is None else fmt(v))}</text>'
            )
        y += 2 * bar + gap
    parts.append("</svg>")
    return "".join(parts)


def format_html(r: dict) -> str:
    rules = list(r["by_rule"].items())
    volume = bars_svg("Alerts per rule", [(k, v["before"], v["after"]) for k, v in rules])
    rate = bars_svg(
        "Escalation rate per rule (escalated or reported, of decided accounts)",
        [(k, v["escalation_rate_before"], v["escalation_rate_after"]) for k, v in rules],
        fmt=_pct,
    )
    bank = bars_svg("Alerts per bank", [(k, v["before"], v["after"]) for k, v in r["by_bank"].items()])
    summary = escape(format_text(r).split("\n\n")[0])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>thb-signals backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f5f5f5;padding:1em}</style></head><body>"
        f"<h1>Backtest</h1><pre>{summary}</pre>{volume}<br>{rate}<br>{bank}"
        f"<h2>Figures</h2><pre>{escape(format_text(r))}</pre></body></html>"
    )


def write_outputs(r: dict, out: str | Path) -> dict:
    """backtest.json, backtest.txt and backtest.html in `out` (private files: they name rules and banks, no accounts)."""
    folder = store.private_dir(out)
    files = {"json": folder / "backtest.json", "text": folder / "backtest.txt", "html": folder / "backtest.html"}
    for p in files.values():
        store.private_file(p)
    files["json"].write_text(json.dumps(r, indent=2, default=str))
    files["text"].write_text(format_text(r) + "\n")
    files["html"].write_text(format_html(r))
    return {k: str(v) for k, v in files.items()}
