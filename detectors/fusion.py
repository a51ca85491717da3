"""One 0..1 score per account from rule hits and the anomaly score; the likely typology; the reasons.

Rules carry the weight (each adds by severity, noisy-or); a lone rule counts for less, following the
sources' 'constellation' advice (indicators.md §6.1: no single indicator is proof). The anomaly
model adds to what the rules leave open, only for accounts stranger than most of their segment,
so it lifts accounts that show some rules and unusual behaviour, and surfaces what no rule names.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detectors.patterns import PATTERNS
from detectors.rules import RULES
from schemas.typologies import ANOMALY, LAUNDERING

SEVERITY_WEIGHT = {1: 0.15, 2: 0.3, 3: 0.45}


@dataclass
class Fusion:
    single_rule_factor: float = 0.5     # a lone indicator counts for half
    anomaly_weight: float = 0.5         # how much of the remaining gap a maximal anomaly closes (two or more rules)
    anomaly_single_weight: float = 0.1  # the same for an account with a single rule hit
    anomaly_only_weight: float = 0.2    # the most an anomaly alone can score: below two strong rules, above a weak one
    anomaly_floor: float = 0.95         # anomaly only counts above this reference percentile
    min_score: float = 0.25              # alert threshold: two rules, or one rule with clearly unusual behaviour
    mode: str = "fused"                 # fused | rules | anomaly (ablation)

    def fuse(self, hits: pl.DataFrame, anomaly: pl.DataFrame, explanations: dict) -> pl.DataFrame:
        catalogue = RULES + PATTERNS
        labels = pl.DataFrame({"rule_id": [r.id for r in catalogue],
                               "label": [f"{r.name} [{', '.join(r.indicators)}]" for r in catalogue],
                               "constellation": [r.constellation for r in catalogue]})
        h = hits.with_columns(pl.col("severity").replace_strict(SEVERITY_WEIGHT, return_dtype=pl.Float64).alias("w"))
        per_typ = (h.filter(pl.col("typology") != LAUNDERING).group_by("bank_id", "account_id", "typology")
                   .agg(pl.col("severity").sum().alias("sev")).sort("sev", "typology", descending=[True, False])
                   .group_by("bank_id", "account_id", maintain_order=True).first().select("bank_id", "account_id", pl.col("typology").alias("rule_typology")))
        reasons = h.join(labels, on="rule_id", how="left").sort("severity", "rule_id", descending=[True, False]) \
                   .with_columns(pl.concat_str([pl.col("label"), pl.col("detail")], separator=": ").alias("reason"))
        agg = reasons.group_by("bank_id", "account_id").agg(
            (1 - (1 - pl.col("w")).product()).alias("rule_score"),
            # a network rule already joins indicators over several accounts: it counts as two
            (pl.col("rule_id").n_unique() + pl.col("rule_id").filter(pl.col("constellation")).n_unique()).alias("n_rules"),
            pl.col("rule_id").alias("rules"),
            pl.col("reason").str.join("; ").alias("rule_reasons"),
            pl.col("evidence").list.explode(keep_nulls=False, empty_as_null=False).drop_nulls().unique(maintain_order=True).head(100).alias("evidence"),
        ).join(per_typ, on=["bank_id", "account_id"], how="left")
        acc = anomaly.join(agg, on=["bank_id", "account_id"], how="full", coalesce=True).with_columns(
            pl.col("anomaly").fill_null(0.0), pl.col("rule_score").fill_null(0.0), pl.col("n_rules").fill_null(0))
        r = pl.when(pl.col("n_rules") == 1).then(pl.col("rule_score") * self.single_rule_factor).otherwise(pl.col("rule_score"))
        boost = ((pl.col("anomaly") - self.anomaly_floor) / (1 - self.anomaly_floor)).clip(0, 1)
        if self.mode == "rules":
            score = r
        elif self.mode == "anomaly":
            score = pl.col("anomaly")
        else:
            weight = (pl.when(pl.col("n_rules") > 1).then(self.anomaly_weight)
                      .when(pl.col("n_rules") == 1).then(self.anomaly_single_weight).otherwise(self.anomaly_only_weight))
            score = r + (1 - r) * weight * boost
        acc = acc.with_columns(score.alias("score"), boost.alias("boost"))
        expl = pl.DataFrame({"bank_id": [k[0] for k in explanations], "account_id": [k[1] for k in explanations],
                             "explanation": list(explanations.values())}, schema={"bank_id": pl.Utf8, "account_id": pl.Utf8, "explanation": pl.Utf8})
        acc = acc.join(expl, on=["bank_id", "account_id"], how="left")
        anomalous = (pl.col("boost") > 0) & (pl.col("explanation").fill_null("") != "")
        use_anomaly = self.mode != "rules"
        reason = pl.concat_str([
            pl.col("rule_reasons") if self.mode != "anomaly" else pl.lit(None, dtype=pl.Utf8),
            pl.when(anomalous & use_anomaly).then(pl.lit("Unusual for its segment: ") + pl.col("explanation")).otherwise(None),
        ], separator="; ", ignore_nulls=True)
        typology = pl.col("rule_typology") if self.mode != "anomaly" else pl.lit(None, dtype=pl.Utf8)
        acc = acc.with_columns(
            reason.alias("reasons"),
            pl.when(typology.is_not_null()).then(typology)
              .when(pl.col("n_rules") > 0).then(pl.lit(LAUNDERING)).otherwise(pl.lit(ANOMALY)).alias("typology"),
            pl.col("evidence").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
            pl.col("rules").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
        )
        alerts = acc.filter(pl.col("score") >= self.min_score).sort(["score", "bank_id", "account_id"], descending=[True, False, False])
        return alerts.with_columns(pl.int_range(1, pl.len() + 1).alias("rank")).select(
            "rank", "bank_id", "account_id", "score", "typology", "reasons", "evidence", "rules", "rule_score", "anomaly")
