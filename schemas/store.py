"""Every table of the DuckDB store, as numbered migrations recorded in `schema_version`.

One place for the store's shape, so a store made by older code upgrades itself when it is opened
(pipelines/store.connect) instead of each module creating and altering its own tables on first use.
Migration 1 is the schema as the code before numbered migrations created it (every statement is
IF NOT EXISTS, so it also completes an old store that was loaded but never scored); later migrations
are the column changes since, each idempotent (ADD COLUMN IF NOT EXISTS) because an unnumbered store
may already have them. Scratch tables of a run (win_tx, stg_*, failures, ...) are not the store's and
stay with the code that makes them. docs/store.md lists the tables and how to add a migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from schemas import contract


class StoreVersionError(RuntimeError):
    """The store's schema version is not the one this code works with (and cannot be made so here)."""


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    statements: tuple[str, ...]


def _contract_table(table: str, cols: tuple[contract.Column, ...]) -> str:
    body = ", ".join(f'"{c.name}" {c.sql_type}' for c in cols)
    return f"CREATE TABLE IF NOT EXISTS {table} ({body}, submission_id VARCHAR)"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the tables as ingest, scoring and the review created them before numbered migrations",
        (
            # intake (pipelines/ingest.py)
            _contract_table("transactions", contract.TRANSACTIONS),
            _contract_table("accounts", contract.ACCOUNTS),
            _contract_table("fiu_reports", contract.TRANSACTIONS + contract.FIU_EXTRA),
            """CREATE TABLE IF NOT EXISTS submissions (
        submission_id VARCHAR, bank_id VARCHAR, kind VARCHAR, period_start DATE, period_end DATE,
        path VARCHAR, files JSON, fingerprint VARCHAR, rows_in JSON, rows_loaded BIGINT,
        rows_quarantined BIGINT, rows_replaced BIGINT, loaded_at TIMESTAMPTZ, outcome VARCHAR, message VARCHAR)""",
            """CREATE TABLE IF NOT EXISTS quarantine (
        submission_id VARCHAR, file VARCHAR, "row" BIGINT, check_id VARCHAR, "column" VARCHAR,
        reason VARCHAR, value VARCHAR, record JSON, quarantined_at TIMESTAMPTZ)""",
            # scoring (detectors/scoring.py)
            """CREATE TABLE IF NOT EXISTS alerts (run_id VARCHAR, alert_id VARCHAR, rank INTEGER, bank_id VARCHAR,
        account_id VARCHAR, score DOUBLE, typology VARCHAR, reasons VARCHAR, evidence VARCHAR[], rules VARCHAR[],
        rule_score DOUBLE, anomaly DOUBLE, status VARCHAR, created_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS cases (run_id VARCHAR, case_id VARCHAR, typology VARCHAR, accounts INTEGER,
        banks VARCHAR[], account_ids VARCHAR[], roles VARCHAR, money_eur DOUBLE, score DOUBLE, created_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS alert_status (alert_id VARCHAR, bank_id VARCHAR, account_id VARCHAR,
        status VARCHAR, opened_run VARCHAR, last_run VARCHAR, last_score DOUBLE, updated_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS runs (run_id VARCHAR, flow_run_id VARCHAR, kind VARCHAR, started_at TIMESTAMPTZ,
        ended_at TIMESTAMPTZ, parameters JSON, rule_set_hash VARCHAR, model_version VARCHAR, window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ, rows_in BIGINT, rows_quarantined BIGINT, alerts_out BIGINT, alerts_new BIGINT, outcome VARCHAR)""",
            # casework (casework/dispositions.py)
            """CREATE TABLE IF NOT EXISTS audit_log (event_id VARCHAR, logged_at TIMESTAMPTZ, user_name VARCHAR, action VARCHAR,
        alert_id VARCHAR, bank_id VARCHAR, account_id VARCHAR, previous_status VARCHAR, new_status VARCHAR,
        reason VARCHAR, note VARCHAR, details JSON)""",
        ),
    ),
    Migration(
        2,
        "alerts grouped into cases; dispositions and goAML reports kept on alert_status",
        (
            "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_id VARCHAR",
            "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_role VARCHAR",
            "ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS dismiss_reason VARCHAR",
            "ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS dismissed_score DOUBLE",
            "ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS dismissed_rules VARCHAR[]",
            "ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS reported_at TIMESTAMPTZ",
            "ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS report_file VARCHAR",
        ),
    ),
    Migration(
        3,
        "the FIU's screening: runs, theme hits, ranked subjects, decisions on reports, disseminations",
        (
            """CREATE TABLE IF NOT EXISTS fiu_screens (screen_id VARCHAR, period_start DATE, period_end DATE, reports BIGINT,
        themes VARCHAR[], theme_errors JSON, subjects BIGINT, created_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS fiu_theme_hits (screen_id VARCHAR, theme_id VARCHAR, typology VARCHAR,
        subject_id VARCHAR, report_id VARCHAR, period_start DATE, period_end DATE, created_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS fiu_subjects (screen_id VARCHAR, period_start DATE, period_end DATE, "rank" BIGINT,
        subject_id VARCHAR, network_id VARCHAR, score DOUBLE, themes VARCHAR[], typologies VARCHAR[], reporting_entities VARCHAR[],
        reports BIGINT, amount_eur DOUBLE, escalated_alert BOOLEAN, network_size BIGINT, network_themes VARCHAR[],
        reasons VARCHAR, report_ids VARCHAR[], created_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS fiu_decisions (event_id VARCHAR, report_id VARCHAR, decision VARCHAR, typology VARCHAR,
        note VARCHAR, user_name VARCHAR, decided_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS fiu_disseminations (package_id VARCHAR, network_id VARCHAR, report_id VARCHAR,
        user_name VARCHAR, disseminated_at TIMESTAMPTZ, path VARCHAR)""",
        ),
    ),
    Migration(4, "a failed run keeps why it failed", ("ALTER TABLE runs ADD COLUMN IF NOT EXISTS error VARCHAR",)),
    Migration(
        5,
        "each run keeps every rule's firing rate and what the alert budget cut",
        (
            "ALTER TABLE runs ADD COLUMN IF NOT EXISTS rule_rates JSON",
            "ALTER TABLE runs ADD COLUMN IF NOT EXISTS budget_cut JSON",
        ),
    ),
    Migration(
        8,
        "each run keeps the version of the re-ranker learned from decisions that it blended in (NULL: none)",
        ("ALTER TABLE runs ADD COLUMN IF NOT EXISTS reranker_version VARCHAR",),
    ),
    Migration(
        9,
        "privacy: purge records, the pseudonymisation key's version, hash-chained audit and access logs",
        (
            """CREATE TABLE IF NOT EXISTS purge_log (purge_id VARCHAR, purged_at TIMESTAMPTZ, dry_run BOOLEAN, user_name VARCHAR,
        cutoffs JSON, deleted JSON)""",
            "ALTER TABLE submissions ADD COLUMN IF NOT EXISTS key_id VARCHAR",
            """CREATE TABLE IF NOT EXISTS key_versions (key_id VARCHAR, previous_key_id VARCHAR, user_name VARCHAR,
        activated_at TIMESTAMPTZ, rekeyed JSON)""",
            "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS seq BIGINT",
            "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS prev_hash VARCHAR",
            "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS entry_hash VARCHAR",
            """CREATE TABLE IF NOT EXISTS access_log (seq BIGINT, logged_at TIMESTAMPTZ, user_name VARCHAR, role VARCHAR,
        action VARCHAR, object_kind VARCHAR, object_id VARCHAR, bank_id VARCHAR, address VARCHAR, reason VARCHAR,
        prev_hash VARCHAR, entry_hash VARCHAR)""",
        ),
    ),
    Migration(
        10,
        "the nightly run: per-account feature parts of the scored window, kept so the next day only adds and removes",
        (
            """CREATE TABLE IF NOT EXISTS feature_cache (window_days INTEGER, fingerprint VARCHAR, window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ, window_rows BIGINT, submissions_until TIMESTAMPTZ, run_id VARCHAR, built VARCHAR,
        updated_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS feature_cache_parts (bank_id VARCHAR, account_id VARCHAR, parts BIGINT[], counts BIGINT[],
        pt_num BIGINT, pt_den BIGINT)""",
            """CREATE TABLE IF NOT EXISTS feature_cache_values (bank_id VARCHAR, account_id VARCHAR, kind VARCHAR, value VARCHAR,
        last_seen TIMESTAMPTZ[])""",
            "CREATE TABLE IF NOT EXISTS feature_cache_days (bank_id VARCHAR, account_id VARCHAR, day DATE, din BIGINT, dout BIGINT)",
            "ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_cache JSON",
        ),
    ),
    Migration(
        11,
        "each alert keeps what the re-ranker learns from (features, scores before learning, rule hits) as the run saw them",
        ("ALTER TABLE alerts ADD COLUMN IF NOT EXISTS learning_input JSON",),
    ),
    Migration(
        12,
        "the nightly run: the scored window's bookings as the detectors read them, kept so the next night only adds a day",
        (
            """CREATE TABLE IF NOT EXISTS window_cache (window_days INTEGER, fingerprint VARCHAR, window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ, window_rows BIGINT, submissions_until TIMESTAMPTZ, run_id VARCHAR, built VARCHAR,
        updated_at TIMESTAMPTZ)""",
            """CREATE TABLE IF NOT EXISTS window_cache_tx (txn_id VARCHAR, bank_id VARCHAR, account_id VARCHAR,
        booked_at TIMESTAMPTZ, amount DOUBLE, channel VARCHAR, counterparty_id VARCHAR, counterparty_type VARCHAR,
        counterparty_country VARCHAR, location_city VARCHAR, description VARCHAR, device_id VARCHAR, hour BIGINT,
        is_night BOOLEAN, day DATE, is_in BOOLEAN, is_cash BOOLEAN, is_p2p BOOLEAN, cents BIGINT, category VARCHAR)""",
        ),
    ),
    Migration(
        13,
        "the kept window counts the bookings appended since it was last stored in cluster order, to re-sort it in time",
        ("ALTER TABLE window_cache ADD COLUMN IF NOT EXISTS unsorted_rows BIGINT DEFAULT 0",),
    ),
)
LATEST = MIGRATIONS[-1].version
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ)"


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version; 0 for a store made before numbered migrations (or an empty one).
    Asks the table itself: a duckdb_tables() lookup doubles the cost of opening a store (the review page opens one per request).
    Not inside a transaction: a missing table would abort it."""
    # fetchall, not fetchone: a result left half-read makes the caller's next con.sql() fail (DuckDB 2)
    try:
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    except duckdb.CatalogException:
        return 0


def too_new(found: int, where: str = "the store") -> StoreVersionError:
    return StoreVersionError(
        f"{where} is at schema version {found}, newer than this code knows ({LATEST}): "
        "use the thb-signals release that wrote it or a later one"
    )


def migrate(con: duckdb.DuckDBPyConnection, where: str = "the store") -> list[int]:
    """Apply the migrations the store lacks, all in one transaction (an upgrade happens whole or not at all).
    Returns the versions applied; refuses a store newer than this code."""
    found = current_version(con)
    if found == LATEST:
        return []
    if found > LATEST:
        raise too_new(found, where)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(VERSION_TABLE)
        found = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
        applied = []
        for m in MIGRATIONS:
            if m.version > found:
                for statement in m.statements:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (?, now())", [m.version])
                applied.append(m.version)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return applied


def check_version(con: duckdb.DuckDBPyConnection, where: str = "the store") -> None:
    """For a read-only connection: the store must be at this code's version, since it cannot be upgraded here."""
    found = current_version(con)
    if found > LATEST:
        raise too_new(found, where)
    if found < LATEST:
        made = "made before numbered migrations" if found == 0 else f"at schema version {found}"
        raise StoreVersionError(
            f"{where} is {made}; this code needs version {LATEST}. Open it once writable "
            "(any ingest, score or dispose does) to upgrade it, then read it again"
        )
