"""Validation: every fault class is named (file, row, column), SQL and GX agree, CLI exit codes."""

import json

import pytest

from pipelines.cli import main
from pipelines.validation import validate

EXPECTED = json.loads((__import__("tests.conftest", fromlist=["SAMPLES"]).SAMPLES / "broken" / "expected.json").read_text())


def test_valid_sample_passes(samples):
    for bank in ("BANK_A", "BANK_B"):
        v = validate(samples / "valid" / bank)
        assert v.fault is None and v.ok, [r.check.id for r in v.results if r.failing]
        assert v.rows["transactions"] > 2000


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_sample_gives_its_error(samples, case):
    want = EXPECTED[case]
    v = validate(samples / "broken" / case)
    if want["outcome"] == "rejected":
        assert v.fault is not None and v.fault.fault == want["fault"]
        assert v.fault.file  # the message names the file
    else:
        assert v.fault is None and not v.ok
        hits = {r.check.id: r for r in v.results if r.failing}
        assert hits[want["check_id"]].failing == want["rows"]
        assert all(row >= 1 for row, _ in hits[want["check_id"]].examples)


def test_row_numbers_point_at_the_bad_rows(samples):
    v = validate(samples / "broken" / "negative_amount")
    r = next(r for r in v.results if r.check.id == "transactions.amount_eur.positive")
    assert [row for row, _ in r.examples] == [5, 10, 100]  # data rows 5, 10, 100 (header not counted)
    assert {val for _, val in r.examples} == {"-12.50"}


@pytest.mark.parametrize("case", sorted(c for c, w in EXPECTED.items() if w["outcome"] != "rejected"))
def test_gx_suite_and_sql_checks_agree(samples, case):
    """One definition drives both: the GX suite fails exactly the checks the SQL found failing."""
    v = validate(samples / "broken" / case, gx_sample_rows=100_000)
    sql_failing = {r.check.id for r in v.results if r.failing}
    gx_failing = {g["check_id"] for g in v.gx if not g["success"]}
    assert sql_failing == gx_failing


def test_gx_suite_passes_valid_sample(samples):
    v = validate(samples / "valid" / "BANK_A", gx_sample_rows=100_000)
    assert v.gx and all(g["success"] for g in v.gx)


def test_raw_identifier_value_is_never_printed(samples, capsys):
    assert main(["validate", str(samples / "broken" / "raw_iban"), "--gx-sample-rows", "0"]) == 1
    out = capsys.readouterr().out
    assert "raw identifier" in out and "NL91ABNA0417164300" not in out


def test_validate_cli_exit_codes_and_report(samples, tmp_path, capsys):
    report = tmp_path / "r.html"
    assert main(["validate", str(samples / "valid" / "BANK_A"), "--report", str(report), "--gx-sample-rows", "0"]) == 0
    assert "VALID" in report.read_text()
    assert main(["validate", str(samples / "broken" / "unknown_channel"), "--report", str(report), "--gx-sample-rows", "0"]) == 1
    html = report.read_text()
    assert "transactions.channel.in_set" in html and "telegraph" in html
    assert main(["validate", str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["validate"])
    assert e.value.code == 2


def test_parquet_and_csv_validate_alike(tmp_path):
    from synthetic.generate import generate

    generate(tmp_path / "pq", accounts=150, days=10, banks=1, seed=3, fmt="parquet")
    generate(tmp_path / "csv", accounts=150, days=10, banks=1, seed=3, fmt="csv")
    a, b = validate(tmp_path / "pq" / "BANK_A"), validate(tmp_path / "csv" / "BANK_A")
    assert a.ok and b.ok and a.rows == b.rows


def test_blank_means_null_or_only_spaces():
    import duckdb

    from pipelines.submission import Submission
    from pipelines.validation import fail_predicate
    from schemas import contract

    check = next(
        c
        for c in contract.checks("transactions", fiu=False, has_manifest=False, has_accounts=True)
        if c.id == "transactions.txn_id.not_null"
    )
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, NULL), (2, ''), (3, '   '), (4, ' x'), (5, 'x '), (6, 'x')) v(__row, txn_id)"
    )
    failing = con.execute(
        f"SELECT __row FROM t WHERE {fail_predicate(check, Submission(None, {}), 'VARCHAR')} ORDER BY 1"
    ).fetchall()
    assert [r for (r,) in failing] == [1, 2, 3]


