"""Runs the rule set over the window and returns one row per (rule, account) hit."""
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
        blob = json.dumps([(r.id, r.text, r.params, r.severity) for r in self.rules] + sorted(SHARED_TABLES.items()),
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def fit(self, con: duckdb.DuckDBPyConnection | None = None) -> "RuleDetector":
        return self

    def score(self, con: duckdb.DuckDBPyConnection, days: int) -> pl.DataFrame:
        """Needs win_tx, win_accounts and features in `con`; builds the link graph the network rules read
        (detectors.network) and the tables several rules share, and leaves the hits in temp table `hits`."""
        build_links(con, int(self.config.get("network", {}).get("max_group", 30)))
        rendered = {r.id: r.render(days) for r in self.rules}
        needed = {t for r in self.rules for t in r.reads}
        for name in SHARED_TABLES:
            if name in needed:                                # not when every rule reading it is disabled
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {render_shared(name)}")
        con.execute(HITS_DDL)
        for stage in (1, 2):
            for r in (r for r in self.rules if r.stage == stage):
                typ = "q.typology" if r.typology == INHERIT else "CAST(? AS VARCHAR)"
                params = [r.id] + ([] if r.typology == INHERIT else [r.typology]) + [int(r.severity), bool(r.victim_side)]
                try:   # the rule's SQL is code; its config parameters were checked to be numbers (rules.rule_set)
                    con.execute(f"""INSERT INTO hits SELECT ?, {typ}, ?, ?,
                                    q.bank_id, q.account_id, CAST(q.evidence AS VARCHAR[]), q.detail FROM ({rendered[r.id]}) q""", params)
                except duckdb.Error as e:
                    raise RuntimeError(f"rule {r.id} failed: {e}") from e
        patterns = PatternDetector(self.config).score(con)   # laundering patterns over the same link graph
        if patterns.height:
            con.register("pattern_hits", patterns)
            con.execute("INSERT INTO hits SELECT rule_id, typology, severity, victim_side, bank_id, account_id, evidence, detail FROM pattern_hits")
            con.unregister("pattern_hits")
        return con.sql("SELECT * FROM hits ORDER BY bank_id, account_id, rule_id").pl()
