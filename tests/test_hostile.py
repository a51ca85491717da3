"""The hostile-input corpus (data_samples/hostile/): every case gives its expected outcome, nothing of a refused
submission is loaded, and no raw identifier is stored or echoed. Rebuilt by data_samples/build_hostile.py."""

import json
import re

import duckdb
import pytest

from pipelines.cli import main
from pipelines.ingest import ingest
from pipelines.validation import MAX_LINE_BYTES, validate
from tests.conftest import SAMPLES

HOSTILE = SAMPLES / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
RAW = re.compile(r"0417\s*-?1643|1234\s*-?5678|jan\.jansen")  # parts of the planted IBAN, phone and e-mail


def test_corpus_is_complete():
    on_disk = {p.name for p in HOSTILE.iterdir() if p.is_dir()}
    assert on_disk == set(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hostile_case_gives_its_outcome(case):
    want = EXPECTED[case]
    v = validate(HOSTILE / case, require_manifest=True)
    if want["outcome"] == "rejected":
        assert v.fault is not None and v.fault.fault == want["fault"], v.fault
        assert v.fault.file
        assert not RAW.search(str(v.fault))
    else:
        assert v.fault is None
        hits = {r.check.id: r.failing for r in v.results if r.failing}
        assert hits.get(want["check_id"]) == want["rows"], hits


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hostile_case_loads_nothing_it_should_not(tmp_path, case):
    want = EXPECTED[case]
    db = tmp_path / "s.duckdb"
    out = ingest(HOSTILE / case, db, require_manifest=True)
    assert out.outcome == want["outcome"], out.message
    con = duckdb.connect(str(db), read_only=True)
    try:
        if want["outcome"] == "rejected":
            assert [
                con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("transactions", "accounts", "quarantine")
            ] == [0, 0, 0]
        stored = " ".join(
            str(v)
            for t in ("submissions", "quarantine", "transactions", "accounts")
            for row in con.execute(f"SELECT * FROM {t}").fetchall()
            for v in row
        )
        assert not RAW.search(stored)
        assert con.execute("SELECT count(*) FROM transactions WHERE amount_eur <= 0").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.parametrize("case", sorted(c for c, w in EXPECTED.items() if w.get("fault") == "raw identifier"))
def test_raw_identifier_is_never_printed(case, capsys):
    assert main(["validate", str(HOSTILE / case), "--gx-sample-rows", "0"]) == 1
    out = capsys.readouterr()
    assert "raw identifier" in out.out and not RAW.search(out.out + out.err)


def test_long_line_names_file_row_and_limit():
    v = validate(HOSTILE / "line_too_long", require_manifest=True)
    assert v.fault.file == "transactions.csv"
    assert "data row 5" in v.fault.detail and f"{MAX_LINE_BYTES:,} bytes" in v.fault.detail


@pytest.mark.parametrize(
    "case, what",
    [
        ("csv_extra_field", "has 19 fields, the header 18"),
        ("csv_unclosed_quote", "opens a quote that is not closed"),
        ("csv_text_after_quote", "has a character after a closing quote"),
    ],
)
def test_a_record_that_is_not_a_csv_row_is_named_by_its_data_row(case, what):
    """DuckDB's reader says only "Error when sniffing file": the refusal names the data row where the record starts."""
    v = validate(HOSTILE / case, require_manifest=True)
    assert v.fault.file == "transactions.csv" and v.fault.fault == "malformed row"
    assert v.fault.detail == f"data row 10 (line 11) {what}"


def test_manifest_faults_name_the_field():
    details = {
        c: validate(HOSTILE / c, require_manifest=True).fault.detail
        for c, w in EXPECTED.items()
        if w.get("fault") == "invalid manifest"
    }
    assert details["manifest_files_list"].startswith("field files:")
    assert details["manifest_file_entry_string"].startswith("field files.accounts.csv:")
    assert details["manifest_rows_text"].startswith("field files.transactions.csv.rows: must be of type integer")
    assert (
        details["manifest_reversed_period"].startswith("field period_end:")
        and "before period_start" in details["manifest_reversed_period"]
    )
    assert "'" not in details["manifest_bank_id_injection"].split(":")[0]


def test_a_manifest_nested_too_deeply_is_refused_in_one_line(tmp_path):
    """Found by a hostile-input sweep: 100,000 nested brackets made json.loads raise RecursionError (a traceback)."""
    import shutil

    sub = tmp_path / "BANK_A"
    shutil.copytree(HOSTILE.parent / "valid" / "BANK_A", sub)
    (sub / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    fault = validate(sub, require_manifest=True).fault
    assert (fault.file, fault.fault, fault.detail) == ("manifest.json", "unreadable manifest", "nested too deeply")


@pytest.mark.parametrize("case", sorted(c for c, w in EXPECTED.items() if w["outcome"] != "rejected"))
def test_gx_suite_and_sql_agree_on_hostile_rows(case):
    v = validate(HOSTILE / case, gx_sample_rows=100_000, require_manifest=True)
    assert {r.check.id for r in v.results if r.failing} == {g["check_id"] for g in v.gx if not g["success"]}
