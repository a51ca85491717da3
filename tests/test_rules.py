"""The rule catalogue as a whole: complete, declared honestly (shared tables, typologies, roles), configurable.
Each rule's must-fire and near-miss tests live in tests/test_rules_<typology>.py."""

import re

import pytest

from detectors.features import compute_features
from detectors.rule_detector import RuleDetector
from detectors.rules import RULES, SHARED_TABLES, Rule, rule_set
from detectors.rules.base import FRAGMENTS
from detectors.window import define_window
from pipelines import store
from schemas.typologies import INHERIT, TYPOLOGIES
from tests import (
    test_rules_creditboys,
    test_rules_criminal_exploitation,
    test_rules_debt_bondage,
    test_rules_labour_exploitation,
    test_rules_laundering,
    test_rules_network,
    test_rules_sexual_exploitation,
)
from tests.book import DAYS, Book
from tests.rule_cases import fired, run_rules

CASE_MODULES = (
    test_rules_sexual_exploitation,
    test_rules_labour_exploitation,
    test_rules_criminal_exploitation,
    test_rules_creditboys,
    test_rules_debt_bondage,
    test_rules_laundering,
    test_rules_network,
)


def test_every_rule_has_a_case_and_the_catalogue_is_complete():
    cases = [r for m in CASE_MODULES for r in m.CASES]
    assert sorted(cases) == sorted(r.id for r in RULES)  # each rule tested once, in its typology's module
    assert len(RULES) >= 25
    typologies = {r.typology for r in RULES}
    assert {"sexual_exploitation", "labour_exploitation", "criminal_exploitation", "creditboys", "debt_bondage"} <= typologies
    for r in RULES:
        assert r.indicators and r.description and r.severity in (1, 2, 3) and r.name


def test_every_rule_typology_is_in_the_registry_and_its_indicators_in_known_families():
    prefixes = {t.prefix for t in TYPOLOGIES.values()}
    for r in RULES:
        assert r.typology == INHERIT or r.typology in TYPOLOGIES, r.id
        assert all(i.split("-")[0] in prefixes for i in r.indicators), (r.id, r.indicators)
    with pytest.raises(ValueError, match="not_a_typology"):
        Rule("X", "x", "not_a_typology", ("SE-01",), "x", 1, "SELECT 1")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_declared_reads_are_exactly_the_shared_tables_the_sql_uses(rule):
    sql = rule.render(DAYS)
    used = {name for name in SHARED_TABLES if re.search(rf"\b{name}\b", sql)}
    assert used == set(rule.reads)


def test_a_fragment_reading_a_shared_table_must_be_declared():
    assert FRAGMENTS["wages"].reads == ("win_wages",)
    with pytest.raises(ValueError, match="win_wages"):
        Rule("X", "x", "labour_exploitation", ("LE-01",), "x", 1, "SELECT * FROM wages", ctes=("wages",))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rendering_leaves_no_placeholder(rule):
    sql = rule.render(DAYS)
    assert "{" not in sql and "}" not in sql, re.findall(r"\{[^}]*\}", sql)


def test_fragments_join_the_rules_own_with_clause():
    r = next(r for r in RULES if r.id == "LE01_WAGE_CASHED")
    sql = r.render(DAYS)
    assert sql.startswith("WITH wages AS (SELECT * FROM win_wages),") and sql.count("WITH ") == 1


def test_case_role_lists_come_from_the_rules():
    from detectors import cases

    assert cases.CONTROLLER_RULES == tuple(r.id for r in RULES if r.role == "controller")
    assert cases.EMPLOYER_RULES == tuple(r.id for r in RULES if r.role == "employer")
    assert cases.VICTIM_RULES == tuple(r.id for r in RULES if r.role in ("victim", "mule"))
    assert {"NET_COLLECTOR", "SE19_LUXURY"} <= set(cases.CONTROLLER_RULES) and "NET_EMPLOYER" in cases.EMPLOYER_RULES
    assert cases.MULE_TYPOLOGIES == ("criminal_exploitation",)
    assert all(r.victim_side == (r.role in ("victim", "mule")) for r in RULES)


def test_shared_cluster_excludes_the_attribute_rules_by_their_flag():
    sql = next(r for r in RULES if r.id == "NET_SHARED_CLUSTER").render(DAYS)
    excluded = set(re.search(r"rule_id NOT IN \(([^)]*)\)", sql).group(1).replace("'", "").replace(" ", "").split(","))
    assert excluded == {r.id for r in RULES if r.attribute} and "LE04_CROWDED_ADDRESS" in excluded


