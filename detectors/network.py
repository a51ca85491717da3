"""The link graph over the scoring window, as DuckDB temp tables the network rules and cases read.

Trafficking is organised: one controller collects from several victims, one employer houses many
workers, one phone banks for many accounts, victims bank at different banks. Account-by-account
scoring misses what only shows in the links, so the window is turned into:
- `net_money`: who pays whom among the accounts in the store (across banks: pseudonymous ids are
  shared), with count, amount, first/last booking and speed (hours since money last came in to
  the payer, median), one row per (payer, payee);
- `net_shared`: account -> shared key (address, phone, device, foreign beneficiary), only for keys
  that 2..max_group accounts share (a key shared by hundreds is an office or a remitter, not a ring);
- `net_flagged`: accounts an investigator escalated (whether or not its goAML report is written yet)
  or the FIU holds a report on, the seeds
  of propagation.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

MONEY_CHANNELS = "('transfer', 'instant_transfer')"


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0] > 0


def build_links(con: duckdb.DuckDBPyConnection, max_group: int = 30, reported_until: datetime | None = None) -> None:
    """Needs win_tx and win_accounts (detectors.window); creates net_money, net_shared, net_flagged."""
    build_known(con)
    build_edges(con)
    join_edges(con)
    build_shared(con, max_group, reported_until)


def build_known(con: duckdb.DuckDBPyConnection) -> None:
    """net_known: every account in the store with its bank, the ends a money link may have."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE net_known AS SELECT account_id, any_value(bank_id) AS bank_id FROM accounts GROUP BY 1"
    )


