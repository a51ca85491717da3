"""Why does held-out precision@k fall from month 1 to month 2 without learning? A diagnosis of one learning_sim arm.

Reads a finished `synthetic.learning_sim` arm (its store keeps every month's alerts) and the generator's labels, and
compares the held-out top k of two months: who entered and left, their labels, their scenario's days in each window,
and the rules that put the new negatives in the list (NET_LINKED_TO_REPORTED is the rule escalations seed).
A laundering pattern's account (typology `laundering`) counts as laundering, with or without an onset: in stream mode
(since the patterns stream) it has one and books for STREAM_PATTERN_DAYS from it; before, it had none.

    PYTHONPATH=. python -m synthetic.heldout_fall --out /tmp/diag2 --arm no_learning_flip0 --seed 2 --family tune \
        --accounts 20000 --stream 60 --json bench/results/diag-heldout-fall-tune2.json
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import polars as pl

from pipelines import store
from synthetic.laundering import STREAM_PATTERN_DAYS
from synthetic.learning_sim import KEYS, MONTH, prepare

SEEDED = "NET_LINKED_TO_REPORTED"


def month_alerts(db: Path) -> list[pl.DataFrame]:
    con = store.connect(db, read_only=True)
    try:
        runs = con.sql("SELECT run_id FROM alerts GROUP BY run_id ORDER BY min(created_at)").fetchall()
        return [
            con.sql(
                "SELECT bank_id, account_id, rank, score, rule_score, anomaly, rules, typology AS alert_typology FROM alerts "
                "WHERE run_id = ? ORDER BY rank",
                params=[r[0]],
            ).pl()
            for r in runs
        ]
    finally:
        con.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--arm", default="no_learning_flip0")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--family", required=True)
    p.add_argument("--accounts", type=int, default=20000)
    p.add_argument("--months", type=int, default=5)
    p.add_argument("--window-days", type=int, default=30)
    p.add_argument("--stream", type=int, default=60)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--a", type=int, default=1, help="first month compared")
    p.add_argument("--b", type=int, default=2, help="second month compared")
    p.add_argument("--json")
    a = p.parse_args()
    root = Path(a.out)
    if not (root / a.arm / "s.duckdb").is_file():
        p.error(f"--out {a.out}: no finished learning_sim arm {a.arm!r} there (its store {a.arm}/s.duckdb is missing)")
    _, sim_labels, first = prepare(root, a.accounts, a.months, a.window_days, a.seed, a.family, 0.5, a.stream)
    full = pl.read_parquet(root / "gen" / "labels.parquet").select(
        *KEYS, "typology", "role", "scenario_id", "lookalike", "pattern", "subtlety"
    )
    labels = sim_labels.join(full, on=KEYS, how="left")
    held = labels.filter("held_out")
    runs = month_alerts(root / a.arm / "s.duckdb")
    life = a.stream

    def window(m: int):
        end = first + timedelta(days=a.window_days - 1 + MONTH * (m - 1))
        return end - timedelta(days=a.window_days - 1), end

    def active(m: int) -> pl.Expr:
        """Days the planted account's scenario or pattern books inside month m's window (null: no onset, a laundering
        pattern of data generated before the patterns streamed)."""
        ws, we = window(m)
        days_of = pl.when(pl.col("typology") == "laundering").then(STREAM_PATTERN_DAYS).otherwise(life)
        end = pl.col("onset") + pl.duration(days=days_of - 1)
        days = (pl.min_horizontal(end, pl.lit(we)) - pl.max_horizontal(pl.col("onset"), pl.lit(ws))).dt.total_days() + 1
        return pl.when(pl.col("onset").is_null()).then(None).otherwise(days.clip(lower_bound=0))

    def ranked(m: int) -> pl.DataFrame:
        return (
            runs[m - 1]
            .join(held, on=KEYS, how="inner", maintain_order="left")
            .with_columns(
                active_days=active(m),
                seeded=pl.col("rules").list.contains(SEEDED),
                seeded_only=pl.col("rules") == pl.lit([SEEDED]),
                net=pl.col("rules").list.eval(pl.element().str.starts_with("NET_")).list.any(),
                laundering=pl.col("positive") & (pl.col("typology") == "laundering"),
            )
        )

    def top(m: int) -> pl.DataFrame:
        return ranked(m).head(a.k)

    per_month = []
    for m in range(1, len(runs) + 1):
        r, ws, we = ranked(m), *window(m)
        t = r.head(a.k)
        streamed = held.filter(pl.col("positive") & pl.col("onset").is_not_null() & (pl.col("typology") != "laundering"))
        streamed = streamed.with_columns(active_days=active(m))
        phase = (
            pl.when(pl.col("active_days") == 0)
            .then(pl.lit("off"))
            .when(pl.col("onset") >= pl.lit(ws))
            .then(pl.lit("starts in window"))
            .when(pl.col("onset") + pl.duration(days=life - 1) <= pl.lit(we))
            .then(pl.lit("ends in window"))
            .otherwise(pl.lit("spans window"))
        )
        in_top = streamed.join(t.select(KEYS), on=KEYS, how="semi").with_columns(phase=phase)
        per_month.append(
            {
                "month": m,
                f"precision@{a.k}": t["positive"].mean(),
                "top_laundering_positives": int(t["laundering"].sum()),
                "top_streamed_positives": int((t["positive"] & ~t["laundering"]).sum()),
                "top_negatives": int((~t["positive"]).sum()),
                "top_negatives_with_" + SEEDED: int((~t["positive"] & t["seeded"]).sum()),
                "top_negatives_any_NET": int((~t["positive"] & t["net"]).sum()),
                "top_positives_with_" + SEEDED: int((t["positive"] & t["seeded"]).sum()),
                f"held_out_{SEEDED}_only": int(r["seeded_only"].sum()),
                f"held_out_{SEEDED}_only_positive": int((r["seeded_only"] & r["positive"]).sum()),
                f"precision@{a.k}_without_{SEEDED}_only_negatives": r.filter(~(pl.col("seeded_only") & ~pl.col("positive")))
                .head(a.k)["positive"]
                .mean(),
                f"precision@{a.k}_streamed_only (laundering positives left out)": r.filter(~pl.col("laundering"))
                .head(a.k)["positive"]
                .mean(),
                "held_out_laundering_with_rules": int(r.filter(pl.col("laundering") & (pl.col("rule_score") > 0)).height),
                "score_at_k": float(t["score"][-1]),
                "streamed_in_top_by_phase": {
                    x["phase"]: x["len"] for x in in_top.group_by("phase").len().sort("phase").to_dicts()
                },
                "streamed_held_out_by_phase": {
                    x["phase"]: [x["len"], x["mean_active_days"]]
                    for x in streamed.with_columns(phase=phase)
                    .group_by("phase")
                    .agg(pl.len(), mean_active_days=pl.col("active_days").mean().round(1))
                    .sort("phase")
                    .to_dicts()
                },
            }
        )
    laundering = held.filter(pl.col("positive") & (pl.col("typology") == "laundering"))
    burst = pl.concat(
        [
            runs[m - 1]
            .join(laundering, on=KEYS)
            .filter(pl.col("rule_score") > 0)
            .group_by("scenario_id")
            .len()
            .with_columns(month=pl.lit(m))
            for m in range(1, len(runs) + 1)
        ]
    )
    burst_months = burst.group_by("scenario_id").agg(pl.col("month").sort()).sort("scenario_id")

    ta, tb = top(a.a), top(a.b)
    rep: dict = {
        "per_month": per_month,
        "laundering_patterns_months_with_rules": {x["scenario_id"]: x["month"] for x in burst_months.to_dicts()},
        "k": a.k,
        "months": [a.a, a.b],
        "windows": [[str(d) for d in window(m)] for m in (a.a, a.b)],
    }
    for name, t in (("a", ta), ("b", tb)):
        rep[f"precision_{name}"] = t["positive"].mean()
        rep[f"negatives_{name}"] = {
            "n": int((~t["positive"]).sum()),
            "with_" + SEEDED: int(t.filter(~pl.col("positive") & pl.col("seeded")).height),
            "with_any_NET": int(t.filter(~pl.col("positive") & pl.col("net")).height),
            "by_role_lookalike": t.filter(~pl.col("positive"))
            .group_by("role", "lookalike", "pattern")
            .len()
            .sort("len", descending=True)
            .to_dicts(),
            "top_rules": t.filter(~pl.col("positive"))
            .explode("rules")
            .group_by("rules")
            .len()
            .sort("len", descending=True)
            .head(15)
            .to_dicts(),
        }
        rep[f"positives_{name}_active_days"] = t.filter("positive").group_by("active_days").len().sort("active_days").to_dicts()
    entered = tb.join(ta, on=KEYS, how="anti")
    left = ta.join(tb, on=KEYS, how="anti")
    rb = runs[a.b - 1].with_columns(rank_b=pl.col("rank")).select(*KEYS, "rank_b", score_b="score", rules_b="rules")
    ws_b, _ = window(a.b)
    left = left.join(rb, on=KEYS, how="left").with_columns(active_days_b=active(a.b))
    left = left.with_columns(
        why=pl.when(~pl.col("positive"))
        .then(pl.lit("negative"))
        .when(pl.col("laundering") & pl.col("rules_b").list.len().fill_null(0).eq(0))
        .then(pl.lit("laundering pattern over, no rule in b"))
        .when(pl.col("active_days_b") == 0)
        .then(pl.lit("scenario over before window b"))
        .when(pl.col("rank_b").is_null())
        .then(pl.lit("not alerted in b"))
        .when(pl.col("active_days_b") < a.window_days)
        .then(pl.lit("outranked in b, scenario ends within window b"))
        .otherwise(pl.lit("outranked in b, scenario runs all of window b"))
    )
    rep["entered"] = {
        "n": entered.height,
        "positive": int(entered["positive"].sum()),
        "negative": int((~entered["positive"]).sum()),
        "negative_with_" + SEEDED: int(entered.filter(~pl.col("positive") & pl.col("seeded")).height),
        "positive_laundering": int(entered["laundering"].sum()),
        "positive_onset_in_window_b": int(entered.filter(pl.col("positive") & (pl.col("onset") >= pl.lit(ws_b))).height),
    }
    rep["left"] = {
        "n": left.height,
        "positive": int(left["positive"].sum()),
        "why": left.group_by("why").len().sort("len", descending=True).to_dicts(),
        "positive_laundering": int(left["laundering"].sum()),
    }
    # the new negatives in full, so the rules and labels can be read
    rep["negatives_b_detail"] = (
        tb.filter(~pl.col("positive"))
        .select("rank", "score", "rule_score", "anomaly", "rules", "role", "lookalike", "pattern", "typology", "seeded")
        .with_columns(pl.col("score", "rule_score", "anomaly").round(3))
        .to_dicts()
    )
    rep["score_at_k"] = {"a": float(ta["score"][-1]), "b": float(tb["score"][-1])}
    text = json.dumps(rep, indent=1, default=str)
    print(text)
    if a.json:
        Path(a.json).write_text(text)


if __name__ == "__main__":
    main()
