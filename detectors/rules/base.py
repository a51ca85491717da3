"""What every rule module shares: the Rule record, its rendering, the named WITH fragments and the tables
several rules read (SHARED_TABLES), and rule_set (the catalogue with a config's overrides).

A rule's SQL reads the window views (win_tx, win_accounts, features, pass_through), the shared tables it
declares in `reads`, the link graph (net_money, net_shared, net_flagged: detectors/network.py; stage-2
rules also read `hits`, the stage-1 results) and returns one row per account it fires on:
bank_id, account_id, evidence (list of txn_id), detail (the figures, in words) and, for rules of
typology 'inherit', the typology it inherits. All SQL is a plain string with one placeholder syntax,
{name}: a rule's parameters (overridable from a YAML config without code changes), {per30} (scales
counts to 30 days), {days} (the window), {ev} (the usual evidence list) and the constants in CONSTANTS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from schemas.typologies import INHERIT, TYPOLOGIES

WAGE_WORDS = r"(?i)(salaris|salary|loon|wage|payroll|uitbetaling loon)"
RENT_WORDS = r"(?i)(huur|rent|kamer|housing|huisvesting|room)"
RISK_SECTORS = (
    "78.20",
    "78.10",
    "01.13",
    "01.19",
    "01.30",
    "45.20",
    "96.02",
    "96.01",
    "81.21",
    "81.22",
    "56.10",
    "55.10",
    "10.11",
    "49.41",
)
# The evidence most rules return: the account's bookings they grouped, in time order, at most 50.
# arg_min(..., 50) keeps the first 50 by (booked_at, txn_id), as list(txn_id ORDER BY booked_at, txn_id)[1:50] does (txn_id
# and booked_at are never null), without sorting every booking of the group: the rules' and link graph's CPU s at 10 M
# bookings fell by about a third. txn_id: the same evidence whatever the plan.
EV = "arg_min(txn_id, (booked_at, txn_id), 50)"
CONSTANTS = {
    "ev": EV,
    "rent_words": RENT_WORDS,
    "wage_words": WAGE_WORDS,
    "risk_sectors": ", ".join(f"'{s}'" for s in RISK_SECTORS),
}

# Tables several rules read, built once per run before any rule (RuleDetector.score) instead of once per rule,
# and only when an enabled rule declares it in `reads`.
# win_wages: a wage is a credit from a business, with wage words or the same amount paid twice or more.
SHARED_TABLES: dict[str, str] = {
    "win_wages": """
        SELECT * FROM (SELECT w.*, count(*) OVER (PARTITION BY bank_id, account_id, counterparty_id, amount) AS same_amount
                       FROM win_tx w WHERE w.is_in AND w.counterparty_type = 'business'
                         AND w.channel IN ('transfer', 'instant_transfer') AND w.amount >= 400)
        WHERE regexp_matches(coalesce(description, ''), '{wage_words}') OR same_amount >= 2""",
    # win_telecom_firsts: each (account, telecom provider) paid by direct debit in the window, its first day, whether the
    # store holds a payment to it before the window and since when it holds the account's bookings (creditboys.NEW_CONTRACTS).
    # Two rules read it: the store's transactions table is grouped once per run, not once per rule.
    "win_telecom_firsts": """
        WITH d AS (SELECT bank_id, account_id, counterparty_id, min(day) AS first_day, arg_min(txn_id, (day, txn_id)) AS txn_id
                   FROM win_tx WHERE NOT is_in AND channel = 'direct_debit' AND category = 'telecom' GROUP BY ALL),
             -- since: the account's first booking if it lies before the window, else the window's start, or the bank's
             -- first booking in the store where that is later (a bank's first 40-day extract under a 90-day window: every
             -- running contract's first bill looked new, and the rule fired on 30% of accounts). Only bookings before the
             -- window can be earlier than the start (every account of d books in it), so only those are read per account.
             before AS (SELECT bank_id, account_id, min(booked_at) AS first_at FROM transactions SEMI JOIN d USING (bank_id, account_id)
                        WHERE booked_at <= getvariable('window_end') - INTERVAL {days} DAY GROUP BY ALL),
             horizon AS (SELECT bank_id, min(booked_at) AS first_at FROM transactions
                         WHERE bank_id IN (SELECT DISTINCT bank_id FROM d) GROUP BY ALL),
             hist AS (SELECT DISTINCT d.bank_id, d.account_id, CAST(timezone('Europe/Amsterdam', coalesce(b.first_at,
                                 greatest(getvariable('window_end') - INTERVAL {days} DAY, h.first_at))) AS DATE) AS since
                      FROM d LEFT JOIN before b USING (bank_id, account_id) LEFT JOIN horizon h USING (bank_id)),
             prior AS (SELECT DISTINCT bank_id, account_id, counterparty_id FROM transactions SEMI JOIN d USING (bank_id, account_id, counterparty_id)
                       WHERE booked_at <= getvariable('window_end') - INTERVAL {days} DAY)
        SELECT d.*, hist.since, prior.account_id IS NOT NULL AS paid_before
        FROM d JOIN hist USING (bank_id, account_id) LEFT JOIN prior USING (bank_id, account_id, counterparty_id)""",
}


def render_shared(name: str, days: int) -> str:
    """A shared table's SQL with its constants and the window's length filled in."""
    return SHARED_TABLES[name].format(days=int(days), **CONSTANTS)


@dataclass(frozen=True)
class Fragment:
    """Common table expressions several rules start from (without the WITH); `reads`: the shared tables they read."""

    sql: str
    reads: tuple[str, ...] = ()


FRAGMENTS: dict[str, Fragment] = {
    "wages": Fragment("wages AS (SELECT * FROM win_wages)", ("win_wages",)),
    # Identical sums sent abroad to one beneficiary at a steady rhythm, per (account, beneficiary, amount). A beneficiary is
    # a person paid by transfer or remittance: a card merchant or subscription registered abroad (IE, LU, MT) is not one.
    "instalments": Fragment("""instalments AS (
    SELECT bank_id, account_id, counterparty_id, amount, count(*) AS n, list(txn_id ORDER BY booked_at, txn_id) AS ids,
           stddev_pop(gap) AS gap_sd, avg(gap) AS gap_avg, min(counterparty_country) AS country
    FROM (SELECT *, date_diff('day', lag(day) OVER (PARTITION BY bank_id, account_id, counterparty_id, amount ORDER BY day), day) AS gap
          FROM win_tx WHERE NOT is_in AND (channel = 'money_remittance' OR counterparty_country <> 'NL')
            AND counterparty_type = 'person' AND channel IN ('transfer', 'instant_transfer', 'money_remittance'))
    GROUP BY ALL HAVING count(*) >= {min_payments} AND coalesce(stddev_pop(gap), 0) <= {max_gap_sd})"""),
    # Persons paid a wage-sized sum at least twice by one business, and where their money goes on to.
    "workforce": Fragment("""staff AS (
    SELECT m.src_bank AS bank_id, m.src AS employer, m.dst_bank AS worker_bank, m.dst AS worker, m.amount / m.n AS wage,
           m.src_txn_ids AS ids
    FROM net_money m JOIN win_accounts e ON e.bank_id = m.src_bank AND e.account_id = m.src
         JOIN win_accounts w ON w.bank_id = m.dst_bank AND w.account_id = m.dst
    WHERE e.customer_type = 'business' AND w.customer_type = 'person' AND m.n >= 2 AND m.amount / m.n >= {min_wage}),
  headcount AS (SELECT employer, count(*) AS workers FROM staff GROUP BY 1),
  passed_on AS (
    SELECT s.employer, f.dst_bank AS bank_id, f.dst AS collector, count(DISTINCT s.worker) AS workers,
           sum(f.amount) AS amount, flatten(list(f.dst_txn_ids ORDER BY s.worker, f.src)) AS collector_ids
    FROM staff s JOIN net_money f ON f.src = s.worker AND f.dst <> s.employer
    WHERE f.amount >= {min_share} * s.wage GROUP BY ALL)"""),
}

ROLES = ("victim", "mule", "controller", "employer")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    typology: str  # an id in schemas/typologies.py, or 'inherit' (the SQL returns the typology)
    indicators: tuple[str, ...]
    description: str  # for an investigator
    severity: int  # 1 low .. 3 high (indicators.md strength A=3, B=2, C=1)
    sql: str
    params: dict = field(default_factory=dict)
    stage: int = 1  # 2: reads the stage-1 hits (network rules)
    # The account it fires on is likely the exploited person ('victim', 'mule': victim-side signals that feed the
    # network rules), the one who collects ('controller') or the business using the workers ('employer'); cases read it.
    role: str | None = None
    constellation: bool = False  # already joins several indicators across accounts: not a lone indicator in fusion
    attribute: bool = False  # fires on a shared attribute (address, device), not behaviour: NET_SHARED_CLUSTER skips it
    # The lawful activity whose ordinary footprint the rule sees (e.g. 'sex_work': ads, clients' payments, night cash).
    # Licensed sex work is legal in the Netherlands and transactions alone hardly tell it from forced sex work
    # (indicators.md, general caveat): in fusion all rules of one footprint count as one indicator family, so an
    # account needs evidence beyond the activity itself (money passed on, control, spending out of profile).
    footprint: str | None = None
    ctes: tuple[str, ...] = ()  # FRAGMENTS the SQL starts from, in order
    reads: tuple[str, ...] = ()  # SHARED_TABLES the SQL reads (its fragments' included)

    def __post_init__(self):
        if self.typology != INHERIT and self.typology not in TYPOLOGIES:
            raise ValueError(f"rule {self.id}: typology {self.typology!r} is not in schemas/typologies.py")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"rule {self.id}: role {self.role!r} is not one of {', '.join(ROLES)}")
        unknown = [c for c in self.ctes if c not in FRAGMENTS] + [t for t in self.reads if t not in SHARED_TABLES]
        if unknown:
            raise ValueError(f"rule {self.id}: no fragment or shared table {', '.join(unknown)}")
        undeclared = [t for c in self.ctes for t in FRAGMENTS[c].reads if t not in self.reads]
        if undeclared:
            raise ValueError(f"rule {self.id}: its fragments read {', '.join(undeclared)}, not in `reads`")

    @property
    def victim_side(self) -> bool:
        return self.role in ("victim", "mule")

    @property
    def text(self) -> str:
        """The SQL with its fragments in front, placeholders not yet filled."""
        if not self.ctes:
            return self.sql
        head = "WITH " + ",\n  ".join(FRAGMENTS[c].sql for c in self.ctes)
        body = self.sql.lstrip()
        return head + (",\n  " + body[len("WITH ") :] if body.startswith("WITH ") else "\n" + body)

    def render(self, days: int) -> str:
        # {per30} renders as '30.0 / days' so 'count(*) * 30.0 / 90' stays exact (9 * 30 / 90 == 3)
        return self.text.format(**{"per30": f"30.0 / {days}", "days": days, **CONSTANTS, **self.params})


def sql_list(rules: list[Rule]) -> str:
    """Rule ids as an SQL list literal, for a rule that names other rules."""
    return ", ".join(f"'{r.id}'" for r in rules)


# Config keys that are not rule ids: read by the window, network, cases, fusion, scoring and goAML export.
SETTINGS = (
    "disabled",
    "categories",
    "fusion",
    "window_days",
    "network",
    "cases",
    "dismissed_rise",
    "goaml",
    "patterns",
    "budget",
)


def rule_set(rules: list[Rule], overrides: dict | None = None) -> list[Rule]:
    """`rules` with parameters overridden from a config: {rule_id: {param: value}, 'disabled': [ids]}."""
    overrides = overrides or {}
    disabled = set(overrides.get("disabled", []))
    known = {r.id for r in rules}
    unknown = [
        k for k in overrides if k not in known and k not in SETTINGS and not k.startswith("PT_")
    ]  # PT_: detectors.patterns
    unknown += sorted(f"{d} (in disabled)" for d in disabled - known if not str(d).startswith("PT_"))
    if unknown:
        raise ValueError(f"config names unknown rules: {', '.join(unknown)}")
    out = []
    for r in rules:
        if r.id in disabled:
            continue
        new = overrides.get(r.id) or {}
        bad = [k for k in new if k not in r.params and k != "severity"]
        if bad:
            raise ValueError(f"rule {r.id} has no parameter(s) {', '.join(bad)}; it has {', '.join(r.params)}")
        params = {**r.params, **{k: _config_value(r, k, v, known) for k, v in new.items() if k != "severity"}}
        severity = new.get("severity", r.severity)
        if isinstance(severity, bool) or severity not in (1, 2, 3):  # fusion weighs 1, 2 or 3 (2.0 is 2; 2.9 is not)
            raise ValueError(f"rule {r.id}: severity must be 1, 2 or 3, not {severity!r}")
        out.append(replace(r, params=params, severity=int(severity)))
    return out


def _config_value(r: Rule, key: str, value, rule_ids: set[str]):
    """A parameter from a config file, checked before it is written into the rule's SQL: a number where the
    rule has a number, a list of known rule ids where it has one. Anything else is refused (no SQL from a config)."""
    default = r.params[key]
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"rule {r.id}: parameter {key} must be a number, not {type(value).__name__}")
        if not math.isfinite(value):  # YAML's .nan and .inf would be written into the SQL as names
            raise ValueError(f"rule {r.id}: parameter {key} must be a finite number, not {value}")
        return value
    ids = value if isinstance(value, list) else None
    if not ids or not all(isinstance(i, str) and i in rule_ids for i in ids):
        raise ValueError(f"rule {r.id}: parameter {key} must be a list of rule ids (see `thb-signals rules`)")
    return ", ".join(f"'{i}'" for i in ids)