def build_edges(con: duckdb.DuckDBPyConnection) -> None:
    """net_paid and net_received from win_tx and net_known: each row groups one account's own bookings, so a shard
    of accounts (detectors/sharding.py) makes exactly its share of them. Leaves net_pay (the payments to accounts in
    the store): the laundering patterns start from it instead of joining the window again (detectors/patterns.py)."""
    # In steps: as one statement (ASOF join, then the aggregate) it took 34 s at 10 M rows; in steps about 6 s.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE net_pay AS
        SELECT w.bank_id, w.account_id, w.counterparty_id, w.txn_id, w.booked_at, w.amount
        FROM win_tx w SEMI JOIN net_known k ON k.account_id = w.counterparty_id
        WHERE NOT w.is_in AND w.channel IN {MONEY_CHANNELS} AND w.counterparty_id <> w.account_id""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE net_pay AS
        SELECT p.*, date_diff('minute', c.booked_at, p.booked_at) / 60.0 AS hours_after_credit
        FROM net_pay p ASOF LEFT JOIN (SELECT bank_id, account_id, booked_at FROM win_tx WHERE is_in) c
          ON c.bank_id = p.bank_id AND c.account_id = p.account_id AND p.booked_at >= c.booked_at""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE net_paid AS
        SELECT account_id AS src, counterparty_id AS dst, count(*) AS n, sum(amount) AS amount,
               min(booked_at) AS first_at, max(booked_at) AS last_at, median(hours_after_credit) AS median_hours_after_credit,
               arg_min(txn_id, (booked_at, txn_id), 20) AS src_txn_ids
        FROM net_pay GROUP BY ALL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE net_received AS
        SELECT w.counterparty_id AS src, w.account_id AS dst, count(*) AS n, sum(w.amount) AS amount,
               min(w.booked_at) AS first_at, max(w.booked_at) AS last_at, arg_min(w.txn_id, (w.booked_at, w.txn_id), 20) AS dst_txn_ids
        FROM win_tx w SEMI JOIN net_known k ON k.account_id = w.counterparty_id
        WHERE w.is_in AND w.channel IN {MONEY_CHANNELS} AND w.counterparty_id <> w.account_id GROUP BY ALL""")


def join_edges(con: duckdb.DuckDBPyConnection) -> None:
    """net_money: the payer's and the payee's side of each (payer, payee) pair joined; drops net_paid and net_received."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE net_money AS
        SELECT s.bank_id AS src_bank, e.src, d.bank_id AS dst_bank, e.dst, e.n, e.amount, e.first_at, e.last_at,
               e.median_hours_after_credit, coalesce(e.src_txn_ids, []) AS src_txn_ids, coalesce(e.dst_txn_ids, []) AS dst_txn_ids
        FROM (SELECT coalesce(p.src, r.src) AS src, coalesce(p.dst, r.dst) AS dst, coalesce(p.n, r.n) AS n,
                     coalesce(p.amount, r.amount) AS amount, coalesce(p.first_at, r.first_at) AS first_at,
                     coalesce(p.last_at, r.last_at) AS last_at, p.median_hours_after_credit, p.src_txn_ids, r.dst_txn_ids
              FROM net_paid p FULL JOIN net_received r ON r.src = p.src AND r.dst = p.dst) e
        JOIN net_known s ON s.account_id = e.src JOIN net_known d ON d.account_id = e.dst""")
    con.execute("DROP TABLE net_paid")
    con.execute("DROP TABLE net_received")


def build_shared(con: duckdb.DuckDBPyConnection, max_group: int = 30, reported_until: datetime | None = None) -> None:
    """net_shared (keys a few accounts share) and net_flagged (the seeds): read across all accounts. A replay
    (`reported_until`, the as-of day's end) is seeded only by FIU reports on bookings up to then: a report cannot
    precede its transaction, as the decisions of that day are the ones recorded by then (pipelines/casework_as_of.py)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE net_shared AS
        WITH k AS (
            SELECT bank_id, account_id, 'address' AS kind, address_id AS key FROM accounts WHERE address_id IS NOT NULL
            UNION ALL
            SELECT bank_id, account_id, 'phone', phone_id FROM accounts WHERE phone_id IS NOT NULL
            UNION ALL
            SELECT DISTINCT bank_id, account_id, 'device', device_id FROM win_tx WHERE device_id IS NOT NULL
            UNION ALL
            SELECT DISTINCT w.bank_id, w.account_id, 'beneficiary', w.counterparty_id
            FROM win_tx w JOIN win_accounts a USING (bank_id, account_id)
            WHERE NOT w.is_in AND a.customer_type = 'person' AND w.counterparty_country <> 'NL'
              AND w.counterparty_id IS NOT NULL AND w.channel IN ('money_remittance', 'transfer', 'instant_transfer'))
        SELECT bank_id, account_id, kind, key, count(*) OVER (PARTITION BY kind, key) AS group_size
        FROM (SELECT DISTINCT * FROM k)
        QUALIFY group_size BETWEEN 2 AND {int(max_group)}""")
    escalated = (
        """SELECT DISTINCT s.account_id, 'escalated alert' AS reason, a.typology
                   FROM alert_status s JOIN (SELECT alert_id, arg_max(typology, created_at) AS typology FROM alerts GROUP BY 1) a
                   USING (alert_id) WHERE s.status IN ('escalated', 'reported')"""
        if table_exists(con, "alert_status")
        else None
    )
    reported = (
        "SELECT DISTINCT account_id, 'FIU-reported' AS reason, NULL AS typology FROM fiu_reports"
        + (" WHERE booked_at <= CAST(? AS TIMESTAMPTZ)" if reported_until else "")
        if table_exists(con, "fiu_reports")
        else None
    )
    parts = [p for p in (escalated, reported) if p]
    body = (
        " UNION ALL ".join(parts)
        if parts
        else "SELECT NULL::VARCHAR AS account_id, NULL::VARCHAR AS reason, NULL::VARCHAR AS typology LIMIT 0"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE net_flagged AS
                    SELECT account_id, string_agg(DISTINCT reason, ' and ' ORDER BY reason) AS reason, min(typology) AS typology
                    FROM ({body}) WHERE account_id IS NOT NULL GROUP BY 1""",
        [reported_until.isoformat()] if reported and reported_until else [],
    )
