"""Runs the rule set over the window and returns one row per (rule, account) hit, and each rule's firing rate."""
from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl

from detectors.network import build_links
from detectors.rules import SHARED_TABLES, Rule, rule_set

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
        blob = json.dumps([(r.id, r.sql, r.params, r.severity) for r in self.rules] + sorted(SHARED_TABLES.items()),
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def fit(self, con: duckdb.DuckDBPyConnection | None = None) -> "RuleDetector":
        return self

    def score(self, con: duckdb.DuckDBPyConnection, days: int) -> pl.DataFrame:
        """Needs win_tx, win_accounts and features in `con`; builds the link graph the network rules read
        (detectors.network) and the tables several rules share, and leaves the hits in temp table `hits`."""
        build_links(con, int(self.config.get("network", {}).get("max_group", 30)))
        rendered = {r.id: r.render(days) for r in self.rules}
        for name, sql in SHARED_TABLES.items():
            if any(name in q for q in rendered.values()):   # not when every rule reading it is disabled
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        con.execute(HITS_DDL)
        for stage in (1, 2):
            for r in (r for r in self.rules if r.stage == stage):
                typ = "q.typology" if r.typology == "inherit" else f"'{r.typology}'"
                try:
                    con.execute(f"""INSERT INTO hits SELECT '{r.id}', {typ}, {r.severity}, {str(r.victim_side).lower()},
                                    q.bank_id, q.account_id, CAST(q.evidence AS VARCHAR[]), q.detail FROM ({rendered[r.id]}) q""")
                except duckdb.Error as e:
                    raise RuntimeError(f"rule {r.id} failed: {e}") from e
        return con.sql("SELECT * FROM hits ORDER BY bank_id, account_id, rule_id").pl()

    def rates(self, hits: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
        """Every enabled rule's firing rate on the scored population (see firing_rates)."""
        return firing_rates(hits, scored, [r.id for r in self.rules])


def firing_rates(hits: pl.DataFrame, scored: pl.DataFrame, rule_ids: list[str] | None = None) -> pl.DataFrame:
    """Accounts hit / accounts scored per rule and bank, and over all banks (bank_id null): a rule that fires on a
    large share of ordinary accounts is measuring the population, not exploitation (fusion scales it down).
    `scored`: bank_id, accounts_scored."""
    ids = rule_ids if rule_ids is not None else sorted(hits["rule_id"].unique().to_list())
    grid = pl.DataFrame({"rule_id": ids}, schema={"rule_id": pl.Utf8}).join(
        scored.select(pl.col("bank_id").cast(pl.Utf8), pl.col("accounts_scored").cast(pl.Int64)), how="cross")
    hit = hits.group_by("rule_id", "bank_id").agg(pl.col("account_id").n_unique().cast(pl.Int64).alias("accounts_hit"))
    per_bank = grid.join(hit, on=["rule_id", "bank_id"], how="left").with_columns(pl.col("accounts_hit").fill_null(0))
    overall = per_bank.group_by("rule_id").agg(pl.col("accounts_hit").sum(), pl.col("accounts_scored").sum()) \
                      .with_columns(pl.lit(None, dtype=pl.Utf8).alias("bank_id"))
    cols = ["rule_id", "bank_id", "accounts_hit", "accounts_scored"]
    return pl.concat([per_bank.select(cols), overall.select(cols)]).with_columns(
        (pl.col("accounts_hit") / pl.col("accounts_scored").clip(1)).alias("rate")).sort("rule_id", "bank_id", nulls_last=True)
