"""Every rule: a small store where it must fire (with the right evidence) and a near miss where it must not."""
import pytest

from detectors.features import compute_features
from detectors.rule_detector import RuleDetector
from detectors.rules import RULES, rule_set
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


def se01_micro(b, pos):
    b.account("v")
    amount = 12 if pos else 80
    return "v", {b.tx("v", 5 + 7 * i, 23, "debit", amount, "card", cp="m-kinky", cptype="business", name="Kinky.nl", mcc="7311")
                 for i in range(5)}


def se01_premium(b, pos):
    b.account("c", gender="m")
    amount = 150 if pos else 12
    return "c", {b.tx("c", 3 + 14 * i, 15, "debit", amount, "card", cp="m-kinky", cptype="business", name="Kinky.nl", mcc="7311")
                 for i in range(6)}


def se02_hotels(b, pos):
    b.account("v")
    amount = 90 if pos else 210
    return "v", {b.tx("v", 4 + 12 * i, 21, "debit", amount, "card", cp=f"h{i}", cptype="business", name=f"Hotel {c}", mcc="7011", city=c)
                 for i, c in enumerate(["Utrecht", "Rotterdam", "Breda", "Utrecht", "Zwolle", "Breda"])}


def se04_night_cash(b, pos):
    b.account("v")
    hour = 23 if pos else 14
    return "v", {b.tx("v", 2 + 7 * i, hour, "debit", 100, "cash_withdrawal", mcc="6011", city="Amsterdam") for i in range(12)}


def se05_cash_cities(b, pos):
    b.account("v")
    cities = ["Utrecht", "Breda", "Zwolle"] if pos else ["Amsterdam"]
    return "v", {b.tx("v", 3 + 10 * i, 20, "credit", 200, "cash_deposit", city=cities[i % len(cities)]) for i in range(6)}


def se06_cash_near_hotel(b, pos):
    b.account("v")
    ev = set()
    for day, city in ((10, "Utrecht"), (20, "Breda")):
        b.tx("v", day, 21, "debit", 80, "card", cp="h", cptype="business", name=f"Hotel {city}", mcc="7011", city=city)
        ev.add(b.tx("v", day + 1, 2, "debit", 100, "cash_withdrawal", mcc="6011", city=city if pos else "Amsterdam"))
    return "v", ev


def se07_client_payments(b, pos):
    b.account("v")
    return "v", _senders(b, "v", 10, 3, 2, 23, 150 if pos else 15)


def se09_depleted(b, pos):
    b.account("v")
    b.account("c")
    ev = set()
    for i in range(12):
        b.account(f"s{i}")
        ev.add(b.transfer(f"s{i}", "v", 2 + 7 * i, 20, 300)[1])
        if pos:
            b.transfer("v", "c", 2 + 7 * i, 22, 280)
    return "v", ev


