"""Laundering patterns (detectors/patterns.py) on hand-made win_tx / win_accounts / net_money: each fires on its
shape and stays quiet on a near miss that breaks one condition (time, amount kept, count, or a relation)."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from detectors.patterns import PATTERNS, PatternDetector
from detectors.rules import Rule

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc)


class Graph:
    """Transfers between accounts, booked on both sides like a bank extract (debit at the payer, credit at the payee)."""

    def __init__(self):
        self.rows, self.accounts, self.n = [], {}, 0

    def acc(self, a, age=3000, kind="person"):
        self.accounts.setdefault(a, (age, kind))
        return a

    def pay(self, src, dst, hours, amount):
        self.acc(src), self.acc(dst)
        at = T0 + timedelta(hours=hours)
        self.n += 1
        self.rows.append(
            (f"T{self.n:04d}-d", "BANK_A" if src < "m" else "BANK_B", src, at, float(amount), False, dst, "transfer")
        )
        self.rows.append((f"T{self.n:04d}-c", "BANK_A" if dst < "m" else "BANK_B", dst, at, float(amount), True, src, "transfer"))
        return f"T{self.n:04d}-d"

    def noise(self, a, count):
        """Ordinary card spending: makes an account busy (not 'rarely used')."""
        for k in range(count):
            self.n += 1
            self.rows.append(
                (f"C{self.n:04d}", "BANK_A" if a < "m" else "BANK_B", a, T0 + timedelta(hours=k), 20.0, False, None, "card")
            )

    def run(self, reverse: bool = False, **overrides):
        """`reverse`: the bookings stored in the opposite order (no result may depend on it)."""
        con = duckdb.connect()
        con.execute("""CREATE TEMP TABLE win_tx (txn_id VARCHAR, bank_id VARCHAR, account_id VARCHAR, booked_at TIMESTAMPTZ,
                       amount DOUBLE, is_in BOOLEAN, counterparty_id VARCHAR, channel VARCHAR)""")
        if self.rows:
            con.executemany("INSERT INTO win_tx VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.rows[::-1] if reverse else self.rows)
        con.execute(
            "CREATE TEMP TABLE win_accounts (bank_id VARCHAR, account_id VARCHAR, customer_type VARCHAR, account_age_days INTEGER)"
        )
        if self.accounts:
            con.executemany(
                "INSERT INTO win_accounts VALUES (?, ?, ?, ?)",
                [("BANK_A" if a < "m" else "BANK_B", a, kind, age) for a, (age, kind) in self.accounts.items()],
            )
        con.execute("""CREATE TEMP TABLE net_money AS
                       SELECT any_value(bank_id) AS src_bank, account_id AS src, any_value(CASE WHEN counterparty_id < 'm' THEN 'BANK_A' ELSE 'BANK_B' END) AS dst_bank,
                              counterparty_id AS dst, count(*) AS n, sum(amount) AS amount, min(booked_at) AS first_at, max(booked_at) AS last_at
                       FROM win_tx WHERE NOT is_in AND channel = 'transfer' GROUP BY account_id, counterparty_id""")
        out = PatternDetector(overrides).score(con)
        return {(r["rule_id"], r["account_id"]): r for r in out.iter_rows(named=True)}


def fired(hits, rule):
    return sorted(a for (r, a) in hits if r == rule)


def test_patterns_have_rule_attributes_and_indicators():
    names = set(Rule.__dataclass_fields__) - {"sql"}
    for p in PATTERNS:
        assert names <= set(vars(p)), p.id
        assert p.typology == "laundering" and p.constellation and not p.victim_side
        assert p.indicators and all(i.startswith("ML-") for i in p.indicators)


def test_cycle_fires_with_evidence_in_time_order():
    g = Graph()
    ids = [g.pay("a1", "b2", 0, 5000), g.pay("b2", "c3", 20, 4900), g.pay("c3", "d4", 50, 4800), g.pay("d4", "a1", 80, 4700)]
    hits = g.run()
    assert fired(hits, "PT_CYCLE") == ["a1", "b2", "c3", "d4"]
    # c3's own bookings first (its credit of b2's transfer, its debit to d4), then the cycle's other transfers in time order
    assert hits[("PT_CYCLE", "c3")]["evidence"] == [ids[1].replace("-d", "-c"), ids[2], ids[0], ids[3]]
    assert hits[("PT_CYCLE", "a1")]["evidence"][:2] == [ids[0], ids[3].replace("-d", "-c")]
    assert "went round 4 accounts" in hits[("PT_CYCLE", "a1")]["detail"]


def test_cycle_length_bound_two_to_six_accounts():
    g = Graph()
    g.pay("a1", "b2", 0, 3000), g.pay("b2", "a1", 30, 2900)  # two accounts: out and back
    six = [f"c{k}" for k in range(6)]
    for k in range(6):
        g.pay(six[k], six[(k + 1) % 6], 10 * k, 3000 - 20 * k)
    seven = [f"n{k}" for k in range(7)]  # seven accounts: past the bound
    for k in range(7):
        g.pay(seven[k], seven[(k + 1) % 7], 10 * k, 3000 - 20 * k)
    assert fired(g.run(), "PT_CYCLE") == ["a1", "b2"] + six
    assert fired(g.run(PT_CYCLE={"max_accounts": 7}), "PT_CYCLE") == ["a1", "b2"] + six + seven


def test_cycle_near_misses_too_slow_or_amount_not_kept():
    g = Graph()  # comes back after 30 days
    g.pay("a1", "b2", 0, 5000), g.pay("b2", "c3", 20, 4900), g.pay("c3", "a1", 24 * 30, 4800)
    g.pay("e1", "f2", 0, 5000), g.pay("f2", "g3", 20, 1000), g.pay("g3", "e1", 40, 990)  # only a fifth passed on
    g.pay("h1", "i2", 10, 3000), g.pay("i2", "j3", 0, 2950), g.pay("j3", "h1", 20, 2900)  # i2 pays on BEFORE it receives
    assert fired(g.run(), "PT_CYCLE") == []


def test_scatter_gather_fires_and_near_miss_with_two_intermediaries():
    g = Graph()
    for k, m in enumerate(["m1", "m2", "m3"]):
        g.pay("s0", m, k, 2000), g.pay(m, "zd", 30 + k, 1950)
    for k, m in enumerate(["n1", "n2"]):  # only two intermediaries
        g.pay("s9", m, k, 2000), g.pay(m, "zz", 30 + k, 1950)
    hits = g.run()
    assert fired(hits, "PT_SCATTER_GATHER") == ["m1", "m2", "m3", "s0", "zd"]
    assert len(hits[("PT_SCATTER_GATHER", "zd")]["evidence"]) == 6


def test_gather_scatter_fires_and_near_miss_keeping_the_money():
    g = Graph()
    for k, s in enumerate(["a1", "a2", "a3"]):
        g.pay(s, "hub", k, 1000)
    for k, r in enumerate(["r1", "r2", "r3"]):
        g.pay("hub", r, 40 + k, 950)
    for k, s in enumerate(["b1", "b2", "b3"]):  # a landlord: collects rent, passes a small part on
        g.pay(s, "lnd", k, 1000)
    for k, r in enumerate(["q1", "q2", "q3"]):
        g.pay("lnd", r, 40 + k, 250)
    hits = g.run()
    assert fired(hits, "PT_GATHER_SCATTER") == ["a1", "a2", "a3", "hub", "r1", "r2", "r3"]


def test_fan_out_to_fresh_accounts_and_near_miss_to_busy_ones():
    g = Graph()
    for k in range(5):
        g.acc(f"f{k}", age=30)
        g.pay("boss", f"f{k}", k * 5, 900 + 10 * k)
    for k in range(5):  # same payments to long-held, busy accounts: family or staff, not mules
        g.acc(f"o{k}", age=4000)
        g.noise(f"o{k}", 20)
        g.pay("aunt", f"o{k}", k * 5, 900 + 10 * k)
    g.acc("old", age=4000), g.noise("old", 20), g.pay("boss", "old", 30, 930)  # in the same burst: part of the fan
    hits = g.run()
    assert fired(hits, "PT_FAN_OUT") == ["boss", "f0", "f1", "f2", "f3", "f4", "old"]
    assert "6 accounts" in hits[("PT_FAN_OUT", "boss")]["detail"] and "5 of them new" in hits[("PT_FAN_OUT", "boss")]["detail"]


def test_fan_out_to_mules_recruited_with_their_own_accounts_and_near_miss_with_two_fresh():
    g = Graph()
    for k in range(6):  # three accounts opened for it, three long-held ones lent by recruited mules
        g.acc(f"m{k}", age=30 if k < 3 else 4000)
        if k >= 3:
            g.noise(f"m{k}", 20)
        g.pay("ctl", f"m{k}", k * 8, 1500 + 20 * k)
    for k in range(6):  # the same fan with two new accounts among established ones: a payer settling with friends
        g.acc(f"n{k}", age=30 if k < 2 else 4000)
        if k >= 2:
            g.noise(f"n{k}", 20)
        g.pay("host", f"n{k}", k * 8, 1500 + 20 * k)
    hits = g.run()
    assert fired(hits, "PT_FAN_OUT") == ["ctl", "m0", "m1", "m2", "m3", "m4", "m5"]
    assert "3 of them new" in hits[("PT_FAN_OUT", "ctl")]["detail"]


def test_fan_out_near_miss_amounts_not_similar():
    g = Graph()
    for k in range(5):
        g.acc(f"f{k}", age=30)
        g.pay("boss", f"f{k}", k * 5, 300 * (k + 1))
    assert fired(g.run(), "PT_FAN_OUT") == []


def test_fan_in_fires_and_monthly_family_pooling_does_not():
    g = Graph()
    for k in range(5):
        g.pay(f"s{k}", "coll", k * 3, 500)
    for month in range(3):  # family pooling: the same four pay every month
        for k in range(5):
            g.pay(f"fam{k}", "pool", 24 * 30 * month + k, 500)
    hits = g.run()
    assert fired(hits, "PT_FAN_IN") == ["coll", "s0", "s1", "s2", "s3", "s4"]


def test_fan_in_and_fan_out_pick_the_same_of_two_tied_bursts_whatever_the_order_of_the_bookings():
    """Two bursts start at the same instant with as many senders (receivers): the one whose first transfer has the
    lower id is reported, however the window is stored. Near miss: a burst with more senders (receivers) wins."""
    g = Graph()
    for k in range(5):  # low: 500 each; high: 2000 each (outside each other's tolerance); both start at hour 0
        g.pay(f"lo{k}", "coll", k * 3, 500), g.pay("boss", f"r{k}", k * 3, 500)
        g.pay(f"hi{k}", "coll", k * 3, 2000), g.pay("boss", f"s{k}", k * 3, 2000)

    def picks():
        return {tuple(fired(h, "PT_FAN_IN") + fired(h, "PT_FAN_OUT")) for h in (g.run(), g.run(reverse=True))}

    assert picks() == {tuple(["coll"] + [f"lo{k}" for k in range(5)] + ["boss"] + [f"r{k}" for k in range(5)])}
    for k in (5, 6):  # two more in the high bursts
        g.pay(f"hi{k}", "coll", 14 + k, 2000), g.pay("boss", f"s{k}", 14 + k, 2000)
    assert picks() == {tuple(["coll"] + [f"hi{k}" for k in range(7)] + ["boss"] + [f"s{k}" for k in range(7)])}


def test_stack_fires_and_near_miss_slow_second_hop():
    g = Graph()
    ids = [g.pay("a1", "b2", 0, 3000), g.pay("b2", "c3", 5, 2950), g.pay("c3", "d4", 12, 2900)]
    g.pay("e1", "f2", 0, 3000), g.pay("f2", "g3", 5, 2950), g.pay("g3", "h4", 24 * 6, 2900)  # held six days
    g.pay("ten", "lnd", 0, 1200), g.pay("lnd", "zag", 20, 1100)  # rent passed to a managing agent: one hop only
    hits = g.run()
    assert fired(hits, "PT_STACK") == ["a1", "b2", "c3", "d4"]
    assert hits[("PT_STACK", "d4")]["evidence"] == [
        ids[2].replace("-d", "-c"),
        ids[0],
        ids[1],
    ]  # the last payee's own credit first


def test_stack_with_a_hop_over_a_weekend_fires_and_one_held_five_days_does_not():
    g = Graph()
    g.pay("a1", "b2", 0, 3000), g.pay("b2", "c3", 70, 2950), g.pay("c3", "d4", 80, 2900)  # Friday evening to Monday
    g.pay("e1", "f2", 0, 3000), g.pay("f2", "g3", 5, 2950), g.pay("g3", "h4", 5 + 24 * 5, 2900)  # held five days
    assert fired(g.run(), "PT_STACK") == ["a1", "b2", "c3", "d4"]


def test_bipartite_fires_and_near_miss_with_money_between_payers():
    g = Graph()
    for i, s in enumerate(["p1", "p2", "p3"]):
        for j, r in enumerate(["r1", "r2"]):
            g.pay(s, r, 10 * i + j, 700)
    hits = g.run()
    assert fired(hits, "PT_BIPARTITE") == ["p1", "p2", "p3", "r1", "r2"]
    g2 = Graph()
    for i, s in enumerate(["p1", "p2", "p3"]):
        for j, r in enumerate(["r1", "r2"]):
            g2.pay(s, r, 10 * i + j, 700)
    g2.pay("p1", "p2", 100, 300)  # the payers also pay each other: a family, not a closed scheme
    assert fired(g2.run(), "PT_BIPARTITE") == []


def test_overrides_and_disable():
    g = Graph()
    for k in range(5):
        g.pay(f"s{k}", "coll", k * 3, 500)
    assert fired(g.run(PT_FAN_IN={"min_senders": 6}), "PT_FAN_IN") == []
    assert fired(g.run(disabled=["PT_FAN_IN"]), "PT_FAN_IN") == []


def test_busy_payment_hub_is_not_an_intermediary():
    g = Graph()
    g.pay("a1", "b2", 0, 3000), g.pay("b2", "c3", 5, 2950), g.pay("c3", "d4", 12, 2900)
    assert fired(g.run(), "PT_STACK") == ["a1", "b2", "c3", "d4"]
    for k in range(4):  # b2 also moves money with many others: past max_busy it is a hub, not a mule
        g.pay(f"x{k}", "b2", 100 + k, 500)
    assert fired(g.run(patterns={"max_busy": 5}), "PT_STACK") == []


def test_bad_config_is_one_clear_line():
    with pytest.raises(ValueError, match="pattern PT_CYCLE has no parameter"):
        PatternDetector({"PT_CYCLE": {"max_dayz": 3}})
    with pytest.raises(ValueError, match="unknown patterns: PT_NOPE"):
        PatternDetector({"PT_NOPE": {}})
    assert PatternDetector({"PT_STACK": {"severity": 1}, "SE01_AD_MICRO": {"min_payments": 2}}).patterns[5].severity == 1


def test_empty_window_gives_empty_frame_with_columns():
    out = Graph()
    con_hits = out.run()
    assert con_hits == {}


def test_the_rules_command_lists_the_patterns_too(capsys):
    """Found by a README walk-through: `thb-signals rules` left out the PT_ patterns, which the config tunes and
    disables like rules and `rules --stats` counts."""
    from detectors.patterns import PATTERNS
    from pipelines.cli import main

    assert main(["rules"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")}
    assert {p.id for p in PATTERNS} <= listed
