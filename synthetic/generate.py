"""`thb-signals generate`: contract-v1 submissions (one per bank) with planted typologies and labels.

Deterministic for a seed; vectorised (numpy arrays per stream, polars for ids and writing).
Labels go to OUT_DIR/labels.parquet, never into a submission folder.
With `stream_life` (stream mode) trafficking scenarios start throughout the span and each runs that many days, and
laundering patterns start throughout it too (each its bursts within a week of its onset), so every month holds as
many fresh scenarios and patterns as any other (labels then carry each planted account's `onset` date).
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from pipelines.submission import write_manifest
from schemas import contract
from synthetic.events import Events
from synthetic.families import family as get_family
from synthetic.laundering import plant_laundering
from synthetic.population import POSTCODE_AREA, SECTORS, background, make_population
from synthetic.typologies import hard_negative_events, plan, scenario_events, spread_onsets, stream_scale


def bank_name(i: int) -> str:
    return f"BANK_{chr(ord('A') + i)}"


def _ids(values: pl.Series, seed: int, kind: str) -> pl.Series:
    """Pseudonymous 32-hex ids for arbitrary keys, stable for (seed, kind, key)."""
    uniq = values.drop_nulls().unique(maintain_order=True)
    hexes = [hashlib.blake2b(f"{seed}:{kind}:{v}".encode(), digest_size=16).hexdigest() for v in uniq.to_list()]
    mapping = pl.DataFrame({"k": uniq, "v": pl.Series(hexes, dtype=pl.Utf8)})
    return pl.DataFrame({"k": values}).join(mapping, on="k", how="left", maintain_order="left")["v"]


def generate(
    out_dir: str | Path,
    accounts: int = 20_000,
    days: int = 90,
    banks: int = 2,
    seed: int = 1,
    fmt: str = "parquet",
    end: str = "2026-09-30",
    family: str = "tune",
    laundering: bool = True,
    progress: Callable[[str], None] | None = None,
    stream_life: int = 0,
) -> dict:
    progress = progress or (lambda message: None)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    fam = get_family(family)
    rng = np.random.default_rng([seed, fam.stream])
    end_d = date.fromisoformat(end)
    start_d = end_d - timedelta(days=days - 1)
    pop = make_population(rng, accounts, banks, fam)
    scenarios, negatives = plan(rng, pop, fam, stream_scale(days, stream_life) if stream_life else 1.0)
    if stream_life:
        spread_onsets(np.random.default_rng([seed, fam.stream, 15]), pop, scenarios, days, stream_life)
    ev = Events(rng, days)
    background(ev, pop, start_d.day, fam)
    scenario_events(ev, pop, scenarios, fam)
    hard_negative_events(ev, pop, negatives)
    taken = np.concatenate([idx for sc in scenarios + negatives for idx in sc.roles.values()])
    controllers = np.concatenate([sc.roles["controller"] for sc in scenarios if "controller" in sc.roles] or [np.array([], int)])
    laundered = (
        plant_laundering(ev, pop, np.random.default_rng([seed, 7]), taken, controllers=controllers, stream=bool(stream_life))
        if laundering
        else None
    )
    tx = ev.frame()
    del ev

    acc_ids = _ids(pl.Series(np.arange(pop.n)), seed, "account")
    bank_of = np.array([bank_name(b) for b in range(banks)])[pop.bank]
    n = tx.height
    sec = rng.integers(0, 60, n)
    local = pl.lit(datetime.combine(start_d, datetime.min.time())) + pl.duration(
        days=pl.col("day"), minutes=pl.col("minute"), seconds=pl.Series(sec)
    )
    tx = tx.with_columns(local.dt.replace_time_zone("Europe/Amsterdam", ambiguous="earliest", non_existent="null").alias("ts"))
    tx = tx.with_columns(
        pl.col("ts").fill_null(
            (local + pl.duration(hours=1)).dt.replace_time_zone("Europe/Amsterdam", ambiguous="earliest", non_existent="null")
        )
    )
    tx = tx.with_columns(pl.col("ts").dt.convert_time_zone("UTC").alias("booked_at"))
    is_bus = pl.Series(pop.is_business)
    tx = tx.with_columns(
        pl.Series("account_id", acc_ids.gather(tx["acc"])),
        pl.Series("bank_id", bank_of[tx["acc"].to_numpy()]),
        pl.when(pl.col("cp_acc") >= 0).then(pl.col("cp_acc")).otherwise(None).alias("cp_acc"),
    )
    cp = tx["cp_acc"]
    cp_pop_id = acc_ids.gather(cp.fill_null(0)).zip_with(cp.is_not_null(), pl.Series([None] * n, dtype=pl.Utf8))
    cp_bus = is_bus.gather(cp.fill_null(0))
    tx = tx.with_columns(
        pl.coalesce(pl.Series(cp_pop_id), _ids(tx["cp_ext"].cast(pl.Utf8), seed, "counterparty")).alias("counterparty_id"),
        pl.when(pl.col("cp_acc").is_not_null())
        .then(pl.when(pl.Series(cp_bus)).then(pl.lit("business")).otherwise(pl.lit("person")))
        .otherwise(pl.col("cp_type"))
        .alias("counterparty_type"),
        _ids(tx["device"].cast(pl.Utf8), seed, "device").alias("device_id"),
    )
    tx = tx.with_columns(
        pl.when(pl.col("counterparty_type") == "person")
        .then(pl.when(pl.col("channel") == "money_remittance").then(pl.col("cp_name")).otherwise(None))
        .otherwise(pl.col("cp_name"))
        .alias("counterparty_name"),
        pl.when(pl.col("mcc").is_not_null() & pl.col("cp_name").is_not_null())
        .then(pl.col("cp_name").cast(pl.Utf8).str.to_lowercase().str.replace_all("[^a-z0-9]", ""))
        .otherwise(None)
        .alias("merchant_id"),
        pl.Series("bank_idx", pop.bank[tx["acc"].to_numpy()]),
    ).sort(["bank_idx", "booked_at", "acc"])
    tx = tx.with_columns(
        (pl.col("bank_id") + "-T" + pl.int_range(pl.len()).over("bank_id").cast(pl.Utf8).str.zfill(9)).alias("txn_id"),
        pl.col("amount").cast(pl.Decimal(18, 2)).alias("amount_eur"),
        pl.lit(None, dtype=pl.Utf8).alias("currency"),
        pl.lit(None, dtype=pl.Decimal(18, 2)).alias("amount_orig"),
        pl.col("cp_country").alias("counterparty_country"),
        pl.col("city").alias("location_city"),
    )
    order = [c.name for c in contract.TRANSACTIONS]
    tx_out = tx.select(order)

    today_ord = end_d.toordinal()
    # no account opened before its holder was born (scenarios draw new holder ages after the account ages)
    age_days = np.where(pop.is_business, pop.account_age_days, np.minimum(pop.account_age_days, (pop.age - 1) * 365))
    opened = [date.fromordinal(today_ord - int(a)) for a in age_days]
    persons_mask = ~pop.is_business
    postcode = np.char.add(POSTCODE_AREA[pop.city].astype(str), rng.integers(10, 99, pop.n).astype(str))
    accounts_df = pl.DataFrame(
        {
            "account_id": acc_ids,
            "bank_id": bank_of,
            "customer_id": _ids(pl.Series(np.arange(pop.n)), seed, "customer"),
            "customer_type": np.where(pop.is_business, "business", "person"),
            "opened_on": opened,
            "birth_year": pl.Series(np.where(persons_mask, end_d.year - pop.age, 0)).cast(pl.Int32),
            "gender": pl.Series(np.where(persons_mask, pop.gender, None).tolist(), dtype=pl.Utf8),
            "nationality": np.where(persons_mask, pop.nationality, "NL"),
            "postcode": postcode,
            "address_id": _ids(pl.Series(pop.household), seed, "address"),
            "phone_id": _ids(pl.Series(pop.phone), seed, "phone"),
            "sector_code": pl.Series([SECTORS[s][0] if s >= 0 else None for s in pop.sector], dtype=pl.Utf8),
        }
    ).with_columns(pl.when(pl.col("customer_type") == "business").then(None).otherwise(pl.col("birth_year")).alias("birth_year"))

    typ = np.full(pop.n, "none", dtype=object)
    role = np.full(pop.n, "background", dtype=object)
    scen = np.full(pop.n, None, dtype=object)
    subtle = np.full(pop.n, np.nan)
    shown = np.full(pop.n, None, dtype=object)
    kind = np.full(pop.n, None, dtype=object)
    for sc in scenarios + negatives:
        for r, idx in sc.roles.items():
            typ[idx], role[idx], scen[idx] = sc.typology, r, sc.id
            if sc.typology != "none":
                subtle[idx], shown[idx] = sc.extra["subtlety"], ",".join(sorted(sc.indicators))
            else:
                kind[idx] = sc.extra.get("kind")
    pattern = np.full(pop.n, None, dtype=object)
    if laundered is not None:  # laundering patterns and their look-alikes (synthetic/laundering.py)
        own = laundered.filter(~pl.col("own_label"))  # a controller that launders keeps its scenario's label
        acc = own["acc"].to_numpy()
        typ[acc], role[acc], scen[acc] = [own[c].to_numpy() for c in ("typology", "role", "scenario_id")]
        pattern[laundered["acc"].to_numpy()] = laundered["pattern"].to_numpy()
        hn = laundered.filter(pl.col("role") == "hard_negative")  # HN-<look-alike>-NNN
        kind[hn["acc"].to_numpy()] = hn["scenario_id"].str.split("-").list.get(1).to_numpy()
    labels = pl.DataFrame(
        {
            "account_id": acc_ids,
            "bank_id": bank_of,
            "typology": typ.astype(str),
            "role": role.astype(str),
            "scenario_id": pl.Series(scen.tolist(), dtype=pl.Utf8),
            "subtlety": pl.Series(subtle).fill_nan(None),  # scenario subtlety, 0 blatant .. 1 subtle
            "indicators": pl.Series(shown.tolist(), dtype=pl.Utf8),  # the indicators the scenario shows
            "lookalike": pl.Series(kind.tolist(), dtype=pl.Utf8),  # hard negatives: which look-alike
            "family": pl.Series([fam.name] * pop.n, dtype=pl.Utf8),
            "pattern": pl.Series(pattern.tolist(), dtype=pl.Utf8),
        }
    )  # laundering pattern, if any
    if stream_life:  # the day each planted account's scenario starts (before the data for those already running)
        onset = np.full(pop.n, None, dtype=object)
        for sc in scenarios:
            for idx in sc.roles.values():
                onset[idx] = start_d + timedelta(days=sc.extra["onset"])
        if laundered is not None:  # a pattern's accounts start with it (a controller keeps its scenario's onset)
            own = laundered.filter(~pl.col("own_label") & pl.col("onset_day").is_not_null())
            onset[own["acc"].to_numpy()] = [start_d + timedelta(days=d) for d in own["onset_day"].to_list()]
        labels = labels.with_columns(pl.Series("onset", onset.tolist(), dtype=pl.Date))

    out_dir.mkdir(parents=True, exist_ok=True)
    info = {"transactions": {}, "accounts": {}, "labels": labels.height}
    progress(
        f"generate: {tx_out.height:,} transactions for {accounts_df.height:,} accounts in {time.perf_counter() - started:.1f} s"
    )
    for b in range(banks):
        name = bank_name(b)
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        t = tx_out.filter(pl.col("bank_id") == name).with_columns(
            [pl.col(c).cast(pl.Utf8) for c, dt in tx_out.schema.items() if dt == pl.Categorical]
        )
        a = accounts_df.filter(pl.col("bank_id") == name)
        _write(t, folder / f"transactions.{fmt}")
        _write(a, folder / f"accounts.{fmt}")
        write_manifest(
            folder, name, start_d.isoformat(), end_d.isoformat(), {f"transactions.{fmt}": t.height, f"accounts.{fmt}": a.height}
        )
        info["transactions"][name], info["accounts"][name] = t.height, a.height
        progress(f"generate: {name} written ({t.height:,} transactions) at {time.perf_counter() - started:.1f} s")
    labels.write_parquet(out_dir / "labels.parquet")
    return info


def _write(df: pl.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        df.write_parquet(path, compression="zstd", statistics=True)
    else:
        out = df.with_columns(
            [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%:z") for c, t in df.schema.items() if isinstance(t, pl.Datetime)]
        )
        out.write_csv(path)
