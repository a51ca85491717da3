"""Reading a bank's identities file (pseudonymous id -> names, accounts): the one reader behind goAML export and FIU
dissemination, so both refuse the same faults in the same words. The file never enters the store."""

from __future__ import annotations

from pathlib import Path

import polars as pl


class IdentitiesError(ValueError):
    """One line naming the identities file and what is wrong with it."""


def read_identities(path: str | Path) -> pl.DataFrame:
    """The file as text columns (CSV, or Parquet by a .parquet name in any case), one row per pseudonymous id. Two
    rows for one id are refused: the last would win silently, and a report or package would name the wrong person."""
    p = Path(path)
    if not p.exists():
        raise IdentitiesError(f"identities file {p} does not exist")
    try:
        df = pl.read_parquet(p) if p.suffix.lower() == ".parquet" else pl.read_csv(p, infer_schema_length=0)
    except (pl.exceptions.PolarsError, OSError) as e:  # empty, not UTF-8, a folder: named, in one line
        raise IdentitiesError(f"identities file {p} cannot be read: {(str(e).strip().splitlines() or ['?'])[0]}") from None
    if "pseudonymous_id" not in df.columns:
        raise IdentitiesError(f"{p}: needs a pseudonymous_id column (one row per pseudonymous account or customer id)")
    twice = df.with_row_index("row").filter(pl.col("pseudonymous_id").is_duplicated())
    if twice.height:
        first = twice.filter(pl.col("pseudonymous_id") == twice["pseudonymous_id"][0])["row"].to_list()
        raise IdentitiesError(
            f"{p}: {twice['pseudonymous_id'].n_unique()} pseudonymous id(s) on more than one row (first: data rows "
            f"{', '.join(str(r + 1) for r in first[:3])}); one row per id"
        )
    return df.cast(pl.Utf8)
