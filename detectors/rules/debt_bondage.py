"""Debt bondage along a migration route (XB indicators): shared beneficiaries abroad, fixed instalments,
remittances structured under the threshold."""

from __future__ import annotations

from detectors.rules.base import Rule

RULES: list[Rule] = [
    Rule(
        "XB01_SHARED_BENEFICIARY",
        "Several senders, one beneficiary abroad",
        "debt_bondage",
        ("XB-01", "LE-12"),
        "The same beneficiary abroad receives money from several unrelated accounts.",
        3,
        """WITH f AS (SELECT * FROM win_tx WHERE NOT is_in AND counterparty_country <> 'NL' AND counterparty_id IS NOT NULL
                              AND counterparty_type = 'person' AND channel IN ('transfer', 'instant_transfer', 'money_remittance')),
                  b AS (SELECT counterparty_id, count(DISTINCT (bank_id, account_id)) AS senders FROM f GROUP BY 1)
             SELECT f.bank_id, f.account_id, arg_min(f.txn_id, (f.booked_at, f.txn_id), 50) AS evidence,
                    printf('beneficiary in %s shared with %d other accounts', min(f.counterparty_country), max(b.senders) - 1) AS detail
             FROM f JOIN b USING (counterparty_id) WHERE b.senders BETWEEN {min_senders} AND {max_senders} GROUP BY ALL""",
        # a beneficiary is a person paid by transfer or remittance, not a card merchant registered abroad; one paid by more
        # than max_senders accounts is a payment institution or merchant, not a debt collector
        {"min_senders": 3, "max_senders": 25},
        role="victim",
    ),
    Rule(
        "XB02_FIXED_INSTALMENTS",
        "Fixed instalments to one beneficiary",
        "debt_bondage",
        ("XB-02", "LE-10"),
        "Identical sums paid at a regular rhythm to one beneficiary abroad, as repayments of a debt.",
        3,
        """SELECT bank_id, account_id, flatten(list(ids ORDER BY counterparty_id, amount))[1:50] AS evidence,
                    printf('%d payments of EUR %.0f every %.0f days to one beneficiary abroad', max(n), arg_max(amount, (n, counterparty_id, amount)), arg_max(gap_avg, (n, counterparty_id, amount))) AS detail
             FROM instalments i WHERE amount * n * 90.0 / {days} >= {min_total_per_90d}
               AND (gap_avg <= {max_gap_days_on_wage} OR NOT EXISTS (SELECT 1 FROM wages g WHERE g.bank_id = i.bank_id AND g.account_id = i.account_id))
             GROUP BY ALL""",
        # a worker on a wage who sends the same sum home every month supports a family; a debt is paid weekly, or from
        # income that is no wage (cash, private persons)
        {"min_payments": 3, "max_gap_sd": 3, "min_total_per_90d": 1000, "max_gap_days_on_wage": 10},
        role="victim",
        ctes=("instalments", "wages"),
        reads=("win_wages",),
    ),
    Rule(
        "XB06_STRUCTURED_REMITTANCES",
        "Remittances just under the threshold",
        "debt_bondage",
        ("XB-06",),
        "Several money transfers within 10% below the reporting threshold in a month.",
        2,
        """SELECT bank_id, account_id, {ev} AS evidence,
                    printf('%d remittances between EUR %.0f and %.0f', count(*), 0.9 * CAST({threshold} AS DOUBLE), CAST({threshold} AS DOUBLE)) AS detail
             FROM win_tx WHERE NOT is_in AND channel = 'money_remittance' AND amount >= 0.9 * {threshold} AND amount < {threshold}
             GROUP BY ALL HAVING count(*) * {per30} >= {min_per_30d}""",
        {"threshold": 2000, "min_per_30d": 3},
    ),
]
