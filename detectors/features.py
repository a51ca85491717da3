"""Per-account features over the scoring window.

Each feature is (name, one-line meaning, how it is counted over win_tx rows `t` of one account): a Count or a
Total of the rows meeting a condition, a Share of two of those, or a Distinct (how many different values a
column takes among the rows meeting a condition). They feed the isolation forest and the words that explain
an anomaly.

They are built in two steps so that a nightly run can keep the first one (detectors/nightly.py): per-account
*parts* that add up exactly over any set of rows (counts, and sums in euro cents as integers), the last time
each (account, value) pair was seen under each Distinct's condition, and daily totals for pass-through; then
the features from those. Scoring from scratch and scoring from kept parts therefore give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl


@dataclass(frozen=True)
class Count:
    """Rows of the account meeting `condition`."""

    condition: str = "true"

    def __str__(self) -> str:
        return "count(*)" + ("" if self.condition == "true" else f" FILTER ({self.condition})")


@dataclass(frozen=True)
class Total:
    """Money (EUR) of the account's rows meeting `condition`; kept as whole cents, so sums add up exactly."""

    condition: str = "true"

    def __str__(self) -> str:
        return "coalesce(sum(t.amount)" + ("" if self.condition == "true" else f" FILTER ({self.condition})") + ", 0)"


@dataclass(frozen=True)
class Share:
    """part / whole (0 when the whole is 0): a share of money or of bookings."""

    part: Count | Total
    whole: Count | Total

    def __str__(self) -> str:
        return f"coalesce({str(self.part).removeprefix('coalesce(').removesuffix(', 0)')} / nullif({self.whole}, 0), 0)"


@dataclass(frozen=True)
class Distinct:
    """Distinct values of `column` among an account's rows meeting `condition`. Counted exactly, from the
    (account, value) pairs, not by an aggregate state per account: nine HyperLogLog states per account
    outgrew a 4 GB memory limit at 50 M rows and made the feature stage thrash."""

    column: str
    condition: str = "true"

    def __str__(self) -> str:  # the same count as one aggregate (approximate), for the benchmark's single-pass floor
        return f"approx_count_distinct(t.{self.column})" + ("" if self.condition == "true" else f" FILTER ({self.condition})")


# name, what it means (read by investigators in explanations), how it is counted over the account's window rows.
FEATURES: list[tuple[str, str, Count | Total | Share | Distinct]] = [
    ("n_in", "credits", Count("t.is_in")),
    ("n_out", "debits", Count("NOT t.is_in")),
    ("sum_in", "money in (EUR)", Total("t.is_in")),
    ("sum_out", "money out (EUR)", Total("NOT t.is_in")),
    ("senders", "distinct counterparties paying in", Distinct("counterparty_id", "t.is_in")),
    ("receivers", "distinct counterparties paid", Distinct("counterparty_id", "NOT t.is_in")),
    ("p2p_senders", "distinct private persons paying in", Distinct("counterparty_id", "t.is_in AND t.is_p2p")),
    (
        "p2p_in_share",
        "share of money in from private persons",
        Share(Total("t.is_in AND t.is_p2p"), Total("t.is_in")),
    ),
    ("night_share", "share of bookings between 22:00 and 06:00", Share(Count("t.is_night"), Count())),
    ("night_p2p_in", "person-to-person credits at night", Count("t.is_in AND t.is_p2p AND t.is_night")),
    (
        "cash_in_share",
        "share of money in deposited as cash",
        Share(Total("t.is_in AND t.is_cash"), Total("t.is_in")),
    ),
    (
        "cash_out_share",
        "share of money out withdrawn as cash",
        Share(Total("NOT t.is_in AND t.is_cash"), Total("NOT t.is_in")),
    ),
    ("night_cash", "cash bookings at night", Count("t.is_cash AND t.is_night")),
    ("cash_cities", "distinct cities of cash bookings", Distinct("location_city", "t.is_cash")),
    ("card_cities", "distinct cities of card and cash bookings", Distinct("location_city")),
    ("lodging_n", "hotel and short-stay payments", Count("t.category = 'lodging' AND NOT t.is_in")),
    ("lodging_cities", "distinct cities of hotel payments", Distinct("location_city", "t.category = 'lodging'")),
    (
        "ads_n",
        "payments to escort or adult advertising",
        Count("t.category = 'adult_ads' OR (t.category = 'advertising' AND NOT t.is_in)"),
    ),
    ("taxi_n", "taxi and ride-hailing payments", Count("t.category = 'taxi'")),
    ("telecom_providers", "distinct telecom providers paid", Distinct("counterparty_id", "t.category = 'telecom'")),
    ("telecom_card_n", "telecom top-ups paid by card", Count("t.category = 'telecom' AND t.channel = 'card'")),
    ("remit_n", "money remittances sent", Count("t.channel = 'money_remittance' AND NOT t.is_in")),
    ("remit_sum", "money remitted (EUR)", Total("t.channel = 'money_remittance' AND NOT t.is_in")),
    (
        "loan_n",
        "loan disbursements received",
        Count("t.channel = 'loan_disbursement' OR (t.category = 'lender' AND t.is_in)"),
    ),
    (
        "lenders",
        "distinct lenders",
        Distinct("counterparty_id", "t.channel = 'loan_disbursement' OR (t.category = 'lender' AND t.is_in)"),
    ),
    ("vasp_out", "payments to crypto exchanges (EUR)", Total("t.category = 'vasp' AND NOT t.is_in")),
    ("luxury_out", "luxury spending (EUR)", Total("t.category = 'luxury' AND NOT t.is_in")),
    (
        "foreign_out",
        "money sent abroad (EUR)",
        Total("NOT t.is_in AND t.counterparty_country <> 'NL'"),
    ),
    ("grocery_n", "grocery and everyday purchases", Count("t.category IN ('grocery', 'utilities')")),
    ("devices_used", "distinct online-banking devices", Distinct("device_id")),
]

