"""Creditboys rules: for each, a small store where it must fire (with the right evidence) and a near miss where it must not."""

import pytest

from detectors.rules import creditboys
from tests.book import DAYS
from tests.rule_cases import case_tests


def _loan(b, day, lender, amount=2000):
    return b.tx("v", day, 9, "credit", amount, "loan_disbursement", cp=f"lend-{lender}", cptype="business", name=lender)


def cd02_lenders(b, pos):
    b.account("v", age=20)
    ev = {_loan(b, 30, "Ferratum")}
    if pos:
        ev.add(_loan(b, 38, "Qander"))
    return "v", ev


def cd02_passed_on(b, pos):
    b.account("v", age=20)
    b.account("c", gender="m")
    loan = _loan(b, 30, "Ferratum")
    if pos:
        out = b.transfer("v", "c", 31, 20, 1800)[0]
    else:
        out = b.tx("v", 31, 14, "debit", 1800, "card", cp="coolblue", cptype="business", name="Coolblue", mcc="5732")
    return "v", {loan, out}


def cd01_telecom(b, pos):
    b.account("v", age=20)
    ev = set()
    for i, telco in enumerate(["KPN", "Vodafone", "Odido"]):
        # near miss: a family's phone plans, monthly bills first booked a week or more into the window (running contracts)
        first = (40 + 3 * i) if pos else 8 + 6 * i
        for m in range(3):
            if first + 30 * m >= DAYS:
                break
            t = b.tx(
                "v", first + 30 * m, 6, "debit", 60, "direct_debit", cp=f"dd-{telco}", cptype="business", name=telco, mcc="4814"
            )
            if m == 0:
                ev.add(t)
    return "v", ev


def cd_young(b, pos):
    b.account("v", age=20 if pos else 45)
    return "v", {_loan(b, 30, "Ferratum"), _loan(b, 40, "Qander")}


def cd02_collector(b, pos):
    """Two young borrowers each pass part of a fresh loan to one man; near miss: a private seller paid from one buyer's
    loan, and a friend who pays him without any loan."""
    b.account("c", gender="m")
    ev = set()
    for i, who in enumerate(("v1", "v2")):
        b.account(who, age=20)
        if pos or i == 0:
            b.tx(who, 30 + i, 9, "credit", 2000, "loan_disbursement", cp=f"lend-{i}", cptype="business", name="Ferratum")
        ev.add(b.transfer(who, "c", 31 + i, 20, 900 if pos else 1900)[1])
    return "c", ev


CASES = {
    "CD02_LOAN_COLLECTOR": cd02_collector,
    "CD02_SEVERAL_LENDERS": cd02_lenders,
    "CD02_LOAN_PASSED_ON": cd02_passed_on,
    "CD01_TELECOM_BURST": cd01_telecom,
    "CD_YOUNG_NEW_CREDIT": cd_young,
}


test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss = case_tests(
    creditboys.RULES, CASES
)


def _bnpl(b, day, provider, price):
    """A BNPL purchase in three instalments and the refund of the returned goods."""
    for m in range(3):
        b.tx(
            "v",
            day + 30 * m,
            9,
            "debit",
            round(price / 3, 2),
            "direct_debit",
            cp=f"bnpl-{provider}",
            cptype="business",
            name=provider,
            country="SE" if provider == "Klarna" else "NL",
        )
    return b.tx(
        "v",
        day + 10,
        10,
        "credit",
        price,
        "transfer",
        cp=f"bnpl-{provider}",
        cptype="business",
        name=provider,
        country="SE" if provider == "Klarna" else "NL",
    )


@pytest.mark.parametrize("rule_id", ["CD02_SEVERAL_LENDERS", "CD_YOUNG_NEW_CREDIT"])
def test_bnpl_refunds_are_not_loans(tmp_path, rule_id):
    """A young BNPL shopper gets refunds from several providers: credits from lenders, but not loans."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    b.account("v", age=20)
    for day, provider, price in ((10, "Klarna", 240), (20, "Afterpay", 390), (25, "in3", 150)):
        _bnpl(b, day, provider, price)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, rule_id, "v").height == 0


def test_running_phone_plans_are_not_new_credit(tmp_path):
    """A young adult's phone plans first billed in the window's first month are running contracts, not new credit."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    _, _ = cd01_telecom(b, False)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "CD_YOUNG_NEW_CREDIT", "v").height == 0 and fired(hits, "CD01_TELECOM_BURST", "v").height == 0


def test_a_banks_first_short_extract_does_not_make_every_running_plan_new(tmp_path):
    """Found by a README walk-through: with a bank's first 40-day extract under the 90-day window, a contract was
    judged from the window's start, 50 days before the bank's first booking, so every running plan's first bill was
    new and CD01_TELECOM_BURST fired on 30% of accounts. Its history now starts at the bank's first booking; two
    providers first billed 35 days and more after it are still a burst."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()  # its filler books at BANK_A from day 0; BANK_S's extract starts on day 50
    b.account("v", age=20, bank="BANK_S")  # near miss: the family's plans, billed from the extract's first days
    b.account("w", age=20, bank="BANK_S")  # must fire: two providers first billed late in the extract
    for i, telco in enumerate(["KPN", "Vodafone"]):
        for day in (50 + 3 * i, 80 + 3 * i):
            b.tx("v", day, 6, "debit", 60, "direct_debit", cp=f"dd-{telco}", cptype="business", name=telco, mcc="4814")
        b.tx("w", 86 + 2 * i, 6, "debit", 60, "direct_debit", cp=f"dd-{telco}", cptype="business", name=telco, mcc="4814")
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "CD01_TELECOM_BURST", "v").height == 0
    assert fired(hits, "CD01_TELECOM_BURST", "w").height == 1
