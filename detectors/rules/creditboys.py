"""Creditboys (CD indicators): loans and phone contracts taken out in a (young) victim's name and passed on."""

from __future__ import annotations

from dataclasses import replace

from detectors.rules.base import Rule

# A loan: a disbursement, or a credit from a lender of loan size (a BNPL refund of a returned purchase is not one).
IS_LOAN = "is_in AND (channel = 'loan_disbursement' OR (category = 'lender' AND amount >= {min_loan}))"
# New telecom contracts (shared table win_telecom_firsts: account, provider, first_day in the window): never paid before the
# window, and first paid at least settle_days after the store's first booking of the account (or the window start). A monthly
# bill first seen in the window's first month is a contract already running when the store holds no earlier history: unknown, not new.
NEW_CONTRACTS = """new_contracts AS (SELECT bank_id, account_id, counterparty_id, first_day, txn_id FROM win_telecom_firsts
                                    WHERE NOT paid_before AND first_day >= since + {settle_days}),"""

RULES: list[Rule] = [
    Rule(
        "CD02_SEVERAL_LENDERS",
        "Loans from several lenders in a month",
        "creditboys",
        ("CD-02",),
        "Credit from two or more lenders within 30 days.",
        3,
        """WITH l AS (SELECT *, count(DISTINCT counterparty_id) OVER (PARTITION BY bank_id, account_id ORDER BY day
                              RANGE BETWEEN INTERVAL 29 DAY PRECEDING AND CURRENT ROW) AS lenders FROM win_tx
                       WHERE {is_loan})
             SELECT l.bank_id, l.account_id, arg_min(l.txn_id, (l.booked_at, l.txn_id), 50) AS evidence,
                    printf('%d loans (EUR %.0f) from up to %d lenders in 30 days, holder %s years', count(*), sum(l.amount), max(l.lenders),
                           coalesce(CAST(any_value(a.holder_age) AS VARCHAR), '?')) AS detail
             FROM l JOIN win_accounts a USING (bank_id, account_id)
             GROUP BY ALL HAVING max(l.lenders) >= {min_lenders}""",
        {"min_lenders": 2, "min_loan": 500},
        role="victim",
    ),
    Rule(
        "CD02_LOAN_PASSED_ON",
        "Loan passed on at once",
        "creditboys",
        ("CD-02",),
        "Most of a loan leaves within 48 hours, in cash or to a private person.",
        3,
        """WITH l AS (SELECT * FROM win_tx WHERE {is_loan}),
                  o AS (SELECT l.bank_id, l.account_id, l.txn_id, l.amount, sum(x.amount) AS out, list(x.txn_id ORDER BY x.booked_at, x.txn_id) AS ids
                        FROM l JOIN (SELECT * FROM win_tx SEMI JOIN l USING (bank_id, account_id)) x ON x.bank_id = l.bank_id AND x.account_id = l.account_id AND NOT x.is_in
                             AND (x.channel = 'cash_withdrawal' OR x.counterparty_type = 'person')
                             AND x.booked_at BETWEEN l.booked_at AND l.booked_at + INTERVAL 48 HOUR
                        GROUP BY ALL)
             SELECT bank_id, account_id, flatten(list(list_prepend(txn_id, ids) ORDER BY txn_id))[1:50] AS evidence,
                    printf('%d loans, %d%% passed on within 48h', count(*), CAST(100 * sum(out) / sum(amount) AS INT)) AS detail
             FROM o WHERE out >= {min_share} * amount GROUP BY ALL""",
        {"min_share": 0.7, "min_loan": 500},
        role="victim",
    ),
    Rule(
        "CD01_TELECOM_BURST",
        "Burst of new phone contracts",
        "creditboys",
        ("CD-01",),
        "Two or more new telecom contracts with different providers within two weeks.",
        3,
        """WITH {new_contracts}
                  n AS (SELECT * FROM new_contracts),
                  pairs AS (SELECT a.bank_id, a.account_id, a.txn_id, count(*) AS near FROM n a JOIN n b
                            ON a.bank_id = b.bank_id AND a.account_id = b.account_id AND abs(a.first_day - b.first_day) <= {within_days}
                            GROUP BY ALL)
             SELECT bank_id, account_id, list(txn_id ORDER BY txn_id) AS evidence,
                    printf('%d new telecom contracts started within %d days', max(near), {within_days}) AS detail
             FROM pairs GROUP BY ALL HAVING max(near) >= {min_contracts}""",
        {"settle_days": 35, "within_days": 14, "min_contracts": 2},
        role="victim",
        reads=("win_telecom_firsts",),
    ),
    Rule(
        "CD_YOUNG_NEW_CREDIT",
        "New credit or contracts in a young adult's name",
        "creditboys",
        ("CD-01", "CD-02", "SE-24"),
        "A holder aged 18-25 takes new loans or starts new phone contracts: the profile creditboys target.",
        2,
        """WITH {new_contracts}
                  c AS (SELECT bank_id, account_id, txn_id, booked_at, counterparty_id FROM win_tx WHERE {is_loan}
                        UNION ALL   -- telecom contracts that are new, not bills of a contract already running
                        SELECT w.bank_id, w.account_id, w.txn_id, w.booked_at, w.counterparty_id
                        FROM win_tx w SEMI JOIN new_contracts USING (bank_id, account_id, counterparty_id)
                        WHERE NOT w.is_in AND w.channel = 'direct_debit' AND w.category = 'telecom')
             SELECT c.bank_id, c.account_id, arg_min(c.txn_id, (c.booked_at, c.txn_id), 50) AS evidence,
                    printf('holder %d years: %d new lenders or phone providers', any_value(a.holder_age), count(DISTINCT c.counterparty_id)) AS detail
             FROM c JOIN win_accounts a USING (bank_id, account_id)
             WHERE a.holder_age BETWEEN {min_age} AND {max_age}
             GROUP BY ALL HAVING count(DISTINCT c.counterparty_id) >= {min_new}""",
        {"min_age": 18, "max_age": 25, "settle_days": 35, "min_new": 2, "min_loan": 500},
        role="victim",
        reads=("win_telecom_firsts",),
    ),
    Rule(
        "CD02_LOAN_COLLECTOR",
        "Collects loan money from several people",
        "creditboys",
        ("CD-02",),
        "Several people each pay this account soon after a loan was paid out to them: the other side of CD-02.",
        3,
        # A private seller is paid from one buyer's loan; several borrowers passing part of their fresh loans to one
        # person within two days is the creditboy's collection, even when each passes on only a part or some in cash.
        """WITH l AS (SELECT account_id AS borrower, booked_at AS lent_at, amount AS loan FROM win_tx WHERE {is_loan}),
                  p AS (SELECT DISTINCT x.bank_id, x.account_id, x.txn_id, x.amount, x.counterparty_id AS sender
                        FROM win_tx x JOIN l ON l.borrower = x.counterparty_id
                         AND x.booked_at BETWEEN l.lent_at AND l.lent_at + INTERVAL {within_hours} HOUR
                        WHERE x.is_in AND x.counterparty_type = 'person' AND x.amount >= {min_share} * l.loan)
             SELECT bank_id, account_id, list(DISTINCT txn_id ORDER BY txn_id)[1:50] AS evidence,
                    printf('receives EUR %.0f from %d people within %dh of a loan paid out to them', sum(amount),
                           count(DISTINCT sender), {within_hours}) AS detail
             FROM p GROUP BY ALL HAVING count(DISTINCT sender) >= {min_borrowers}""",
        {"min_loan": 500, "min_share": 0.25, "within_hours": 48, "min_borrowers": 2},
        role="controller",
        constellation=True,
    ),
]
RULES = [replace(r, sql=r.sql.replace("{is_loan}", IS_LOAN).replace("{new_contracts}", NEW_CONTRACTS)) for r in RULES]