# Pass-through: money in on a day against money out that day and the next (24-48 h), per account, in cents.
# Daily totals first (acct_days); the join then pairs only days with money in to next days with money out.
CENTS = "t.cents"  # win_tx's amount in whole cents (amount_eur has two decimals): sums of them are exact
DAILY_SQL = f"""
    SELECT t.bank_id, t.account_id, t.day,
           CAST(coalesce(sum({CENTS}) FILTER (t.is_in), 0) AS BIGINT) AS din,
           CAST(coalesce(sum({CENTS}) FILTER (NOT t.is_in), 0) AS BIGINT) AS dout
"""
PASS_THROUGH_SQL = """
    SELECT a.bank_id, a.account_id, CAST(sum(least(a.din, a.dout + coalesce(b.dout, 0))) AS BIGINT) AS pt_num,
           CAST(sum(a.din) AS BIGINT) AS pt_den
    FROM (SELECT * FROM {first} WHERE din > 0) a
    LEFT JOIN (SELECT * FROM {days} WHERE dout > 0) b ON b.bank_id = a.bank_id AND b.account_id = a.account_id AND b.day = a.day + 1
    GROUP BY ALL
"""


def pass_through_sql(days: str, first: str | None = None) -> str:
    """Per account the money in that left within about 24 hours (pt_num) and all money in (pt_den), in cents, over
    the days of `first` (default: all of `days`) paired with their next day in `days`."""
    return PASS_THROUGH_SQL.format(days=days, first=first or days)


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


def parts() -> list[Count | Total]:
    """The additive parts the features are made of, each once, in a fixed order (column p<i> of acct_parts); p0 counts
    every booking (an account whose p0 is 0 has no booking in the window)."""
    out: list[Count | Total] = [Count()]
    for _, _, f in FEATURES:
        for p in (f.part, f.whole) if isinstance(f, Share) else (f,) if isinstance(f, (Count, Total)) else ():
            if p not in out:
                out.append(p)
    return out