def test_raw_identifier_names_count_and_rows(tmp_path):
    """Ids are tested once per distinct value; the rejection still counts and names the rows that hold it."""
    import polars as pl

    from pipelines.submission import write_manifest
    from synthetic.generate import generate

    generate(tmp_path / "x", accounts=150, days=10, banks=1, seed=4)
    bank = tmp_path / "x" / "BANK_A"
    tx = pl.read_parquet(bank / "transactions.parquet")
    rows = [3, 4, 40]  # 1-based data rows
    tx = (
        tx.with_row_index("i")
        .with_columns(
            pl.when(pl.col("i").is_in([r - 1 for r in rows]))
            .then(pl.lit("nl91 abna 0417 1643 00"))
            .otherwise(pl.col("counterparty_id"))
            .alias("counterparty_id")
        )
        .drop("i")
    )
    tx.write_parquet(bank / "transactions.parquet")
    manifest = json.loads((bank / "manifest.json").read_text())
    write_manifest(
        bank,
        manifest["bank_id"],
        manifest["period_start"],
        manifest["period_end"],
        {k: v["rows"] for k, v in manifest["files"].items()},
    )
    v = validate(bank)
    assert v.fault is not None and v.fault.fault == "raw identifier"
    assert "column counterparty_id: 3 rows" in str(v.fault) and "rows 3, 4, 40" in str(v.fault)
    assert "0417" not in str(v.fault)


def test_manifest_bank_id_is_bound_not_spliced():
    """A quote in the manifest's bank_id cannot change the query: every row still differs from it."""
    import duckdb

    from pipelines.submission import Submission
    from schemas import contract
    from schemas.checks import check_type

    check = next(c for c in contract.checks("transactions", has_manifest=True) if c.kind == "equals_manifest")
    con = duckdb.connect()
    con.execute("CREATE TABLE stg_transactions AS SELECT * FROM (VALUES (1, 'BANK_A'), (2, 'BANK_A')) v(__row, bank_id)")
    sub = Submission(None, {}, manifest={"bank_id": "BANK_A' AND false AND 'x'='x"})
    sql, params = check_type(check).failing_rows(check, sub)
    assert "BANK_A" not in sql and params == [sub.bank_id]
    assert [r for (r, _) in con.execute(sql, params).fetchall()] == [1, 2]


def test_raw_identifier_test_near_misses():
    """Disguised identifiers are found; pseudonymous ids, a wrong IBAN checksum, dates and short numbers are not."""
    import duckdb

    from pipelines.validation import _MACROS, _raw_identifier_sql

    found = [
        " NL91ABNA0417164300",
        "nl91-abna-0417-1643-00",
        "IBAN:\u00a0NL91 ABNA 0417 1643 00",
        "\u2007DE89370400440532013000",
        " jan@example.nl\t",
        "mailto:jan@example.nl",
        "06-12345678",
        "06 1234 5678",
        "+31 (0)6 12345678",
        "0031-6-12345678",
        "+32 470 12 34 56",
        "tel:+31612345678",
    ]
    kept = [
        "06d0f68771e5d29279236362782564df",
        "NL91ABNA0417164301",
        "NL91-ABNA-0417-1643-01",
        "2026-09-01",
        "12345678",
        "061234567",
        "+31 6 123",
        "jan@example",
        "BANK_A-T000000001",
        "0000000000",
        "de89370400440532013000ab",
    ]
    con = duckdb.connect()
    con.execute(_MACROS)
    con.execute("CREATE TABLE v AS SELECT unnest(?) AS v", [found + kept])
    flagged = {v for (v,) in con.execute(f"SELECT v FROM v WHERE {_raw_identifier_sql('v', 'id_compact(v)')}").fetchall()}
    assert flagged == set(found), (set(found) - flagged, flagged - set(found))


def test_a_timestamp_offset_must_be_a_real_one(tmp_path, samples):
    """Found by a hostile-input sweep: 2026-09-10T10:00:00+99:00 loaded as 2026-09-06 07:00 UTC, without a word."""
    import csv
    import hashlib
    import shutil

    sub = tmp_path / "BANK_A"
    shutil.copytree(samples / "valid" / "BANK_A", sub)
    path = sub / "transactions.csv"
    rows = list(csv.reader(path.open(newline="")))
    i = rows[0].index("booked_at")
    rows[3][i], rows[4][i], rows[5][i] = "2026-09-10T10:00:00+99:00", "2026-09-10T10:00:00+14:00", "2026-09-10T10:00:00-05:30"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    manifest = json.loads((sub / "manifest.json").read_text())
    manifest["files"]["transactions.csv"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (sub / "manifest.json").write_text(json.dumps(manifest))
    v = validate(sub, require_manifest=True)
    failing = {r.check.id: [row for row, _ in r.examples] for r in v.results if r.failing}
    assert failing == {"transactions.booked_at.format": [3]}  # +14:00 and -05:30 are real offsets
