"""Runs the rule set over the window and returns one row per (rule, account) hit, and each rule's firing rate."""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl

from detectors.network import build_links
from detectors.patterns import PatternDetector
from detectors.rules import SHARED_TABLES, Rule, rule_set
from detectors.rules.base import render_shared
from schemas.typologies import INHERIT

HITS_DDL = """CREATE OR REPLACE TEMP TABLE hits (rule_id VARCHAR, typology VARCHAR, severity INTEGER, victim_side BOOLEAN,
              bank_id VARCHAR, account_id VARCHAR, evidence VARCHAR[], detail VARCHAR)"""


class RuleDetector:
    """Configure with rule overrides; `fit` is a no-op kept for the common detector shape."""

    def __init__(self, config: dict | None = None):
        self.config = config or {}
        self.rules: list[Rule] = rule_set(self.config)

    @property
    def version(self) -> str:
        """Hash of every rule's SQL and parameters: recorded with each run."""
        blob = json.dumps(
            [(r.id, r.text, r.params, r.severity) for r in self.rules] + sorted(SHARED_TABLES.items()),
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def fit(self, con: duckdb.DuckDBPyConnection | None = None) -> "RuleDetector":
        return self

    def score(self, con: duckdb.DuckDBPyConnection, days: int) -> pl.DataFrame:
        """The whole rule step on its own (tests, tools): the link graph, the rules, the laundering patterns;
        a scoring run does the three as separate stages (detectors/scoring.py)."""
        build_links(con, int(self.config.get("network", {}).get("max_group", 30)))
        self.run_rules(con, days)
        add_pattern_hits(con, PatternDetector(self.config))
        return con.sql("SELECT * FROM hits ORDER BY bank_id, account_id, rule_id").pl()

    def run_rules(
        self, con: duckdb.DuckDBPyConnection, days: int, only: set[str] | None = None, earlier: str | None = None
    ) -> int:
        """Needs win_tx, win_accounts, features and the link graph in `con`; builds the tables several rules share
        and leaves the hits in temp table `hits`. Returns how many hits. A sharded run (detectors/sharding.py) runs
        `only` some rules, starting `hits` from the table `earlier` (the shards' hits) so stage-2 rules see them."""
        rules = [r for r in self.rules if only is None or r.id in only]
        rendered = {r.id: r.render(days) for r in rules}
        needed = {t for r in rules for t in r.reads}
        for name in SHARED_TABLES:
            if name in needed:  # not when every rule reading it is disabled
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {render_shared(name, days)}")
        con.execute(HITS_DDL)
        if earlier:
            con.execute(f"INSERT INTO hits SELECT * FROM {earlier}")
        for stage in (1, 2):
            for r in (r for r in rules if r.stage == stage):
                typ = "q.typology" if r.typology == INHERIT else "CAST(? AS VARCHAR)"
                params = [r.id] + ([] if r.typology == INHERIT else [r.typology]) + [int(r.severity), bool(r.victim_side)]
                try:  # the rule's SQL is code; its config parameters were checked to be numbers (rules.rule_set)
                    con.execute(
                        f"""INSERT INTO hits SELECT ?, {typ}, ?, ?,
                                    q.bank_id, q.account_id, CAST(q.evidence AS VARCHAR[]), q.detail FROM ({rendered[r.id]}) q""",
                        params,
                    )
                except duckdb.Error as e:
                    raise RuntimeError(f"rule {r.id} failed: {e}") from e
        return con.execute("SELECT count(*) FROM hits").fetchone()[0]

    def rates(self, hits: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
        """Every enabled rule's firing rate on the scored population (see firing_rates)."""
        return firing_rates(hits, scored, [r.id for r in self.rules] + [p.id for p in PatternDetector(self.config).patterns])


def firing_rates(hits: pl.DataFrame, scored: pl.DataFrame, rule_ids: list[str] | None = None) -> pl.DataFrame:
    """Accounts hit / accounts scored per rule and bank, and over all banks (bank_id null): a rule that fires on a
    large share of ordinary accounts is measuring the population, not exploitation (fusion scales it down).
    `scored`: bank_id, accounts_scored."""
    ids = rule_ids if rule_ids is not None else sorted(hits["rule_id"].unique().to_list())
    grid = pl.DataFrame({"rule_id": ids}, schema={"rule_id": pl.Utf8}).join(
        scored.select(pl.col("bank_id").cast(pl.Utf8), pl.col("accounts_scored").cast(pl.Int64)), how="cross"
    )
    hit = hits.group_by("rule_id", "bank_id").agg(pl.col("account_id").n_unique().cast(pl.Int64).alias("accounts_hit"))
    per_bank = grid.join(hit, on=["rule_id", "bank_id"], how="left").with_columns(pl.col("accounts_hit").fill_null(0))
    overall = (
        per_bank.group_by("rule_id")
        .agg(pl.col("accounts_hit").sum(), pl.col("accounts_scored").sum())
        .with_columns(pl.lit(None, dtype=pl.Utf8).alias("bank_id"))
    )
    cols = ["rule_id", "bank_id", "accounts_hit", "accounts_scored"]
    return (
        pl.concat([per_bank.select(cols), overall.select(cols)])
        .with_columns((pl.col("accounts_hit") / pl.col("accounts_scored").clip(1)).alias("rate"))
        .sort("rule_id", "bank_id", nulls_last=True)
    )


def add_pattern_hits(con: duckdb.DuckDBPyConnection, detector: PatternDetector) -> int:
    """The laundering patterns over the link graph, appended to `hits` like any rule's. Returns how many."""
    found = detector.score(con)
    if found.height:
        con.register("pattern_hits", found)
        try:
            con.execute(
                "INSERT INTO hits SELECT rule_id, typology, severity, victim_side, bank_id, account_id, evidence, detail FROM pattern_hits"
            )
        finally:
            con.unregister("pattern_hits")
    return found.height
