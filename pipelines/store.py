"""The DuckDB store: the one way code opens it (connection settings, and the schema brought up to date)."""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.store_lock import StoreBusy, exclusive  # noqa: F401  (the write lock, re-exported for detectors)
from schemas.store import check_version, migrate

DEFAULT_MEMORY_LIMIT = "3GB"  # DuckDB spills past this; keeps a 10M-row run near 4 GiB of RSS on any machine
_MIGRATING = threading.Lock()  # connections of one process share the database: one upgrades it, the others then see it done


def connect(
    db_path: str | Path | None = None, memory_limit: str | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open the store at `db_path`, upgraded to this code's schema (schemas/store.py); a read-only connection
    only checks the version and raises StoreVersionError naming the store when it is older or newer.
    Without a path: an in-memory scratch database with the same settings and no store tables.
    Memory is capped so large loads spill to disk."""
    limit = memory_limit or os.environ.get("THB_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*([KMGT]i?B|[KMGT]|bytes|%)?\s*", str(limit), re.IGNORECASE):
        raise ValueError(f"memory limit {str(limit)[:40]!r} is not a size such as 4GB or 512MiB")
    new = bool(db_path) and not read_only and not Path(db_path).exists()
    con = duckdb.connect(str(db_path) if db_path else ":memory:", read_only=read_only)
    if new:
        os.chmod(db_path, 0o600)  # DuckDB refuses a pre-made empty file, so the new store is narrowed right after creation
    try:
        con.execute("SET memory_limit = ?", [str(limit)])
        con.execute("SET TimeZone = 'UTC'")  # naive timestamps in an extract are UTC (contract)
        if db_path:
            where = f"store {db_path}"
            if read_only:
                check_version(con, where)
            else:
                with _MIGRATING:
                    migrate(con, where)
    except BaseException:
        con.close()
        raise
    if db_path and not read_only and Path(f"{db_path}.wal").exists():
        os.chmod(f"{db_path}.wal", 0o600)
    return con


def private_file(path: str | Path) -> Path:
    """Create (or keep) `path` readable by its owner only, before anything is written into it: stores, alerts,
    cases and models hold pseudonymised but still personal data, like the goAML reports."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return Path(path)


def private_dir(path: str | Path) -> Path:
    """Make a folder for private files; one this call creates is 0700 (an existing folder keeps its mode)."""
    p = Path(path)
    if not p.exists():
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, 0o700)
    return p


def peek(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only look at a store of any schema version, without upgrading or checking it: for `status` and the
    command line's checks that a store exists and was scored, which must work on old stores too."""
    return duckdb.connect(str(db_path), read_only=True)


@contextmanager
def writing(db_path: str | Path, what: str, memory_limit: str | None = None):
    """A writable connection held under the store's write lock (pipelines/store_lock.py), closed after."""
    with exclusive(db_path, what):
        con = connect(db_path, memory_limit)
        try:
            yield con
        finally:
            con.close()
