"""A made-up re-identification file for generated data, in the layout `export-goaml --identities` reads.

A bank keeps the real one; for synthetic stores (tests, the demo) every account and customer gets
invented but complete goAML identity fields, derived from a hash of its pseudonymous id in DuckDB.
Account numbers start 'NL00SYNT' (or 'XX00SYNT' for counterparties outside the store), impossible
IBANs (wrong check digits), so they can never be mistaken for, or collide with, a real account.
Counterparties outside the store get what a bank knows from the payment message (name, account,
BIC) with balance 0.00 and status '-' (goAML's 'unknown'): this FIU's schema requires both on every
account.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import store

FIRST = [
    "Anna",
    "Sanne",
    "Fleur",
    "Lotte",
    "Daan",
    "Sem",
    "Milan",
    "Noah",
    "Eva",
    "Iris",
    "Bram",
    "Ruben",
    "Maria",
    "Ioana",
    "Piotr",
    "Chidi",
]
LAST = [
    "de Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "Kowalski",
    "Popescu",
    "Okafor",
    "Nguyen",
]


def write_identities(db_path: str | Path, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    first = "[" + ", ".join(f"'{n}'" for n in FIRST) + "]"
    last = "[" + ", ".join(f"'{n}'" for n in LAST) + "]"
    con = store.connect(db_path, read_only=True)
    try:
        con.execute(f"""COPY (
            WITH a AS (SELECT DISTINCT account_id, customer_id, customer_type, gender, nationality, birth_year FROM accounts),
                 acc AS (SELECT account_id AS pseudonymous_id, 'NL00SYNT' || lpad(CAST(hash(account_id) % 10000000000 AS VARCHAR), 10, '0') AS account,
                                NULL AS account_name, printf('%.2f', (hash(account_id || 'b') % 500000) / 100.0) AS balance,
                                '2026-09-30' AS date_balance, 'A' AS status_code,
                                CASE WHEN customer_type = 'business' THEN 'A' ELSE 'B' END AS personal_account_type,
                                CASE WHEN customer_type = 'business' THEN 'sig-' || customer_id END AS signatory_id, 'SYNTNL2A' AS swift,
                                customer_id
                         FROM a),
                 who AS (SELECT customer_id AS pseudonymous_id,
                                {first}[CAST(1 + hash(customer_id) % {len(FIRST)} AS BIGINT)] AS first_name, {last}[CAST(1 + hash(customer_id || 'l') % {len(LAST)} AS BIGINT)] AS last_name,
                                upper(coalesce(gender, 'm')) AS gender,
                                printf('%04d-%02d-%02d', coalesce(birth_year, 1980), 1 + hash(customer_id) % 12, 1 + hash(customer_id) % 28) AS birthdate,
                                'SP' || lpad(CAST(hash(customer_id || 'p') % 10000000 AS VARCHAR), 7, '0') AS passport_number,
                                coalesce(nationality, 'NL') AS passport_country, CAST(hash(customer_id || 'i') % 1000000000 AS VARCHAR) AS id_number,
                                coalesce(nationality, 'NL') AS nationality1, 'NL' AS residence,
                                '06' || lpad(CAST(hash(customer_id || 't') % 100000000 AS VARCHAR), 8, '0') AS phone,
                                'PASSP' AS id_type, '2020-01-15' AS id_issue_date, '2030-01-14' AS id_expiry_date,
                                coalesce(nationality, 'NL') AS id_issue_country, 'N' AS tax_reg_number,
                                'Voorbeeldstraat ' || (1 + hash(customer_id) % 200) AS address, 'Utrecht' AS city, 'NL' AS country_code, 'Utrecht' AS state
                         FROM (SELECT DISTINCT customer_id, gender, nationality, birth_year FROM a WHERE customer_type = 'person'
                               UNION ALL SELECT DISTINCT 'sig-' || customer_id, 'm', 'NL', 1975 FROM a WHERE customer_type = 'business')),
                 ext AS (SELECT counterparty_id AS pseudonymous_id,
                                'XX00SYNT' || lpad(CAST(hash(counterparty_id) % 10000000000 AS VARCHAR), 10, '0') AS account,
                                coalesce(any_value(counterparty_name), 'Unknown payee') AS account_name
                         FROM transactions t WHERE counterparty_id IS NOT NULL AND counterparty_type = 'person'
                           AND NOT EXISTS (SELECT 1 FROM accounts x WHERE x.account_id = t.counterparty_id) GROUP BY 1)
            SELECT acc.pseudonymous_id, acc.account, w.first_name || ' ' || w.last_name AS account_name, acc.balance, acc.date_balance,
                   acc.status_code, acc.personal_account_type, acc.signatory_id, acc.swift,
                   NULL AS first_name, NULL AS last_name, NULL AS gender, NULL AS birthdate, NULL AS passport_number, NULL AS passport_country,
                   NULL AS id_number, NULL AS nationality1, NULL AS residence, NULL AS phone, NULL AS id_type, NULL AS id_issue_date,
                   NULL AS id_expiry_date, NULL AS id_issue_country, NULL AS tax_reg_number, NULL AS address, NULL AS city,
                   NULL AS country_code, NULL AS state
            FROM acc LEFT JOIN who w ON w.pseudonymous_id = coalesce(acc.signatory_id, acc.customer_id)
            UNION ALL
            SELECT pseudonymous_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, first_name, last_name, gender, birthdate, passport_number,
                   passport_country, id_number, nationality1, residence, phone, id_type, id_issue_date, id_expiry_date, id_issue_country,
                   tax_reg_number, address, city, country_code, state
            FROM who
            UNION ALL
            SELECT pseudonymous_id, account, account_name, '0.00', '2026-09-30', '-', 'B', NULL, 'XTRNXX2A',
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM ext
        ) TO '{str(out).replace("'", "''")}' (FORMAT {"parquet" if out.suffix.lower() == ".parquet" else "csv"})""")  # COPY binds no path
    finally:
        con.close()
    return out
