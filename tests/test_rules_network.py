"""Network rules: for each, a small store where it must fire (with the right evidence) and a near miss where it must not."""

from detectors.rules import network
from tests.rule_cases import _senders, case_tests


def net_collector(b, pos):
    b.account("c", gender="m")
    ev = set()
    for v in ("v1", "v2"):
        b.account(v)
        _senders(b, v, 10, 3, 2, 23, 150 if pos else 15, prefix=f"{v}s")
        ev.add(b.transfer(v, "c", 40, 12, 600)[1])
    return "c", ev


def net_employer(b, pos):
    b.account("emp", kind="business", sector="81.21")
    ev = set()
    for w in ("w1", "w2"):
        b.account(w, nationality="PL")
        for d in (24, 54, 84):
            ev.add(b.transfer("emp", w, d, 9, 1100, "transfer", desc="Loon", src_type="business")[0])
            if pos:
                b.tx(w, d + 1, 11, "debit", 1000, "cash_withdrawal", mcc="6011", city="Westland")
    return "emp", ev


def _workforce(b, collector_of, address_of=lambda i: None, employer_of=lambda i: "emp"):
    """Four workers paid EUR 1,100 three times; each passes EUR 600 of every wage on to collector_of(i), if any."""
    ev = set()
    for i in range(4):
        emp = employer_of(i)
        if emp not in {a["account_id"] for a in b.accounts}:
            b.account(emp, kind="business", sector="01.13")
        w = b.account(f"w{i}", nationality="PL", address=address_of(i))
        for d in (24, 54, 84):
            b.transfer(emp, w, d, 9, 1100, "transfer", desc="Loon", src_type="business")
            if collector_of(i):
                ev.add(b.transfer(w, collector_of(i), d + 1, 18, 600, "transfer", desc="huisvesting")[1])
    return ev


def net_wage_collector(b, pos):
    b.account("c", gender="m")
    # near miss: a landlord whose four tenants work for four different employers
    return "c", _workforce(b, lambda i: "c", employer_of=(lambda i: "emp") if pos else (lambda i: f"emp{i}"))


def net_housed_workforce(b, pos):
    b.account("c", gender="m")
    _workforce(b, lambda i: "c", address_of=(lambda i: "addr-hut") if pos else (lambda i: None))
    return "emp", {t["txn_id"] for t in b.txns if t["account_id"] == "emp" and t["direction"] == "debit"}


def net_shared_cluster(b, pos):
    # three of a four-person address cash out at night (victim signals); near miss: a family where one does
    for i in range(4):
        b.account(f"m{i}", address="addr-x")
        if i < (3 if pos else 1):
            for k in range(12):
                b.tx(f"m{i}", 2 + 7 * k, 23, "debit", 100, "cash_withdrawal", mcc="6011", city="Amsterdam")
    return "m3", set()


def net_instalment_beneficiary(b, pos):
    ev = set()
    for i in range(3):
        b.account(f"v{i}", nationality="NG")
        for k in range(3):
            t = b.tx(
                f"v{i}",
                5 + i + 30 * k,
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


def net_linked_to_reported(b, pos):
    b.account("t")
    b.account("x", bank="BANK_B")
    b.fiu_report(b.tx("x", 5, 12, "credit", 900, "cash_deposit", city="Breda"))
    out = b.transfer("t", "x", 20, 12, 800 if pos else 20)[0]
    return "t", {out}


CASES = {
    "NET_COLLECTOR": net_collector,
    "NET_EMPLOYER": net_employer,
    "NET_WAGE_COLLECTOR": net_wage_collector,
    "NET_HOUSED_WORKFORCE": net_housed_workforce,
    "NET_SHARED_CLUSTER": net_shared_cluster,
    "NET_INSTALMENT_BENEFICIARY": net_instalment_beneficiary,
    "NET_LINKED_TO_REPORTED": net_linked_to_reported,
}


test_every_rule_has_a_case, test_rule_fires_with_its_evidence, test_rule_stays_quiet_on_the_near_miss = case_tests(
    network.RULES, CASES
)


def test_a_housed_workforce_alone_makes_no_collector_and_no_employer(tmp_path):
    """Seasonal workers housed by their employer at one crowded address (LE-04 fires on them: a shared attribute, not
    their behaviour): the employer paying their wages and a roommate collecting the food pot are no controller."""
    from tests.book import Book
    from tests.rule_cases import fired, run_rules

    b = Book()
    b.account("emp", kind="business", sector="01.13")
    for i in range(7):
        b.account(f"w{i}", nationality="PL", gender="m", address="addr-farm")
        for d in (24, 54, 84):
            b.transfer("emp", f"w{i}", d, 9, 1600, "transfer", desc="Loon", src_type="business")
            if i:
                b.transfer(f"w{i}", "w0", d + 1, 18, 300, "transfer", desc="eten")
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, "LE04_CROWDED_ADDRESS", "w1").height == 1
    assert fired(hits, "NET_COLLECTOR", "w0").height == 0
    assert fired(hits, "NET_EMPLOYER", "emp").height == 0
