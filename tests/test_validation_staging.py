"""Staging of Parquet files as views (read again by the load, not copied) and the hashed unique check: the outcomes
are those of a staged copy; a file that changes between the check and the load is refused, nothing loaded."""

import json

import duckdb
import pytest

import pipelines.ingest as ingest_module
from pipelines import store
from pipelines.ingest import ingest
from pipelines.submission import open_submission, write_manifest
from pipelines.validation import drop_staging, stage, validate
from schemas import contract
from schemas.checks import check_type


@pytest.fixture(scope="module")
def parquet_bank(tmp_path_factory):
    from synthetic.generate import generate

    root = tmp_path_factory.mktemp("pq")
    generate(root, accounts=150, days=10, banks=1, seed=3, fmt="parquet")
    return root / "BANK_A"


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _rewrite(folder, sql: str) -> None:
    """Replace transactions.parquet by `sql` over it (code-owned SQL) and renew the manifest."""
    path = folder / "transactions.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY ({sql.format(src='read_parquet($src)')}) TO $dst (FORMAT parquet)",
        {"src": str(path), "dst": str(folder / "new.parquet")},
    )
    con.close()
    (folder / "new.parquet").replace(path)
    m = json.loads((folder / "manifest.json").read_text())
    rows = {name: entry["rows"] for name, entry in m["files"].items()}
    write_manifest(folder, m["bank_id"], m["period_start"], m["period_end"], rows)


def test_parquet_staged_as_view_finds_the_same_rows_as_csv(parquet_bank, tmp_path):
    """The same bad rows in Parquet (a view) and CSV (a parsed copy) give the same failures, rows and values."""
    pq = _copy(parquet_bank, tmp_path / "pq")
    _rewrite(
        pq,
        "SELECT * REPLACE (CASE WHEN row_number() OVER () IN (3, 7) THEN 'teleport' ELSE channel END AS channel, "
        "CASE WHEN row_number() OVER () = 5 THEN -amount_eur ELSE amount_eur END AS amount_eur) FROM {src}",
    )
    csv = tmp_path / "csv"
    csv.mkdir()
    con = duckdb.connect()
    for name in ("transactions", "accounts"):
        con.execute(
            "COPY (SELECT * FROM read_parquet($src)) TO $dst (HEADER)",
            {"src": str(pq / f"{name}.parquet"), "dst": str(csv / f"{name}.csv")},
        )
    con.close()
    m = json.loads((pq / "manifest.json").read_text())
    rows = {name.replace(".parquet", ".csv"): entry["rows"] for name, entry in m["files"].items()}
    write_manifest(csv, m["bank_id"], m["period_start"], m["period_end"], rows)
    a, b = validate(pq), validate(csv)
    hits = {r.check.id: (r.failing, [row for row, _ in r.examples]) for r in a.results if r.failing}
    assert hits == {"transactions.channel.in_set": (2, [3, 7]), "transactions.amount_eur.positive": (1, [5])}
    assert hits == {r.check.id: (r.failing, [row for row, _ in r.examples]) for r in b.results if r.failing}


def test_parquet_changed_after_the_check_is_refused(parquet_bank, tmp_path, monkeypatch):
    folder = _copy(parquet_bank, tmp_path / "bank")
    load_all = ingest_module._load_all

    def load_then_change(con, sid, sub):
        out = load_all(con, sid, sub)
        _rewrite(folder, "SELECT * FROM {src} LIMIT 5")  # the bank replaces the file while it is being loaded
        return out

    monkeypatch.setattr(ingest_module, "_load_all", load_then_change)
    db = tmp_path / "s.duckdb"
    out = ingest(folder, db)
    assert out.outcome == "rejected" and out.validation.fault.fault == "file changed", out.message
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
    con.close()


def test_unchanged_parquet_loads(parquet_bank, tmp_path):
    out = ingest(parquet_bank, tmp_path / "s.duckdb")
    assert out.outcome == "loaded", out.message
    assert out.rows_loaded["transactions"] == out.validation.rows["transactions"] > 0


def test_corrupt_parquet_data_is_refused_when_staged(parquet_bank, tmp_path):
    """A file whose footer reads but whose data does not is refused at staging (as a copy would be), not mid-load."""
    folder = _copy(parquet_bank, tmp_path / "bank")
    path = folder / "transactions.parquet"
    con = duckdb.connect()
    start, size = con.execute(
        "SELECT data_page_offset, total_compressed_size FROM parquet_metadata(?) WHERE path_in_schema = 'description' "
        "ORDER BY row_group_id LIMIT 1",
        [str(path)],
    ).fetchone()
    con.close()
    data = bytearray(path.read_bytes())
    middle = start + size // 2
    data[middle : middle + 64] = b"\xff" * 64  # inside the description column's page: only a full read notices
    path.write_bytes(bytes(data))
    m = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, m["bank_id"], m["period_start"], m["period_end"], {k: e["rows"] for k, e in m["files"].items()})
    v = validate(folder)
    assert v.fault is not None and v.fault.fault == "unreadable file" and v.fault.file == "transactions.parquet", v.fault
    db = tmp_path / "s.duckdb"
    assert ingest(folder, db).outcome == "rejected"


def test_staged_views_are_dropped_inside_the_load_transaction(parquet_bank):
    """A view is not a table: dropping it as one would abort the transaction the load runs in."""
    con = store.connect(None)
    con.execute("BEGIN TRANSACTION")
    stage(con, open_submission(parquet_bank))
    con.execute("CREATE TEMP TABLE failures (row BIGINT)")
    drop_staging(con)
    con.execute("COMMIT")
    left = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'stg_%'").fetchone()[0]
    left += con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'stg_%' OR table_name = 'failures'"
    ).fetchone()[0]
    assert left == 0
    con.close()


def test_unique_reports_later_duplicates_of_the_exact_key_only():
    """Must fire on the 2nd and 3rd (A, t1); near misses: (B, t1), NULL keys (never equal), same txn_id other bank."""
    check = next(c for c in contract.checks("transactions") if c.kind == "unique")
    con = duckdb.connect()
    con.execute(
        """CREATE TEMP TABLE stg_transactions AS SELECT * FROM (VALUES
        (1, 'A', 't1'), (2, 'B', 't1'), (3, 'A', 't1'), (4, 'A', NULL), (5, 'A', NULL), (6, NULL, 't2'), (7, NULL, 't2'),
        (8, 'A', 't2'), (9, 'A', 't1')) v(__row, bank_id, txn_id)"""
    )
    sql, params = check_type(check).failing_rows(check, None)
    assert sorted(con.execute(sql, params).fetchall()) == [(3, "t1"), (9, "t1")]
    con.close()
