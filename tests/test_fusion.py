"""Fusion's guards against floods: rule base rates, the alert budget, corroboration across linked accounts."""

import math

import polars as pl
import pytest

from detectors.fusion import SEVERITY_WEIGHT, AlertBudget, Fusion, budget_lines, rate_warnings
from detectors.rule_detector import firing_rates
from detectors.rules import RULES

CD01_SEVERITY = next(r.severity for r in RULES if r.id == "CD01_TELECOM_BURST")

HIT_SCHEMA = {
    "rule_id": pl.Utf8,
    "typology": pl.Utf8,
    "severity": pl.Int64,
    "victim_side": pl.Boolean,
    "bank_id": pl.Utf8,
    "account_id": pl.Utf8,
    "evidence": pl.List(pl.Utf8),
    "detail": pl.Utf8,
}


def _hits(rows):
    """rows: (rule_id, bank_id, account_id[, severity]); severity and typology from the rule set unless given."""
    rules = {r.id: r for r in RULES}
    out = []
    for row in rows:
        rule, bank, account = row[:3]
        sev = row[3] if len(row) > 3 else rules[rule].severity
        typ = rules[rule].typology if rules[rule].typology != "inherit" else "sexual_exploitation"
        out.append(
            {
                "rule_id": rule,
                "typology": typ,
                "severity": sev,
                "victim_side": False,
                "bank_id": bank,
                "account_id": account,
                "evidence": [f"t-{account}-{rule}"],
                "detail": "figures",
            }
        )
    return pl.DataFrame(out, schema=HIT_SCHEMA)


def _population(banks: dict, anomalous: dict | None = None):
    """Every scored account of each bank (bank -> count) with an unremarkable anomaly score, some set by hand."""
    ids = [(b, f"{b}-{i:05d}") for b, n in banks.items() for i in range(n)]
    a = pl.DataFrame({"bank_id": [b for b, _ in ids], "account_id": [x for _, x in ids], "anomaly": [0.5] * len(ids)})
    if anomalous:
        a = a.with_columns(
            pl.col("account_id").replace_strict(anomalous, default=pl.col("anomaly"), return_dtype=pl.Float64).alias("anomaly")
        )
    return a


def test_firing_rates_per_bank_and_overall():
    hits = _hits(
        [("SE10_TAXI", "A", f"A-{i:05d}") for i in range(30)] + [("SE10_TAXI", "B", "B-00001"), ("SE10_TAXI", "B", "B-00001")]
    )
    scored = pl.DataFrame({"bank_id": ["A", "B"], "accounts_scored": [100, 300]})
    r = firing_rates(hits, scored, ["SE10_TAXI", "SE02_HOTELS"])
    rate = {(x["rule_id"], x["bank_id"]): (x["accounts_hit"], x["rate"]) for x in r.iter_rows(named=True)}
    assert rate[("SE10_TAXI", "A")] == (30, 0.3) and rate[("SE10_TAXI", "B")] == (1, 1 / 300)
    assert rate[("SE10_TAXI", None)] == (31, 31 / 400)
    assert rate[("SE02_HOTELS", None)] == (0, 0.0)  # every enabled rule is listed, also one that never fired


