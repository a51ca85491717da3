"""Split an extract into what a bank sends first and what it sends each night: for the nightly benchmark and tests.

`split_days(extract, out, last=1)` writes, per bank, `base/<BANK>` (accounts and every booking before the last
`last` Dutch calendar days) and `night<i>/<BANK>` (the bookings of one later day each, and the accounts again), with
manifests whose periods are those days, so each folder is a submission that `ingest` validates and loads.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

from pipelines import store
from pipelines.submission import write_manifest
from schemas.contract import PERIOD_TZ

LOCAL_DAY = f"CAST(timezone('{PERIOD_TZ}', CAST(booked_at AS TIMESTAMPTZ)) AS DATE)"


def split_days(extract: Path, out: Path, last: int = 1) -> tuple[list[Path], list[list[Path]]]:
    """(the base submissions, per later day the night's submissions); `out` is emptied first."""
    banks = sorted(p for p in Path(extract).iterdir() if p.is_dir())
    shutil.rmtree(out, ignore_errors=True)
    con = store.connect(None)
    try:
        files = [str(b / "transactions.parquet") for b in banks]
        final: date = con.execute(f"SELECT max({LOCAL_DAY}) FROM read_parquet(?)", [files]).fetchall()[0][0]
        first_night = final - timedelta(days=last - 1)
        base, nights = [], [[] for _ in range(last)]
        for bank in banks:
            manifest = json.loads((bank / "manifest.json").read_text())
            src = str(bank / "transactions.parquet")
            parts = [
                (
                    out / "base" / bank.name,
                    f"{LOCAL_DAY} < ?",
                    [first_night],
                    manifest["period_start"],
                    first_night - timedelta(1),
                )
            ]
            for i in range(last):
                day = first_night + timedelta(days=i)
                parts.append((out / f"night{i + 1}" / bank.name, f"{LOCAL_DAY} = ?", [day], day.isoformat(), day))
            for folder, where, params, start, end in parts:
                folder.mkdir(parents=True)
                dst = folder / "transactions.parquet"
                con.execute(f"COPY (SELECT * FROM read_parquet(?) WHERE {where}) TO '{dst}' (FORMAT parquet)", [src, *params])
                rows = {"transactions.parquet": con.execute("SELECT count(*) FROM read_parquet(?)", [str(dst)]).fetchall()[0][0]}
                shutil.copy(bank / "accounts.parquet", folder / "accounts.parquet")  # every submission carries them
                rows["accounts.parquet"] = manifest["files"]["accounts.parquet"]["rows"]
                write_manifest(folder, bank.name, str(start), end.isoformat(), rows, manifest.get("key_id"))
            base.append(out / "base" / bank.name)
            for i in range(last):
                nights[i].append(out / f"night{i + 1}" / bank.name)
        return base, nights
    finally:
        con.close()
