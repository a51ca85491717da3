"""The DuckDB store: connection settings and table definitions."""
from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from schemas import contract


DEFAULT_MEMORY_LIMIT = "3GB"   # DuckDB spills past this; keeps a 10M-row run near 4 GiB of RSS on any machine


def connect(db_path: str | Path | None = None, memory_limit: str | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store (or an in-memory database). Memory is capped so large loads spill to disk."""
    limit = memory_limit or os.environ.get("THB_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*([KMGT]i?B|[KMGT]|bytes|%)?\s*", str(limit), re.IGNORECASE):
        raise ValueError(f"memory limit {str(limit)[:40]!r} is not a size such as 4GB or 512MiB")
    con = duckdb.connect(str(db_path) if db_path else ":memory:", read_only=read_only)
    con.execute("SET memory_limit = ?", [str(limit)])
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
