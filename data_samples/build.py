"""Rebuild the shipped samples: `python data_samples/build.py` (deterministic).

- valid/: a small valid submission per bank (CSV, generator seed 7) and its labels.
- fiu/: an FIU extract (transactions with report_id, reporting_entity, indicator_code).
- broken/<case>/: one submission per fault class, derived from valid/BANK_A; expected.json says
  what each must produce (outcome, the fault or check id, and how many rows).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl

from pipelines.submission import write_manifest
from synthetic.generate import generate

HERE = Path(__file__).resolve().parent
SEED, ACCOUNTS, DAYS = 7, 150, 30


def _copy(case: str) -> Path:
    dst = HERE / "broken" / case
    shutil.copytree(HERE / "valid" / "BANK_A", dst)
    return dst


def _rewrite(folder: Path, df: pl.DataFrame, name: str = "transactions.csv") -> None:
    df.write_csv(folder / name)
    m = json.loads((folder / "manifest.json").read_text())
    rows = {n: (pl.read_csv(folder / n, infer_schema=False).height) for n in m["files"]}
    write_manifest(folder, m["bank_id"], m["period_start"], m["period_end"], rows)


def build() -> None:
    for sub in ("valid", "broken", "fiu"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    generate(HERE / "valid", accounts=ACCOUNTS, days=DAYS, banks=2, seed=SEED, fmt="csv", end="2026-09-30")
    tx = pl.read_csv(HERE / "valid" / "BANK_A" / "transactions.csv", infer_schema=False)
    acc = pl.read_csv(HERE / "valid" / "BANK_A" / "accounts.csv", infer_schema=False)
    expected: dict[str, dict] = {}
    idx = pl.int_range(pl.len())

    def row_case(case, df, check_id, rows, name="transactions.csv"):
        _rewrite(_copy(case), df, name)
        expected[case] = {"outcome": "loaded_with_quarantine", "check_id": check_id, "rows": rows}

    row_case(
        "negative_amount",
        tx.with_columns(
            pl.when(idx.is_in([4, 9, 99])).then(pl.lit("-12.50")).otherwise(pl.col("amount_eur")).alias("amount_eur")
        ),
        "transactions.amount_eur.positive",
        3,
    )
    row_case(
        "unknown_channel",
        tx.with_columns(pl.when(idx.is_in([10, 20, 30])).then(pl.lit("telegraph")).otherwise(pl.col("channel")).alias("channel")),
        "transactions.channel.in_set",
        3,
    )
    row_case(
        "bad_timestamp",
        tx.with_columns(pl.when(idx == 5).then(pl.lit("yesterday at noon")).otherwise(pl.col("booked_at")).alias("booked_at")),
        "transactions.booked_at.format",
        1,
    )
    row_case(
        "out_of_period",
        tx.with_columns(
            pl.when(idx.is_in([1, 2])).then(pl.lit("2025-01-01T10:00:00+01:00")).otherwise(pl.col("booked_at")).alias("booked_at")
        ),
        "transactions.booked_at.in_period",
        2,
    )
    row_case("duplicate_txn_id", pl.concat([tx, tx.slice(0, 2)]), "transactions.txn_id.unique", 2)
    row_case(
        "unknown_account",
        tx.with_columns(pl.when(idx == 7).then(pl.lit("0" * 32)).otherwise(pl.col("account_id")).alias("account_id")),
        "transactions.account_id.in_accounts",
        1,
    )
    row_case(
        "bad_country",
        tx.with_columns(
            pl.when(idx == 3).then(pl.lit("XX")).otherwise(pl.col("counterparty_country")).alias("counterparty_country")
        ),
        "transactions.counterparty_country.in_set",
        1,
    )
    biz = acc.with_columns(
        pl.when((pl.col("customer_type") == "business") & (pl.int_range(pl.len()).over("customer_type") == 0))
        .then(None)
        .otherwise(pl.col("sector_code"))
        .alias("sector_code")
    )
    row_case("business_without_sector", biz, "accounts.sector_code.businesses", 1, "accounts.csv")

    def file_case(case, fault, mutate):
        folder = _copy(case)
        mutate(folder)
        expected[case] = {"outcome": "rejected", "fault": fault}

    file_case("missing_column", "missing required column", lambda f: _rewrite(f, tx.drop("amount_eur")))
    file_case(
        "wrong_contract_version",
        "wrong contract version",
        lambda f: (f / "manifest.json").write_text((f / "manifest.json").read_text().replace('"contract": 1', '"contract": 2')),
    )
    file_case(
        "row_count_mismatch",
        "row count mismatch",
        lambda f: (f / "manifest.json").write_text(
            json.dumps(
                {
                    **json.loads((f / "manifest.json").read_text()),
                    "files": {
                        k: {**v, "rows": v["rows"] + 5} for k, v in json.loads((f / "manifest.json").read_text())["files"].items()
                    },
                }
            )
        ),
    )
    file_case(
        "sha256_mismatch",
        "sha256 mismatch",
        lambda f: (f / "transactions.csv").write_text(
            (f / "transactions.csv").read_text().replace("BANK_A-T000000001", "BANK_A-T000000001X")
        ),
    )
    file_case(
        "wrong_delimiter",
        "wrong delimiter",
        lambda f: (tx.write_csv(f / "transactions.csv", separator=";"), (f / "manifest.json").unlink()),
    )
    file_case(
        "wrong_encoding",
        "wrong encoding",
        lambda f: (
            (f / "transactions.csv").write_bytes((f / "transactions.csv").read_bytes().replace(b"Amsterdam", b"Amst\xe9rdam")),
            (f / "manifest.json").unlink(),
        ),
    )
    file_case("empty_file", "empty file", lambda f: ((f / "transactions.csv").write_bytes(b""), (f / "manifest.json").unlink()))
    file_case(
        "unreadable_file",
        "unreadable file",
        lambda f: (
            (f / "transactions.csv").unlink(),
            (f / "transactions.parquet").write_bytes(b"PAR1 this is not parquet"),
            (f / "manifest.json").unlink(),
        ),
    )
    file_case(
        "raw_iban",
        "raw identifier",
        lambda f: _rewrite(
            f,
            tx.with_columns(
                pl.when(idx == 0).then(pl.lit("NL91ABNA0417164300")).otherwise(pl.col("counterparty_id")).alias("counterparty_id")
            ),
        ),
    )
    file_case("missing_accounts", "missing file", lambda f: ((f / "accounts.csv").unlink(), (f / "manifest.json").unlink()))
    (HERE / "broken" / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")

    # An FIU extract: unusual-transaction reports on some of BANK_B's bookings.
    fiu = HERE / "fiu" / "FIU_NL"
    fiu.mkdir(parents=True)
    txb = pl.read_csv(HERE / "valid" / "BANK_B" / "transactions.csv", infer_schema=False)
    rep = (
        txb.filter(pl.col("channel").is_in(["cash_deposit", "money_remittance", "loan_disbursement"]))
        .head(40)
        .with_columns(
            (pl.lit("MOT-") + pl.int_range(pl.len()).cast(pl.Utf8).str.zfill(6)).alias("report_id"),
            pl.lit("BANK_B").alias("reporting_entity"),
            pl.lit("SUBJ-MH").alias("indicator_code"),
        )
    )
    rep.write_csv(fiu / "transactions.csv")


if __name__ == "__main__":
    build()
