"""`thb-signals labels`: investigators' decisions as a labels file that `thb-signals evaluate` reads.

A bank can then measure the product on its own outcomes: escalated and reported accounts are positives (with the
typology of their alert), accounts dismissed as explained or lawful business are negatives (typology `none`);
other dismissals (data error, insufficient, ...) and open alerts are not labels. One row per account: a positive
decision on any of its alerts wins. Columns as synthetic/evaluate.py needs them (bank_id, account_id, typology, role),
plus `decided_at`. Decisions come only through casework.dispositions.decisions_frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from casework.dispositions import decisions_frame
from pipelines import store


def labels_frame(con, cw, banks: list[str] | None = None) -> tuple[pl.DataFrame, int]:
    """(labels, decisions that are no label). role: escalated | reported | dismissed:<reason>."""
    d = decisions_frame(cw, banks)
    decided = d.filter(pl.col("status").is_in(["escalated", "reported", "dismissed"]))
    skipped = decided.filter(pl.col("label").is_null()).height
    typ = con.sql("SELECT alert_id, arg_max(typology, created_at) AS alert_typology FROM alerts GROUP BY 1").pl()
    lab = (
        decided.filter(pl.col("label").is_not_null())
        .join(typ, on="alert_id", how="left")
        .with_columns(
            pl.when(pl.col("label") == 1)
            .then(pl.col("alert_typology").fill_null("unknown"))
            .otherwise(pl.lit("none"))
            .alias("typology"),
            pl.when(pl.col("label") == 1)
            .then(pl.col("status"))
            .otherwise(pl.lit("dismissed:") + pl.col("dismiss_reason"))
            .alias("role"),
        )
        .sort(["label", "decided_at"], descending=[True, True], nulls_last=True)
        .unique(["bank_id", "account_id"], keep="first", maintain_order=True)
        .select("bank_id", "account_id", "typology", "role", "decided_at")
        .sort("bank_id", "account_id")
    )
    return lab, skipped


def write_labels(con, cw, out: str | Path, banks: list[str] | None = None) -> dict:
    """Write the labels (CSV, or Parquet for a .parquet name) as a private file; returns the counts."""
    lab, skipped = labels_frame(con, cw, banks)
    out = Path(out)
    part = store.private_file(out.with_name(f".{out.name}.part"))  # written whole, then renamed: never half a file
    try:
        if out.suffix.lower() == ".parquet":
            lab.write_parquet(part)
        else:
            lab.write_csv(part)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    positives = int((lab["typology"] != "none").sum())
    return {"positives": positives, "negatives": lab.height - positives, "skipped": skipped}
