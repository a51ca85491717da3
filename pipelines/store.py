"""The DuckDB store: connection settings and table definitions."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from schemas import contract


DEFAULT_MEMORY_LIMIT = "3GB"   # DuckDB spills past this; keeps a 10M-row run near 4 GiB of RSS on any machine


def connect(db_path: str | Path | None = None, memory_limit: str | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store (or an in-memory database). Memory is capped so large loads spill to disk."""
    con = duckdb.connect(str(db_path) if db_path else ":memory:", read_only=read_only)
    limit = memory_limit or os.environ.get("THB_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    con.execute(f"SET memory_limit = '{limit}'")
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps in an extract are UTC (contract)
    return con


def _ddl(table: str, cols: tuple[contract.Column, ...], extra: str) -> str:
    body = ", ".join(f'"{c.name}" {c.sql_type}' for c in cols)
    return f"CREATE TABLE IF NOT EXISTS {table} ({body}, {extra})"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_ddl("transactions", contract.TRANSACTIONS, "submission_id VARCHAR"))
    con.execute(_ddl("accounts", contract.ACCOUNTS, "submission_id VARCHAR"))
    con.execute(_ddl("fiu_reports", contract.TRANSACTIONS + contract.FIU_EXTRA, "submission_id VARCHAR"))
    con.execute("""CREATE TABLE IF NOT EXISTS submissions (
        submission_id VARCHAR, bank_id VARCHAR, kind VARCHAR, period_start DATE, period_end DATE,
        path VARCHAR, files JSON, fingerprint VARCHAR, rows_in JSON, rows_loaded BIGINT,
        rows_quarantined BIGINT, rows_replaced BIGINT, loaded_at TIMESTAMPTZ, outcome VARCHAR, message VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS quarantine (
        submission_id VARCHAR, file VARCHAR, "row" BIGINT, check_id VARCHAR, "column" VARCHAR,
        reason VARCHAR, value VARCHAR, record JSON, quarantined_at TIMESTAMPTZ)""")


def ensure_fiu_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The FIU's own tables: screening runs, theme hits, ranked subjects, decisions on reports, disseminations."""
    con.execute(_ddl("fiu_reports", contract.TRANSACTIONS + contract.FIU_EXTRA, "submission_id VARCHAR"))
    con.execute("""CREATE TABLE IF NOT EXISTS fiu_screens (screen_id VARCHAR, period_start DATE, period_end DATE, reports BIGINT,
        themes VARCHAR[], theme_errors JSON, subjects BIGINT, created_at TIMESTAMPTZ)""")
    con.execute("""CREATE TABLE IF NOT EXISTS fiu_theme_hits (screen_id VARCHAR, theme_id VARCHAR, typology VARCHAR,
        subject_id VARCHAR, report_id VARCHAR, period_start DATE, period_end DATE, created_at TIMESTAMPTZ)""")
    con.execute("""CREATE TABLE IF NOT EXISTS fiu_subjects (screen_id VARCHAR, period_start DATE, period_end DATE, "rank" BIGINT,
        subject_id VARCHAR, network_id VARCHAR, score DOUBLE, themes VARCHAR[], typologies VARCHAR[], reporting_entities VARCHAR[],
        reports BIGINT, amount_eur DOUBLE, escalated_alert BOOLEAN, network_size BIGINT, network_themes VARCHAR[],
        reasons VARCHAR, report_ids VARCHAR[], created_at TIMESTAMPTZ)""")
    con.execute("""CREATE TABLE IF NOT EXISTS fiu_decisions (event_id VARCHAR, report_id VARCHAR, decision VARCHAR, typology VARCHAR,
        note VARCHAR, user_name VARCHAR, decided_at TIMESTAMPTZ)""")
    con.execute("""CREATE TABLE IF NOT EXISTS fiu_disseminations (package_id VARCHAR, network_id VARCHAR, report_id VARCHAR,
        user_name VARCHAR, disseminated_at TIMESTAMPTZ, path VARCHAR)""")
