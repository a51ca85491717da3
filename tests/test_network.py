"""The link graph, cases and their roles, the constellation weight of network rules, case metrics."""

import polars as pl

from detectors.cases import CaseGrouper
from detectors.features import compute_features
from detectors.fusion import Fusion
from detectors.rule_detector import RuleDetector
from detectors.window import define_window
from pipelines import store
from synthetic.evaluate import case_metrics
from tests.book import DAYS, Book


def _night_life(b, account):
    """Night cash and hotel stays in several cities: two victim signals (SE-04, SE-02)."""
    for k in range(12):
        b.tx(account, 2 + 7 * k, 23, "debit", 100, "cash_withdrawal", mcc="6011", city="Amsterdam")
    for i, city in enumerate(["Utrecht", "Breda", "Zwolle", "Utrecht", "Breda", "Zwolle"]):
        b.tx(
            account,
            4 + 12 * i,
            21,
            "debit",
            90,
            "card",
            cp=f"h-{city}",
            cptype="business",
            name=f"Hotel {city}",
            mcc="7011",
            city=city,
        )


def _victim(b, v, bank, controller):
    """A victim at `bank` taking client payments at night and passing most of it to `controller`."""
    b.account(v, bank=bank)
    for i in range(10):
        s = b.account(f"{v}-client{i}", gender="m", bank=bank)
        b.transfer(s, v, 3 + 2 * i, 23, 150)
    _night_life(b, v)
    for d in (10, 25, 40):
        b.transfer(v, controller, d, 12, 600)


def _ring(b):
    b.account("ctrl", gender="m", bank="BANK_B")
    _victim(b, "v1", "BANK_A", "ctrl")
    _victim(b, "v2", "BANK_B", "ctrl")
    b.account("z")  # alerted elsewhere, unrelated
    b.transfer("v1-client0", "z", 50, 22, 150)  # a client of v1 also pays z: clients must not merge cases
    _night_life(b, "z")


def _scored(b, tmp_path):
    con = store.connect(b.write(tmp_path / "s.duckdb"))
    define_window(con, DAYS)
    compute_features(con, DAYS)
    RuleDetector().score(con, DAYS)
    return con


def _alerts(accounts, typology="sexual_exploitation"):
    return pl.DataFrame(
        {
            "bank_id": [a[0] for a in accounts],
            "account_id": [a[1] for a in accounts],
            "alert_id": [f"A-{i:03d}" for i in range(len(accounts))],
            "score": [0.9 - 0.1 * i for i in range(len(accounts))],
            "typology": [typology] * len(accounts),
        }
    )


def test_money_edges_cross_banks_with_both_sides_evidence(tmp_path):
    b = Book()
    _ring(b)
    con = _scored(b, tmp_path)
    e = con.sql("SELECT * FROM net_money WHERE src = 'v1' AND dst = 'ctrl'").pl()
    assert e.height == 1
    row = e.row(0, named=True)
    assert (row["src_bank"], row["dst_bank"], row["n"], row["amount"]) == ("BANK_A", "BANK_B", 3, 1800.0)
    mine = {t["txn_id"] for t in b.txns if t["account_id"] == "v1"}
    theirs = {t["txn_id"] for t in b.txns if t["account_id"] == "ctrl"}
    assert set(row["src_txn_ids"]) <= mine and set(row["dst_txn_ids"]) <= theirs and len(row["dst_txn_ids"]) == 3
    # the money left within hours of the latest client payment
    assert row["median_hours_after_credit"] is not None and row["median_hours_after_credit"] < 24 * 7
    con.close()


