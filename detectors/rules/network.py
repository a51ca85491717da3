"""Network rules: constellations across accounts over the link graph (detectors/network.py) and, in stage 2,
the stage-1 hits: collectors, employers, wage collectors, housed workforces, shared clusters, instalment
beneficiaries, links to escalated or FIU-reported accounts."""

from __future__ import annotations

from detectors.rules import (
    creditboys,
    criminal_exploitation,
    debt_bondage,
    labour_exploitation,
    laundering,
    sexual_exploitation,
)
from detectors.rules.base import Rule, sql_list

# Victim signals that come from a shared address or device, not behaviour: a cluster of accounts sharing one
# is not evidence that they are victims (NET_SHARED_CLUSTER counts only behavioural signals).
ATTRIBUTE_RULES = [
    r
    for m in (sexual_exploitation, labour_exploitation, criminal_exploitation, creditboys, debt_bondage, laundering)
    for r in m.RULES
    if r.attribute
]

# Victim signals that say only where people live: a lawful employer's housed workers share a crowded address too.
# Collecting from or paying such accounts is no sign of control (NET_COLLECTOR, NET_EMPLOYER); a device that banks
# for many people (LE06) is, and still counts.
HOUSING_RULES = [r for r in ATTRIBUTE_RULES if r.id == "LE04_CROWDED_ADDRESS"]