def test_scenario_prefixes_are_the_registry_prefixes():
    from synthetic.typologies import SCENARIO_PREFIX

    assert SCENARIO_PREFIX == {t.id: t.prefix for t in TYPOLOGIES.values() if t.planted}
    assert SCENARIO_PREFIX["debt_bondage"] == "XB" and "laundering" not in SCENARIO_PREFIX


def test_thresholds_come_from_config(tmp_path):
    b = Book()
    target, _ = test_rules_sexual_exploitation.se10_taxi(b, False)  # 20 rides: below the default 15 per 30 days
    db = b.write(tmp_path / "s.duckdb")
    assert fired(run_rules(db), "SE10_TAXI", target).height == 0
    assert fired(run_rules(db, {"SE10_TAXI": {"min_per_30d": 5}}), "SE10_TAXI", target).height == 1
    assert fired(run_rules(db, {"disabled": ["SE10_TAXI"], "SE10_TAXI": {"min_per_30d": 5}}), "SE10_TAXI", target).height == 0


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="NO_SUCH_RULE"):
        rule_set({"NO_SUCH_RULE": {}})
    with pytest.raises(ValueError, match="min_per_30d"):
        rule_set({"SE10_TAXI": {"min_per_day": 3}})
    # found by a hostile-input sweep: .nan and .inf reached the SQL, a severity of 7 or -4 broke fusion mid-run
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="SE10_TAXI: parameter min_per_30d must be a finite number"):
            rule_set({"SE10_TAXI": {"min_per_30d": bad}})
    for bad in (7, 0, -4, 2.9, True, "3"):
        with pytest.raises(ValueError, match="SE10_TAXI: severity must be 1, 2 or 3"):
            rule_set({"SE10_TAXI": {"severity": bad}})
    assert {r.id: r.severity for r in rule_set({"SE10_TAXI": {"severity": 3.0}})}["SE10_TAXI"] == 3  # the near miss
    with pytest.raises(ValueError, match=r"config names unknown rules: NOPE_RULE \(in disabled\)"):
        rule_set({"disabled": ["SE10_TAXI", "NOPE_RULE"]})  # a typo no longer leaves the rule on unnoticed
    assert "SE10_TAXI" not in {r.id for r in rule_set({"disabled": ["SE10_TAXI", "PT_FAN_IN"]})}  # patterns are PT_


def test_example_config_is_valid():
    from pathlib import Path

    from detectors.scoring import rule_config
    from schemas.settings import load_settings

    cfg = rule_config(load_settings(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml"))
    rules = {r.id: r for r in rule_set(cfg)}
    assert rules["SE10_TAXI"].severity == 1 and rules["SE07_CLIENT_PAYMENTS"].params["min_senders"] == 8


def test_shared_wage_table_built_only_for_rules_that_read_it(tmp_path):
    b = Book()
    target, _ = test_rules_labour_exploitation.CASES["LE01_WAGE_CASHED"](b, True)
    db = b.write(tmp_path / "s.duckdb")
    wage_rules = [r.id for r in RULES if "win_wages" in r.reads]
    assert sorted(wage_rules) == [
        "LE01_WAGE_CASHED",
        "LE02_WAGE_FORWARDED",
        "LE05_LOW_WAGE_RENT",
        "SE04_NIGHT_CASH",
        "SE19_LUXURY",
        "XB02_FIXED_INSTALMENTS",
    ]
    con = store.connect(db)
    try:
        define_window(con, DAYS)
        compute_features(con, DAYS)
        RuleDetector({"disabled": wage_rules}).score(con, DAYS)
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'win_wages'").fetchall()[0][0] == 0
        hits = RuleDetector().score(con, DAYS)
        assert fired(hits, "LE01_WAGE_CASHED", target).height == 1
    finally:
        con.close()


def test_evidence_is_the_earliest_bookings_in_time_order(tmp_path):
    """An account with more bookings than the evidence holds shows the same, earliest ones every run."""
    b = Book()
    b.account("m")
    ids = [
        b.tx("m", day, 12, "debit", 20, "card", name="Shop", city="Utrecht", device=f"dev{day % 3}") for day in range(80, 20, -1)
    ]  # booked newest first: scan order is not time order
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    hit = fired(hits, "ML_MANY_DEVICES", "m")
    assert hit.height == 1 and list(hit["evidence"][0]) == list(reversed(ids))[:30]
