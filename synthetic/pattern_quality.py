"""Laundering patterns alone against counting senders: `python -m synthetic.pattern_quality --seeds 4 --accounts 10000`.

For each seed: generate (2 banks, 90 days), ingest, build the window and the link graph, then rank accounts two ways
and evaluate each ranking at the 2% budget, by pattern (synthetic/evaluate.py):
- patterns: accounts hit by detectors/patterns.py, by summed severity, then number of patterns;
- distinct senders: every account by its number of distinct transfer senders in the window (the old laundering signal).
Also the firing rate of each pattern on background accounts (goal: at most 0.5 %) and the stage's time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from detectors.network import build_links
from detectors.patterns import PatternDetector
from detectors.window import define_window
from pipelines import store
from pipelines.ingest import ingest
from synthetic.evaluate import evaluate
from synthetic.generate import generate


def _ranked(df: pl.DataFrame, score: str) -> pl.DataFrame:
    return df.sort(score, "bank_id", "account_id", descending=[True, False, False]).with_columns(
        pl.col(score).cast(pl.Float64).alias("score"), pl.int_range(1, pl.len() + 1).alias("rank")
    )


def measure(seed: int, accounts: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "gen", accounts=accounts, days=90, banks=2, seed=seed)
        db = tmp / "s.duckdb"
        for bank in ("BANK_A", "BANK_B"):
            ingest(tmp / "gen" / bank, db)
        labels = pl.read_parquet(tmp / "gen" / "labels.parquet")
        con = store.connect(db)
        define_window(con, 90)
        build_links(con)
        t = time.perf_counter()
        hits = PatternDetector().score(con)
        seconds = time.perf_counter() - t
        senders = con.sql("""SELECT bank_id, account_id, count(DISTINCT counterparty_id) AS senders FROM win_tx
                             WHERE is_in AND channel IN ('transfer', 'instant_transfer') GROUP BY ALL""").pl()
        con.close()
    pat = _ranked(hits.group_by("bank_id", "account_id").agg((pl.col("severity").sum() * 10 + pl.len()).alias("s")), "s")
    base = _ranked(senders, "senders")
    bg = labels.filter(pl.col("role") == "background")
    firing = {
        r: round(hits.filter(pl.col("rule_id") == r).join(bg, on=["bank_id", "account_id"], how="semi").height / bg.height, 5)
        for r in sorted(hits["rule_id"].unique().to_list())
    }
    any_rate = round(hits.join(bg, on=["bank_id", "account_id"], how="semi")["account_id"].n_unique() / bg.height, 5)
    hn = labels.filter(pl.col("role") == "hard_negative")
    out = {
        "seed": seed,
        "accounts": accounts,
        "pattern_seconds": round(seconds, 2),
        "hit_rows": hits.height,
        "accounts_hit": pat.height,
        "background_firing": firing,
        "background_firing_any": any_rate,
        "hard_negatives_hit": hits.join(hn, on=["bank_id", "account_id"], how="semi")["account_id"].n_unique(),
        "hard_negatives": hn.height,
    }
    planted = labels.filter(pl.col("pattern").is_not_null())
    out["hit_share_by_pattern"] = {
        k: round(v, 4)
        for k, v in planted.with_columns(pl.col("account_id").is_in(hits["account_id"].implode()).alias("hit"))
        .group_by("pattern")
        .agg(pl.col("hit").mean())
        .sort("pattern")
        .iter_rows()
    }
    for name, ranked in (("patterns", pat), ("distinct_senders", base)):
        m = evaluate(ranked, labels)
        out[name] = {
            "recall_by_pattern@2%": m["recall_by_pattern@2%"],
            "budget@2%": m["budget@2%"],
            "average_precision": m["average_precision"],
        }
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[4])
    p.add_argument("--accounts", type=int, default=10_000)
    a = p.parse_args()
    for s in a.seeds:
        print(json.dumps(measure(s, a.accounts), indent=1), flush=True)
