"""Detection rules as data: each is an indicator from ../shared/indicators.md written as DuckDB SQL.

A rule's SQL reads the window views (win_tx, win_accounts, features, pass_through), the tables
several rules share (SHARED_TABLES), the link graph (net_money, net_shared, net_flagged:
detectors/network.py; stage-2 rules also read `hits`, the stage-1 results) and returns one row per
account it fires on:
bank_id, account_id, evidence (list of txn_id), detail (the figures, in words) and, for rules of
typology 'inherit', the typology it inherits. Parameters appear as {name} and can be overridden
from a YAML config without code changes; {per30} scales counts to 30 days, {days} is the window.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

WAGE_WORDS = r"(?i)(salaris|salary|loon|wage|payroll|uitbetaling loon)"
RENT_WORDS = r"(?i)(huur|rent|kamer|housing|huisvesting|room)"
RISK_SECTORS = ("78.20", "78.10", "01.13", "01.19", "01.30", "45.20", "96.02", "96.01", "81.21", "81.22", "56.10", "55.10", "10.11", "49.41")

# Tables several rules read, built once per run before any rule (RuleDetector.score) instead of once per rule.
# win_wages: a wage is a credit from a business, with wage words or the same amount paid twice or more.
SHARED_TABLES: dict[str, str] = {
    "win_wages": f"""
        SELECT * FROM (SELECT w.*, count(*) OVER (PARTITION BY bank_id, account_id, counterparty_id, amount) AS same_amount
                       FROM win_tx w WHERE w.is_in AND w.counterparty_type = 'business'
                         AND w.channel IN ('transfer', 'instant_transfer') AND w.amount >= 400)
        WHERE regexp_matches(coalesce(description, ''), '{WAGE_WORDS}') OR same_amount >= 2""",
}
_WAGES = "WITH wages AS (SELECT * FROM win_wages)"

# Identical sums sent abroad to one beneficiary at a steady rhythm, per (account, beneficiary, amount).
_INSTALMENTS = """WITH instalments AS (
    SELECT bank_id, account_id, counterparty_id, amount, count(*) AS n, list(txn_id ORDER BY booked_at) AS ids,
           stddev_pop(gap) AS gap_sd, avg(gap) AS gap_avg, any_value(counterparty_country) AS country
    FROM (SELECT *, date_diff('day', lag(day) OVER (PARTITION BY bank_id, account_id, counterparty_id, amount ORDER BY day), day) AS gap
          FROM win_tx WHERE NOT is_in AND (channel = 'money_remittance' OR counterparty_country <> 'NL'))
    GROUP BY ALL HAVING count(*) >= {min_payments} AND coalesce(stddev_pop(gap), 0) <= {max_gap_sd})"""

# Persons paid a wage-sized sum at least twice by one business, and where their money goes on to.
_WORKFORCE = """WITH staff AS (
    SELECT m.src_bank AS bank_id, m.src AS employer, m.dst_bank AS worker_bank, m.dst AS worker, m.amount / m.n AS wage,
           m.src_txn_ids AS ids
    FROM net_money m JOIN win_accounts e ON e.bank_id = m.src_bank AND e.account_id = m.src
         JOIN win_accounts w ON w.bank_id = m.dst_bank AND w.account_id = m.dst
    WHERE e.customer_type = 'business' AND w.customer_type = 'person' AND m.n >= 2 AND m.amount / m.n >= {min_wage}),
  headcount AS (SELECT employer, count(*) AS workers FROM staff GROUP BY 1),
  passed_on AS (
    SELECT s.employer, f.dst_bank AS bank_id, f.dst AS collector, count(DISTINCT s.worker) AS workers,
           sum(f.amount) AS amount, flatten(list(f.dst_txn_ids)) AS collector_ids
    FROM staff s JOIN net_money f ON f.src = s.worker AND f.dst <> s.employer
    WHERE f.amount >= {min_share} * s.wage GROUP BY ALL)"""


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    typology: str               # sexual_exploitation | labour_exploitation | criminal_exploitation | creditboys | debt_bondage | laundering | inherit
    indicators: tuple[str, ...]
    description: str            # for an investigator
    severity: int               # 1 low .. 3 high (indicators.md strength A=3, B=2, C=1)
    sql: str
    params: dict = field(default_factory=dict)
    stage: int = 1              # 2: reads the stage-1 hits (network rules)
    victim_side: bool = False   # fires on the exploited person's account (feeds the network rules)
    constellation: bool = False  # already joins several indicators across accounts: not a lone indicator in fusion

    def render(self, days: int) -> str:
        # {per30} renders as '30.0 / days' so 'count(*) * 30.0 / 90' stays exact (9 * 30 / 90 == 3)
        values = {"per30": f"30.0 / {days}", "days": days, "rent_words": RENT_WORDS,
                  "risk_sectors": ", ".join(f"'{s}'" for s in RISK_SECTORS), **self.params}
        sql = self.sql.replace("{wages}", _WAGES).replace("{instalments}", _INSTALMENTS).replace("{workforce}", _WORKFORCE)
        return sql.format(**values)


EV = "list(txn_id ORDER BY booked_at)[1:50]"

RULES: list[Rule] = [
    # ---------------------------------------------------------------- sexual exploitation
    Rule("SE01_AD_MICRO", "Escort-ad micro-payments", "sexual_exploitation", ("SE-01",),
         "Repeated small payments to escort or adult advertising platforms.", 3,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('%d payments to escort/adult ad platforms, %d%% of them EUR {{small_max}} or less', count(*),
                           CAST(100 * avg(CASE WHEN amount <= {{small_max}} THEN 1 ELSE 0 END) AS INT)) AS detail
             FROM win_tx WHERE NOT is_in AND category = 'adult_ads' GROUP BY ALL
             HAVING count(*) >= {{min_count}} AND avg(CASE WHEN amount <= {{small_max}} THEN 1 ELSE 0 END) >= {{small_share}}""",
         {"min_count": 3, "small_max": 30, "small_share": 0.7}, victim_side=True),
    Rule("SE01_AD_PREMIUM", "Premium escort-ad spending", "sexual_exploitation", ("SE-01", "XB-05"),
         "Spends controller-scale sums on escort or adult advertising.", 2,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('EUR %.0f on escort/adult ads per 30 days', sum(amount) * {{per30}}) AS detail
             FROM win_tx WHERE NOT is_in AND category = 'adult_ads' GROUP BY ALL
             HAVING sum(amount) * {{per30}} >= {{min_eur_per_30d}} AND count(*) FILTER (amount > 30) >= 2""",
         {"min_eur_per_30d": 250}),
    Rule("SE02_HOTELS", "Short hotel stays in several cities", "sexual_exploitation", ("SE-02",),
         "Several cheap hotel or short-stay bookings spread over different cities.", 3,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('%d hotel payments in %d cities, median EUR %.0f', count(*), count(DISTINCT location_city), median(amount)) AS detail
             FROM win_tx WHERE NOT is_in AND category = 'lodging' GROUP BY ALL
             HAVING count(*) >= {{min_count}} AND count(*) * {{per30}} >= {{min_per_30d}}
                AND count(DISTINCT location_city) >= {{min_cities}} AND median(amount) <= {{max_median}}""",
         {"min_count": 3, "min_per_30d": 2, "min_cities": 2, "max_median": 150}, victim_side=True),
    Rule("SE04_NIGHT_CASH", "Cash at night", "sexual_exploitation", ("SE-04",),
         "Most cash deposits and withdrawals happen between 22:00 and 06:00.", 2,
         """SELECT bank_id, account_id, list(txn_id ORDER BY booked_at) FILTER (is_night)[1:50] AS evidence,
                    printf('%d of %d cash bookings between 22:00 and 06:00', count(*) FILTER (is_night), count(*)) AS detail
             FROM win_tx WHERE is_cash GROUP BY ALL
             HAVING count(*) FILTER (is_night) * {per30} >= {min_per_30d} AND avg(CASE WHEN is_night THEN 1 ELSE 0 END) >= {min_share}""",
         {"min_per_30d": 3, "min_share": 0.5}, victim_side=True),
    Rule("SE05_CASH_CITIES", "Cash deposits in many cities", "sexual_exploitation", ("SE-05", "ML-01"),
         "Cash deposits of client-sized amounts at ATMs in several cities.", 2,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('%d cash deposits in %d cities, median EUR %.0f', count(*), count(DISTINCT location_city), median(amount)) AS detail
             FROM win_tx WHERE is_in AND channel = 'cash_deposit' GROUP BY ALL
             HAVING count(DISTINCT location_city) >= {{min_cities}} AND median(amount) BETWEEN {{min_amount}} AND {{max_amount}}
                AND count(*) >= {{min_count}}""",
         {"min_cities": 3, "min_amount": 50, "max_amount": 500, "min_count": 5}, victim_side=True),
    Rule("SE06_CASH_NEAR_HOTEL", "Cash where the hotel is", "sexual_exploitation", ("SE-06",),
         "Cash bookings in the city of a hotel stay within three days of the booking, in two or more cities.", 3,
         """WITH h AS (SELECT bank_id, account_id, location_city, day, txn_id FROM win_tx WHERE category = 'lodging' AND NOT is_in),
                  c AS (SELECT bank_id, account_id, location_city, day, txn_id FROM win_tx WHERE is_cash)
             SELECT h.bank_id, h.account_id, list(DISTINCT c.txn_id)[1:50] AS evidence,
                    printf('cash in %d hotel cities within 3 days of the stay', count(DISTINCT h.location_city)) AS detail
             FROM h JOIN c ON c.bank_id = h.bank_id AND c.account_id = h.account_id AND c.location_city = h.location_city
                          AND c.day BETWEEN h.day AND h.day + {max_days}
             GROUP BY ALL HAVING count(DISTINCT h.location_city) >= {min_cities}""",
         {"max_days": 3, "min_cities": 2}, victim_side=True),
    Rule("SE07_CLIENT_PAYMENTS", "Many small payments from private persons", "sexual_exploitation", ("SE-07",),
         "Many different private persons pay client-sized amounts (EUR 60-500) within a month.", 3,
         """WITH c AS (SELECT *, count(DISTINCT counterparty_id) OVER (PARTITION BY bank_id, account_id ORDER BY day
                                 RANGE BETWEEN INTERVAL 29 DAY PRECEDING AND CURRENT ROW) AS senders
                       FROM win_tx WHERE is_in AND is_p2p AND amount BETWEEN {min_amount} AND {max_amount})
             SELECT bank_id, account_id, list(txn_id ORDER BY booked_at)[1:50] AS evidence,
                    printf('up to %d distinct private senders of EUR %d-%d in 30 days, %d%% at night', max(senders),
                           {min_amount}, {max_amount}, CAST(100 * avg(CASE WHEN is_night THEN 1 ELSE 0 END) AS INT)) AS detail
             FROM c GROUP BY ALL HAVING max(senders) >= {min_senders}""",
         {"min_amount": 60, "max_amount": 500, "min_senders": 8}, victim_side=True),
    Rule("SE09_DEPLETED", "Depleted pass-through account", "sexual_exploitation", ("SE-09", "ML-05"),
         "Substantial inflow leaves within a day and almost nothing is spent on normal living.", 2,
         """SELECT f.bank_id, f.account_id, (SELECT list(txn_id ORDER BY amount DESC)[1:20] FROM win_tx w
                       WHERE w.bank_id = f.bank_id AND w.account_id = f.account_id AND w.is_in) AS evidence,
                    printf('EUR %.0f in per 30 days, %d%% out within 24h, %.0f everyday purchases per 30 days',
                           f.sum_in, CAST(100 * f.pass_through_24h AS INT), f.grocery_n) AS detail
             FROM features f WHERE f.segment = 'person' AND f.sum_in >= {min_in_per_30d}
               AND f.pass_through_24h >= {min_pass_through} AND f.grocery_n <= {max_everyday_per_30d}""",
         {"min_in_per_30d": 1000, "min_pass_through": 0.8, "max_everyday_per_30d": 8}, victim_side=True),
    Rule("SE10_TAXI", "Frequent taxi rides", "sexual_exploitation", ("SE-10",),
         "More than 15 taxi or ride-hailing payments a month.", 1,
         f"""SELECT bank_id, account_id, {EV} AS evidence, printf('%.0f taxi rides per 30 days', count(*) * {{per30}}) AS detail
             FROM win_tx WHERE NOT is_in AND category = 'taxi' GROUP BY ALL HAVING count(*) * {{per30}} > {{min_per_30d}}""",
         {"min_per_30d": 15}, victim_side=True),
    Rule("SE11_TOPUPS", "Prepaid phone top-ups", "sexual_exploitation", ("SE-11",),
         "Frequent prepaid top-ups, or top-ups with several providers.", 2,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('%.0f top-ups per 30 days with %d providers', count(*) * {{per30}}, count(DISTINCT counterparty_id)) AS detail
             FROM win_tx WHERE NOT is_in AND category = 'telecom' AND channel = 'card' GROUP BY ALL
             HAVING count(*) * {{per30}} >= {{min_per_30d}} OR count(DISTINCT counterparty_id) >= {{min_providers}}""",
         {"min_per_30d": 8, "min_providers": 3}, victim_side=True),
    Rule("SE19_LUXURY", "Luxury spending on person-to-person income", "sexual_exploitation", ("SE-19",),
         "Luxury spending that wages cannot explain, funded by transfers from private persons.", 2,
         """{wages}
             SELECT f.bank_id, f.account_id, (SELECT list(txn_id ORDER BY booked_at)[1:30] FROM win_tx w WHERE w.bank_id = f.bank_id
                       AND w.account_id = f.account_id AND w.category = 'luxury' AND NOT w.is_in) AS evidence,
                    printf('EUR %.0f luxury per 30 days, %d%% of income from private persons', f.luxury_out,
                           CAST(100 * f.p2p_in_share AS INT)) AS detail
             FROM features f
             LEFT JOIN (SELECT bank_id, account_id, sum(amount) AS wage FROM wages GROUP BY ALL) g USING (bank_id, account_id)
             WHERE f.luxury_out >= {min_luxury_per_30d} AND coalesce(g.wage, 0) * {per30} < {max_wage_per_30d}
               AND f.p2p_in_share >= {min_p2p_share}""",
         {"min_luxury_per_30d": 1000, "max_wage_per_30d": 2000, "min_p2p_share": 0.3}),
    # ---------------------------------------------------------------- labour exploitation
    Rule("LE01_WAGE_CASHED", "Wage withdrawn in cash at once", "labour_exploitation", ("LE-01",),
         "Most of each wage is withdrawn in cash the same or the next day.", 3,
         """{wages},
             m AS (SELECT g.bank_id, g.account_id, g.txn_id, g.amount, coalesce(sum(c.amount), 0) AS cash,
                          coalesce(list(c.txn_id) FILTER (c.txn_id IS NOT NULL), []) AS cash_ids
                   FROM wages g LEFT JOIN win_tx c ON c.bank_id = g.bank_id AND c.account_id = g.account_id
                        AND c.channel = 'cash_withdrawal' AND c.day BETWEEN g.day AND g.day + 1
                   GROUP BY ALL)
             SELECT bank_id, account_id, flatten(list(list_prepend(txn_id, cash_ids)) FILTER (cash >= {min_share} * amount))[1:50] AS evidence,
                    printf('%d of %d wages withdrawn in cash (>= %d%%) within a day', count(*) FILTER (cash >= {min_share} * amount),
                           count(*), CAST(100 * {min_share} AS INT)) AS detail
             FROM m GROUP BY ALL HAVING count(*) FILTER (cash >= {min_share} * amount) >= least({min_cycles}, count(*))""",
         {"min_share": 0.8, "min_cycles": 2}, victim_side=True),
    Rule("LE02_WAGE_FORWARDED", "Wage passed on within 48 hours", "labour_exploitation", ("LE-02",),
         "Half or more of each wage is transferred on to one account within two days.", 3,
         """{wages},
             o AS (SELECT g.bank_id, g.account_id, g.txn_id, g.amount, x.counterparty_id, sum(x.amount) AS fwd, list(x.txn_id) AS ids
                   FROM wages g JOIN win_tx x ON x.bank_id = g.bank_id AND x.account_id = g.account_id AND NOT x.is_in
                        AND x.channel IN ('transfer', 'instant_transfer') AND x.booked_at BETWEEN g.booked_at AND g.booked_at + INTERVAL 48 HOUR
                        AND x.counterparty_id <> g.counterparty_id
                   GROUP BY ALL),
             best AS (SELECT bank_id, account_id, txn_id, amount, max(fwd) AS fwd, flatten(list(ids)) AS ids FROM o GROUP BY ALL)
             SELECT bank_id, account_id, flatten(list(list_prepend(txn_id, ids)))[1:50] AS evidence,
                    printf('%d wages, %d%% passed on within 48h on average', count(*), CAST(100 * avg(fwd / amount) AS INT)) AS detail
             FROM best WHERE fwd >= {min_share} * amount GROUP BY ALL HAVING count(*) >= {min_cycles}""",
         {"min_share": 0.5, "min_cycles": 2}, victim_side=True),
    Rule("LE03_SAME_LOW_WAGE", "Many workers paid the same low wage", "labour_exploitation", ("LE-03", "LE-05"),
         "A business pays many private persons exactly the same low amount on the same day.", 3,
         """WITH p AS (SELECT bank_id, account_id, day, amount, count(DISTINCT counterparty_id) AS workers, list(txn_id ORDER BY booked_at) AS ids
                       FROM win_tx WHERE NOT is_in AND counterparty_type = 'person' AND channel IN ('transfer', 'instant_transfer')
                         AND amount BETWEEN 300 AND {max_wage} GROUP BY ALL)
             SELECT p.bank_id, p.account_id, flatten(list(ids ORDER BY day, amount))[1:50] AS evidence,
                    printf('pays up to %d persons the same EUR %.0f on one day', max(workers), arg_max(amount, workers)) AS detail
             FROM p JOIN win_accounts a USING (bank_id, account_id) WHERE a.customer_type = 'business' AND workers >= {min_workers}
             GROUP BY ALL""",
         {"max_wage": 1400, "min_workers": 5}),
    Rule("LE04_CROWDED_ADDRESS", "Crowded address of foreign nationals", "labour_exploitation", ("LE-04",),
         "Many unrelated customers of one sex, mostly foreign nationals, registered at one address.", 2,
         """WITH ad AS (SELECT address_id, count(DISTINCT customer_id) AS n,
                               max(g) / count(*) AS same_sex, avg(CASE WHEN nationality <> 'NL' THEN 1 ELSE 0 END) AS foreign_share
                        FROM (SELECT *, count(*) OVER (PARTITION BY address_id, gender) AS g FROM accounts WHERE customer_type = 'person')
                        GROUP BY address_id)
             SELECT a.bank_id, a.account_id, [] AS evidence,
                    printf('%d customers at the address, %d%% one sex, %d%% foreign', ad.n, CAST(100 * ad.same_sex AS INT),
                           CAST(100 * ad.foreign_share AS INT)) AS detail
             FROM win_accounts a JOIN ad USING (address_id)
             WHERE ad.n >= {min_customers} AND ad.same_sex >= {min_same_sex} AND ad.foreign_share >= {min_foreign}""",
         {"min_customers": 6, "min_same_sex": 0.8, "min_foreign": 0.5}, victim_side=True),
    Rule("LE05_LOW_WAGE_RENT", "Low wage and rent to a private person", "labour_exploitation", ("LE-05",),
         "A wage below the minimum followed within a week by rent paid to a private person.", 2,
         """{wages}
             SELECT g.bank_id, g.account_id, list(DISTINCT g.txn_id) || list(DISTINCT r.txn_id) AS evidence,
                    printf('wage EUR %.0f, rent EUR %.0f to a private person', max(g.amount), max(r.amount)) AS detail
             FROM wages g JOIN win_tx r ON r.bank_id = g.bank_id AND r.account_id = g.account_id AND NOT r.is_in
                  AND r.counterparty_type = 'person' AND regexp_matches(coalesce(r.description, ''), '{rent_words}')
                  AND r.day BETWEEN g.day AND g.day + 7
             WHERE g.amount < {max_wage} GROUP BY ALL""",
         {"max_wage": 1400}, victim_side=True),
    Rule("LE06_SHARED_DEVICE", "One device banks for many people", "labour_exploitation", ("LE-06", "SE-23", "CE-02"),
         "The online-banking device of this account is also used by several other customers at other addresses.", 3,
         """SELECT a.bank_id, a.account_id, (SELECT list(txn_id ORDER BY booked_at)[1:30] FROM win_tx w WHERE w.bank_id = a.bank_id
                       AND w.account_id = a.account_id AND w.device_id IS NOT NULL) AS evidence,
                    printf('device used by %d customers at %d addresses', a.device_customers, a.device_addresses) AS detail
             FROM win_accounts a
             WHERE (a.device_customers >= {min_customers} AND a.device_addresses >= 2) OR a.device_customers >= {min_customers_any}""",
         {"min_customers": 3, "min_customers_any": 5}, victim_side=True),
    Rule("LE08_BUSINESS_LODGING", "Risk-sector business pays for lodging", "labour_exploitation", ("LE-08", "LE-11"),
         "A business in an exposed sector pays for hotels or short stays, as for housing workers.", 1,
         f"""SELECT w.bank_id, w.account_id, {EV} AS evidence,
                    printf('sector %s pays %d lodging bills', any_value(a.sector_code), count(*)) AS detail
             FROM win_tx w JOIN win_accounts a USING (bank_id, account_id)
             WHERE a.customer_type = 'business' AND a.sector_code IN ({{risk_sectors}}) AND w.category = 'lodging' AND NOT w.is_in
             GROUP BY ALL HAVING count(*) >= {{min_count}}""",
         {"min_count": 2}),
    # ---------------------------------------------------------------- criminal exploitation / money mules
    Rule("CE01_YOUNG_MULE", "Young, new account passing money on", "criminal_exploitation", ("CE-01",),
         "A young holder with a new account receives money from several strangers and passes it on within a day.", 3,
         """WITH acc AS (SELECT a.bank_id, a.account_id, a.holder_age, a.account_age_days, f.pass_through_24h
                         FROM win_accounts a JOIN features f USING (bank_id, account_id)
                         WHERE a.holder_age BETWEEN {min_age} AND {max_age} AND a.account_age_days <= {max_account_days}
                           AND f.pass_through_24h >= {min_pass_through}),
                  c AS (SELECT bank_id, account_id, txn_id, booked_at, count(DISTINCT counterparty_id) OVER (PARTITION BY bank_id, account_id
                              ORDER BY day RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW) AS senders
                        FROM win_tx SEMI JOIN acc USING (bank_id, account_id)   -- the costly window only where the profile fits
                        WHERE is_in AND channel IN ('transfer', 'instant_transfer') AND counterparty_type = 'person')
             SELECT c.bank_id, c.account_id, list(c.txn_id ORDER BY c.booked_at)[1:50] AS evidence,
                    printf('holder %d years, account %d days old, up to %d senders in a week, %d%% out within 24h',
                           any_value(a.holder_age), any_value(a.account_age_days), max(c.senders), CAST(100 * any_value(a.pass_through_24h) AS INT)) AS detail
             FROM c JOIN acc a USING (bank_id, account_id)
             GROUP BY ALL HAVING max(c.senders) >= {min_senders}""",
         {"min_age": 18, "max_age": 23, "max_account_days": 180, "min_pass_through": 0.8, "min_senders": 3}, victim_side=True),
    Rule("ML_FAN_IN_PASS_THROUGH", "Fan-in from many senders, passed straight on", "criminal_exploitation", ("CE-01", "ML-01", "S1 typology 3"),
         "Many different senders pay in within two weeks and nearly all of it leaves within a day.", 3,
         """WITH f AS (SELECT bank_id, account_id, pass_through_24h FROM features WHERE pass_through_24h >= {min_pass_through}),
                  c AS (SELECT bank_id, account_id, txn_id, booked_at, amount, count(DISTINCT counterparty_id) OVER (PARTITION BY bank_id, account_id
                              ORDER BY day RANGE BETWEEN INTERVAL 13 DAY PRECEDING AND CURRENT ROW) AS senders
                        FROM win_tx SEMI JOIN f USING (bank_id, account_id)   -- the costly window only on pass-through accounts
                        WHERE is_in AND channel IN ('transfer', 'instant_transfer') AND counterparty_type = 'person')
             SELECT c.bank_id, c.account_id, list(c.txn_id ORDER BY c.booked_at)[1:50] AS evidence,
                    printf('up to %d senders in two weeks (median EUR %.0f), %d%% out within 24h', max(c.senders), median(c.amount),
                           CAST(100 * any_value(f.pass_through_24h) AS INT)) AS detail
             FROM c JOIN f USING (bank_id, account_id)
             GROUP BY ALL HAVING max(c.senders) >= {min_senders} AND median(c.amount) >= {min_median}""",
         {"min_pass_through": 0.75, "min_median": 100, "min_senders": 5}, victim_side=True),
    Rule("CE_CRYPTO_AFTER_P2P", "Crypto bought right after person-to-person inflows", "criminal_exploitation", ("SE-14", "CE-01"),
         "Payments to a crypto exchange the same or next day as credits from several private persons.", 2,
         """WITH v AS (SELECT bank_id, account_id, day, txn_id FROM win_tx WHERE category = 'vasp' AND NOT is_in),
                  p AS (SELECT bank_id, account_id, day, counterparty_id, txn_id FROM win_tx WHERE is_in AND is_p2p)
             SELECT v.bank_id, v.account_id, list(DISTINCT v.txn_id)[1:50] AS evidence,
                    printf('%d crypto payments after credits from %d private persons', count(DISTINCT v.txn_id), count(DISTINCT p.counterparty_id)) AS detail
             FROM v JOIN p ON p.bank_id = v.bank_id AND p.account_id = v.account_id AND p.day BETWEEN v.day - 1 AND v.day
             GROUP BY ALL HAVING count(DISTINCT v.txn_id) >= {min_payments} AND count(DISTINCT p.counterparty_id) >= {min_senders}""",
         {"min_payments": 2, "min_senders": 3}, victim_side=True),
    # ---------------------------------------------------------------- creditboys
    Rule("CD02_SEVERAL_LENDERS", "Loans from several lenders in a month", "creditboys", ("CD-02",),
         "Credit from two or more lenders within 30 days.", 3,
         """WITH l AS (SELECT *, count(DISTINCT counterparty_id) OVER (PARTITION BY bank_id, account_id ORDER BY day
                              RANGE BETWEEN INTERVAL 29 DAY PRECEDING AND CURRENT ROW) AS lenders FROM win_tx
                       WHERE is_in AND (channel = 'loan_disbursement' OR category = 'lender'))
             SELECT l.bank_id, l.account_id, list(l.txn_id ORDER BY l.booked_at)[1:50] AS evidence,
                    printf('%d loans (EUR %.0f) from up to %d lenders in 30 days, holder %s years', count(*), sum(l.amount), max(l.lenders),
                           coalesce(CAST(any_value(a.holder_age) AS VARCHAR), '?')) AS detail
             FROM l JOIN win_accounts a USING (bank_id, account_id)
             GROUP BY ALL HAVING max(l.lenders) >= {min_lenders}""",
         {"min_lenders": 2}, victim_side=True),
    Rule("CD02_LOAN_PASSED_ON", "Loan passed on at once", "creditboys", ("CD-02",),
         "Most of a loan leaves within 48 hours, in cash or to a private person.", 3,
         """WITH l AS (SELECT * FROM win_tx WHERE is_in AND (channel = 'loan_disbursement' OR category = 'lender')),
                  o AS (SELECT l.bank_id, l.account_id, l.txn_id, l.amount, sum(x.amount) AS out, list(x.txn_id) AS ids
                        FROM l JOIN (SELECT * FROM win_tx SEMI JOIN l USING (bank_id, account_id)) x ON x.bank_id = l.bank_id AND x.account_id = l.account_id AND NOT x.is_in
                             AND (x.channel = 'cash_withdrawal' OR x.counterparty_type = 'person')
                             AND x.booked_at BETWEEN l.booked_at AND l.booked_at + INTERVAL 48 HOUR
                        GROUP BY ALL)
             SELECT bank_id, account_id, flatten(list(list_prepend(txn_id, ids)))[1:50] AS evidence,
                    printf('%d loans, %d%% passed on within 48h', count(*), CAST(100 * sum(out) / sum(amount) AS INT)) AS detail
             FROM o WHERE out >= {min_share} * amount GROUP BY ALL""",
         {"min_share": 0.7}, victim_side=True),
    Rule("CD01_TELECOM_BURST", "Burst of new phone contracts", "creditboys", ("CD-01",),
         "Two or more new telecom contracts with different providers within two weeks.", 3,
         """WITH d AS (SELECT bank_id, account_id, counterparty_id, min(day) AS first_day, arg_min(txn_id, day) AS txn_id
                       FROM win_tx WHERE NOT is_in AND channel = 'direct_debit' AND category = 'telecom' GROUP BY ALL),
                  s AS (SELECT min(day) AS start FROM win_tx),
                  n AS (SELECT d.* FROM d, s WHERE d.first_day >= s.start + {settle_days}),
                  pairs AS (SELECT a.bank_id, a.account_id, a.txn_id, count(*) AS near FROM n a JOIN n b
                            ON a.bank_id = b.bank_id AND a.account_id = b.account_id AND abs(a.first_day - b.first_day) <= {within_days}
                            GROUP BY ALL)
             SELECT bank_id, account_id, list(txn_id ORDER BY txn_id) AS evidence,
                    printf('%d new telecom contracts started within %d days', max(near), {within_days}) AS detail
             FROM pairs GROUP BY ALL HAVING max(near) >= {min_contracts}""",
         {"settle_days": 7, "within_days": 14, "min_contracts": 2}, victim_side=True),
    Rule("CD_YOUNG_NEW_CREDIT", "New credit or contracts in a young adult's name", "creditboys", ("CD-01", "CD-02", "SE-24"),
         "A holder aged 18-25 takes new loans or starts new phone contracts: the profile creditboys target.", 2,
         """WITH s AS (SELECT min(day) AS start FROM win_tx),
                  tel AS (SELECT bank_id, account_id, counterparty_id, min(day) AS first_day FROM win_tx
                          WHERE NOT is_in AND channel = 'direct_debit' AND category = 'telecom' GROUP BY ALL),
                  c AS (SELECT bank_id, account_id, txn_id, booked_at, counterparty_id FROM win_tx
                        WHERE is_in AND (channel = 'loan_disbursement' OR category = 'lender')
                        UNION ALL   -- telecom contracts not already running in the window's first days
                        SELECT w.bank_id, w.account_id, w.txn_id, w.booked_at, w.counterparty_id
                        FROM win_tx w JOIN tel USING (bank_id, account_id, counterparty_id) CROSS JOIN s
                        WHERE NOT w.is_in AND w.channel = 'direct_debit' AND w.category = 'telecom'
                          AND tel.first_day >= s.start + {settle_days})
             SELECT c.bank_id, c.account_id, list(c.txn_id ORDER BY c.booked_at)[1:50] AS evidence,
                    printf('holder %d years: %d new lenders or phone providers', any_value(a.holder_age), count(DISTINCT c.counterparty_id)) AS detail
             FROM c JOIN win_accounts a USING (bank_id, account_id)
             WHERE a.holder_age BETWEEN {min_age} AND {max_age}
             GROUP BY ALL HAVING count(DISTINCT c.counterparty_id) >= {min_new}""",
         {"min_age": 18, "max_age": 25, "settle_days": 7, "min_new": 2}, victim_side=True),
    # ---------------------------------------------------------------- migration routes / debt bondage
    Rule("XB01_SHARED_BENEFICIARY", "Several senders, one beneficiary abroad", "debt_bondage", ("XB-01", "LE-12"),
         "The same beneficiary abroad receives money from several unrelated accounts.", 3,
         """WITH f AS (SELECT * FROM win_tx WHERE NOT is_in AND counterparty_country <> 'NL' AND counterparty_id IS NOT NULL),
                  b AS (SELECT counterparty_id, count(DISTINCT (bank_id, account_id)) AS senders FROM f GROUP BY 1)
             SELECT f.bank_id, f.account_id, list(f.txn_id ORDER BY f.booked_at)[1:50] AS evidence,
                    printf('beneficiary in %s shared with %d other accounts', any_value(f.counterparty_country), max(b.senders) - 1) AS detail
             FROM f JOIN b USING (counterparty_id) WHERE b.senders >= {min_senders} GROUP BY ALL""",
         {"min_senders": 3}, victim_side=True),
    Rule("XB02_FIXED_INSTALMENTS", "Fixed instalments to one beneficiary", "debt_bondage", ("XB-02", "LE-10"),
         "Identical sums paid at a regular rhythm to one beneficiary abroad, as repayments of a debt.", 3,
         """{instalments}
             SELECT bank_id, account_id, flatten(list(ids))[1:50] AS evidence,
                    printf('%d payments of EUR %.0f every %.0f days to one beneficiary abroad', max(n), arg_max(amount, n), arg_max(gap_avg, n)) AS detail
             FROM instalments WHERE amount * n * 90.0 / {days} >= {min_total_per_90d}
             GROUP BY ALL""",
         {"min_payments": 3, "max_gap_sd": 3, "min_total_per_90d": 1000}, victim_side=True),
    Rule("XB06_STRUCTURED_REMITTANCES", "Remittances just under the threshold", "debt_bondage", ("XB-06",),
         "Several money transfers within 10% below the reporting threshold in a month.", 2,
         f"""SELECT bank_id, account_id, {EV} AS evidence,
                    printf('%d remittances between EUR %.0f and %.0f', count(*), 0.9 * CAST({{threshold}} AS DOUBLE), CAST({{threshold}} AS DOUBLE)) AS detail
             FROM win_tx WHERE NOT is_in AND channel = 'money_remittance' AND amount >= 0.9 * {{threshold}} AND amount < {{threshold}}
             GROUP BY ALL HAVING count(*) * {{per30}} >= {{min_per_30d}}""",
         {"threshold": 2000, "min_per_30d": 3}),
    # ---------------------------------------------------------------- cross-cutting laundering mechanics
    Rule("ML03_CASH_ONLY_INCOME", "Income only in cash", "laundering", ("ML-03", "XB-02"),
         "Nearly all money coming in is deposited as cash, with no wage, benefit or card takings.", 2,
         """SELECT w.bank_id, w.account_id, list(w.txn_id ORDER BY w.booked_at) FILTER (w.channel = 'cash_deposit')[1:50] AS evidence,
                    printf('%d%% of EUR %.0f in was cash', CAST(100 * sum(w.amount) FILTER (w.channel = 'cash_deposit') / sum(w.amount) AS INT),
                           sum(w.amount)) AS detail
             FROM win_tx w JOIN win_accounts a USING (bank_id, account_id)
             WHERE w.is_in AND a.customer_type = 'person' GROUP BY ALL
             HAVING count(*) FILTER (w.channel = 'cash_deposit') >= {min_deposits}
                AND sum(w.amount) FILTER (w.channel = 'cash_deposit') >= {min_share} * sum(w.amount)""",
         {"min_deposits": 4, "min_share": 0.9}, victim_side=True),
    Rule("ML_MANY_DEVICES", "Many devices on one account", "laundering", ("SE-23",),
         "Three or more different devices bank on this account.", 1,
         """SELECT bank_id, account_id, list(txn_id ORDER BY booked_at)[1:30] AS evidence, printf('%d devices', count(DISTINCT device_id)) AS detail
             FROM win_tx SEMI JOIN (SELECT bank_id, account_id FROM win_accounts WHERE devices >= {min_devices}) USING (bank_id, account_id)
             WHERE device_id IS NOT NULL AND NOT is_in GROUP BY ALL HAVING count(DISTINCT device_id) >= {min_devices}""",
         {"min_devices": 3}, victim_side=True),
    # ---------------------------------------------------------------- network (stage 2)
    Rule("NET_COLLECTOR", "Collects from accounts that show victim signals", "inherit", ("SE-08", "SE-21", "LE-02", "CD-02", "CE-01"),
         "Receives money from several accounts that themselves show victim signals: a likely controller or collector.", 3,
         """WITH v AS (SELECT bank_id, account_id, typology, count(*) AS rules FROM hits WHERE victim_side GROUP BY ALL),
                  vv AS (SELECT bank_id, account_id, arg_max(typology, rules) AS typology FROM v GROUP BY ALL),
                  m AS (SELECT x.bank_id, x.account_id, x.txn_id, x.booked_at, x.amount, vv.typology, x.counterparty_id AS victim
                        FROM win_tx x JOIN vv ON vv.account_id = x.counterparty_id
                        WHERE x.is_in AND x.channel IN ('transfer', 'instant_transfer'))
             SELECT bank_id, account_id, list(txn_id ORDER BY booked_at)[1:50] AS evidence,
                    printf('receives EUR %.0f from %d accounts with victim signals', sum(amount), count(DISTINCT victim)) AS detail,
                    mode(typology) AS typology
             FROM m GROUP BY bank_id, account_id
             HAVING count(DISTINCT victim) >= {min_victims} AND sum(amount) >= {min_eur}""",
         {"min_victims": 2, "min_eur": 500}, stage=2, constellation=True),
    Rule("NET_EMPLOYER", "Employer of workers with exploitation signals", "labour_exploitation", ("LE-02", "LE-03", "LE-06"),
         "Pays wages to several accounts that show labour-exploitation signals.", 3,
         """WITH w AS (SELECT DISTINCT bank_id, account_id FROM hits WHERE typology = 'labour_exploitation' AND victim_side),
                  p AS (SELECT x.bank_id, x.account_id, x.txn_id, x.booked_at, x.counterparty_id FROM win_tx x
                        WHERE NOT x.is_in AND x.counterparty_type = 'person' AND x.channel IN ('transfer', 'instant_transfer'))
             SELECT p.bank_id, p.account_id, list(p.txn_id ORDER BY p.booked_at)[1:50] AS evidence,
                    printf('pays %d workers with exploitation signals', count(DISTINCT p.counterparty_id)) AS detail
             FROM p JOIN w ON w.account_id = p.counterparty_id JOIN win_accounts a ON a.bank_id = p.bank_id AND a.account_id = p.account_id
             WHERE a.customer_type = 'business' GROUP BY ALL HAVING count(DISTINCT p.counterparty_id) >= {min_workers}""",
         {"min_workers": 2}, stage=2, constellation=True),
    Rule("NET_WAGE_COLLECTOR", "Collects the wages of one employer's workers", "labour_exploitation", ("LE-02", "LE-03", "LE-10"),
         "Several workers of one employer pass part of their wages on to this account: a likely controller, recruiter or landlord-employer.", 3,
         """{workforce}
             SELECT p.bank_id, p.collector AS account_id, arg_max(p.collector_ids, p.workers)[1:50] AS evidence,
                    printf('receives EUR %.0f from %d of the %d workers of one employer', arg_max(p.amount, p.workers), max(p.workers),
                           arg_max(h.workers, p.workers)) AS detail
             FROM passed_on p JOIN headcount h USING (employer)
             WHERE p.workers >= {min_workers} AND p.workers >= {min_staff_share} * h.workers
             GROUP BY ALL""",
         {"min_wage": 400, "min_share": 0.3, "min_workers": 3, "min_staff_share": 0.5}, stage=2, constellation=True),
    Rule("NET_HOUSED_WORKFORCE", "Workforce housed together, wages passed on", "labour_exploitation", ("LE-02", "LE-04", "LE-06"),
         "The employer's workers live at a few addresses or bank from one device, and pass their wages on to one account.", 3,
         """{workforce},
             crew AS (SELECT s.bank_id, s.employer, count(*) AS workers, count(DISTINCT a.address_id) AS addresses,
                             flatten(list(s.ids)) AS ids
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
         {"min_wage": 400, "min_share": 0.3, "min_workers": 4, "min_staff_share": 0.5, "max_addresses_per_worker": 0.34,
          "min_on_one_device": 3}, stage=2, constellation=True),
    Rule("NET_SHARED_CLUSTER", "Cluster of linked accounts with victim signals", "inherit", ("LE-04", "LE-06", "SE-23", "CE-02"),
         "Shares an address, phone or device with several accounts, most of which show victim signals of their own.", 2,
         """WITH v AS (SELECT bank_id, account_id, arg_max(typology, severity) AS typology FROM hits
                       WHERE victim_side AND rule_id NOT IN ({attribute_rules}) GROUP BY ALL),
                  g AS (SELECT s.kind, s.key, count(*) AS members, count(v.account_id) AS flagged, mode(v.typology) AS typology
                        FROM net_shared s LEFT JOIN v USING (bank_id, account_id) WHERE s.kind IN ('address', 'phone', 'device') GROUP BY ALL)
             SELECT s.bank_id, s.account_id, [] AS evidence,
                    printf('shares its %s with %d accounts, %d of them with victim signals', arg_max(s.kind, (g.flagged, g.members, s.kind, s.key)),
                           arg_max(g.members, (g.flagged, g.members, s.kind, s.key)) - 1, max(g.flagged)) AS detail,
                    arg_max(g.typology, (g.flagged, g.members, s.kind, s.key)) AS typology   -- one group, chosen the same way every run
             FROM net_shared s JOIN g USING (kind, key)
             WHERE g.members >= {min_members} AND g.flagged >= {min_flagged} AND g.flagged >= {min_share} * g.members
             GROUP BY s.bank_id, s.account_id""",
         {"min_members": 3, "min_flagged": 3, "min_share": 0.5,
          "attribute_rules": "'LE04_CROWDED_ADDRESS', 'LE06_SHARED_DEVICE', 'ML_MANY_DEVICES'"}, stage=2, constellation=True),
    Rule("NET_INSTALMENT_BENEFICIARY", "Beneficiary abroad paid instalments by several accounts", "debt_bondage", ("XB-01", "XB-02", "LE-12"),
         "One beneficiary abroad receives fixed instalments from several accounts: a debt collected along a migration route.", 3,
         """{instalments},
             b AS (SELECT counterparty_id, count(DISTINCT account_id) AS senders FROM instalments GROUP BY 1)
             SELECT i.bank_id, i.account_id, flatten(list(i.ids))[1:50] AS evidence,
                    printf('fixed instalments to a beneficiary in %s who gets them from %d accounts', arg_max(i.country, b.senders),
                           max(b.senders)) AS detail
             FROM instalments i JOIN b USING (counterparty_id) WHERE b.senders >= {min_senders} GROUP BY ALL""",
         {"min_payments": 3, "max_gap_sd": 3, "min_senders": 3}, constellation=True),
    Rule("NET_LINKED_TO_REPORTED", "Linked to an escalated or FIU-reported account", "inherit", ("SE-08", "LE-02", "CE-01"),
         "Exchanges money with, or shares a phone or device with, an account an investigator escalated or the FIU holds a report on.", 3,
         """WITH l AS (SELECT dst_bank AS bank_id, dst AS account_id, src AS other, printf('received EUR %.0f from', amount) AS how,
                             dst_txn_ids AS ids, amount, n FROM net_money
                      UNION ALL
                      SELECT src_bank, src, dst, printf('paid EUR %.0f to', amount), src_txn_ids, amount, n FROM net_money
                      UNION ALL
                      SELECT a.bank_id, a.account_id, b.account_id, 'shares a ' || a.kind || ' with', [], NULL, NULL
                      FROM net_shared a JOIN net_shared b ON a.kind = b.kind AND a.key = b.key AND a.account_id <> b.account_id
                      WHERE a.kind IN ('phone', 'device'))
             SELECT l.bank_id, l.account_id, flatten(list(l.ids))[1:50] AS evidence,
                    string_agg(l.how || ' an account ' || f.reason || ' (' || left(f.account_id, 8) || ')', '; ') AS detail,
                    coalesce(any_value(f.typology), 'laundering') AS typology
             FROM l JOIN net_flagged f ON f.account_id = l.other
             WHERE l.account_id NOT IN (SELECT account_id FROM net_flagged)
               AND (l.amount IS NULL OR l.amount >= {min_eur} OR l.n >= {min_transfers})
             GROUP BY l.bank_id, l.account_id""",
         {"min_eur": 500, "min_transfers": 3}),
]


# Config keys that are not rule ids: read by the window, network, cases, fusion, scoring and goAML export.
SETTINGS = ("disabled", "categories", "fusion", "budget", "window_days", "network", "cases", "dismissed_rise", "goaml")


def rule_set(overrides: dict | None = None) -> list[Rule]:
    """The rules with parameters overridden from a config: {rule_id: {param: value}, 'disabled': [ids]}."""
    overrides = overrides or {}
    disabled = set(overrides.get("disabled", []))
    known = {r.id for r in RULES}
    unknown = [k for k in overrides if k not in known and k not in SETTINGS]
    if unknown:
        raise ValueError(f"config names unknown rules: {', '.join(unknown)}")
    out = []
    for r in RULES:
        if r.id in disabled:
            continue
        new = overrides.get(r.id) or {}
        bad = [k for k in new if k not in r.params and k != "severity"]
        if bad:
            raise ValueError(f"rule {r.id} has no parameter(s) {', '.join(bad)}; it has {', '.join(r.params)}")
        params = {**r.params, **{k: v for k, v in new.items() if k != "severity"}}
        out.append(replace(r, params=params, severity=int(new.get("severity", r.severity))))
    return out