RULES: list[Rule] = [
    Rule(
        "NET_COLLECTOR",
        "Collects from accounts that show victim signals",
        "inherit",
        ("SE-08", "SE-21", "LE-02", "CD-02", "CE-01"),
        "Receives money from several accounts that themselves show victim signals: a likely controller or collector.",
        3,
        """WITH v AS (SELECT bank_id, account_id, typology, count(*) AS rules FROM hits
                       WHERE victim_side AND rule_id NOT IN ({housing_rules}) GROUP BY ALL),
                  vv AS (SELECT bank_id, account_id, arg_max(typology, (rules, typology)) AS typology FROM v GROUP BY ALL),
                  m AS (SELECT x.bank_id, x.account_id, x.txn_id, x.booked_at, x.amount, vv.typology, x.counterparty_id AS victim
                        FROM win_tx x JOIN vv ON vv.account_id = x.counterparty_id
                        WHERE x.is_in AND x.channel IN ('transfer', 'instant_transfer'))
             SELECT bank_id, account_id, arg_min(txn_id, (booked_at, txn_id), 50) AS evidence,
                    printf('receives EUR %.0f from %d accounts with victim signals', sum(amount), count(DISTINCT victim)) AS detail,
                    mode(typology ORDER BY typology) AS typology
             FROM m GROUP BY bank_id, account_id
             HAVING count(DISTINCT victim) >= {min_victims} AND sum(amount) >= {min_eur}""",
        {"min_victims": 2, "min_eur": 500, "housing_rules": sql_list(HOUSING_RULES)},
        stage=2,
        constellation=True,
        role="controller",
    ),
    Rule(
        "NET_EMPLOYER",
        "Employer of workers with exploitation signals",
        "labour_exploitation",
        ("LE-02", "LE-03", "LE-06"),
        "Pays wages to several accounts that show labour-exploitation signals.",
        3,
        """WITH w AS (SELECT DISTINCT bank_id, account_id FROM hits
                       WHERE typology = 'labour_exploitation' AND victim_side AND rule_id NOT IN ({housing_rules})),
                  p AS (SELECT x.bank_id, x.account_id, x.txn_id, x.booked_at, x.counterparty_id FROM win_tx x
                        WHERE NOT x.is_in AND x.counterparty_type = 'person' AND x.channel IN ('transfer', 'instant_transfer'))
             SELECT p.bank_id, p.account_id, arg_min(p.txn_id, (p.booked_at, p.txn_id), 50) AS evidence,
                    printf('pays %d workers with exploitation signals', count(DISTINCT p.counterparty_id)) AS detail
             FROM p JOIN w ON w.account_id = p.counterparty_id JOIN win_accounts a ON a.bank_id = p.bank_id AND a.account_id = p.account_id
             WHERE a.customer_type = 'business' GROUP BY ALL HAVING count(DISTINCT p.counterparty_id) >= {min_workers}""",
        {"min_workers": 2, "housing_rules": sql_list(HOUSING_RULES)},
        stage=2,
        constellation=True,
        role="employer",
    ),
    Rule(
        "NET_WAGE_COLLECTOR",
        "Collects the wages of one employer's workers",
        "labour_exploitation",
        ("LE-02", "LE-03", "LE-10"),
        "Several workers of one employer pass part of their wages on to this account: a likely controller, recruiter or landlord-employer.",
        3,
        """SELECT p.bank_id, p.collector AS account_id, arg_max(p.collector_ids, (p.workers, p.employer))[1:50] AS evidence,
                    printf('receives EUR %.0f from %d of the %d workers of one employer', arg_max(p.amount, (p.workers, p.employer)), max(p.workers),
                           arg_max(h.workers, (p.workers, p.employer))) AS detail
             FROM passed_on p JOIN headcount h USING (employer)
             WHERE p.workers >= {min_workers} AND p.workers >= {min_staff_share} * h.workers
             GROUP BY ALL""",
        {"min_wage": 400, "min_share": 0.3, "min_workers": 3, "min_staff_share": 0.5},
        stage=2,
        constellation=True,
        ctes=("workforce",),
        role="controller",
    ),
    Rule(
        "NET_HOUSED_WORKFORCE",
        "Workforce housed together, wages passed on",
        "labour_exploitation",
        ("LE-02", "LE-04", "LE-06"),
        "The employer's workers live at a few addresses or bank from one device, and pass their wages on to one account.",
        3,
        """WITH crew AS (SELECT s.bank_id, s.employer, count(*) AS workers, count(DISTINCT a.address_id) AS addresses,
                             flatten(list(s.ids ORDER BY s.worker_bank, s.worker)) AS ids
                      FROM staff s JOIN win_accounts a ON a.bank_id = s.worker_bank AND a.account_id = s.worker GROUP BY ALL),
             device AS (SELECT employer, max(n) AS on_one_device FROM (
                            SELECT s.employer, d.key, count(DISTINCT s.worker) AS n FROM staff s
                            JOIN net_shared d ON d.bank_id = s.worker_bank AND d.account_id = s.worker AND d.kind = 'device' GROUP BY ALL)
                        GROUP BY 1),
             best AS (SELECT employer, max(workers) AS forwarding FROM passed_on GROUP BY 1)
             SELECT c.bank_id, c.employer AS account_id, c.ids[1:50] AS evidence,
                    printf('%d workers at %d addresses, up to %d on one device, %d pass wages on to one account',
                           c.workers, c.addresses, coalesce(d.on_one_device, 0), b.forwarding) AS detail
             FROM crew c JOIN best b USING (employer) LEFT JOIN device d USING (employer)
             WHERE c.workers >= {min_workers} AND b.forwarding >= {min_staff_share} * c.workers
               AND (c.addresses <= {max_addresses_per_worker} * c.workers OR coalesce(d.on_one_device, 0) >= {min_on_one_device})""",
        {
            "min_wage": 400,
            "min_share": 0.3,
            "min_workers": 4,
            "min_staff_share": 0.5,
            "max_addresses_per_worker": 0.34,
            "min_on_one_device": 3,
        },
        stage=2,
        constellation=True,
        ctes=("workforce",),
        role="employer",
    ),
    Rule(
        "NET_SHARED_CLUSTER",
        "Cluster of linked accounts with victim signals",
        "inherit",
        ("LE-04", "LE-06", "SE-23", "CE-02"),
        "Shares an address, phone or device with several accounts, most of which show victim signals of their own.",
        2,
        """WITH v AS (SELECT bank_id, account_id, arg_max(typology, (severity, typology)) AS typology FROM hits
                       WHERE victim_side AND rule_id NOT IN ({attribute_rules}) GROUP BY ALL),
                  g AS (SELECT s.kind, s.key, count(*) AS members, count(v.account_id) AS flagged, mode(v.typology ORDER BY v.typology) AS typology
                        FROM net_shared s LEFT JOIN v USING (bank_id, account_id) WHERE s.kind IN ('address', 'phone', 'device') GROUP BY ALL)
             SELECT s.bank_id, s.account_id, [] AS evidence,
                    printf('shares its %s with %d accounts, %d of them with victim signals', arg_max(s.kind, (g.flagged, g.members, s.kind, s.key)),
                           arg_max(g.members, (g.flagged, g.members, s.kind, s.key)) - 1, max(g.flagged)) AS detail,
                    arg_max(g.typology, (g.flagged, g.members, s.kind, s.key)) AS typology   -- one group, chosen the same way every run
             FROM net_shared s JOIN g USING (kind, key)
             WHERE g.members >= {min_members} AND g.flagged >= {min_flagged} AND g.flagged >= {min_share} * g.members
             GROUP BY s.bank_id, s.account_id""",
        {"min_members": 3, "min_flagged": 3, "min_share": 0.5, "attribute_rules": sql_list(ATTRIBUTE_RULES)},
        stage=2,
        constellation=True,
    ),
    Rule(
        "NET_INSTALMENT_BENEFICIARY",
        "Beneficiary abroad paid instalments by several accounts",
        "debt_bondage",
        ("XB-01", "XB-02", "LE-12"),
        "One beneficiary abroad receives fixed instalments from several accounts: a debt collected along a migration route.",
        3,
        """WITH b AS (SELECT counterparty_id, count(DISTINCT account_id) AS senders FROM instalments GROUP BY 1)
             SELECT i.bank_id, i.account_id, flatten(list(i.ids ORDER BY i.counterparty_id, i.amount))[1:50] AS evidence,
                    printf('fixed instalments to a beneficiary in %s who gets them from %d accounts', arg_max(i.country, (b.senders, i.counterparty_id)),
                           max(b.senders)) AS detail
             FROM instalments i JOIN b USING (counterparty_id) WHERE b.senders BETWEEN {min_senders} AND {max_senders} GROUP BY ALL""",
        {"min_payments": 3, "max_gap_sd": 3, "min_senders": 3, "max_senders": 25},
        constellation=True,
        ctes=("instalments",),
    ),
    Rule(
        "NET_LINKED_TO_REPORTED",
        "Linked to an escalated or FIU-reported account",
        "inherit",
        ("SE-08", "LE-02", "CE-01"),
        "Exchanges money with, or shares a phone or device with, an account an investigator escalated or the FIU holds a report on.",
        3,
        """WITH l AS (SELECT dst_bank AS bank_id, dst AS account_id, src AS other, printf('received EUR %.0f from', amount) AS how,
                             dst_txn_ids AS ids, amount, n FROM net_money
                      UNION ALL
                      SELECT src_bank, src, dst, printf('paid EUR %.0f to', amount), src_txn_ids, amount, n FROM net_money
                      UNION ALL
                      SELECT a.bank_id, a.account_id, b.account_id, 'shares a ' || a.kind || ' with', [], NULL, NULL
                      FROM net_shared a JOIN net_shared b ON a.kind = b.kind AND a.key = b.key AND a.account_id <> b.account_id
                      WHERE a.kind IN ('phone', 'device'))
             SELECT l.bank_id, l.account_id, flatten(list(l.ids ORDER BY l.other, l.how))[1:50] AS evidence,
                    string_agg(l.how || ' an account ' || f.reason || ' (' || left(f.account_id, 8) || ')', '; ' ORDER BY l.other, l.how) AS detail,
                    coalesce(min(f.typology), 'laundering') AS typology
             FROM l JOIN net_flagged f ON f.account_id = l.other
             WHERE l.account_id NOT IN (SELECT account_id FROM net_flagged)
               AND (l.amount IS NULL OR l.amount >= {min_eur} OR l.n >= {min_transfers})
             GROUP BY l.bank_id, l.account_id""",
        {"min_eur": 500, "min_transfers": 3},
    ),
]
