"""The scoring window: the transactions and accounts every detector reads, as DuckDB temp views.

`win_tx` adds what rules need to every booking in the window: Dutch local time, a night flag and
a merchant/counterparty category from configurable dictionaries (MCCs and name keywords; SEPA and
iDEAL payments carry no MCC, so names do that work there — indicators.md §2 and §4).
`win_accounts` adds holder age, account age and how many customers share the address, phone and
devices of each account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb

# category -> (MCCs, lower-case name keywords). Editable through the rule config (`categories:`).
CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "adult_ads": (["7273", "5967"], ["kinky", "sexjob", "escort", "redlights", "adult", "classified"]),
    "advertising": (["7311", "7399"], []),
    "lodging": (
        ["7011", "6513"] + [str(m) for m in range(3501, 4000)],
        ["hotel", "hostel", "airbnb", "booking.com", "pension", " inn"],
    ),
    "taxi": (["4121"], ["uber", "bolt", "taxi"]),
    "telecom": (
        ["4814", "4812"],
        ["kpn", "vodafone", "odido", "t-mobile", "lebara", "lycamobile", "simyo", "ben", "tele2", "ortel", "vectone", "youfone"],
    ),
    "luxury": (["5944", "5511", "5521", "8099", "5813"], ["juwelier", "louis vuitton", "gucci", "rolex", "prestige"]),
    "vasp": (["6051"], ["bitvavo", "coinbase", "bitonic", "binance", "kraken", "crypto"]),
    "gambling": (["7995"], ["casino", "unibet", "holland casino", "toto", "bet365"]),
    "lender": (
        [],
        ["krediet", "lening", "ferratum", "qander", "santander consumer", "in3", "klarna", "freo", "afterpay", "bnpl"],
    ),
    "grocery": (["5411", "5499", "5462"], []),
    "utilities": (["4900"], ["eneco", "vattenfall", "essent", "greenchoice"]),
    "prepaid": (["6540"], ["paysafe", "prepaid"]),
}

NIGHT_FROM, NIGHT_TO = 22, 6  # indicators.md SE-04: 22:00-06:00
TIMEZONE = "Europe/Amsterdam"


@dataclass
class Window:
    start: datetime
    end: datetime
    days: int


# What win_tx holds of each booking `t` besides its category (detectors/nightly.py shapes the bookings that left
# the window the same way).
ROW_COLUMNS = f"""t.txn_id, t.bank_id, t.account_id, t.booked_at, CAST(t.amount_eur AS DOUBLE) AS amount,
               t.channel, t.counterparty_id, t.counterparty_type, t.counterparty_country,
               t.location_city, t.description, t.device_id,
               hour(timezone('{TIMEZONE}', t.booked_at)) AS hour,
               hour(timezone('{TIMEZONE}', t.booked_at)) >= {NIGHT_FROM} OR hour(timezone('{TIMEZONE}', t.booked_at)) < {NIGHT_TO} AS is_night,
               CAST(timezone('{TIMEZONE}', t.booked_at) AS DATE) AS day,
               t.direction = 'credit' AS is_in,
               t.channel IN ('cash_deposit', 'cash_withdrawal') AS is_cash,
               t.channel IN ('transfer', 'instant_transfer') AND t.counterparty_type = 'person' AS is_p2p,
               CAST(t.amount_eur * 100 AS BIGINT) AS cents"""


def category_sql(categories: dict) -> tuple[str, list]:
    """CASE expression naming the category of (t.mcc, t.counterparty_name). The MCCs, keywords and category
    names come from a config file, so they are bound parameters, never spliced."""
    parts, params = [], []
    for cat, (mccs, words) in categories.items():
        conds = []
        if mccs:
            conds.append("list_contains(CAST(? AS VARCHAR[]), t.mcc)")
            params.append([str(m) for m in mccs])
        if words:
            conds.append("len([w FOR w IN CAST(? AS VARCHAR[]) IF contains(lower(t.counterparty_name), w)]) > 0")
            params.append([str(w) for w in words])
        if conds:
            parts.append(f"WHEN {' OR '.join(conds)} THEN ?")
            params.append(str(cat))
    return ("CASE " + " ".join(parts) + " ELSE NULL END") if parts else "CAST(NULL AS VARCHAR)", params


def window_end(as_of) -> datetime | None:
    """The window of `--as-of DAY` ends with that day's last instant (UTC); None: at the store's last booking."""
    if as_of is None:
        return None
    return datetime.combine(as_of, datetime.max.time(), tzinfo=timezone.utc)


def define_window(
    con: duckdb.DuckDBPyConnection, days: int = 90, end: datetime | None = None, categories: dict | None = None
) -> Window:
    """Create temp views win_tx and win_accounts over the last `days` days of the store."""
    if end is None:
        end = con.execute("SELECT max(booked_at) FROM transactions").fetchone()[0]
        if end is None:
            raise ValueError("the store has no transactions to score")
    con.execute("SET VARIABLE window_end = CAST(? AS TIMESTAMPTZ)", [end.isoformat()])  # bound once, read by the queries below
    end_sql = "getvariable('window_end')"
    in_window = f"t.booked_at > {end_sql} - INTERVAL {int(days)} DAY AND t.booked_at <= {end_sql}"
    categorise(con, categories or CATEGORIES, in_window)
    # Only the columns rules and features read: the window is the hot table of a scoring run.
    drop_win_tx(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE win_tx AS {rows_sql(in_window)} LIMIT 0")
    insert_clustered(con, "win_tx", in_window)
    define_accounts(con)
    return Window(end - timedelta(days=days), end, days)


def categorise(con: duckdb.DuckDBPyConnection, categories: dict, where: str) -> None:
    """win_categories: categories are decided once per distinct (mcc, counterparty name) of the bookings `t` matching
    `where` (names only), not once per booking. With win_kinds, each also gets its place in CLUSTER_BY order (rank)."""
    cat, cat_params = category_sql(categories)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE win_categories AS
        SELECT *, dense_rank() OVER (ORDER BY category) AS rank FROM (
            SELECT mcc, counterparty_name, {cat} AS category
            FROM (SELECT DISTINCT mcc, counterparty_name FROM transactions t WHERE {where}) t)""",
        cat_params,
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE win_kinds AS
        SELECT direction, channel, counterparty_type,
               dense_rank() OVER (ORDER BY direction = 'credit', channel) * {CLUSTER_STEP**2}
               + dense_rank() OVER (ORDER BY counterparty_type) AS rank
        FROM (SELECT DISTINCT t.direction, t.channel, t.counterparty_type FROM transactions t WHERE {where})""")


# The order win_tx's rows are stored in. Rules and the link graph each read a slice of the window (the credits, the
# cash, one category, transfers to persons): stored in this order, a slice lies in a few row groups and DuckDB skips
# the others by their min/max (at 2 M bookings the rules' CPU time fell by half, for about 0.4 s of sorting here).
# Within a slice, each account's rows lie together: the features' and rules' per-account group-bys then meet each
# account in a few runs (at 10 M bookings the feature stage of a first load fell from 38 to 26 CPU s). They are
# grouped by a 64-bit hash of the account, not by the 32-character pseudonym: the same runs for a cheaper sort key
# (window stage of a 10 M first load 42, 38 -> 32, 33 CPU s in turns; two accounts sharing a hash would share a run).
# Each bank's rows are sorted and stored on their own (insert_clustered), so a slice lies in one run per bank.
# No result depends on it: every list the detectors keep is ordered by its own ORDER BY, and where one of tied rows is
# picked the tie is broken by value (a transaction id, or the least value for a detail's text).
CLUSTER_BY = "bank_id, is_in, channel, category, counterparty_type, hash(account_id)"
# Sorting by CLUSTER_BY's kind columns (is_in to counterparty_type, three of them strings) moves every row's key through the sort; `clustered` rows
# are sorted by one integer made of the ranks categorise() gives their (direction, channel), category and counterparty
# type: the same order of keys, the sort about half as dear (window stage 7.4 -> 6.8 CPU s at 2 M bookings, medians of 4).
CLUSTER_STEP = 1_000_000  # more than the distinct values any one rank counts
CLUSTER_KEY = f"k.rank + coalesce(c.rank, {CLUSTER_STEP - 1}) * {CLUSTER_STEP}"
KINDS_JOIN = """JOIN win_kinds k ON k.direction IS NOT DISTINCT FROM t.direction AND k.channel IS NOT DISTINCT FROM t.channel
               AND k.counterparty_type IS NOT DISTINCT FROM t.counterparty_type"""


def rows_sql(where: str, clustered: bool = False) -> str:
    """win_tx's rows: the bookings `t` matching `where` with their derived columns and category (from win_categories);
    `clustered`: in CLUSTER_BY order but for the bank (by CLUSTER_KEY, from win_kinds, then the account's hash): see insert_clustered."""
    kinds, order = (KINDS_JOIN, f" ORDER BY {CLUSTER_KEY}, hash(t.account_id)") if clustered else ("", "")
    return f"""SELECT {ROW_COLUMNS}, c.category
        FROM transactions t
        LEFT JOIN win_categories c ON c.mcc IS NOT DISTINCT FROM t.mcc AND c.counterparty_name IS NOT DISTINCT FROM t.counterparty_name
        {kinds}
        WHERE {where}{order}"""


def insert_clustered(con: duckdb.DuckDBPyConnection, table: str, where: str) -> int:
    """Insert the bookings `t` matching `where` into `table` (win_tx's shape) in CLUSTER_BY order, one bank at a time.
    Why: the sort then holds one bank's bookings, not every bank's. At 10 M bookings of two banks, one sort of all of
    them went past the memory limit and spilled (window stage 38 to 67 CPU s from run to run); bank by bank, 39 to 48.
    `where` binds nothing (getvariable only): the bank is its one parameter. Returns the rows inserted."""
    banks = con.execute(f"SELECT DISTINCT t.bank_id FROM transactions t WHERE {where} ORDER BY 1").fetchall()
    one_bank = rows_sql(f"({where}) AND t.bank_id IS NOT DISTINCT FROM ?", clustered=True)
    return sum(con.execute(f"INSERT INTO {table} BY NAME {one_bank}", [bank]).fetchall()[0][0] for (bank,) in banks)


def drop_win_tx(con: duckdb.DuckDBPyConnection) -> None:
    """win_tx is a temp table, or on a nightly run a temp view of the kept window (detectors/nightly_window.py): neither
    can replace the other, so a connection that scores twice drops the one it has."""
    if con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'win_tx' AND temporary").fetchall()[0][0]:
        con.execute("DROP VIEW temp.win_tx")
    con.execute("DROP TABLE IF EXISTS temp.win_tx")


def define_accounts(con: duckdb.DuckDBPyConnection) -> None:
    """win_accounts from accounts and win_tx, for the window ending at getvariable('window_end')."""
    end_sql = "getvariable('window_end')"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE win_accounts AS
        WITH dev AS (
            SELECT w.device_id, count(DISTINCT a.customer_id) AS customers, count(DISTINCT a.address_id) AS addresses
            FROM (SELECT DISTINCT device_id, bank_id, account_id FROM win_tx WHERE device_id IS NOT NULL) w
            JOIN accounts a USING (bank_id, account_id) GROUP BY 1),
        acc_dev AS (
            SELECT DISTINCT w.bank_id, w.account_id, w.device_id FROM win_tx w WHERE w.device_id IS NOT NULL),
        dev_share AS (
            SELECT ad.bank_id, ad.account_id, max(d.customers) AS device_customers, max(d.addresses) AS device_addresses,
                   count(DISTINCT ad.device_id) AS devices
            FROM acc_dev ad JOIN dev d USING (device_id) GROUP BY 1, 2),
        addr AS (SELECT address_id, count(DISTINCT customer_id) AS n FROM accounts WHERE address_id IS NOT NULL GROUP BY 1),
        phone AS (SELECT phone_id, count(DISTINCT customer_id) AS n FROM accounts WHERE phone_id IS NOT NULL GROUP BY 1)
        SELECT a.bank_id, a.account_id, a.customer_id, a.customer_type, a.gender, a.nationality, a.address_id, a.sector_code,
               CASE WHEN a.birth_year IS NOT NULL THEN year({end_sql}) - a.birth_year END AS holder_age,
               date_diff('day', a.opened_on, CAST({end_sql} AS DATE)) AS account_age_days,
               coalesce(addr.n, 1) AS address_customers, coalesce(phone.n, 1) AS phone_customers,
               coalesce(ds.device_customers, 1) AS device_customers, coalesce(ds.device_addresses, 1) AS device_addresses,
               coalesce(ds.devices, 0) AS devices
        FROM accounts a
        LEFT JOIN addr USING (address_id) LEFT JOIN phone USING (phone_id)
        LEFT JOIN dev_share ds ON ds.bank_id = a.bank_id AND ds.account_id = a.account_id
    """)