def se10_taxi(b, pos):
    b.account("v")
    n = 60 if pos else 20
    return "v", {b.tx("v", i * DAYS // n, 1, "debit", 20, "card", cp="uber", cptype="business", name="Uber", mcc="4121", city="Utrecht")
                 for i in range(n)}


def se11_topups(b, pos):
    b.account("v")
    n = 30 if pos else 3
    return "v", {b.tx("v", i * 3, 13, "debit", 15, "card", cp="lebara", cptype="business", name="Lebara", mcc="4814") for i in range(n)}


def se19_luxury(b, pos):
    b.account("c", gender="m")
    for i in range(6):
        b.account(f"s{i}")
        if pos:
            b.transfer(f"s{i}", "c", 5 + 10 * i, 20, 1000)
    if not pos:
        b.account("emp", kind="business", sector="62.01")
        for d in (25, 55, 85):
            b.transfer("emp", "c", d, 9, 5000, "transfer", desc="Salaris", src_type="business", dst_type="person", src_name="Employer")
    return "c", {b.tx("c", 10 + 20 * i, 15, "debit", 1000, "card", cp="jw", cptype="business", name="Juwelier Goud", mcc="5944")
                 for i in range(4)}


def _wages(b, pos, after):
    b.account("emp", kind="business", sector="78.20")
    b.account("w", nationality="PL", gender="m")
    b.account("boss", gender="m")
    ev = set()
    for d in (24, 54, 84):
        ev.add(b.transfer("emp", "w", d, 9, 1100, "transfer", desc="Loon", src_type="business", src_name="Uitzendbureau")[1])
        ev |= after(d)
    return "w", ev


def le01_wage_cashed(b, pos):
    return _wages(b, pos, lambda d: {b.tx("w", d + 1, 11, "debit", 1000, "cash_withdrawal", mcc="6011", city="Westland")} if pos else set())


def le02_wage_forwarded(b, pos):
    return _wages(b, pos, lambda d: {b.transfer("w", "boss", d + 1, 12, 700 if pos else 100, "transfer", desc="huisvesting")[0]})


def le03_same_low_wage(b, pos):
    b.account("emp", kind="business", sector="01.13")
    ev = set()
    for i in range(6):
        b.account(f"w{i}", nationality="RO")
        ev.add(b.transfer("emp", f"w{i}", 24, 9, 1100 if pos else 2100 + 97 * i, "transfer", desc="Loon", src_type="business")[0])
    return "emp", ev


def le04_crowded(b, pos):
    for i in range(7):
        b.account(f"w{i}", address="addr-x", nationality="PL" if pos else "NL", gender="m" if (pos or i % 2) else "f")
        b.tx(f"w{i}", 10, 12, "debit", 10, "card", name="Albert Heijn", mcc="5411")
    return "w0", set()


def le05_low_wage_rent(b, pos):
    b.account("emp", kind="business", sector="01.13")
    b.account("w", nationality="BG")
    b.account("landlord", gender="m")
    wage = b.transfer("emp", "w", 24, 9, 1100 if pos else 2600, "transfer", desc="Loon", src_type="business")[1]
    rent = b.transfer("w", "landlord", 26, 10, 450, "transfer", desc="huur kamer")[0]
    return "w", {wage, rent}


def le06_shared_device(b, pos):
    ev = set()
    for i in range(3):
        b.account(f"w{i}", address=f"addr-{i % 2}" if pos else "addr-same")
        if pos or i < 2:
            ev.add(b.tx(f"w{i}", 5 + i, 10, "debit", 30, "transfer", cp="telco", cptype="business", device="dev-boss"))
    return "w0", ev


def le08_business_lodging(b, pos):
    b.account("emp", kind="business", sector="78.20" if pos else "62.01")
    return "emp", {b.tx("emp", 10 + 20 * i, 10, "debit", 600, "card", cp="hotel", cptype="business", name="Pension Westland", mcc="7011")
                   for i in range(3)}


def ce01_young_mule(b, pos):
    b.account("m", age=19 if pos else 45, opened_days=60 if pos else 3000)
    ev = _senders(b, "m", 4, 40, 1, 12, 400, "transfer", desc="Marktplaats")
    for i in range(4):
        b.tx("m", 40 + i, 15, "debit", 380, "cash_withdrawal", mcc="6011", city="Rotterdam")
    return "m", ev


def ml_fan_in(b, pos):
    b.account("m")
    b.account("c")
    ev = _senders(b, "m", 6, 30, 1, 12, 300, "transfer")
    for i in range(6 if pos else 0):
        b.transfer("m", "c", 30 + i, 16, 290)
    return "m", ev


def ce_crypto(b, pos):
    b.account("m")
    ev = set()
    for day, n in ((10, 3), (20, 2)):
        for i in range(n):
            b.account(f"s{day}{i}")
            if pos:
                b.transfer(f"s{day}{i}", "m", day, 10, 200)
        ev.add(b.tx("m", day, 18, "debit", 350, "transfer", cp="bitvavo", cptype="business", name="Bitvavo", mcc="6051"))
    return "m", ev


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
        first = (30 + 3 * i) if pos else i
        for m in range(3):
            if first + 30 * m >= DAYS:
                break
            t = b.tx("v", first + 30 * m, 6, "debit", 60, "direct_debit", cp=f"dd-{telco}", cptype="business", name=telco, mcc="4814")
            if m == 0:
                ev.add(t)
    return "v", ev


def cd_young(b, pos):
    b.account("v", age=20 if pos else 45)
    return "v", {_loan(b, 30, "Ferratum"), _loan(b, 40, "Qander")}


def xb01_shared_beneficiary(b, pos):
    ev = set()
    for i in range(3):
        b.account(f"v{i}", nationality="NG")
        t = b.tx(f"v{i}", 10 + i, 12, "debit", 300, "money_remittance", cp="BEN-1" if pos else f"BEN-{i}", cptype="person",
                 name="Western Union", country="NG")
        if i == 0:
            ev.add(t)
    return "v0", ev


def xb02_instalments(b, pos):
    b.account("v", nationality="NG")
    n = 12 if pos else 3
    return "v", {b.tx("v", 3 + (7 if pos else 30) * i, 12, "debit", 300 if pos else 80 + 60 * i, "money_remittance", cp="BEN-1",
                      cptype="person", name="Western Union", country="NG") for i in range(n)}


def xb06_structuring(b, pos):
    b.account("v")
    return "v", {b.tx("v", 2 + 10 * i, 12, "debit", 1900 if pos else 1500, "money_remittance", cp=f"BEN-{i}", cptype="person",
                      name="Ria", country="RO") for i in range(9)}


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
    return "v", {b.tx("v", 5 + i, 10, "debit", 20, "transfer", cp="x", cptype="business", device=f"dev-{i if pos else 0}")
                 for i in range(3)}


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
            t = b.tx(f"v{i}", 5 + i + 30 * k, 12, "debit", 300, "money_remittance", cp="BEN-1" if pos else f"BEN-{i}",
                     cptype="person", name="Western Union", country="NG")
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
    "SE01_AD_MICRO": se01_micro, "SE01_AD_PREMIUM": se01_premium, "SE02_HOTELS": se02_hotels, "SE04_NIGHT_CASH": se04_night_cash,
    "SE05_CASH_CITIES": se05_cash_cities, "SE06_CASH_NEAR_HOTEL": se06_cash_near_hotel, "SE07_CLIENT_PAYMENTS": se07_client_payments,
    "SE09_DEPLETED": se09_depleted, "SE10_TAXI": se10_taxi, "SE11_TOPUPS": se11_topups, "SE19_LUXURY": se19_luxury,
    "LE01_WAGE_CASHED": le01_wage_cashed, "LE02_WAGE_FORWARDED": le02_wage_forwarded, "LE03_SAME_LOW_WAGE": le03_same_low_wage,
    "LE04_CROWDED_ADDRESS": le04_crowded, "LE05_LOW_WAGE_RENT": le05_low_wage_rent, "LE06_SHARED_DEVICE": le06_shared_device,
    "LE08_BUSINESS_LODGING": le08_business_lodging, "CE01_YOUNG_MULE": ce01_young_mule, "ML_FAN_IN_PASS_THROUGH": ml_fan_in,
    "CE_CRYPTO_AFTER_P2P": ce_crypto, "CD02_SEVERAL_LENDERS": cd02_lenders, "CD02_LOAN_PASSED_ON": cd02_passed_on,
    "CD01_TELECOM_BURST": cd01_telecom, "CD_YOUNG_NEW_CREDIT": cd_young, "XB01_SHARED_BENEFICIARY": xb01_shared_beneficiary, "XB02_FIXED_INSTALMENTS": xb02_instalments,
    "XB06_STRUCTURED_REMITTANCES": xb06_structuring, "ML03_CASH_ONLY_INCOME": ml03_cash_only, "ML_MANY_DEVICES": ml_many_devices,
    "NET_COLLECTOR": net_collector, "NET_EMPLOYER": net_employer, "NET_WAGE_COLLECTOR": net_wage_collector,
    "NET_HOUSED_WORKFORCE": net_housed_workforce, "NET_SHARED_CLUSTER": net_shared_cluster,
    "NET_INSTALMENT_BENEFICIARY": net_instalment_beneficiary, "NET_LINKED_TO_REPORTED": net_linked_to_reported,
}


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


