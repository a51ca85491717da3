"""Loading: quarantine, all-or-nothing, idempotency, resubmission, crash safety, FIU extracts."""

import json
import os
import shutil
import subprocess
import sys

import duckdb
import polars as pl
import pytest

from pipelines.ingest import ingest
from pipelines.submission import write_manifest
from tests.conftest import SAMPLES

EXPECTED = json.loads((SAMPLES / "broken" / "expected.json").read_text())


def counts(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("transactions", "accounts", "quarantine", "fiu_reports")
        }
    finally:
        con.close()


def test_valid_submissions_load(samples, tmp_path):
    db = tmp_path / "s.duckdb"
    a = ingest(samples / "valid" / "BANK_A", db)
    b = ingest(samples / "valid" / "BANK_B", db)
    assert a.outcome == b.outcome == "loaded"
    c = counts(db)
    assert c["transactions"] == a.rows_loaded["transactions"] + b.rows_loaded["transactions"]
    listed = sum(
        json.loads((samples / "valid" / b / "manifest.json").read_text())["files"]["transactions.csv"]["rows"]
        for b in ("BANK_A", "BANK_B")
    )
    assert c["transactions"] == listed and c["quarantine"] == 0
    con = duckdb.connect(str(db), read_only=True)
    types = dict(
        con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name='transactions'").fetchall()
    )
    assert types["booked_at"] == "TIMESTAMP WITH TIME ZONE" and types["amount_eur"] == "DECIMAL(18,2)"


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_submission_outcome(samples, tmp_path, case):
    want = EXPECTED[case]
    db = tmp_path / "s.duckdb"
    out = ingest(samples / "broken" / case, db)
    assert out.outcome == want["outcome"], out.message
    c = counts(db)
    con = duckdb.connect(str(db), read_only=True)
    sub = con.execute("SELECT outcome, message FROM submissions").fetchall()
    assert sub[0][0] == want["outcome"]
    if want["outcome"] == "rejected":
        assert c["transactions"] == c["accounts"] == c["quarantine"] == 0  # nothing loaded
        assert want["fault"] in sub[0][1]
    else:
        q = con.execute(
            'SELECT count(*), min("row"), any_value(reason), any_value(record) FROM quarantine WHERE check_id = ?',
            [want["check_id"]],
        ).fetchone()
        assert q[0] == want["rows"] and q[1] >= 1 and q[2]
        assert json.loads(q[3])["__row"] == q[1] or q[0] > 1  # the whole original record is kept
        staged = sum(out.validation.rows.values())
        assert (
            c["transactions"] + c["accounts"] + out.rows_quarantined["transactions"] + out.rows_quarantined["accounts"] == staged
        )


def test_same_files_load_once(samples, tmp_path):
    db = tmp_path / "s.duckdb"
    assert ingest(samples / "valid" / "BANK_A", db).outcome == "loaded"
    before = counts(db)
    again = ingest(samples / "valid" / "BANK_A", db)
    assert again.outcome == "duplicate" and counts(db) == before
    con = duckdb.connect(str(db), read_only=True)
    assert [r[0] for r in con.execute("SELECT outcome FROM submissions ORDER BY loaded_at").fetchall()] == ["loaded", "duplicate"]


def test_same_files_with_a_miscounting_manifest_are_refused_not_filed_as_a_duplicate(copy_sample, tmp_path):
    """A hostile-input sweep found the same files under a manifest with wrong row counts filed as a duplicate: the
    check a first load makes was skipped because nothing was read. The earlier load's counts stand in for reading."""
    db = tmp_path / "s.duckdb"
    folder = copy_sample("valid/BANK_A")
    assert ingest(folder, db).outcome == "loaded"
    before = counts(db)
    m = json.loads((folder / "manifest.json").read_text())
    right = m["files"]["transactions.csv"]["rows"]
    m["files"]["transactions.csv"]["rows"] = right + 5
    (folder / "manifest.json").write_text(json.dumps(m))
    again = ingest(folder, db)
    assert again.outcome == "rejected" and counts(db) == before
    assert again.message == f"transactions.csv: row count mismatch: manifest says {right + 5} rows, file has {right}"
    m["files"]["transactions.csv"]["rows"] = right
    (folder / "manifest.json").write_text(json.dumps(m))
    assert ingest(folder, db).outcome == "duplicate"  # counted right, it is the duplicate it is