def test_a_flooding_rule_is_down_weighted_and_reported():
    pop = _population({"A": 1000, "B": 1000})
    flood = [("CD01_TELECOM_BURST", "A", f"A-{i:05d}") for i in range(300)]  # 30% of bank A
    hits = _hits(
        flood
        + [
            ("SE04_NIGHT_CASH", "A", "A-00000"),  # flooding rule plus one real indicator
            ("SE04_NIGHT_CASH", "A", "A-00500"),
            ("SE02_HOTELS", "A", "A-00500"),  # two real indicators
            ("CD01_TELECOM_BURST", "B", "B-00001"),
            ("SE04_NIGHT_CASH", "B", "B-00001"),
        ]
    )  # the same rule, rare in B
    rates = firing_rates(hits, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
    fusion = Fusion(min_score=0.0)
    scores = dict(fusion.fuse(hits, pop, {}, rates).select("account_id", "score").iter_rows())
    # in bank A the telecom rule's weight is scaled by 10/300 (0.5% of 1000 accounts, but at least 10) and no longer counts as a rule
    w = SEVERITY_WEIGHT[3] * 10 / 300
    assert math.isclose(scores["A-00000"], (1 - (1 - w) * (1 - SEVERITY_WEIGHT[2])) * 0.5)
    assert scores["A-00001"] < 0.01
    assert scores["A-00500"] > scores["A-00000"]
    # in bank B it is rare: full weight, two rules
    assert math.isclose(scores["B-00001"], 1 - (1 - SEVERITY_WEIGHT[3]) * (1 - SEVERITY_WEIGHT[2]))
    assert not {f"A-{i:05d}" for i in range(1, 300)} & set(
        Fusion().fuse(hits, pop, {}, rates)["account_id"]
    )  # none alerted alone
    reasons = dict(fusion.fuse(hits, pop, {}, rates).select("account_id", "reasons").iter_rows())
    assert "fires on 30.0% of the bank's accounts" in reasons["A-00000"] and "fires on" not in reasons["B-00001"]
    report = fusion.rate_report(rates)
    assert report["CD01_TELECOM_BURST"]["over_ceiling"] and not report["SE04_NIGHT_CASH"]["over_ceiling"]
    assert math.isclose(report["CD01_TELECOM_BURST"]["by_bank"]["A"]["weight_factor"], round(10 / 300, 6))
    assert report["CD01_TELECOM_BURST"]["by_bank"]["B"]["weight_factor"] == 1.0
    lines = rate_warnings(report)
    assert (
        len(lines) == 1
        and "CD01_TELECOM_BURST" in lines[0]
        and f"{301 / 2000:.1%}" in lines[0]
        and "0.5%" in lines[0]
        and "A 30.0%" in lines[0]
    )
    # a per-rule ceiling above its rate: not flooding, full weight
    relaxed = Fusion(min_score=0.0, rule_rate_ceilings={"CD01_TELECOM_BURST": 0.4})
    assert not rate_warnings(relaxed.rate_report(rates))
    assert math.isclose(
        dict(relaxed.fuse(hits, pop, {}, rates).select("account_id", "score").iter_rows())["A-00001"], SEVERITY_WEIGHT[3] * 0.5
    )


def test_a_rule_at_its_ceiling_is_not_flooding():
    pop = _population({"A": 4000})
    hits = _hits([("SE10_TAXI", "A", f"A-{i:05d}") for i in range(20)])  # exactly 0.5%
    rates = firing_rates(hits, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
    assert not Fusion().rate_report(rates)["SE10_TAXI"]["over_ceiling"]
    more = _hits([("SE10_TAXI", "A", f"A-{i:05d}") for i in range(21)])
    rates = firing_rates(more, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
    assert Fusion().rate_report(rates)["SE10_TAXI"]["over_ceiling"]


def test_budget_keeps_the_best_share_per_bank_and_reports_the_cut():
    scores_a = [0.9 - 0.01 * i for i in range(30)]
    alerts = pl.DataFrame(
        {
            "bank_id": ["A"] * 30 + ["B"] * 3,
            "account_id": [f"a{i}" for i in range(30)] + ["b0", "b1", "b2"],
            "score": scores_a + [0.95, 0.3, 0.26],
        }
    ).sample(fraction=1.0, shuffle=True, seed=3)
    alerts = alerts.with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
    scored = pl.DataFrame({"bank_id": ["A", "B"], "accounts_scored": [1000, 500]})
    kept, report = AlertBudget(share=0.01, min_alerts=0).apply(alerts, scored)
    assert sorted(kept.filter(pl.col("bank_id") == "A")["account_id"].to_list()) == sorted(f"a{i}" for i in range(10))
    assert set(kept.filter(pl.col("bank_id") == "B")["account_id"]) == {"b0", "b1", "b2"}  # under its budget of 5
    assert kept["score"].is_sorted(descending=True) and kept["rank"].to_list() == list(range(1, 14))
    a, b = report
    assert (a["bank_id"], a["allowed"], a["candidates"], a["kept"], a["cut"]) == ("A", 10, 30, 10, 20)
    assert math.isclose(a["lowest_kept"], 0.81) and math.isclose(a["highest_cut"], 0.80)
    assert (b["allowed"], b["cut"], b["highest_cut"]) == (5, 0, None)
    assert budget_lines(report) == [
        "budget: A kept 10 of 30 alerts (at most 10 of 1000 accounts scored); cut 20, lowest score kept 0.810, highest cut 0.800"
    ]
    assert AlertBudget(share=0.01, max_alerts=4, min_alerts=0).apply(alerts, scored)[0].height == 4 + 3
    assert AlertBudget(share=0.01, min_alerts=12).apply(alerts, scored)[1][0]["kept"] == 12  # a small bank still gets a few
    off, rep = AlertBudget(share=None).apply(alerts, scored)
    assert off.height == alerts.height and sum(r["cut"] for r in rep) == 0 and not budget_lines(rep)


def _linked(*groups):
    """Link pairs (both directions) between every two accounts of each group."""
    pairs = [(a, b) for g in groups for a in g for b in g if a != b]
    return pl.DataFrame(
        {"account_id": [a for a, _ in pairs], "linked_id": [b for _, b in pairs]},
        schema={"account_id": pl.Utf8, "linked_id": pl.Utf8},
    )


def test_a_linked_case_of_weak_signals_outranks_one_strong_lone_rule():
    weak = ["SE10_TAXI", "LE08_BUSINESS_LODGING", "ML_MANY_DEVICES", "SE04_NIGHT_CASH", "SE11_TOPUPS"]  # severity 1-2, each alone
    ring = [f"A-{i:05d}" for i in range(5)]
    lone, payer = "A-00100", "A-00200"
    pop = _population({"A": 2000}, {lone: 0.99})  # the look-alike is also unusual
    hits = _hits(
        [(rule, "A", acc) for rule, acc in zip(weak, ring)]
        + [("SE07_CLIENT_PAYMENTS", "A", lone), ("SE04_NIGHT_CASH", "A", payer)]
    )
    links = pl.concat([_linked(ring), _linked([payer, ring[0]])])  # the payer is linked to one member only
    out = Fusion().fuse(hits, pop, {}, links=links)
    ranked = out["account_id"].to_list()
    assert set(ranked[:5]) == set(ring) and ranked[5] == lone and payer not in ranked
    top = out.filter(pl.col("account_id") == ring[1]).row(0, named=True)
    assert (
        "linked to 4 other accounts with signals of their own, 5 distinct indicators (LE-08, SE-04, SE-10, SE-11, SE-23)"
        in top["reasons"]
    )
    assert top["corroborated"] == 4 and out.filter(pl.col("account_id") == lone)["corroborated"][0] is None
    scores = dict(Fusion(min_score=0).fuse(hits, pop, {}, links=links).select("account_id", "score").iter_rows())
    assert math.isclose(scores[ring[1]], 0.075 + 0.925 * 0.4)  # a lone weak rule (0.075) with full corroboration
    assert math.isclose(scores[payer], 0.15)  # one other account: no corroboration
    paired = dict(
        Fusion(min_score=0, corroboration_min_linked=1).fuse(hits, pop, {}, links=links).select("account_id", "score").iter_rows()
    )
    assert math.isclose(paired[payer], 0.15 + 0.85 * 0.4 * 1 / 4 * 1 / 4)  # unless pairs count: then a little
    # a link to an escalated account is no evidence of its own: it lifts, corroboration does not count it again
    friend = "A-00300"
    linked = _hits([(rule, "A", acc) for rule, acc in zip(weak, ring)] + [("NET_LINKED_TO_REPORTED", "A", friend)])
    out = Fusion(min_score=0).fuse(linked, pop, {}, links=_linked(ring + [friend]))
    assert out.filter(pl.col("account_id") == friend)["corroborated"][0] is None
    assert out.filter(pl.col("account_id") == ring[0])["corroborated"][0] == 4
    # near misses: unlinked, the five show one and the same indicator, or they sit on a hub
    assert set(Fusion().fuse(hits, pop, {})["account_id"]) == {lone}
    same = _hits([("SE04_NIGHT_CASH", "A", acc) for acc in ring] + [("SE07_CLIENT_PAYMENTS", "A", lone)])
    assert set(Fusion().fuse(same, pop, {}, links=links)["account_id"]) == {lone}
    assert set(Fusion(corroboration_max_linked=3).fuse(hits, pop, {}, links=_linked(ring))["account_id"]) == {lone}
    # a flooding rule is no evidence: its accounts do not corroborate
    flooders = [f"A-{i:05d}" for i in range(200, 600)]
    flood = _hits([(rule, "A", acc) for rule, acc in zip(weak, ring)] + [("CD01_TELECOM_BURST", "A", acc) for acc in flooders])
    out = Fusion(min_score=0, corroboration_max_linked=1000).fuse(flood, pop, {}, links=_linked(ring + flooders))
    assert out.filter(pl.col("account_id") == ring[0])["corroborated"][0] == 4
    assert out.filter(pl.col("account_id").is_in(flooders))["corroborated"].null_count() == len(flooders)


def _fuse_as_before(hits: pl.DataFrame, anomaly: pl.DataFrame) -> dict:
    """The fusion formula before base rates, corroboration and the budget, written out account by account."""
    constellation = {r.id for r in RULES if r.constellation}
    out = {}
    for bank, acc, a in anomaly.iter_rows():
        mine = hits.filter((pl.col("bank_id") == bank) & (pl.col("account_id") == acc))
        rule_score = 1 - math.prod(1 - SEVERITY_WEIGHT[s] for s in mine["severity"])
        rules = set(mine["rule_id"])
        n = len(rules) + len(rules & constellation)
        r = rule_score * 0.5 if n == 1 else rule_score
        boost = min(max((a - 0.95) / 0.05, 0), 1)
        weight = 0.5 if n > 1 else 0.1 if n == 1 else 0.2
        out[acc] = r + (1 - r) * weight * boost
    return out


def test_without_flooding_links_or_budget_the_ranking_is_as_before():
    rows = [
        ("SE07_CLIENT_PAYMENTS", "A", "A-00000"),
        ("SE02_HOTELS", "A", "A-00000"),
        ("SE10_TAXI", "A", "A-00001"),
        ("NET_COLLECTOR", "A", "A-00002"),
        ("SE04_NIGHT_CASH", "A", "A-00003"),
        ("LE01_WAGE_CASHED", "B", "B-00000"),
        ("LE05_LOW_WAGE_RENT", "B", "B-00000"),
        ("XB06_STRUCTURED_REMITTANCES", "B", "B-00001"),
        ("ML_MANY_DEVICES", "B", "B-00002"),
        ("CD02_SEVERAL_LENDERS", "B", "B-00002"),
        ("SE19_LUXURY", "B", "B-00003"),
    ]
    pop = _population(
        {"A": 300, "B": 300}, {"A-00001": 0.99, "A-00003": 0.97, "A-00004": 0.999, "B-00001": 0.96, "B-00003": 0.952}
    )
    hits = _hits(rows)
    expected = _fuse_as_before(hits, pop)
    for links in (None, _linked([]), _linked(["A-00010", "A-00011", "B-00010"])):  # nobody with evidence is linked
        out = Fusion(min_score=0.0).fuse(hits, pop, {}, links=links)
        got = dict(out.select("account_id", "score").iter_rows())
        assert got.keys() == expected.keys() and all(math.isclose(got[k], expected[k], abs_tol=1e-12) for k in expected)
        order = sorted(expected, key=lambda k: (-expected[k], k[0], k))
        assert out["account_id"].to_list() == order
        kept, _ = AlertBudget(share=None).apply(out, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
        assert kept["account_id"].to_list() == order


def test_run_summary_names_flooding_rules_and_the_budget_cut():
    from pipelines.batch import run_summary_markdown

    pop = _population({"A": 1000})
    hits = _hits([("CD01_TELECOM_BURST", "A", f"A-{i:05d}") for i in range(300)])
    report = Fusion().rate_report(firing_rates(hits, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored"))))
    cut = [
        {
            "bank_id": "A",
            "accounts_scored": 1000,
            "allowed": 10,
            "candidates": 30,
            "kept": 10,
            "cut": 20,
            "lowest_kept": 0.81,
            "highest_cut": 0.8,
        }
    ]
    score = {
        "run_id": "r",
        "alerts": 10,
        "new": 10,
        "rule_set_hash": "h",
        "model_version": "m",
        "budget_cut": cut,
        "rules_over_ceiling": {k: v for k, v in report.items() if v["over_ceiling"]},
    }
    md = run_summary_markdown([], score, {"creditboys": 10}, None)
    assert "| CD01_TELECOM_BURST | 300 of 1000 | 30.0% | 0.5% | A: 30.0%, x0.0333 |" in md
    assert "| A | 1000 | 10 | 30 | 10 | 20 | 0.810 | 0.800 |" in md


def test_the_footprint_of_lawful_sex_work_alone_counts_as_one_indicator():
    """Ads, clients' payments and night cash are what any sex worker's account shows (legal in the Netherlands): together
    they count as one indicator, discounted like a lone rule; the same footprint with money passed on is a constellation."""
    footprint = ("SE01_AD_MICRO", "SE07_CLIENT_PAYMENTS", "SE04_NIGHT_CASH")
    assert all(r.footprint == "sex_work" for r in RULES if r.id in footprint)
    hits = _hits([(r, "A", "A-00001") for r in footprint] + [(r, "A", "A-00002") for r in (*footprint, "CE01_YOUNG_MULE")])
    acc = Fusion().account_scores(hits, _population({"A": 1000}), {}).filter(pl.col("rule_score") > 0)
    scores = dict(zip(acc["account_id"], acc["score"]))
    n_rules = dict(zip(acc["account_id"], acc["n_rules"]))
    assert n_rules == {"A-00001": 1, "A-00002": 2}
    strongest = max(SEVERITY_WEIGHT[r.severity] for r in RULES if r.id in footprint)
    assert math.isclose(scores["A-00001"], strongest * Fusion().single_rule_factor)  # no anomaly lift at 0.5
    assert scores["A-00002"] > 2 * scores["A-00001"]
    # near miss: two rules of different families are two indicators, as before
    two = Fusion().account_scores(
        _hits([("SE01_AD_MICRO", "A", "A-00003"), ("SE02_HOTELS", "A", "A-00003")]), _population({"A": 1000}), {}
    )
    assert two.filter(pl.col("account_id") == "A-00003")["n_rules"][0] == 2


def test_a_link_to_an_escalated_account_alone_counts_for_less_than_a_lone_rule_of_the_account_s_own():
    """NET_LINKED_TO_REPORTED alone is a lift, not evidence: in the learning simulation's tune seed, accounts raised by it
    alone were rarely planted, the same rule beside another nearly always. It ranks below a lone rule of equal severity."""
    f = Fusion()
    hits = _hits(
        [
            ("NET_LINKED_TO_REPORTED", "A", "A-00001"),  # must fire: the link alone
            ("CE01_YOUNG_MULE", "A", "A-00002", 3),  # a lone rule of the account's own, same severity
            ("NET_LINKED_TO_REPORTED", "A", "A-00003"),  # near miss: the link beside a rule of its own
            ("CE01_YOUNG_MULE", "A", "A-00003", 3),
        ]
    )
    acc = f.account_scores(hits, _population({"A": 1000}), {}).filter(pl.col("rule_score") > 0)
    scores = dict(zip(acc["account_id"], acc["score"]))
    lone = SEVERITY_WEIGHT[3] * f.single_rule_factor
    assert math.isclose(scores["A-00002"], lone)
    assert math.isclose(scores["A-00001"], lone * f.link_only_factor) and f.link_only_factor < 1
    assert scores["A-00003"] > scores["A-00002"]  # beside a rule of its own the link still adds
    same = Fusion(link_only_factor=1.0).account_scores(hits, _population({"A": 1000}), {}).filter(pl.col("rule_score") > 0)
    assert dict(zip(same["account_id"], same["score"]))["A-00001"] == scores["A-00002"]  # the setting is what lowers it


def test_a_link_beside_only_a_flooding_rule_still_counts_as_a_link_alone():
    """A flooding rule is weighed down to next to nothing: it must not turn a lone link into evidence of the account's own."""
    pop = _population({"A": 1000})
    flood = [("CD01_TELECOM_BURST", "A", f"A-{i:05d}") for i in range(300)]  # 30% of bank A: factor 10/300
    hits = _hits(flood + [("NET_LINKED_TO_REPORTED", "A", "A-00000"), ("NET_LINKED_TO_REPORTED", "A", "A-00500")])
    rates = firing_rates(hits, pop.group_by("bank_id").agg(pl.len().alias("accounts_scored")))
    f = Fusion()
    scores = dict(f.account_scores(hits, pop, {}, rates).select("account_id", "score").iter_rows())
    link = SEVERITY_WEIGHT[3] * f.single_rule_factor * f.link_only_factor
    assert scores["A-00500"] == pytest.approx(link)  # the link alone
    with_flood = 1 - (1 - SEVERITY_WEIGHT[3]) * (1 - SEVERITY_WEIGHT[CD01_SEVERITY] * 10 / 300)
    assert scores["A-00000"] == pytest.approx(with_flood * f.single_rule_factor * f.link_only_factor)  # not doubled
