"""Per-account features over the scoring window.

Each feature is (name, one-line meaning, SQL aggregate over win_tx rows `t` of one account, or a
Distinct: how many different values a column takes among the rows meeting a condition).
They feed the isolation forest and the words that explain an anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl


@dataclass(frozen=True)
class Distinct:
    """Distinct values of `column` among an account's rows meeting `condition`. Counted exactly, from the
    (account, value) pairs, not by an aggregate state per account: nine HyperLogLog states per account
    outgrew a 4 GB memory limit at 50 M rows and made the feature stage thrash."""

    column: str
    condition: str = "true"

    def __str__(self) -> str:  # the same count as one aggregate (approximate), for the benchmark's single-pass floor
        return f"approx_count_distinct(t.{self.column})" + ("" if self.condition == "true" else f" FILTER ({self.condition})")


# name, what it means (read by investigators in explanations), SQL over the account's window rows or a Distinct.
FEATURES: list[tuple[str, str, str | Distinct]] = [
    ("n_in", "credits", "count(*) FILTER (t.is_in)"),
    ("n_out", "debits", "count(*) FILTER (NOT t.is_in)"),
    ("sum_in", "money in (EUR)", "coalesce(sum(t.amount) FILTER (t.is_in), 0)"),
    ("sum_out", "money out (EUR)", "coalesce(sum(t.amount) FILTER (NOT t.is_in), 0)"),
    ("senders", "distinct counterparties paying in", Distinct("counterparty_id", "t.is_in")),
    ("receivers", "distinct counterparties paid", Distinct("counterparty_id", "NOT t.is_in")),
    ("p2p_senders", "distinct private persons paying in", Distinct("counterparty_id", "t.is_in AND t.is_p2p")),
    (
        "p2p_in_share",
        "share of money in from private persons",
        "coalesce(sum(t.amount) FILTER (t.is_in AND t.is_p2p) / nullif(sum(t.amount) FILTER (t.is_in), 0), 0)",
    ),
    ("night_share", "share of bookings between 22:00 and 06:00", "avg(CASE WHEN t.is_night THEN 1 ELSE 0 END)"),
    ("night_p2p_in", "person-to-person credits at night", "count(*) FILTER (t.is_in AND t.is_p2p AND t.is_night)"),
    (
        "cash_in_share",
        "share of money in deposited as cash",
        "coalesce(sum(t.amount) FILTER (t.is_in AND t.is_cash) / nullif(sum(t.amount) FILTER (t.is_in), 0), 0)",
    ),
    (
        "cash_out_share",
        "share of money out withdrawn as cash",
        "coalesce(sum(t.amount) FILTER (NOT t.is_in AND t.is_cash) / nullif(sum(t.amount) FILTER (NOT t.is_in), 0), 0)",
    ),
    ("night_cash", "cash bookings at night", "count(*) FILTER (t.is_cash AND t.is_night)"),
    ("cash_cities", "distinct cities of cash bookings", Distinct("location_city", "t.is_cash")),
    ("card_cities", "distinct cities of card and cash bookings", Distinct("location_city")),
    ("lodging_n", "hotel and short-stay payments", "count(*) FILTER (t.category = 'lodging' AND NOT t.is_in)"),
    ("lodging_cities", "distinct cities of hotel payments", Distinct("location_city", "t.category = 'lodging'")),
    (
        "ads_n",
        "payments to escort or adult advertising",
        "count(*) FILTER (t.category = 'adult_ads' OR (t.category = 'advertising' AND NOT t.is_in))",
    ),
    ("taxi_n", "taxi and ride-hailing payments", "count(*) FILTER (t.category = 'taxi')"),
    ("telecom_providers", "distinct telecom providers paid", Distinct("counterparty_id", "t.category = 'telecom'")),
    ("telecom_card_n", "telecom top-ups paid by card", "count(*) FILTER (t.category = 'telecom' AND t.channel = 'card')"),
    ("remit_n", "money remittances sent", "count(*) FILTER (t.channel = 'money_remittance' AND NOT t.is_in)"),
    ("remit_sum", "money remitted (EUR)", "coalesce(sum(t.amount) FILTER (t.channel = 'money_remittance' AND NOT t.is_in), 0)"),
    (
        "loan_n",
        "loan disbursements received",
        "count(*) FILTER (t.channel = 'loan_disbursement' OR (t.category = 'lender' AND t.is_in))",
    ),
    (
        "lenders",
        "distinct lenders",
        Distinct("counterparty_id", "t.channel = 'loan_disbursement' OR (t.category = 'lender' AND t.is_in)"),
    ),
    ("vasp_out", "payments to crypto exchanges (EUR)", "coalesce(sum(t.amount) FILTER (t.category = 'vasp' AND NOT t.is_in), 0)"),
    ("luxury_out", "luxury spending (EUR)", "coalesce(sum(t.amount) FILTER (t.category = 'luxury' AND NOT t.is_in), 0)"),
    (
        "foreign_out",
        "money sent abroad (EUR)",
        "coalesce(sum(t.amount) FILTER (NOT t.is_in AND t.counterparty_country <> 'NL'), 0)",
    ),
    ("grocery_n", "grocery and everyday purchases", "count(*) FILTER (t.category IN ('grocery', 'utilities'))"),
    ("devices_used", "distinct online-banking devices", Distinct("device_id")),
]

# Pass-through: money in on a day against money out that day and the next (24-48 h), per account.
# Daily totals first (win_daily); the join then pairs only days with money in to next days with money out.
DAILY_SQL = """
    SELECT bank_id, account_id, day,
           coalesce(sum(amount) FILTER (is_in), 0) AS din, coalesce(sum(amount) FILTER (NOT is_in), 0) AS dout
    FROM win_tx GROUP BY ALL
