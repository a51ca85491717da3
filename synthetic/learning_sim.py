"""Does the list get better as investigators decide? A simulation on a generated data set (a benchmark, not a test).

Investigators, played from the generator's labels, work the top `k` not-yet-decided alerts of each monthly window for
`months` successive months (`--as-of` the month's last day): a planted account is escalated, any other dismissed as
explained; with `flip` a share of those decisions is turned the other way (investigators err). After each month the
re-ranker is refitted on every decision so far (`thb-signals rerank`), once there are enough. The figure of each month
is precision@k of the list on accounts not yet decided, before that month's decisions. The same months are also run
without learning, so the gain can be told from what the decisions already do without it (dismissed accounts held
back, escalated ones seeding the network rules).

    PYTHONPATH=. python -m synthetic.learning_sim --out bench/learning --accounts 12000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from casework.dispositions import record_disposition
from casework.learning import LearningError, fit_reranker
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.ingest import ingest
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings
from synthetic.generate import generate

END = "2026-09-30"
KEYS = ["bank_id", "account_id"]


def prepare(root: Path, accounts: int, months: int, window_days: int, seed: int) -> tuple[Path, pl.DataFrame, date]:
    """Generate `months` windows of bookings for two banks and load them; returns the store, labels and first day."""
    days = window_days * months
    generate(root / "gen", accounts=accounts, days=days, banks=2, seed=seed)
    db = root / "base.duckdb"
    for bank in sorted(p.name for p in (root / "gen").iterdir() if p.is_dir()):
        out = ingest(root / "gen" / bank, db)
        if out.outcome != "loaded":
            raise RuntimeError(f"{bank}: {out.outcome}")
    labels = pl.read_parquet(root / "gen" / "labels.parquet").select(*KEYS, (pl.col("typology") != "none").alias("positive"))
    return db, labels, date.fromisoformat(END) - timedelta(days=days - 1)


def settings_for(as_of: date, window_days: int, learn: bool) -> Settings:
    """A month's run: the window up to `as_of`, no budget and no floor: the whole population is ranked, so the re-ranker can lift what the rules rank low."""
    return Settings().with_overrides(
        **{
            "window.days": window_days,
            "window.as_of": as_of,
            "budget.share": 1.0,
            "fusion.min_score": 0.0,
            "rerank.enabled": learn,
        }
    )


def play(
    base: Path,
    labels: pl.DataFrame,
    first: date,
    arm: Path,
    months: int,
    window_days: int,
    k: int,
    flip: float,
    learn: bool,
    seed: int,
) -> list[dict]:
    """One arm: a fresh copy of the store, `months` months of scoring, deciding the top k and (if `learn`) refitting."""
    shutil.rmtree(arm, ignore_errors=True)
    store.private_dir(arm)
    db, models = arm / "s.duckdb", arm / "models"
    shutil.copy(base, db)
    rng = np.random.default_rng(seed)
    decided = pl.DataFrame(schema={"bank_id": pl.Utf8, "account_id": pl.Utf8})
    out = []
    for m in range(1, months + 1):
        as_of = first + timedelta(days=window_days * m - 1)
        s = settings_for(as_of, window_days, learn)
        res = score_and_publish(db, arm / f"month{m}", s, models_dir=models)  # alerts handed to the casework database
        todo = (
            res.alerts.sort("rank")
            .join(decided, on=KEYS, how="anti", maintain_order="left")
            .join(labels, on=KEYS, how="left", maintain_order="left")
            .with_columns(pl.col("positive").fill_null(False))
            .head(k)
        )
        precision = float(todo["positive"].sum()) / k
        wrong = rng.random(todo.height) < flip
        cw = open_casework(db)
        for alert_id, positive, err in zip(todo["alert_id"], todo["positive"], wrong):  # k investigators' decisions
            escalate = bool(positive) != bool(err)
            record_disposition(cw, alert_id, "escalate" if escalate else "dismiss", "sim", None if escalate else "explained")
        decided = pl.concat([decided, todo.select(KEYS)])
        model = None
        if learn:
            try:
                model = fit_reranker(db, s, models_dir=models, seed=seed)
            except LearningError:
                model = None
        out.append(
            {
                "month": m,
                "as_of": as_of.isoformat(),
                f"precision@{k}": round(precision, 4),
                "alerts": res.alerts.height,
                "undecided_in_list": todo.height,
                "reranker_used": bool(res.alerts["reasons"].str.contains("Learned from").any()) if res.alerts.height else False,
                "refit_on": (model["positives"] + model["negatives"]) if model else 0,
            }
        )
        print(f"  month {m} ({as_of}): precision@{k} {precision:.3f} of {res.alerts.height} alerts", file=sys.stderr)
    return out


def summary(months: list[dict], k: int) -> dict:
    p = [m[f"precision@{k}"] for m in months]
    drops = [round(b - a, 4) for a, b in zip(p, p[1:])]
    return {
        "precision": p,
        "gain_1_to_last": round(p[-1] - p[0], 4),
        "largest_fall": round(-min(drops + [0.0]), 4),
        "goal_met": p[0] < 0.9 and p[-1] - p[0] >= 0.1 and -min(drops + [0.0]) <= 0.02,
    }


def simulate(
    out: str | Path, accounts: int = 12_000, months: int = 5, window_days: int = 30, k: int = 100, seed: int = 3, flips=(0.0, 0.1)
) -> dict:
    root = store.private_dir(out)
    base, labels, first = prepare(root, accounts, months, window_days, seed)
    result = {"accounts": accounts, "months": months, "window_days": window_days, "k": k, "seed": seed, "arms": {}}
    for flip in flips:
        for learn in (True, False):
            name = f"{'learning' if learn else 'no_learning'}_flip{int(flip * 100)}"
            if not learn and flip != flips[0]:
                continue  # without learning, flipped decisions change only what is held back: one such arm is enough
            print(f"{name}:", file=sys.stderr)
            months_out = play(base, labels, first, root / name, months, window_days, k, flip, learn, seed)
            result["arms"][name] = {"months": months_out, **summary(months_out, k)}
    (root / "learning.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench/learning", help="folder for the stores and learning.json")
    p.add_argument("--accounts", type=int, default=12_000)
    p.add_argument("--months", type=int, default=5)
    p.add_argument("--window-days", type=int, default=30)
    p.add_argument("--k", type=int, default=100, help="alerts worked per month, and the precision cut-off")
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args(argv)
    r = simulate(a.out, a.accounts, a.months, a.window_days, a.k, a.seed)
    for name, arm in r["arms"].items():
        print(
            f"{name:<22} precision@{a.k} by month {arm['precision']}  gain {arm['gain_1_to_last']:+.3f}  goal met: {arm['goal_met']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
