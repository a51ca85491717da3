"""Laundering rules: for each, a small store where it must fire (with the right evidence) and a near miss where it must not."""

from detectors.rules import laundering
from tests.rule_cases import case_tests


def ml03_cash_only(b, pos):
    b.account("v")
    ev = {b.tx("v", 5 + 15 * i, 20, "credit", 400, "cash_deposit", city="Amsterdam") for i in range(5)}
    if not pos:
        b.account("emp", kind="business", sector="62.01")
        for d in (24, 54, 84):
            b.transfer("emp", "v", d, 9, 2500, "transfer", desc="Salaris", src_type="business")
    return "v", ev


def ml_many_devices(b, pos):
    b.account("v")
    return "v", {
        b.tx("v", 5 + i, 10, "debit", 20, "transfer", cp="x", cptype="business", device=f"dev-{i if pos else 0}")
        for i in range(3)
    }


CASES = {
    "ML03_CASH_ONLY_INCOME": ml03_cash_only,
    "ML_MANY_DEVICES": ml_many_devices,
}


test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss = case_tests(
    laundering.RULES, CASES
)