"""
PASS_THROUGH_SQL = """
    SELECT a.bank_id, a.account_id,
           coalesce(sum(least(a.din, a.dout + coalesce(b.dout, 0))) / nullif(sum(a.din), 0), 0) AS pass_through_24h
    FROM (SELECT * FROM win_daily WHERE din > 0) a
    LEFT JOIN (SELECT * FROM win_daily WHERE dout > 0) b ON b.bank_id = a.bank_id AND b.account_id = a.account_id AND b.day = a.day + 1
    GROUP BY ALL
"""

ACCOUNT_FEATURES = [
    ("pass_through_24h", "share of money in that leaves within about 24 hours"),
    ("holder_age", "holder's age in years"),
    ("account_age_days", "account age in days"),
    ("address_customers", "customers registered at the holder's address"),
    ("device_customers", "customers using the same online-banking device"),
]


def describe() -> dict[str, str]:
    """Feature name -> meaning, for explanations and the README."""
    return {n: d for n, d, _ in FEATURES} | dict(ACCOUNT_FEATURES)


def compute_features(con: duckdb.DuckDBPyConnection, window_days: int) -> pl.DataFrame:
    """One row per account in win_accounts; counts and sums are per 30 days so windows compare."""
    per30 = 30.0 / window_days
    distinct = [(name, sql) for name, _, sql in FEATURES if isinstance(sql, Distinct)]
    aggs = ",\n".join(f"{sql} AS {name}" for name, _, sql in FEATURES if not isinstance(sql, Distinct))
    con.execute(f"CREATE OR REPLACE TEMP TABLE tx_feats AS SELECT t.bank_id, t.account_id, {aggs} FROM win_tx t GROUP BY ALL")
    # One statement per column, so that only one (account, value) group-by holds memory at a time.
    for column in dict.fromkeys(d.column for _, d in distinct):
        counted = [(name, d.condition) for name, d in distinct if d.column == column]
        flags = ", ".join(f"bool_or({cond}) AS {name}" for name, cond in counted)
        counts = ", ".join(f"count(*) FILTER ({name}) AS {name}" for name, _ in counted)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE tx_distinct AS SELECT bank_id, account_id, {counts} FROM (
                            SELECT t.bank_id, t.account_id, t.{column}, {flags} FROM win_tx t WHERE t.{column} IS NOT NULL GROUP BY ALL)
                        GROUP BY ALL""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE tx_feats AS SELECT f.*, {", ".join(f"coalesce(d.{n}, 0) AS {n}" for n, _ in counted)}
                        FROM tx_feats f LEFT JOIN tx_distinct d USING (bank_id, account_id)""")
    con.execute("DROP TABLE IF EXISTS tx_distinct")
    con.execute(f"CREATE OR REPLACE TEMP TABLE win_daily AS {DAILY_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE pass_through AS {PASS_THROUGH_SQL}")
    con.execute("DROP TABLE win_daily")
    scaled = ", ".join(
        (
            f"coalesce(f.{n}, 0) * {per30} AS {n}"
            if n.startswith(("n_", "sum_")) or n.endswith(("_n", "_sum", "_out"))
            else f"coalesce(f.{n}, 0) AS {n}"
        )
        for n, _, _ in FEATURES
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE features AS
        SELECT a.bank_id, a.account_id, a.customer_type AS segment, {scaled},
               coalesce(p.pass_through_24h, 0) AS pass_through_24h, coalesce(a.holder_age, 0) AS holder_age,
               a.account_age_days, a.address_customers, a.device_customers
        FROM win_accounts a
        LEFT JOIN tx_feats f USING (bank_id, account_id)
        LEFT JOIN pass_through p USING (bank_id, account_id)
    """)
    return con.sql("SELECT * FROM features ORDER BY bank_id, account_id").pl()


def feature_names() -> list[str]:
    return [n for n, _, _ in FEATURES] + [n for n, _ in ACCOUNT_FEATURES]