def distinct_columns() -> dict[str, list[tuple[str, str]]]:
    """column -> [(feature, condition)]: one list of last-seen times per (account, value) of that column."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, _, f in FEATURES:
        if isinstance(f, Distinct):
            out.setdefault(f.column, []).append((name, f.condition))
    return out


def distinct_features() -> list[tuple[str, str, int]]:
    """(feature, column, place of its condition in that column's last-seen list), in a fixed order (d<i> of acct_counts)."""
    return [(name, column, k) for column, conds in distinct_columns().items() for k, (name, _) in enumerate(conds)]


def window_start(window_days: int) -> str:
    """The window's first instant, as define_window's (and a shard's) window_end makes it."""
    return f"getvariable('window_end') - INTERVAL {int(window_days)} DAY"


def counts_sql(values: str, start: str) -> str:
    """acct_counts: per account the values of each Distinct seen (under its condition) after `start`."""
    counted = ", ".join(
        f"CAST(count(*) FILTER (v.kind = '{column}' AND v.last_seen[{k + 1}] > {start}) AS BIGINT) AS d{i}"
        for i, (_, column, k) in enumerate(distinct_features())
    )
    return f"SELECT v.bank_id, v.account_id, {counted} FROM {values} v GROUP BY ALL"


def parts_sql(source: str) -> str:
    """acct_parts over the rows of `source` (a table of win_tx's shape): one row per account, parts p0..pN."""
    cols = []
    for i, p in enumerate(parts()):
        where = "" if p.condition == "true" else f" FILTER ({p.condition})"
        agg = f"count(*){where}" if isinstance(p, Count) else f"coalesce(sum({CENTS}){where}, 0)"
        cols.append(f"CAST({agg} AS BIGINT) AS p{i}")
    return f"SELECT t.bank_id, t.account_id, {', '.join(cols)} FROM {source} t GROUP BY ALL"


def values_sql(column: str, source: str) -> str:
    """acct_values rows for one column: each (account, value) with the last booking time under each condition."""
    last = ", ".join(f"max(t.booked_at) FILTER ({cond})" for _, cond in distinct_columns()[column])
    return f"""SELECT t.bank_id, t.account_id, '{column}' AS kind, CAST(t.{column} AS VARCHAR) AS value, [{last}] AS last_seen
               FROM {source} t WHERE t.{column} IS NOT NULL GROUP BY t.bank_id, t.account_id, t.{column}"""


def days_sql(source: str) -> str:
    return f"{DAILY_SQL} FROM {source} t GROUP BY ALL"


def feature_inputs(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    source: str = "win_tx",
    values: str = "acct_values",
    days: str = "acct_days",
) -> None:
    """Temp tables over `source`, everything the features are made of: acct_parts, acct_values (last seen), acct_days,
    and from those acct_counts (distinct counts) and acct_pt (pass-through in cents). `values` and `days` other than
    the temp tables are stored tables emptied and written instead (a nightly first run keeps them: written once)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE acct_parts AS {parts_sql(source)}")
    for table, temp in ((values, "acct_values"), (days, "acct_days")):
        if table != temp:
            con.execute(f"DELETE FROM {table}")
    # One statement per column, so that only one (account, value) group-by holds memory at a time.
    for i, column in enumerate(distinct_columns()):
        verb = "CREATE OR REPLACE TEMP TABLE acct_values AS" if i == 0 and values == "acct_values" else f"INSERT INTO {values}"
        con.execute(f"{verb} {values_sql(column, source)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE acct_counts AS {counts_sql(values, window_start(window_days))}")
    verb = "CREATE OR REPLACE TEMP TABLE acct_days AS" if days == "acct_days" else f"INSERT INTO {days}"
    con.execute(f"{verb} {days_sql(source)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE acct_pt AS {pass_through_sql(days)}")


def features_from(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    parts_table: str = "acct_parts",
    counts: str = "acct_counts",
    pt: str = "acct_pt",
) -> pl.DataFrame:
    """Temp tables pass_through and features from the parts, the distinct counts and the pass-through cents; one row
    per account in win_accounts. Counts and sums are per 30 days so windows compare."""
    per30 = 30.0 / window_days
    index = {p: i for i, p in enumerate(parts())}

    def value(f) -> str:
        if isinstance(f, Share):
            return f"coalesce(CAST(p.p{index[f.part]} AS DOUBLE) / nullif(p.p{index[f.whole]}, 0), 0)"
        return f"p.p{index[f]}" if isinstance(f, Count) else f"CAST(p.p{index[f]} AS DOUBLE) / 100"

    plain = ", ".join(f"{value(f)} AS {n}" for n, _, f in FEATURES if not isinstance(f, Distinct))
    counted = ", ".join(f"c.d{i} AS {name}" for i, (name, _, _) in enumerate(distinct_features()))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE tx_feats AS
                    SELECT * FROM (SELECT p.bank_id, p.account_id, {plain} FROM {parts_table} p)
                    FULL JOIN (SELECT c.bank_id, c.account_id, {counted} FROM {counts} c) USING (bank_id, account_id)""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE pass_through AS
                    SELECT bank_id, account_id, coalesce(CAST(pt_num AS DOUBLE) / nullif(pt_den, 0), 0) AS pass_through_24h
                    FROM {pt} WHERE pt_den > 0""")
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
    con.execute("DROP TABLE tx_feats")
    return con.sql("SELECT * FROM features ORDER BY bank_id, account_id").pl()


INPUTS = ("acct_parts", "acct_values", "acct_counts", "acct_days", "acct_pt")


def compute_features(con: duckdb.DuckDBPyConnection, window_days: int) -> pl.DataFrame:
    """One row per account in win_accounts, from win_tx (the window, detectors/window.py)."""
    feature_inputs(con, window_days)
    out = features_from(con, window_days)
    for t in INPUTS:
        con.execute(f"DROP TABLE {t}")
    return out


def feature_names() -> list[str]:
    return [n for n, _, _ in FEATURES] + [n for n, _ in ACCOUNT_FEATURES]
