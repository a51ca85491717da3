"""How a stored window's rows lie, for the tests that need win_tx or the kept window in detectors/window.py order."""

import polars as pl

from detectors.window import CLUSTER_BY


def cluster_runs(con, table: str) -> tuple[int, int]:
    """How many contiguous runs of (bank, direction, channel) `table` is stored in, and how many there would be in order
    (each bank's bookings are sorted on their own). A scan returns a table's rows in stored order."""
    rows = con.sql(f"SELECT bank_id, is_in, channel FROM {table}").pl()
    key = pl.struct("bank_id", "is_in", "channel")
    return rows.select((key != key.shift()).sum()).item() + 1, rows.unique().height


def cluster_by_rows(con, table: str) -> tuple[pl.DataFrame, bool]:
    """`table`'s CLUSTER_BY columns in stored order, and whether they follow CLUSTER_BY exactly (NULLs last, as ORDER BY
    puts them)."""
    rows = con.sql(f"SELECT {CLUSTER_BY} FROM {table}").pl()  # hash(account_id) is computed here by DuckDB, as stored
    return rows, rows.equals(rows.sort(rows.columns, nulls_last=True, maintain_order=True))