def test_corrected_resubmission_replaces_rows(copy_sample, tmp_path):
    db = tmp_path / "s.duckdb"
    first = copy_sample("broken/negative_amount")
    assert ingest(first, db).rows_quarantined["transactions"] == 3
    fixed = copy_sample("valid/BANK_A")
    tx = _correct_one_amount(fixed)
    out = ingest(fixed, db)
    assert out.outcome == "loaded" and out.rows_replaced == tx.height - 3
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT (bank_id, txn_id)) FROM transactions").fetchone() == (
        tx.height,
        tx.height,
    )
    assert con.execute("SELECT amount_eur FROM transactions WHERE txn_id='BANK_A-T000000010'").fetchone()[0] == __import__(
        "decimal"
    ).Decimal("999.99")
    assert con.execute("SELECT count(*) FROM submissions").fetchone()[0] == 2  # both entries kept
    con.close()


def test_the_original_sent_again_after_its_correction_puts_its_rows_back(copy_sample, tmp_path):
    """Found by an integrity sweep: a bank that re-sent its original file to undo a wrong correction was told
    "identical files were already loaded", and the store kept the corrected amounts. Files whose rows a later
    submission of the bank replaced load again; files nothing replaced since are still a duplicate."""
    db = tmp_path / "s.duckdb"
    original = copy_sample("valid/BANK_A")
    assert ingest(original, db).outcome == "loaded"
    assert ingest(original, db).outcome == "duplicate"
    wrong = tmp_path / "wrong"
    shutil.copytree(original, wrong)
    tx = _correct_one_amount(wrong)
    assert ingest(wrong, db).rows_replaced == tx.height
    back = ingest(original, db)
    assert back.outcome == "loaded" and back.rows_replaced == tx.height
    con = duckdb.connect(str(db), read_only=True)
    amount = con.execute("SELECT amount_eur FROM transactions WHERE txn_id = 'BANK_A-T000000010'").fetchone()[0]
    con.close()
    assert str(amount) == tx_original_amount(original)


def tx_original_amount(folder) -> str:
    tx = pl.read_csv(folder / "transactions.csv", infer_schema=False)
    return f"{float(tx.filter(pl.col('txn_id') == CORRECTED)['amount_eur'][0]):.2f}"


CORRECTED = "BANK_A-T000000010"  # the booking a correction changes


def _correct_one_amount(folder) -> pl.DataFrame:
    """A bank's correction of BANK_A's sample: booking CORRECTED's amount becomes 999.99, with a manifest to match;
    returns the transactions written."""
    tx = pl.read_csv(folder / "transactions.csv", infer_schema=False)
    tx = tx.with_columns(
        pl.when(pl.col("txn_id") == CORRECTED).then(pl.lit("999.99")).otherwise(pl.col("amount_eur")).alias("amount_eur")
    )
    tx.write_csv(folder / "transactions.csv")
    n_acc = json.loads((folder / "manifest.json").read_text())["files"]["accounts.csv"]["rows"]
    write_manifest(folder, "BANK_A", "2026-09-01", "2026-09-30", {"transactions.csv": tx.height, "accounts.csv": n_acc})
    return tx


def test_exception_mid_load_leaves_store_unchanged(samples, tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    ingest(samples / "valid" / "BANK_A", db)
    before = counts(db)
    import pipelines.ingest as ing

    def boom(name):
        if name == "after_transactions":
            raise OSError("disk full (injected)")

    monkeypatch.setattr(ing, "checkpoint", boom)
    with pytest.raises(OSError):
        ingest(samples / "valid" / "BANK_B", db)
    assert counts(db) == before


def test_killed_process_mid_load_leaves_store_unchanged(samples, tmp_path):
    db = tmp_path / "s.duckdb"
    ingest(samples / "valid" / "BANK_A", db)
    before = counts(db)
    code = f"import sys; from pipelines.ingest import ingest; ingest({str(samples / 'valid' / 'BANK_B')!r}, {str(db)!r})"
    env = {**os.environ, "THB_CRASH_AT": "after_transactions"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert proc.returncode == 137
    assert counts(db) == before
    assert ingest(samples / "valid" / "BANK_B", db).outcome == "loaded"  # and the store is usable after


def test_fiu_extract_loads_into_fiu_reports(samples, tmp_path):
    db = tmp_path / "s.duckdb"
    out = ingest(samples / "fiu" / "FIU_NL", db)
    assert out.outcome == "loaded", out.message
    c = counts(db)
    assert c["fiu_reports"] == 40 and c["transactions"] == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(DISTINCT report_id) FROM fiu_reports").fetchone()[0] == 40


def test_cli_ingest_summary(samples, tmp_path, capsys):
    from pipelines.cli import main

    rc = main(
        ["ingest", str(samples / "valid" / "BANK_A"), str(samples / "broken" / "empty_file"), "--db", str(tmp_path / "s.duckdb")]
    )
    out = capsys.readouterr().out
    assert rc == 1 and "-> loaded" in out and "-> rejected" in out and "empty file" in out
