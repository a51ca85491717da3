"""Debt-bondage rules: for each, a small store where it must fire (with the right evidence) and a near miss where it must not."""

from detectors.rules import debt_bondage
from tests.rule_cases import case_tests


def xb01_shared_beneficiary(b, pos):
    ev = set()
    for i in range(3):
        b.account(f"v{i}", nationality="NG")
        t = b.tx(
            f"v{i}",
            10 + i,
            12,
            "debit",
            300,
            "money_remittance",
            cp="BEN-1" if pos else f"BEN-{i}",
            cptype="person",
            name="Western Union",
            country="NG",
        )
        if i == 0:
            ev.add(t)
    return "v0", ev


def xb02_instalments(b, pos):
    b.account("v", nationality="NG")
    n = 12 if pos else 3
    return "v", {
        b.tx(
            "v",
            3 + (7 if pos else 30) * i,
            12,
            "debit",
            300 if pos else 80 + 60 * i,
            "money_remittance",
            cp="BEN-1",
            cptype="person",
            name="Western Union",
            country="NG",
        )
        for i in range(n)
    }


def xb06_structuring(b, pos):
    b.account("v")
    return "v", {
        b.tx(
            "v",
            2 + 10 * i,
            12,
            "debit",
            1900 if pos else 1500,
            "money_remittance",
            cp=f"BEN-{i}",
            cptype="person",
            name="Ria",
            country="RO",
        )
        for i in range(9)
    }


CASES = {
    "XB01_SHARED_BENEFICIARY": xb01_shared_beneficiary,
    "XB02_FIXED_INSTALMENTS": xb02_instalments,
    "XB06_STRUCTURED_REMITTANCES": xb06_structuring,
}


test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss = case_tests(
    debt_bondage.RULES, CASES
)


def test_foreign_card_merchant_is_not_a_shared_beneficiary(tmp_path):
    """Card payments and subscriptions to merchants registered abroad (MT, IE, LU) are not a beneficiary abroad,
    however many accounts pay them (the look-alike that made XB01 fire on most accounts)."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    for i in range(4):
        b.account(f"v{i}")
        b.tx(
            f"v{i}",
            10 + i,
            12,
            "debit",
            25,
            "card",
            cp="m-bet",
            cptype="business",
            name="Malta Games Ltd",
            country="MT",
            mcc="5816",
        )
        for m in range(3):
            b.tx(
                f"v{i}",
                5 + 30 * m,
                12,
                "debit",
                10.99,
                "direct_debit",
                cp="m-spotify",
                cptype="business",
                name="Spotify",
                country="LU",
            )
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "XB01_SHARED_BENEFICIARY", "v0").height == 0
    assert hits.filter(hits["rule_id"] == "XB02_FIXED_INSTALMENTS").height == 0


def test_payee_of_very_many_accounts_is_not_a_shared_beneficiary(tmp_path):
    """A counterparty abroad paid by very many accounts is a payment institution or merchant, not a debt collector."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    for i in range(30):
        b.account(f"v{i}")
        b.tx(f"v{i}", 10 + i % 20, 12, "debit", 150, "transfer", cp="wise-pool", cptype="person", name="Pool", country="BE")
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "XB01_SHARED_BENEFICIARY", "v0").height == 0


def test_worker_on_a_wage_sending_a_fixed_sum_home_monthly_is_not_a_debt(tmp_path):
    """A seasonal worker paid a wage sends the same sum to family every month: XB02's look-alike. Paid weekly from cash
    income, the same beneficiary makes it fire."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    b.account("emp", kind="business", sector="01.13")
    b.account("w", nationality="PL")
    for d in (10, 40, 70):
        b.transfer("emp", "w", d, 9, 1700 + d, "transfer", desc="Loon incl. inhouding huisvesting", src_type="business")
        b.tx(
            "w",
            d + 2,
            19,
            "debit",
            400,
            "money_remittance",
            cp="FAM-w",
            cptype="person",
            name="Western Union",
            country="PL",
            desc="family",
        )
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "XB02_FIXED_INSTALMENTS", "w").height == 0
