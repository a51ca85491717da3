"""Rebuild the hostile-input corpus: `python data_samples/build_hostile.py` (deterministic, no randomness).

hostile/<case>/: one small submission per way a submitter (careless or hostile) can try to get something
past the loader: raw identifiers in light disguise, manifests that are not what they claim, symbolic links,
amounts below the contract's precision, impossible records, a line longer than the reader's limit, records
that are not CSV rows.
Each is derived from the first 100 bookings of valid/BANK_A and carries a correct manifest unless the
manifest is the point. expected.json says what each must produce when a manifest is required (the command
line's default): the outcome, and the fault or the check id with its number of rows.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl

from pipelines.submission import write_manifest
from pipelines.validation import MAX_LINE_BYTES

HERE = Path(__file__).resolve().parent
OUT = HERE / "hostile"
ROWS = 100
IBAN = "NL91ABNA0417164300"  # the textbook example IBAN: valid checksum, nobody's account


def _base() -> tuple[pl.DataFrame, pl.DataFrame]:
    tx = pl.read_csv(HERE / "valid" / "BANK_A" / "transactions.csv", infer_schema=False).head(ROWS)
    acc = pl.read_csv(HERE / "valid" / "BANK_A" / "accounts.csv", infer_schema=False)
    return tx, acc


def _write(case: str, tx: pl.DataFrame, acc: pl.DataFrame, manifest: bool = True) -> Path:
    folder = OUT / case
    folder.mkdir(parents=True)
    tx.write_csv(folder / "transactions.csv")
    acc.write_csv(folder / "accounts.csv")
    if manifest:
        write_manifest(folder, "BANK_A", "2026-09-01", "2026-09-30", {"transactions.csv": tx.height, "accounts.csv": acc.height})
    return folder


def _set(df: pl.DataFrame, column: str, rows: list[int], value: str) -> pl.DataFrame:
    """`value` in `column` at the given 0-based rows."""
    return df.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(rows)).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )


def build() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    tx, acc = _base()
    expected: dict[str, dict] = {}

    def rejected(case: str, fault: str) -> None:
        expected[case] = {"outcome": "rejected", "fault": fault}

    # Raw identifiers with trivial formatting: each must be recognised and the submission refused.
    for case, value in (
        ("iban_leading_space", " " + IBAN),
        ("iban_tab", "\t" + IBAN),
        ("iban_no_break_space", "\u00a0" + IBAN),
        ("iban_dashes", "NL91-ABNA-0417-1643-00"),
        ("iban_prefix", "IBAN " + IBAN),
        ("iban_lower_case_spaced", "iban: nl91 abna 0417 1643 00"),
        ("email_with_spaces", "  jan.jansen@example.nl "),
    ):
        _write(case, _set(tx, "counterparty_id", [3, 7], value), acc)
        rejected(case, "raw identifier")
    for case, value in (
        ("phone_dashes", "06-12345678"),
        ("phone_trunk_prefix", "+31 (0)6 12345678"),
        ("phone_trailing_space", "+31612345678 "),
        ("phone_double_zero", "0031 6 1234 5678"),
    ):
        _write(case, tx, _set(acc, "phone_id", [2], value))
        rejected(case, "raw identifier")

    # Manifests: no schema used to mean crashes or every row quarantined with exit 0.
    def manifest_case(case: str, change) -> None:
        folder = _write(case, tx, acc)
        m = json.loads((folder / "manifest.json").read_text())
        change(m)
        (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
        rejected(case, "invalid manifest")

    manifest_case("manifest_files_list", lambda m: m.update(files=[{"name": k, **v} for k, v in m["files"].items()]))
    manifest_case("manifest_file_entry_string", lambda m: m["files"].update({"accounts.csv": "accounts.csv"}))
    manifest_case("manifest_rows_text", lambda m: m["files"]["transactions.csv"].update(rows=str(ROWS)))
    manifest_case("manifest_reversed_period", lambda m: m.update(period_start="2026-09-30", period_end="2026-09-01"))
    manifest_case("manifest_impossible_date", lambda m: m.update(period_end="2026-09-31"))
    manifest_case("manifest_bank_id_injection", lambda m: m.update(bank_id="BANK_A' OR '1'='1"))
    manifest_case("manifest_unknown_file", lambda m: m["files"].update({"../../etc/passwd": {"rows": 1, "sha256": "0" * 64}}))
    _write("manifest_missing", tx, acc, manifest=False)
    rejected("manifest_missing", "missing manifest")

    # A symbolic link inside the submission: the loader would read (hash, store) whatever it points at.
    folder = _write("symlink", tx, acc)
    (folder / "accounts.csv").unlink()
    os.symlink("../../valid/BANK_A/accounts.csv", folder / "accounts.csv")
    rejected("symlink", "symbolic link")

    # Row-level: quarantined, the rest loads.
    def row_case(case: str, t: pl.DataFrame, a: pl.DataFrame, check_id: str, rows: int) -> None:
        _write(case, t, a)
        expected[case] = {"outcome": "loaded_with_quarantine", "check_id": check_id, "rows": rows}

    row_case("amount_below_precision", _set(tx, "amount_eur", [1, 50], "0.001"), acc, "transactions.amount_eur.precision", 2)
    person = acc.with_row_index("i").filter(pl.col("customer_type") == "person")["i"][0]
    row_case(
        "opened_before_birth",
        tx,
        _set(_set(acc, "opened_on", [person], "1990-05-01"), "birth_year", [person], "2001"),
        "accounts.opened_on.after_birth",
        1,
    )

    # A line longer than the reader's limit: refused naming the file, the data row and the limit.
    _write("line_too_long", _set(tx, "description", [4], "x" * (MAX_LINE_BYTES + 10)), acc)
    rejected("line_too_long", "line too long")

    # Records that are not CSV rows. DuckDB's reader says only that it could not read the file; the refusal names
    # the data row (and line) where the record starts, without quoting it.
    def malformed(case: str, change) -> None:
        folder = _write(case, tx, acc, manifest=False)
        path = folder / "transactions.csv"
        lines = path.read_text(encoding="utf-8").split("\n")
        lines[10] = change(lines[10])  # data row 10, line 11
        path.write_text("\n".join(lines), encoding="utf-8")
        write_manifest(folder, "BANK_A", "2026-09-01", "2026-09-30", {"transactions.csv": tx.height, "accounts.csv": acc.height})
        rejected(case, "malformed row")

    malformed("csv_extra_field", lambda line: line + ",extra")
    malformed("csv_unclosed_quote", lambda line: ",".join(line.split(",", 2)[:2]) + ',"' + line.split(",", 2)[2])
    malformed(
        "csv_text_after_quote",
        lambda line: ",".join(line.split(",", 2)[:2]) + ',"' + line.split(",", 2)[2].replace(",", '"x,', 1),
    )

    (OUT / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    build()
