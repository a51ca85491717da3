"""What the per-typology rule tests share: run the rule set over a small store, find a rule's hit, and the
two checks every rule gets (fires with its evidence on the positive store, stays quiet on the near miss).

A case builder takes a Book and `pos` and returns (the account the rule must fire on, txn ids the evidence
must overlap; empty when the rule gives no evidence)."""

import pytest

from detectors.features import compute_features
from detectors.rule_detector import RuleDetector
from detectors.window import define_window
from pipelines import store
from tests.book import DAYS, Book


def _senders(b, target, n, day0, step, hour, amount, channel="instant_transfer", prefix="s", **kw):
    """n private persons each paying `target` once; returns the credit txn ids on target's account."""
    out = set()
    for i in range(n):
        b.account(f"{prefix}{i}", gender="m")
        out.add(b.transfer(f"{prefix}{i}", target, day0 + step * i, hour, amount, channel, **kw)[1])
    return out


def run_rules(db, config=None):
    con = store.connect(db)
    try:
        define_window(con, DAYS)
        compute_features(con, DAYS)
        return RuleDetector(config).score(con, DAYS)
    finally:
        con.close()


def fired(hits, rule_id, account):
    return hits.filter((hits["rule_id"] == rule_id) & (hits["account_id"] == account))


def check_fires(tmp_path, rule_id, case):
    b = Book()
    target, evidence = case(b, True)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    hit = fired(hits, rule_id, target)
    assert hit.height == 1, hits.select("rule_id", "account_id")
    got = set(hit["evidence"][0])
    if evidence:
        assert got and got <= {t["txn_id"] for t in b.txns if t["account_id"] == target}
        assert got & evidence, (got, evidence)
    assert hit["detail"][0]


def check_quiet(tmp_path, rule_id, case):
    b = Book()
    target, _ = case(b, False)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, rule_id, target).height == 0


def case_tests(rules, cases):
    """The three tests every rules module gets, over `rules` (its RULES) and `cases` (rule id -> case builder): every
    rule has a case, fires with its evidence, stays quiet on the near miss. Bind them at module level for pytest:
    `test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss = case_tests(...)`."""

    def test_every_rule_has_a_case():
        assert set(cases) == {r.id for r in rules}

    @pytest.mark.parametrize("rule_id", sorted(cases))
    def test_rule_fires_with_its_evidence(tmp_path, rule_id):
        check_fires(tmp_path, rule_id, cases[rule_id])

    @pytest.mark.parametrize("rule_id", sorted(cases))
    def test_rule_stays_quiet_on_the_near_miss(tmp_path, rule_id):
        check_quiet(tmp_path, rule_id, cases[rule_id])

    return test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss
