"""Laundering patterns over the money link graph, in time order: cycles, scatter-gather, gather-scatter, fan-out,
fan-in, layering chains (stack) and bipartite groups.

Counting senders (the older laundering rules) finds a collector but not the shape money takes when proceeds are
layered through several accounts and banks. Each pattern here is a sequence of transfers that follows the money:
a transfer out of an account counts as passing money on (a "hop") when it leaves soon after a transfer in and keeps
most of its amount. DuckDB cuts the window down to transfers between accounts in the store (`pt_tx`) and hops
(`pt_hop`); the group patterns are SQL over those; networkx finds bounded cycles on the small graph of accounts
that pass money on, and each cycle is checked transfer by transfer (time order, time bound, amount kept).

Reads win_tx, win_accounts and net_money (detectors.window, detectors.network); returns one row per (pattern,
account) with the transfers of the pattern as evidence: the account's own bookings of them first (a payee's credit
booking, a payer's debit), then the pattern's other transfers, each part in time order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import duckdb
import networkx as nx
import polars as pl

from detectors.network import MONEY_CHANNELS, table_exists


@dataclass(frozen=True)
class Pattern:
    """Rule-like metadata (the attribute names of detectors.rules.Rule) for one laundering pattern."""

    id: str
    name: str
    typology: str
    indicators: tuple[str, ...]
    description: str
    severity: int
    params: dict = field(default_factory=dict)
    stage: int = 1
    victim_side: bool = False
    constellation: bool = True  # a pattern already joins several accounts' transfers
    role: str | None = None  # payers, intermediaries and collectors alike: no single role
    attribute: bool = False
    footprint: str | None = None  # money moving in a pattern is no lawful activity's ordinary footprint
    ctes: tuple[str, ...] = ()  # no SQL fragments or shared tables: the detector is Python over the link graph
    reads: tuple[str, ...] = ()


# Indicator choice (indicators.md §F has no graph-shape indicators; the closest mechanics):
# ML-06 (frequent transfers within a set of entities under one control) for money that goes round or stays inside a closed
# group; ML-01 (funnel: money in from many places, out soon after) for collecting and spreading; ML-05 (inflows passed
# through and drained within hours) for chains; ML-08 (intermediaries hiding who pays whom) for scatter-gather.
PATTERNS: list[Pattern] = [
    Pattern(
        "PT_CYCLE",
        "Money returns to where it started",
        "laundering",
        ("ML-06",),
        "Money leaves an account, passes through 1-5 others in time order and comes back within days, most of it kept.",
        3,
        {"min_accounts": 2, "max_accounts": 6, "hop_hours": 96, "max_days": 21, "min_kept": 0.7},
    ),
    Pattern(
        "PT_SCATTER_GATHER",
        "Split over intermediaries, gathered by one account",
        "laundering",
        ("ML-08", "ML-01"),
        "One account pays several intermediaries, each passes the money on to the same account within days.",
        3,
        {"min_intermediaries": 3, "hop_hours": 120, "max_days": 7},
    ),
    Pattern(
        "PT_GATHER_SCATTER",
        "Gathered from several, spread to several",
        "laundering",
        ("ML-01", "ML-05"),
        "An account collects from several senders and soon pays most of it out to several other accounts.",
        3,
        {"min_senders": 3, "min_receivers": 3, "gather_days": 5, "scatter_days": 5, "min_share": 0.7, "max_share": 1.05},
    ),
    Pattern(
        "PT_FAN_OUT",
        "Similar amounts to many accounts, several fresh or rarely used",
        "laundering",
        ("ML-01",),
        "One account pays similar amounts to many accounts once or twice within days, several of them new or hardly used.",
        2,
        {
            "min_receivers": 5,
            "min_fresh": 3,
            "days": 7,
            "tolerance": 0.15,
            "max_age_days": 120,
            "max_activity": 12,
            "max_pair_n": 2,
        },
    ),
    Pattern(
        "PT_FAN_IN",
        "Similar amounts from many one-off senders",
        "laundering",
        ("ML-01",),
        "Many accounts each pay this account a similar amount once or twice within days.",
        2,
        {"min_senders": 5, "days": 7, "tolerance": 0.15, "max_pair_n": 2},
    ),
    Pattern(
        "PT_STACK",
        "Layering chain",
        "laundering",
        ("ML-05", "ML-01"),
        "Money passes through several accounts in sequence, each passing most of it on soon after receiving it.",
        3,
        {"hop_hours": 96},
    ),
    Pattern(
        "PT_BIPARTITE",
        "Closed group of payers and payees",
        "laundering",
        ("ML-06",),
        "A set of accounts pays a set of other accounts, nearly every payer every payee, with no other money between them.",
        2,
        {"min_side": 2, "min_accounts": 4, "min_density": 0.75, "max_degree": 20},
    ),
]

# Shared settings: which transfers count at all, and what passing money on means.
# max_busy: an account with more qualifying transfers than this in the window (a payroll or payment hub) is not taken as an
# intermediary, collector or payer: it keeps the pair-wise joins bounded, and mules move a few large sums, not hundreds.
DEFAULTS = {"min_amount": 200.0, "hop_hours": 120, "keep_min": 0.7, "keep_max": 1.02, "max_cycles": 5000, "max_busy": 300}
# what each may be: (kind, least, most). The values go into the patterns' SQL, so anything else is refused at load.
RANGES = {
    "min_amount": (float, 0.01, 1e9),
    "hop_hours": (int, 1, 8760),
    "keep_min": (float, 0.01, 1.0),
    "keep_max": (float, 1.0, 10.0),
    "max_cycles": (int, 1, 10_000_000),
    "max_busy": (int, 1, 10_000_000),
}


def checked_settings(given: dict) -> dict:
    """DEFAULTS with `given` over them, each a number of its kind within its range (ValueError naming the key)."""
    bad = [k for k in given if k not in DEFAULTS]
    if bad:
        raise ValueError(f"config 'patterns' has no setting(s) {', '.join(map(str, bad))}; it has {', '.join(DEFAULTS)}")
    for key, v in given.items():
        kind, least, most = RANGES[key]
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not whole):
            raise ValueError(f"patterns.{key}: expected {'a whole number' if kind is int else 'a number'}")
        if not least <= v <= most:  # NaN fails this too
            raise ValueError(f"patterns.{key}: expected {least:g} to {most:g}")
    out = {**DEFAULTS, **{k: (int(v) if RANGES[k][0] is int else float(v)) for k, v in given.items()}}
    if out["keep_min"] > out["keep_max"]:
        raise ValueError(f"patterns.keep_min ({out['keep_min']:g}) is above patterns.keep_max ({out['keep_max']:g})")
    return out


FOUND_DDL = """CREATE OR REPLACE TEMP TABLE pt_found (rule_id VARCHAR, bank_id VARCHAR, account_id VARCHAR, ids VARCHAR[],
               first_at TIMESTAMPTZ, detail VARCHAR)"""

OUT_SCHEMA = {
    "rule_id": pl.Utf8,
    "typology": pl.Utf8,
    "severity": pl.Int32,
    "victim_side": pl.Boolean,
    "bank_id": pl.Utf8,
    "account_id": pl.Utf8,
    "evidence": pl.List(pl.Utf8),
    "detail": pl.Utf8,
}


class PatternDetector:
    """Takes the rule config as it is: {"PT_CYCLE": {"max_days": 14, "severity": 2}, "disabled": ["PT_FAN_IN"],
    "patterns": {"min_amount": 500}}; keys of other rules are left to them."""

    def __init__(self, overrides: dict | None = None):
        overrides = overrides or {}
        disabled = set(overrides.get("disabled", []))
        known = {p.id for p in PATTERNS}
        unknown = [k for k in overrides if k.startswith("PT_") and k not in known]
        unknown += sorted(f"{d} (in disabled)" for d in disabled if str(d).startswith("PT_") and d not in known)
        if unknown:
            raise ValueError(f"config names unknown patterns: {', '.join(unknown)}; there are {', '.join(sorted(known))}")
        self.settings = checked_settings(overrides.get("patterns") or {})
        self.patterns = []
        for p in PATTERNS:
            if p.id in disabled:
                continue
            new = overrides.get(p.id) or {}
            bad = [k for k in new if k not in p.params and k != "severity"]
            if bad:
                raise ValueError(f"pattern {p.id} has no parameter(s) {', '.join(bad)}; it has {', '.join(p.params)}")
            self.patterns.append(
                replace(
                    p,
                    params={**p.params, **{k: v for k, v in new.items() if k != "severity"}},
                    severity=int(new.get("severity", p.severity)),
                )
            )
        # the hop table must reach the longest hop any pattern allows
        self.settings["hop_hours"] = max([self.settings["hop_hours"]] + [p.params.get("hop_hours", 0) for p in self.patterns])

    def score(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        """Needs win_tx, win_accounts and net_money in `con`; leaves pt_tx, pt_hop and pt_found behind for inspection."""
        s = self.settings
        self.seconds: dict[str, float] = {}  # per step, for the benchmark
        t = time.perf_counter()
        self._candidates(con)
        con.execute(FOUND_DDL)
        self.seconds["candidates"] = time.perf_counter() - t
        for p in self.patterns:
            t = time.perf_counter()
            if p.id == "PT_CYCLE":
                self._cycles(con, p)
            else:
                con.execute(f"INSERT INTO pt_found {SQL[p.id].format(**{**s, **p.params}, rule=p.id)}")
            self.seconds[p.id] = time.perf_counter() - t
        meta = pl.DataFrame(
            {
                "rule_id": [p.id for p in self.patterns],
                "typology": [p.typology for p in self.patterns],
                "severity": [p.severity for p in self.patterns],
                "victim_side": [p.victim_side for p in self.patterns],
            },
            schema={"rule_id": pl.Utf8, "typology": pl.Utf8, "severity": pl.Int32, "victim_side": pl.Boolean},
        )
        # one row per (pattern, account): every instance's transfers, once each, in time order; the first instance's figures
        found = con.sql("""
            WITH f AS (SELECT rule_id, bank_id, account_id, count(*) AS instances, arg_min(detail, (first_at, detail)) AS detail,
                              list_distinct(flatten(list(ids))) AS ids FROM pt_found GROUP BY ALL),
                 t AS (SELECT x.rule_id, x.bank_id, x.account_id, t.txn_id, t.booked_at, t.src, t.dst, t.amount
                       FROM (SELECT rule_id, bank_id, account_id, unnest(ids) AS txn_id FROM f) x JOIN pt_tx t USING (txn_id)),
                 -- the account's own side first: a payee's credit booking of a pattern transfer (pt_tx holds the payer's side)
                 own_in AS (SELECT t.rule_id, t.bank_id, t.account_id, t.booked_at, t.txn_id AS via,
                                   arg_min(c.txn_id, (abs(date_diff('minute', c.booked_at, t.booked_at)), c.txn_id)) AS txn_id
                            FROM t JOIN win_tx c ON t.dst = t.account_id AND c.bank_id = t.bank_id AND c.account_id = t.account_id
                             AND c.is_in AND c.counterparty_id = t.src AND c.amount = t.amount
                             AND c.booked_at BETWEEN t.booked_at - INTERVAL 2 DAY AND t.booked_at + INTERVAL 2 DAY
                            GROUP BY t.rule_id, t.bank_id, t.account_id, t.txn_id, t.booked_at),
                 ev AS (SELECT rule_id, bank_id, account_id, txn_id, booked_at, 0 AS side FROM own_in
                        UNION ALL SELECT rule_id, bank_id, account_id, txn_id, booked_at, CASE WHEN src = account_id THEN 0 ELSE 1 END
                        FROM t ANTI JOIN own_in o ON o.via = t.txn_id AND o.rule_id = t.rule_id AND o.account_id = t.account_id),
                 e AS (SELECT rule_id, bank_id, account_id, list(txn_id ORDER BY side, booked_at, txn_id)[1:50] AS evidence
                       FROM ev GROUP BY ALL)
            SELECT f.rule_id, f.bank_id, f.account_id, e.evidence,
                   f.detail || CASE WHEN f.instances > 1 THEN printf(' (and %d more like it)', f.instances - 1) ELSE '' END AS detail
            FROM f JOIN e USING (rule_id, bank_id, account_id) ORDER BY bank_id, account_id, rule_id""").pl()
        if found.height == 0:
            return pl.DataFrame(schema=OUT_SCHEMA)
        return found.join(meta, on="rule_id").select(list(OUT_SCHEMA)).cast(OUT_SCHEMA)

    def _candidates(self, con: duckdb.DuckDBPyConnection) -> None:
        s = self.settings
        # Transfers between two accounts in the store, from the payer's side (one row per transfer), big enough to launder.
        # net_pay (detectors/network.py) holds the window's payments to accounts in the store, the bookings this join keeps
        # (net_money has no pair whose payee is outside the store or the payer itself); a sharded run reads the window.
        paid = (
            "net_pay"
            if table_exists(con, "net_pay")
            else f"(SELECT * FROM win_tx WHERE NOT is_in AND channel IN {MONEY_CHANNELS})"
        )
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pt_tx AS
            SELECT w.txn_id, m.src_bank, m.src, m.dst_bank, m.dst, w.booked_at, w.amount, m.n AS pair_n
            FROM {paid} w JOIN net_money m ON m.src = w.account_id AND m.dst = w.counterparty_id
            WHERE w.amount >= {float(s["min_amount"])}""")
        con.execute("DROP TABLE IF EXISTS net_pay")  # read once: no later run on this connection may take it for its own
        con.execute(f"""CREATE OR REPLACE TEMP TABLE pt_busy AS SELECT account_id FROM (
                            SELECT src AS account_id FROM pt_tx UNION ALL SELECT dst FROM pt_tx) GROUP BY 1 HAVING count(*) > {int(s["max_busy"])}""")
        # Hops: money into an account passed on to another (or back) soon after, most of it kept.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pt_hop AS
            SELECT i.txn_id AS in_id, o.txn_id AS out_id, i.src AS prev, i.dst_bank AS mid_bank, i.dst AS mid, o.dst AS next,
                   i.booked_at AS in_at, o.booked_at AS out_at, i.amount AS in_amount, o.amount AS out_amount,
                   date_diff('minute', i.booked_at, o.booked_at) / 60.0 AS hours
            FROM pt_tx i JOIN pt_tx o ON o.src = i.dst AND o.booked_at >= i.booked_at
                 AND o.booked_at <= i.booked_at + INTERVAL {int(s["hop_hours"])} HOUR
            WHERE o.amount BETWEEN {float(s["keep_min"])} * i.amount AND {float(s["keep_max"])} * i.amount
              AND i.dst NOT IN (SELECT account_id FROM pt_busy)""")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE pt_acc AS SELECT DISTINCT src AS account_id, src_bank AS bank_id FROM pt_tx "
            "UNION SELECT dst, dst_bank FROM pt_tx"
        )

    def _cycles(self, con: duckdb.DuckDBPyConnection, p: Pattern) -> None:
        """Bounded cycle search on accounts that pass money on, each cycle then followed transfer by transfer."""
        prm = p.params
        hops = con.sql(f"SELECT in_id, out_id, prev, mid, next FROM pt_hop WHERE hours <= {float(prm['hop_hours'])}").pl()
        if hops.height == 0:
            return
        g = nx.DiGraph()
        g.add_edges_from(hops.select("prev", "mid").unique().iter_rows())
        g.add_edges_from(hops.select("mid", "next").unique().iter_rows())
        # edges of money passed on (into and out of each intermediary); the origin of a cycle need not pass anything on
        while True:  # an account on a cycle both pays and receives: drop the rest until nothing changes
            dead = [v for v in g if g.in_degree(v) == 0 or g.out_degree(v) == 0]
            if not dead:
                break
            g.remove_nodes_from(dead)
        if g.number_of_nodes() == 0:
            return
        tx = con.execute(
            "SELECT txn_id, src_bank, src, dst_bank, dst, epoch(booked_at), amount FROM pt_tx WHERE src IN (SELECT unnest(?))",
            [list(g.nodes)],
        ).fetchall()
        info = {r[0]: r for r in tx}
        by_edge: dict[tuple, list] = {}
        for r in sorted(tx, key=lambda r: r[5]):
            by_edge.setdefault((r[2], r[4]), []).append(r[0])
        nxt: dict[str, set] = {}
        for i, o in hops.select("in_id", "out_id").iter_rows():
            nxt.setdefault(i, set()).add(o)
        bank = {r[2]: r[1] for r in tx} | {r[4]: r[3] for r in tx}
        rows, seen = [], set()
        for k, cycle in enumerate(nx.simple_cycles(g, length_bound=int(prm["max_accounts"]))):
            if k >= int(self.settings["max_cycles"]):  # a dense knot of pass-through accounts: enough to show
                break
            if len(cycle) < int(prm["min_accounts"]):
                continue
            for shift in range(len(cycle)):  # any account of the cycle may be where the money started
                order = cycle[shift:] + cycle[:shift]
                path = self._follow(order, by_edge, nxt, info, prm)
                if path and tuple(path) not in seen:
                    seen.add(tuple(path))
                    first, last = info[path[0]], info[path[-1]]
                    days = (last[5] - first[5]) / 86400
                    detail = (
                        f"EUR {first[6]:.0f} went round {len(order)} accounts in {days:.1f} days "
                        f"and EUR {last[6]:.0f} came back ({len(path)} transfers)"
                    )
                    for acc in order:
                        rows.append((p.id, bank[acc], acc, path, first[5], detail))
                    break
        if rows:
            df = pl.DataFrame(rows, schema=["rule_id", "bank_id", "account_id", "ids", "first_epoch", "detail"], orient="row")
            con.register("pt_cycle_rows", df)
            con.execute("""INSERT INTO pt_found SELECT rule_id, bank_id, account_id, ids, to_timestamp(first_epoch), detail
                           FROM pt_cycle_rows""")
            con.unregister("pt_cycle_rows")

    @staticmethod
    def _follow(order: list, by_edge: dict, nxt: dict, info: dict, prm: dict) -> list | None:
        """The first chain of transfers along `order` and back to its start: each a hop from the one before,
        all within max_days, the last keeping min_kept of the first."""
        k = len(order)
        for start in by_edge.get((order[0], order[1]), []):
            path = [start]
            while path:
                i = len(path)
                if i == k:
                    t0, tl = info[path[0]], info[path[-1]]
                    if tl[6] >= float(prm["min_kept"]) * t0[6] and tl[5] - t0[5] <= float(prm["max_days"]) * 86400:
                        return path
                    break
                want = (order[i], order[(i + 1) % k])
                options = [
                    o
                    for o in by_edge.get(want, [])
                    if o in nxt.get(path[-1], ()) and info[o][5] - info[path[0]][5] <= float(prm["max_days"]) * 86400
                ]
                if not options:
                    break
                path.append(options[0])  # earliest: the money moves on at the first chance
        return None


# Each pattern's SQL returns rows of pt_found: rule_id, bank_id, account_id, ids (the pattern's transfers), first_at, detail.
SQL: dict[str, str] = {
    # S pays several intermediaries; each passes (most of) it to the same D within days; S and D differ.
    "PT_SCATTER_GATHER": """
        WITH h AS (SELECT * FROM pt_hop WHERE next <> prev AND hours <= {hop_hours}),
             g AS (SELECT prev AS s, next AS d, count(DISTINCT mid) AS mids, sum(in_amount) AS amt_in, sum(out_amount) AS amt_out,
                          min(in_at) AS first_at, list(DISTINCT mid) AS mid_ids, list(in_id) || list(out_id) AS ids
                   FROM h GROUP BY ALL HAVING count(DISTINCT mid) >= {min_intermediaries}
                      AND date_diff('hour', min(in_at), max(out_at)) <= 24 * {max_days}),
             who AS (SELECT s AS acc, 'origin' AS role, * FROM g UNION ALL SELECT d, 'destination', * FROM g
                     UNION ALL SELECT unnest(mid_ids), 'intermediary', * FROM g)
        SELECT '{rule}', k.bank_id, who.acc, who.ids, who.first_at,
               printf('%s: EUR %.0f split over %d intermediaries, EUR %.0f gathered by one account', who.role, amt_in, mids, amt_out)
        FROM who JOIN pt_acc k ON k.account_id = who.acc""",
    # hub collects from >= min_senders within gather_days, then pays >= min_receivers (other accounts) most of it.
    "PT_GATHER_SCATTER": """
        WITH hubs AS (SELECT dst AS hub FROM pt_tx WHERE dst NOT IN (SELECT account_id FROM pt_busy) GROUP BY 1 HAVING count(DISTINCT src) >= {min_senders}
                      INTERSECT SELECT src FROM pt_tx GROUP BY 1 HAVING count(DISTINCT dst) >= {min_receivers}),
             a AS (SELECT DISTINCT dst AS hub, booked_at AS start_at FROM pt_tx SEMI JOIN hubs ON hubs.hub = pt_tx.dst),
             g AS (SELECT a.hub, a.start_at, count(DISTINCT i.src) AS senders, sum(i.amount) AS amt_in, max(i.booked_at) AS last_in,
                          list(DISTINCT i.src) AS src_ids, list(i.txn_id) AS in_ids
                   FROM a JOIN pt_tx i ON i.dst = a.hub AND i.booked_at BETWEEN a.start_at AND a.start_at + INTERVAL {gather_days} DAY
                   GROUP BY ALL HAVING count(DISTINCT i.src) >= {min_senders}),
             s AS (SELECT g.hub, g.start_at, any_value(g.senders) AS senders, any_value(g.amt_in) AS amt_in, any_value(g.src_ids) AS src_ids,
                          any_value(g.in_ids) AS in_ids, count(DISTINCT o.dst) AS receivers, sum(o.amount) AS amt_out,
                          list(DISTINCT o.dst) AS dst_ids, list(o.txn_id) AS out_ids
                   FROM g JOIN pt_tx o ON o.src = g.hub AND o.booked_at > g.start_at AND o.booked_at <= g.last_in + INTERVAL {scatter_days} DAY
                        AND NOT list_contains(g.src_ids, o.dst)
                   GROUP BY g.hub, g.start_at
                   HAVING count(DISTINCT o.dst) >= {min_receivers}
                      AND sum(o.amount) BETWEEN {min_share} * any_value(g.amt_in) AND {max_share} * any_value(g.amt_in)),
             best AS (SELECT * FROM s QUALIFY row_number() OVER (PARTITION BY hub ORDER BY start_at) = 1),
             who AS (SELECT hub AS acc, 'collector' AS role, * FROM best UNION ALL SELECT unnest(src_ids), 'sender', * FROM best
                     UNION ALL SELECT unnest(dst_ids), 'receiver', * FROM best)
        SELECT '{rule}', k.bank_id, who.acc, who.in_ids || who.out_ids, who.start_at,
               printf('%s: EUR %.0f gathered from %d accounts, EUR %.0f paid on to %d others', who.role, amt_in, senders, amt_out, receivers)
        FROM who JOIN pt_acc k ON k.account_id = who.acc""",
    # similar amounts (within tolerance of one of them) to >= min_receivers accounts within days, >= min_fresh of them new or
    # hardly used (mules are recruited with their own accounts as well as opened for the purpose); a receiver paid by the same
    # payer more than max_pair_n times in the window (a wage) is not in it.
    "PT_FAN_OUT": """
        WITH act AS (SELECT account_id, count(*) AS n FROM win_tx WHERE account_id IN (SELECT dst FROM pt_tx) GROUP BY 1),
             o AS (SELECT t.*, coalesce(w.account_age_days <= {max_age_days}, false) OR coalesce(act.n, 0) <= {max_activity} AS fresh
                   FROM pt_tx t LEFT JOIN win_accounts w ON w.account_id = t.dst LEFT JOIN act ON act.account_id = t.dst
                   WHERE t.pair_n <= {max_pair_n}),
             payers AS (SELECT src FROM o WHERE src NOT IN (SELECT account_id FROM pt_busy) GROUP BY 1
                        HAVING count(DISTINCT dst) >= {min_receivers} AND count(DISTINCT dst) FILTER (fresh) >= {min_fresh}),
             g AS (SELECT a.src, a.booked_at AS start_at, a.txn_id AS start_txn, count(DISTINCT b.dst) FILTER (b.fresh) AS fresh_receivers,
                          count(DISTINCT b.dst) AS receivers, sum(b.amount) AS amt, list(DISTINCT b.dst) AS dst_ids,
                          list(b.txn_id) AS ids, min(b.amount) AS lo, max(b.amount) AS hi
                   FROM o a SEMI JOIN payers USING (src)
                   JOIN o b ON b.src = a.src AND b.booked_at BETWEEN a.booked_at AND a.booked_at + INTERVAL {days} DAY
                        AND abs(b.amount - a.amount) <= {tolerance} * a.amount
                   GROUP BY a.src, a.booked_at, a.txn_id
                   HAVING count(DISTINCT b.dst) >= {min_receivers} AND count(DISTINCT b.dst) FILTER (b.fresh) >= {min_fresh}),
             best AS (SELECT * FROM g QUALIFY row_number() OVER (PARTITION BY src ORDER BY receivers DESC, start_at, start_txn) = 1),
             who AS (SELECT src AS acc, 'payer' AS role, * FROM best UNION ALL SELECT unnest(dst_ids), 'receiver', * FROM best)
        SELECT '{rule}', k.bank_id, who.acc, who.ids, who.start_at,
               printf('%s: EUR %.0f-%.0f each to %d accounts within %d days (EUR %.0f), %d of them new or hardly used',
                      role, lo, hi, receivers, {days}, amt, fresh_receivers)
        FROM who JOIN pt_acc k ON k.account_id = who.acc""",
    # the mirror: similar amounts from >= min_senders accounts, each paying it once or twice in the window.
    "PT_FAN_IN": """
        WITH i AS (SELECT * FROM pt_tx WHERE pair_n <= {max_pair_n}),
             takers AS (SELECT dst FROM i WHERE dst NOT IN (SELECT account_id FROM pt_busy) GROUP BY 1 HAVING count(DISTINCT src) >= {min_senders}),
             g AS (SELECT a.dst, a.booked_at AS start_at, a.txn_id AS start_txn, count(DISTINCT b.src) AS senders, sum(b.amount) AS amt,
                          list(DISTINCT b.src) AS src_ids,
                          list(b.txn_id) AS ids, min(b.amount) AS lo, max(b.amount) AS hi
                   FROM i a SEMI JOIN takers USING (dst)
                   JOIN i b ON b.dst = a.dst AND b.booked_at BETWEEN a.booked_at AND a.booked_at + INTERVAL {days} DAY
                        AND abs(b.amount - a.amount) <= {tolerance} * a.amount
                   GROUP BY a.dst, a.booked_at, a.txn_id HAVING count(DISTINCT b.src) >= {min_senders}),
             best AS (SELECT * FROM g QUALIFY row_number() OVER (PARTITION BY dst ORDER BY senders DESC, start_at, start_txn) = 1),
             who AS (SELECT dst AS acc, 'collector' AS role, * FROM best UNION ALL SELECT unnest(src_ids), 'sender', * FROM best)
        SELECT '{rule}', k.bank_id, who.acc, who.ids, who.start_at,
               printf('%s: EUR %.0f-%.0f each from %d accounts within %d days (EUR %.0f)', role, lo, hi, senders, {days}, amt)
        FROM who JOIN pt_acc k ON k.account_id = who.acc""",
    # two hops in a row (A->B->C->D, B and C each passing most of it on within hop_hours); longer chains overlap.
    "PT_STACK": """
        WITH h AS (SELECT * FROM pt_hop WHERE hours <= {hop_hours} AND next <> prev),
             c AS (SELECT a.prev AS a0, a.mid AS a1, b.mid AS a2, b.next AS a3, [a.in_id, a.out_id, b.out_id] AS ids, a.in_at AS first_at,
                          a.in_amount AS amt_in, b.out_amount AS amt_out,
                          date_diff('minute', a.in_at, b.out_at) / 60.0 AS hours
                   FROM h a JOIN h b ON b.in_id = a.out_id AND b.next NOT IN (a.prev, a.mid)),
             who AS (SELECT a0 AS acc, 'first payer' AS role, * FROM c UNION ALL SELECT a1, 'pass-through', * FROM c
                     UNION ALL SELECT a2, 'pass-through', * FROM c UNION ALL SELECT a3, 'last receiver', * FROM c)
        SELECT '{rule}', k.bank_id, who.acc, who.ids, who.first_at,
               printf('%s: EUR %.0f passed through 2 accounts in a row in %.0f hours, EUR %.0f arrived', role, amt_in, hours, amt_out)
        FROM who JOIN pt_acc k ON k.account_id = who.acc""",
    # payers sharing >= 2 payees (a 2x2 block), grown to the whole block; no money within a side or back.
    "PT_BIPARTITE": """
        WITH e AS (SELECT src, dst, list(txn_id) AS ids, min(booked_at) AS first_at FROM pt_tx GROUP BY ALL),
             outdeg AS (SELECT src FROM e GROUP BY 1 HAVING count(*) <= {max_degree}),
             indeg AS (SELECT dst FROM e GROUP BY 1 HAVING count(*) <= {max_degree}),
             e2 AS (SELECT * FROM e SEMI JOIN outdeg USING (src) SEMI JOIN indeg USING (dst)),
             pairs AS (SELECT a.src AS s1, b.src AS s2, list(a.dst) AS common FROM e2 a JOIN e2 b ON a.dst = b.dst AND a.src < b.src
                       GROUP BY ALL HAVING count(*) >= 2),
             pe AS (SELECT DISTINCT s, d FROM (SELECT s1 AS s, unnest(common) AS d FROM pairs UNION ALL SELECT s2, unnest(common) FROM pairs)),
             -- a block: the payers sharing payees with one payer (its lowest id names the block)
             blk AS (SELECT s, min(least(s1, s2)) OVER (PARTITION BY s) AS b FROM (SELECT s1 AS s, s1, s2 FROM pairs UNION ALL SELECT s2, s1, s2 FROM pairs)),
             b1 AS (SELECT DISTINCT b, s FROM blk),
             members AS (SELECT b1.b, pe.s, pe.d FROM pe JOIN b1 ON b1.s = pe.s),
             sizes AS (SELECT b, count(DISTINCT s) AS ns, count(DISTINCT d) AS nd, count(*) AS edges FROM members GROUP BY 1),
             good AS (SELECT * FROM sizes WHERE ns >= {min_side} AND nd >= {min_side} AND ns + nd >= {min_accounts}
                        AND edges >= {min_density} * ns * nd),
             sides AS (SELECT DISTINCT b, s AS acc, 'payer' AS role FROM members SEMI JOIN good USING (b)
                       UNION SELECT DISTINCT b, d, 'payee' FROM members SEMI JOIN good USING (b)),
             -- no other relation: no money between two payers, two payees, or from a payee back to a payer
             bad AS (SELECT DISTINCT x.b FROM sides x JOIN net_money m ON m.src = x.acc JOIN sides y ON y.b = x.b AND y.acc = m.dst
                     WHERE NOT (x.role = 'payer' AND y.role = 'payee')),
             ok AS (SELECT * FROM good WHERE b NOT IN (SELECT b FROM bad)),
             blk_ids AS (SELECT m.b, flatten(list(e.ids)) AS ids, min(e.first_at) AS first_at FROM members m JOIN e ON e.src = m.s AND e.dst = m.d
                         SEMI JOIN ok USING (b) GROUP BY 1)
        SELECT '{rule}', k.bank_id, x.acc, i.ids, i.first_at,
               printf('%s: %d payers and %d payees, %d of %d possible payer-payee links used, no other money between them',
                      x.role, ok.ns, ok.nd, ok.edges, ok.ns * ok.nd)
        FROM sides x JOIN ok USING (b) JOIN blk_ids i USING (b) JOIN pt_acc k ON k.account_id = x.acc""",
}
