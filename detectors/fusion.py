"""One 0..1 score per account from rule hits, the anomaly score and the link graph; the likely typology; the reasons.

Rules carry the weight (each adds by severity, noisy-or); a lone rule counts for less, following the
sources' 'constellation' advice (indicators.md §6.1: no single indicator is proof), and a link to an escalated or
reported account alone (LINK_ONLY_RULES) for less again (`link_only_factor`): it says who the account deals with, not
what it does, and in the learning simulation's tune seed the accounts it raised alone were rarely planted. The anomaly
model adds to what the rules leave open, only for accounts stranger than most of their segment,
so it lifts accounts that show some rules and unusual behaviour, and surfaces what no rule names.

Three guards keep one bad rule or a flood of look-alikes from filling the list:
- Base rates. Every run measures each rule's firing rate per bank (accounts hit / accounts scored,
  RuleDetector.rates). A rule that fires on more than its ceiling (`rule_rate_ceiling`, default 0.5%
  of scored accounts, `rule_rate_ceilings` per rule; never below `rule_rate_min_accounts` accounts,
  so a small extract does not trip it) has its weight scaled by ceiling/rate in that bank, does not
  count as a rule of its own towards the constellation, and is reported loudly (rate_warnings).
- Corroboration across accounts. Accounts with evidence of their own (a rule that is not flooding nor
  a mere link, LINK_ONLY_RULES, and score >= `corroboration_min_score`) are linked directly the way cases link alerts (CaseGrouper.links:
  money between them, a shared payee or employer, a shared address, phone or device). An account
  directly linked to `others` such accounts, which together with it show `n` distinct indicators
  (a rule's first indicator; flooding rules not counted), gains
      corroboration_weight * min(1, others / corroboration_full) * min(1, (n - 1) / corroboration_full)
  of the gap to 1, so five linked accounts with weak but different signals outrank one account with
  one strong look-alike rule. It needs `corroboration_min_linked` others (2: a pair is a household as
  often as a ring, and a look-alike that pays one ring member should not ride on it); an account
  linked to more than `corroboration_max_linked` such accounts sits on a hub and gains nothing.
- A budget (AlertBudget): at most `share` of a bank's scored accounts (and `max_alerts`) per run, best
  first; `min_score` stays the floor under it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from detectors.patterns import PATTERNS
from detectors.rules import RULES
from schemas.settings import BudgetSettings, FusionSettings
from schemas.typologies import ANOMALY, LAUNDERING

_F, _B = FusionSettings(), BudgetSettings()  # the defaults, defined once in schemas/settings.py

SEVERITY_WEIGHT = {1: 0.15, 2: 0.3, 3: 0.45}
KEYS = ["bank_id", "account_id"]
CORROBORATED = "Corroborated: linked to "  # the reason's prefix; scoring appends the case the account ends up in
# rules whose only evidence is a link (propagation from an escalated account): no evidence of the account's own for
# corroboration, which would count the same link twice and turn a lift into an accusation
LINK_ONLY_RULES = ("NET_LINKED_TO_REPORTED",)


@dataclass
class Fusion:
    single_rule_factor: float = _F.single_rule_factor  # a lone indicator counts for half
    link_only_factor: float = _F.link_only_factor  # ... and a link alone (LINK_ONLY_RULES) for this share of that
    anomaly_weight: float = _F.anomaly_weight  # how much of the remaining gap a maximal anomaly closes (two or more rules)
    anomaly_single_weight: float = _F.anomaly_single_weight  # the same for an account with a single rule hit
    anomaly_only_weight: float = (
        _F.anomaly_only_weight
    )  # the most an anomaly alone can score: below two strong rules, above a weak one
    anomaly_floor: float = _F.anomaly_floor  # anomaly only counts above this reference percentile
    min_score: float = _F.min_score  # alert threshold: two rules, or one rule with clearly unusual behaviour
    rule_rate_ceiling: float = (
        _F.rule_rate_ceiling
    )  # a rule firing on more than this share of a bank's scored accounts is flooding
    rule_rate_ceilings: dict | None = _F.rule_rate_ceilings  # per rule id: its own ceiling
    rule_rate_min_accounts: int = (
        _F.rule_rate_min_accounts
    )  # ... but a rule is never flooding while it fires on this many accounts or fewer
    corroboration_weight: float = _F.corroboration_weight  # how much of the remaining gap full corroboration closes
    corroboration_full: int = (
        _F.corroboration_full
    )  # other linked accounts, and distinct indicators beyond the first, for full weight
    corroboration_min_score: float = (
        _F.corroboration_min_score
    )  # an account with a rule counts as linked evidence from this score (a lone weak rule: 0.075)
    corroboration_min_linked: int = _F.corroboration_min_linked  # corroboration needs this many other linked evidence accounts
    corroboration_max_linked: int = (
        _F.corroboration_max_linked
    )  # linked to more evidence accounts than this: a hub, no corroboration
    mode: str = "fused"  # fused | rules | anomaly (ablation)

    def fuse(
        self,
        hits: pl.DataFrame,
        anomaly: pl.DataFrame,
        explanations: dict,
        rates: pl.DataFrame | None = None,
        links: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Ranked alerts at score >= min_score. `rates` as from RuleDetector.rates (None: measured on the accounts of
        `anomaly`, every scored account); `links` (account_id, linked_id) pairs linked accounts (None: no corroboration)."""
        acc = self.account_scores(hits, anomaly, explanations, rates)
        if links is not None:
            acc = self.corroborate(acc, links)
        return self.rank(acc)

    def rule_factors(self, rates: pl.DataFrame) -> pl.DataFrame:
        """Per rule and bank: the ceiling, whether the rule floods and the factor its weight is scaled by."""
        per_bank = rates.filter(pl.col("bank_id").is_not_null())
        ceiling = pl.col("rule_id").replace_strict(
            self.rule_rate_ceilings or {}, default=self.rule_rate_ceiling, return_dtype=pl.Float64
        )
        allowed = pl.max_horizontal(pl.col("ceiling") * pl.col("accounts_scored"), pl.lit(float(self.rule_rate_min_accounts)))
        return per_bank.with_columns(ceiling.alias("ceiling")).with_columns(
            (pl.col("accounts_hit") > allowed).alias("flooding"),
            pl.when(pl.col("accounts_hit") > allowed).then(allowed / pl.col("accounts_hit")).otherwise(1.0).alias("factor"),
        )

    def account_scores(
        self, hits: pl.DataFrame, anomaly: pl.DataFrame, explanations: dict, rates: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """Every account of `anomaly` or `hits` with its score before corroboration and the budget."""
        if rates is None:
            from detectors.rule_detector import firing_rates

            rates = firing_rates(hits, anomaly.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
        catalogue = RULES + PATTERNS
        labels = pl.DataFrame(
            {
                "rule_id": [r.id for r in catalogue],
                "label": [f"{r.name} [{', '.join(r.indicators)}]" for r in catalogue],
                "indicators": [list(r.indicators[:1]) if r.id not in LINK_ONLY_RULES else [] for r in catalogue],  # its first
                "constellation": [r.constellation for r in catalogue],
                "footprint": [r.footprint for r in catalogue],
            },
            schema_overrides={"footprint": pl.Utf8},
        )
        factors = self.rule_factors(rates).select("rule_id", "bank_id", "factor", rate=pl.col("rate"))
        h = (
            hits.join(factors, on=["rule_id", "bank_id"], how="left")
            .join(labels.select("rule_id", "footprint"), on="rule_id", how="left")
            .with_columns(pl.col("factor").fill_null(1.0))
            .with_columns(
                (pl.col("severity").replace_strict(SEVERITY_WEIGHT, return_dtype=pl.Float64) * pl.col("factor")).alias("w"),
                (pl.col("factor") < 1).alias("flooding"),
            )
            .with_columns(  # the rules of one lawful activity's footprint add up to its strongest one (Rule.footprint)
                pl.when(
                    pl.col("footprint").is_not_null()
                    & (pl.col("w").rank("ordinal", descending=True).over("bank_id", "account_id", "footprint") > 1)
                )
                .then(0.0)
                .otherwise(pl.col("w"))
                .alias("w_family"),
                pl.coalesce("footprint", "rule_id").alias("family"),
            )
        )
        per_typ = (
            h.filter(pl.col("typology") != LAUNDERING)
            .group_by("bank_id", "account_id", "typology")
            .agg(pl.col("w").sum().alias("sev"))
            .sort("sev", "typology", descending=[True, False])
            .group_by("bank_id", "account_id", maintain_order=True)
            .first()
            .select("bank_id", "account_id", pl.col("typology").alias("rule_typology"))
        )
        flood_note = (
            pl.when(pl.col("flooding"))
            .then(
                pl.format(
                    " (this rule fires on {}% of the bank's accounts: weight x{})",
                    (pl.col("rate") * 100).round(1),
                    pl.col("factor").round(3),
                )
            )
            .otherwise(pl.lit(""))
        )
        reasons = (
            h.join(labels, on="rule_id", how="left")
            .sort("w", "rule_id", descending=[True, False])
            .with_columns((pl.concat_str([pl.col("label"), pl.col("detail")], separator=": ") + flood_note).alias("reason"))
        )
        sound = ~pl.col("flooding")
        agg = (
            reasons.group_by("bank_id", "account_id")
            .agg(
                (1 - (1 - pl.col("w_family")).product()).alias("rule_score"),
                # a network rule already joins indicators over several accounts: it counts as two; a flooding rule counts
                # as none; the rules of one footprint count as one
                (
                    pl.col("family").filter(sound).n_unique()
                    + pl.col("rule_id").filter(sound & pl.col("constellation")).n_unique()
                ).alias("n_rules"),
                pl.col("rule_id").alias("rules"),
                # a link and nothing of its own: flooding rules, weighed down to next to nothing, do not count as own evidence
                (
                    (pl.col("rule_id").is_in(LINK_ONLY_RULES) | pl.col("flooding")).all()
                    & pl.col("rule_id").is_in(LINK_ONLY_RULES).any()
                ).alias("link_only"),
                pl.col("indicators")
                .filter(sound)
                .list.explode(keep_nulls=False, empty_as_null=False)
                .drop_nulls()
                .unique()
                .sort()
                .alias("indicators"),
                pl.col("reason").str.join("; ").alias("rule_reasons"),
                pl.col("evidence")
                .list.explode(keep_nulls=False, empty_as_null=False)
                .drop_nulls()
                .unique(maintain_order=True)
                .head(100)
                .alias("evidence"),
            )
            .join(per_typ, on=["bank_id", "account_id"], how="left")
        )
        acc = anomaly.join(agg, on=["bank_id", "account_id"], how="full", coalesce=True).with_columns(
            pl.col("anomaly").fill_null(0.0), pl.col("rule_score").fill_null(0.0), pl.col("n_rules").fill_null(0)
        )
        has_rules = pl.col("rule_score") > 0
        r = (
            pl.when(has_rules & pl.col("link_only").fill_null(False))
            .then(pl.col("rule_score") * self.single_rule_factor * self.link_only_factor)
            .when(has_rules & (pl.col("n_rules") <= 1))
            .then(pl.col("rule_score") * self.single_rule_factor)
            .otherwise(pl.col("rule_score"))
        )
        boost = ((pl.col("anomaly") - self.anomaly_floor) / (1 - self.anomaly_floor)).clip(0, 1)
        if self.mode == "rules":
            score = r
        elif self.mode == "anomaly":
            score = pl.col("anomaly")
        else:
            weight = (
                pl.when(pl.col("n_rules") > 1)
                .then(self.anomaly_weight)
                .when(has_rules)
                .then(self.anomaly_single_weight)
                .otherwise(self.anomaly_only_weight)
            )
            score = r + (1 - r) * weight * boost
        acc = acc.with_columns(score.alias("score"), boost.alias("boost"))
        expl = pl.DataFrame(
            {
                "bank_id": [k[0] for k in explanations],
                "account_id": [k[1] for k in explanations],
                "explanation": list(explanations.values()),
            },
            schema={"bank_id": pl.Utf8, "account_id": pl.Utf8, "explanation": pl.Utf8},
        )
        acc = acc.join(expl, on=["bank_id", "account_id"], how="left")
        anomalous = (pl.col("boost") > 0) & (pl.col("explanation").fill_null("") != "")
        use_anomaly = self.mode != "rules"
        reason = pl.concat_str(
            [
                pl.col("rule_reasons") if self.mode != "anomaly" else pl.lit(None, dtype=pl.Utf8),
                pl.when(anomalous & use_anomaly)
                .then(pl.lit("Unusual for its segment: ") + pl.col("explanation"))
                .otherwise(None),
            ],
            separator="; ",
            ignore_nulls=True,
        )
        typology = pl.col("rule_typology") if self.mode != "anomaly" else pl.lit(None, dtype=pl.Utf8)
        return acc.with_columns(
            reason.alias("reasons"),
            pl.when(typology.is_not_null())
            .then(typology)
            .when(pl.col("rule_score") > 0)
            .then(pl.lit(LAUNDERING))
            .otherwise(pl.lit(ANOMALY))
            .alias("typology"),
            pl.col("evidence").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
            pl.col("rules").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
            pl.col("indicators").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
            pl.lit(None, dtype=pl.Int64).alias("corroborated"),
        )

    def evidence(self, acc: pl.DataFrame) -> pl.DataFrame:
        """The accounts that count as linked evidence for corroboration (bank_id, account_id): a sound rule of their own."""
        if self.mode == "anomaly":
            return acc.filter(pl.lit(False)).select(KEYS)
        return acc.filter((pl.col("score") >= self.corroboration_min_score) & (pl.col("indicators").list.len() > 0)).select(KEYS)

    def corroborate(self, acc: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
        """Add the corroboration term (module docstring) for evidence accounts linked to other evidence accounts;
        `links` holds pairs (account_id, linked_id), both directions (as CaseGrouper.links)."""
        if self.mode == "anomaly" or links.height == 0:
            return acc
        ev = acc.join(self.evidence(acc), on=KEYS, how="semi").select(*KEYS, "indicators")
        own = ev.select("account_id", "indicators")
        pairs = (
            links.select("account_id", "linked_id")
            .join(own.select("account_id"), on="account_id", how="semi")
            .join(own.rename({"account_id": "linked_id"}), on="linked_id")
        )
        per = (
            pairs.group_by("account_id")
            .agg(pl.col("linked_id").n_unique().alias("others"), pl.col("indicators").alias("theirs"))
            .join(own, on="account_id")
            .with_columns(
                pl.concat_list(
                    pl.col("indicators"),
                    pl.col("theirs").list.eval(pl.element().list.explode(keep_nulls=False, empty_as_null=False)),
                )
                .list.unique()
                .list.sort()
                .alias("linked_indicators")
            )
        )
        full = float(self.corroboration_full)
        x = (
            per.with_columns(pl.col("linked_indicators").list.len().alias("n_ind"))
            .filter(
                (pl.col("n_ind") >= 2)
                & pl.col("others").is_between(max(self.corroboration_min_linked, 1), self.corroboration_max_linked)
            )
            .with_columns(
                (
                    self.corroboration_weight * (pl.col("others") / full).clip(0, 1) * ((pl.col("n_ind") - 1) / full).clip(0, 1)
                ).alias("term")
            )
        )
        named = pl.col("linked_indicators").list.head(8).list.join(", ") + pl.when(pl.col("n_ind") > 8).then(
            pl.lit(", ...")
        ).otherwise(pl.lit(""))
        words = pl.format(
            CORROBORATED + "{} other account{} with signals of their own, {} distinct indicators ({})",
            pl.col("others"),
            pl.when(pl.col("others") == 1).then(pl.lit("")).otherwise(pl.lit("s")),
            pl.col("n_ind"),
            named,
        )
        x = x.select("account_id", "term", "others", words.alias("corroboration"))
        out = acc.drop("corroborated").join(x, on="account_id", how="left")
        return out.with_columns(
            (pl.col("score") + (1 - pl.col("score")) * pl.col("term").fill_null(0.0)).alias("score"),
            pl.concat_str(
                [pl.col("reasons").replace("", None), pl.col("corroboration")], separator="; ", ignore_nulls=True
            ).alias("reasons"),
            pl.col("others").cast(pl.Int64).alias("corroborated"),
        ).drop("term", "others", "corroboration")

    def rank(self, acc: pl.DataFrame) -> pl.DataFrame:
        """Accounts at score >= min_score, best first, ranked."""
        alerts = acc.filter(pl.col("score") >= self.min_score).sort(
            ["score", "bank_id", "account_id"], descending=[True, False, False]
        )
        return alerts.with_columns(pl.int_range(1, pl.len() + 1).alias("rank")).select(
            "rank",
            "bank_id",
            "account_id",
            "score",
            "typology",
            "reasons",
            "evidence",
            "rules",
            "rule_score",
            "anomaly",
            "corroborated",
        )

    def rate_report(self, rates: pl.DataFrame) -> dict:
        """Every rule's firing rate, overall and per bank, its ceiling and (where it floods) the weight factor: for `runs`."""
        f = self.rule_factors(rates)
        overall = rates.filter(pl.col("bank_id").is_null())
        out = {}
        for r in overall.sort("rate", "rule_id", descending=[True, False]).iter_rows(named=True):
            banks = f.filter(pl.col("rule_id") == r["rule_id"]).sort("bank_id")
            out[r["rule_id"]] = {
                "accounts_hit": r["accounts_hit"],
                "accounts_scored": r["accounts_scored"],
                "rate": round(r["rate"], 6),
                "ceiling": float(banks["ceiling"][0]) if banks.height else self.rule_rate_ceiling,
                "over_ceiling": bool(banks["flooding"].any()) if banks.height else False,
                "by_bank": {
                    b["bank_id"]: {
                        "accounts_hit": b["accounts_hit"],
                        "accounts_scored": b["accounts_scored"],
                        "rate": round(b["rate"], 6),
                        "weight_factor": round(b["factor"], 6),
                    }
                    for b in banks.iter_rows(named=True)
                },
            }
        return out


def rate_warnings(report: dict) -> list[str]:
    """One loud line per rule over its ceiling, naming the rule, its rate and the ceiling."""
    lines = []
    for rule, r in report.items():
        if not r["over_ceiling"]:
            continue
        banks = ", ".join(
            f"{b} {v['rate']:.1%} (weight x{v['weight_factor']:.3g})" for b, v in r["by_bank"].items() if v["weight_factor"] < 1
        )
        lines.append(
            f"WARNING: rule {rule} fires on {r['rate']:.1%} of scored accounts ({r['accounts_hit']} of {r['accounts_scored']}), "
            f"over its ceiling of {r['ceiling']:.1%}: weight scaled down in {banks}"
        )
    return lines


@dataclass
class AlertBudget:
    """At most `share` of a bank's scored accounts alerted per run (and at most `max_alerts` per bank), best first.
    share None (or >= 1) and max_alerts None switch it off; `min_alerts` leaves room for a few in a small extract."""

    share: float | None = _B.share
    max_alerts: int | None = _B.max_alerts
    min_alerts: int = _B.min_alerts

    def allowed(self, accounts_scored: int) -> int | None:
        caps = []
        if self.share is not None and self.share < 1:
            caps.append(max(math.floor(self.share * accounts_scored), self.min_alerts))
        if self.max_alerts is not None:
            caps.append(int(self.max_alerts))
        return min(caps) if caps else None

    def apply(self, alerts: pl.DataFrame, scored: pl.DataFrame) -> tuple[pl.DataFrame, list[dict]]:
        """alerts (ranked, best first) and accounts scored per bank (bank_id, accounts_scored) -> the alerts kept,
        re-ranked, and per bank what the budget cut: count and the lowest score kept, the highest cut."""
        allowed = {b: self.allowed(n) for b, n in scored.select("bank_id", "accounts_scored").iter_rows()}
        cap = pl.col("bank_id").replace_strict(allowed, default=None, return_dtype=pl.Int64)
        a = alerts.sort(["score", "bank_id", "account_id"], descending=[True, False, False]).with_columns(
            pl.int_range(1, pl.len() + 1).over("bank_id").alias("_in_bank"), cap.alias("_cap")
        )
        keep = pl.col("_cap").is_null() | (pl.col("_in_bank") <= pl.col("_cap"))
        kept, cut = a.filter(keep), a.filter(~keep)
        report = []
        for bank in sorted(set(allowed) | set(a["bank_id"].unique().to_list())):
            k, c = kept.filter(pl.col("bank_id") == bank), cut.filter(pl.col("bank_id") == bank)
            report.append(
                {
                    "bank_id": bank,
                    "accounts_scored": scored.filter(pl.col("bank_id") == bank)["accounts_scored"].sum(),
                    "allowed": allowed.get(bank),
                    "candidates": k.height + c.height,
                    "kept": k.height,
                    "cut": c.height,
                    "lowest_kept": round(float(k["score"].min()), 4) if k.height else None,
                    "highest_cut": round(float(c["score"].max()), 4) if c.height else None,
                }
            )
        kept = kept.drop("_in_bank", "_cap").with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
        return kept, report


def budget_lines(report: list[dict]) -> list[str]:
    """The budget's cut in words, one line per bank where it cut anything."""
    return [
        f"budget: {r['bank_id']} kept {r['kept']} of {r['candidates']} alerts (at most {r['allowed']} of {r['accounts_scored']} "
        f"accounts scored); cut {r['cut']}, lowest score kept {r['lowest_kept']:.3f}, highest cut {r['highest_cut']:.3f}"
        for r in report
        if r["cut"]
    ]


# ---- tuning: the re-ranker learned from investigators' decisions (detectors/reranker.py) ------------------------------
LEARNED = "Learned from {} decisions: "  # the reason's prefix


def blend_learned(alerts: pl.DataFrame, learned: pl.DataFrame, weight: float, decisions: int) -> pl.DataFrame:
    """alerts (ranked) and per account the re-ranker's probability `p` and its words `why` -> score
    x (1 + weight x (2p - 1)), best first, re-ranked, the words appended to the reasons. The model moves a score by at
    most `weight` of itself: it learned from the top of past lists, so for accounts the rules and the forest put far
    below anything decided it can only reorder, not lift them over the evidence. An account without a probability
    keeps its score; weight 0 changes nothing."""
    if weight <= 0 or alerts.height == 0:
        return alerts
    a = alerts.join(learned.select(*KEYS, "p", "why"), on=KEYS, how="left")
    words = pl.format(LEARNED + "probability {}; {}", pl.lit(decisions), pl.col("p").round(2), pl.col("why"))
    a = a.with_columns(
        pl.when(pl.col("p").is_not_null())
        .then((pl.col("score") * (1 + weight * (2 * pl.col("p") - 1))).clip(upper_bound=1.0))  # a score stays in [0, 1]
        .otherwise(pl.col("score"))
        .alias("score"),
        pl.when(pl.col("p").is_not_null())
        .then(pl.concat_str([pl.col("reasons").replace("", None), words], separator="; ", ignore_nulls=True))
        .otherwise(pl.col("reasons"))
        .alias("reasons"),
    ).drop("p", "why")
    a = a.sort(["score", "bank_id", "account_id"], descending=[True, False, False])
    return a.with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
