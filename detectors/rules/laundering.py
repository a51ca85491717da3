"""Laundering mechanics shared by every typology (ML indicators): cash-only income, many devices on one account."""

from __future__ import annotations

from detectors.rules.base import Rule

RULES: list[Rule] = [
    Rule(
        "ML03_CASH_ONLY_INCOME",
        "Income only in cash",
        "laundering",
        ("ML-03", "XB-02"),
        "Nearly all money coming in is deposited as cash, with no wage, benefit or card takings.",
        2,
        """SELECT w.bank_id, w.account_id, arg_min(w.txn_id, (w.booked_at, w.txn_id), 50) FILTER (w.channel = 'cash_deposit') AS evidence,
                    printf('%d%% of EUR %.0f in was cash', CAST(100 * sum(w.cents) FILTER (w.channel = 'cash_deposit') / sum(w.cents) AS INT),
                           sum(w.cents) / 100) AS detail
             FROM win_tx w JOIN win_accounts a USING (bank_id, account_id)
             WHERE w.is_in AND a.customer_type = 'person' GROUP BY ALL
             HAVING count(*) FILTER (w.channel = 'cash_deposit') >= {min_deposits}
                AND sum(w.cents) FILTER (w.channel = 'cash_deposit') >= {min_share} * sum(w.cents)""",  # in cents: the sums are exact, whatever order the rows come in
        {"min_deposits": 4, "min_share": 0.9},
        role="victim",
    ),
    Rule(
        "ML_MANY_DEVICES",
        "Many devices on one account",
        "laundering",
        ("SE-23",),
        "Three or more different devices bank on this account.",
        1,
        """SELECT bank_id, account_id, arg_min(txn_id, (booked_at, txn_id), 30) AS evidence, printf('%d devices', count(DISTINCT device_id)) AS detail
             FROM win_tx SEMI JOIN (SELECT bank_id, account_id FROM win_accounts WHERE devices >= {min_devices}) USING (bank_id, account_id)
             WHERE device_id IS NOT NULL AND NOT is_in GROUP BY ALL HAVING count(DISTINCT device_id) >= {min_devices}""",
        {"min_devices": 3},
        role="victim",
        attribute=True,
    ),
]