def test_victims_at_two_banks_form_one_case_through_their_unalerted_controller(tmp_path):
    b = Book()
    _ring(b)
    con = _scored(b, tmp_path)
    alerts, cases = CaseGrouper().group(con, _alerts([("BANK_A", "v1"), ("BANK_B", "v2"), ("BANK_A", "z")]))
    case = dict(zip(alerts["account_id"], alerts["case_id"]))
    assert case["v1"] == case["v2"] != case["z"]
    assert case["v1"] == "C-A-000"  # the oldest alert id names the case
    ring = cases.filter(pl.col("case_id") == case["v1"]).row(0, named=True)
    assert ring["accounts"] == 2 and ring["banks"] == ["BANK_A", "BANK_B"] and ring["money_eur"] == 3600.0
    con.close()


def test_roles_in_a_case(tmp_path):
    b = Book()
    _ring(b)
    con = _scored(b, tmp_path)
    alerts, cases = CaseGrouper().group(con, _alerts([("BANK_B", "ctrl"), ("BANK_A", "v1"), ("BANK_B", "v2")]))
    roles = dict(zip(alerts["account_id"], alerts["case_role"]))
    assert roles == {"ctrl": "controller", "v1": "victim", "v2": "victim"}
    assert cases.height == 1 and cases["roles"][0] == "victim: 2, controller: 1"
    con.close()


def test_a_weak_tie_does_not_merge_cases(tmp_path):
    b = Book()
    _ring(b)
    b.transfer("v1", "z", 70, 13, 40)  # one small Tikkie between two alerted accounts
    con = _scored(b, tmp_path)
    alerts, _ = CaseGrouper().group(con, _alerts([("BANK_A", "v1"), ("BANK_A", "z")]))
    assert alerts["case_id"].n_unique() == 2
    con.close()


def test_a_crowded_hub_key_is_ignored(tmp_path):
    b = Book()
    for i in range(5):
        b.account(f"a{i}")
        b.tx(f"a{i}", 5 + i, 12, "debit", 20, "transfer", cp="x", cptype="business", device="dev-kiosk")
    con = _scored(b, tmp_path)
    accounts = [("BANK_A", f"a{i}") for i in range(5)]
    assert CaseGrouper().group(con, _alerts(accounts))[0]["case_id"].n_unique() == 1
    assert CaseGrouper(max_alerted_per_key=4).group(con, _alerts(accounts))[0]["case_id"].n_unique() == 5
    con.close()


def test_a_lone_network_rule_is_not_halved():
    hits = pl.DataFrame(
        {
            "rule_id": ["NET_COLLECTOR", "SE10_TAXI"],
            "typology": ["sexual_exploitation"] * 2,
            "severity": [3, 3],
            "victim_side": [False, True],
            "bank_id": ["B", "B"],
            "account_id": ["c", "t"],
            "evidence": [["x"], ["y"]],
            "detail": ["d", "d"],
        }
    )
    anomaly = pl.DataFrame({"bank_id": ["B", "B"], "account_id": ["c", "t"], "anomaly": [0.5, 0.5]})
    out = dict(zip(*Fusion().fuse(hits, anomaly, {}).select("account_id", "score").to_dict(as_series=False).values()))
    assert abs(out["c"] - 0.45) < 1e-9 and "t" not in out  # the taxi rule alone: 0.225, under the threshold


def test_case_metrics_on_known_tables():
    labels = pl.DataFrame(
        {
            "bank_id": ["B"] * 6,
            "account_id": list("abcdef"),
            "typology": ["se", "se", "se", "le", "le", "none"],
            "scenario_id": ["S1", "S1", "S1", "L1", "L1", None],
        }
    )
    alerts = pl.DataFrame({"bank_id": ["B"] * 6, "account_id": list("abcdef"), "case_id": ["k1", "k1", "k2", "k3", "k3", "k3"]})
    m = case_metrics(alerts, labels)
    assert m["case_grouping@2%"] == round((2 / 3 + 1) / 2, 4)
    assert m["scenarios_grouped@2%"] == 0.5
    assert m["case_purity@2%"] == round((1 + 2 / 3) / 2, 4)  # k1 pure; k3 two of L1 and one background