def test_every_rule_has_a_case_and_the_catalogue_is_complete():
    assert set(CASES) == {r.id for r in RULES}
    assert len(RULES) >= 25
    typologies = {r.typology for r in RULES}
    assert {"sexual_exploitation", "labour_exploitation", "criminal_exploitation", "creditboys", "debt_bondage"} <= typologies
    for r in RULES:
        assert r.indicators and r.description and r.severity in (1, 2, 3) and r.name


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_with_its_evidence(tmp_path, rule_id):
    b = Book()
    target, evidence = CASES[rule_id](b, True)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    hit = fired(hits, rule_id, target)
    assert hit.height == 1, hits.select("rule_id", "account_id")
    got = set(hit["evidence"][0])
    if evidence:
        assert got and got <= {t["txn_id"] for t in b.txns if t["account_id"] == target}
        assert got & evidence, (got, evidence)
    assert hit["detail"][0]


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_stays_quiet_on_the_near_miss(tmp_path, rule_id):
    b = Book()
    target, _ = CASES[rule_id](b, False)
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    assert fired(hits, rule_id, target).height == 0


def test_thresholds_come_from_config(tmp_path):
    b = Book()
    target, _ = se10_taxi(b, False)            # 20 rides: below the default 15 per 30 days
    db = b.write(tmp_path / "s.duckdb")
    assert fired(run_rules(db), "SE10_TAXI", target).height == 0
    assert fired(run_rules(db, {"SE10_TAXI": {"min_per_30d": 5}}), "SE10_TAXI", target).height == 1
    assert fired(run_rules(db, {"disabled": ["SE10_TAXI"], "SE10_TAXI": {"min_per_30d": 5}}), "SE10_TAXI", target).height == 0


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="NO_SUCH_RULE"):
        rule_set({"NO_SUCH_RULE": {}})
    with pytest.raises(ValueError, match="min_per_30d"):
        rule_set({"SE10_TAXI": {"min_per_day": 3}})


def test_example_config_is_valid():
    from pathlib import Path

    from detectors.scoring import load_config
    cfg = load_config(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml")
    rules = {r.id: r for r in rule_set(cfg)}
    assert rules["SE10_TAXI"].severity == 1 and rules["SE07_CLIENT_PAYMENTS"].params["min_senders"] == 8


def test_shared_wage_table_built_only_for_rules_that_read_it(tmp_path):
    b = Book()
    target, _ = CASES["LE01_WAGE_CASHED"](b, True)
    db = b.write(tmp_path / "s.duckdb")
    wage_rules = ["SE19_LUXURY", "LE01_WAGE_CASHED", "LE02_WAGE_FORWARDED", "LE05_LOW_WAGE_RENT"]
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
    ids = [b.tx("m", day, 12, "debit", 20, "card", name="Shop", city="Utrecht", device=f"dev{day % 3}")
           for day in range(80, 20, -1)]                     # booked newest first: scan order is not time order
    hits = run_rules(b.write(tmp_path / "s.duckdb"))
    hit = fired(hits, "ML_MANY_DEVICES", "m")
    assert hit.height == 1 and list(hit["evidence"][0]) == list(reversed(ids))[:30]
