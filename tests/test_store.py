"""The store's schema: a fresh store is complete, an old one upgrades itself on connect and keeps its rows."""

import duckdb
import pytest

import schemas.store as schema
from casework.dispositions import DispositionError, record_disposition
from pipelines import snapshot, store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.ingest import ingest
from schemas import contract

TABLES = {
    "transactions",
    "accounts",
    "fiu_reports",
    "submissions",
    "quarantine",
    "alerts",
    "cases",
    "alert_status",
    "runs",
    "audit_log",
    "schema_version",
    "fiu_screens",
    "fiu_theme_hits",
    "fiu_subjects",
    "fiu_decisions",
    "fiu_disseminations",
    "purge_log",
    "key_versions",
    "access_log",
    "feature_cache",  # migration 10: the nightly run's kept feature parts
    "feature_cache_parts",
    "feature_cache_values",
    "feature_cache_days",
    "window_cache",  # migration 12: the nightly run's kept window
    "window_cache_tx",
}

# The DDL as the code before numbered migrations ran it, copied verbatim (pipelines/store.ensure_schema,
# detectors/scoring.ensure_scoring_tables, casework/dispositions.ensure_review_tables): fixtures for "old stores".
OLD_INTAKE = [
    (
        'CREATE TABLE IF NOT EXISTS transactions ("txn_id" VARCHAR, "bank_id" VARCHAR, "account_id" VARCHAR, "booked_at" TIMESTAMPTZ, '
        '"direction" VARCHAR, "amount_eur" DECIMAL(18,2), "currency" VARCHAR, "amount_orig" DECIMAL(18,2), "channel" VARCHAR, '
        '"counterparty_id" VARCHAR, "counterparty_type" VARCHAR, "counterparty_name" VARCHAR, "counterparty_country" VARCHAR, '
        '"mcc" VARCHAR, "merchant_id" VARCHAR, "location_city" VARCHAR, "description" VARCHAR, "device_id" VARCHAR, submission_id VARCHAR)'
    ),
    (
        'CREATE TABLE IF NOT EXISTS accounts ("account_id" VARCHAR, "bank_id" VARCHAR, "customer_id" VARCHAR, "customer_type" VARCHAR, '
        '"opened_on" DATE, "birth_year" INTEGER, "gender" VARCHAR, "nationality" VARCHAR, "postcode" VARCHAR, "address_id" VARCHAR, '
        '"phone_id" VARCHAR, "sector_code" VARCHAR, submission_id VARCHAR)'
    ),
    (
        'CREATE TABLE IF NOT EXISTS fiu_reports ("txn_id" VARCHAR, "bank_id" VARCHAR, "account_id" VARCHAR, "booked_at" TIMESTAMPTZ, '
        '"direction" VARCHAR, "amount_eur" DECIMAL(18,2), "currency" VARCHAR, "amount_orig" DECIMAL(18,2), "channel" VARCHAR, '
        '"counterparty_id" VARCHAR, "counterparty_type" VARCHAR, "counterparty_name" VARCHAR, "counterparty_country" VARCHAR, '
        '"mcc" VARCHAR, "merchant_id" VARCHAR, "location_city" VARCHAR, "description" VARCHAR, "device_id" VARCHAR, "report_id" VARCHAR, '
        '"reporting_entity" VARCHAR, "indicator_code" VARCHAR, submission_id VARCHAR)'
    ),
    """CREATE TABLE IF NOT EXISTS submissions (
        submission_id VARCHAR, bank_id VARCHAR, kind VARCHAR, period_start DATE, period_end DATE,
        path VARCHAR, files JSON, fingerprint VARCHAR, rows_in JSON, rows_loaded BIGINT,
        rows_quarantined BIGINT, rows_replaced BIGINT, loaded_at TIMESTAMPTZ, outcome VARCHAR, message VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        submission_id VARCHAR, file VARCHAR, "row" BIGINT, check_id VARCHAR, "column" VARCHAR,
        reason VARCHAR, value VARCHAR, record JSON, quarantined_at TIMESTAMPTZ)""",
]
OLD_SCORING = [  # before cases and dispositions: no case columns, no review columns, no audit_log
    """CREATE TABLE IF NOT EXISTS alerts (run_id VARCHAR, alert_id VARCHAR, rank INTEGER, bank_id VARCHAR,
        account_id VARCHAR, score DOUBLE, typology VARCHAR, reasons VARCHAR, evidence VARCHAR[], rules VARCHAR[],
        rule_score DOUBLE, anomaly DOUBLE, status VARCHAR, created_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS alert_status (alert_id VARCHAR, bank_id VARCHAR, account_id VARCHAR,
        status VARCHAR, opened_run VARCHAR, last_run VARCHAR, last_score DOUBLE, updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS runs (run_id VARCHAR, flow_run_id VARCHAR, kind VARCHAR, started_at TIMESTAMPTZ,
        ended_at TIMESTAMPTZ, parameters JSON, rule_set_hash VARCHAR, model_version VARCHAR, window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ, rows_in BIGINT, rows_quarantined BIGINT, alerts_out BIGINT, alerts_new BIGINT, outcome VARCHAR)""",
]
OLD_LAST = (
    OLD_SCORING
    + [  # what the last unnumbered code left: every table, the ALTERs already applied
        "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_id VARCHAR",
        "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_role VARCHAR",
        """CREATE TABLE IF NOT EXISTS cases (run_id VARCHAR, case_id VARCHAR, typology VARCHAR, accounts INTEGER,
        banks VARCHAR[], account_ids VARCHAR[], roles VARCHAR, money_eur DOUBLE, score DOUBLE, created_at TIMESTAMPTZ)""",
        """CREATE TABLE IF NOT EXISTS audit_log (event_id VARCHAR, logged_at TIMESTAMPTZ, user_name VARCHAR, action VARCHAR,
        alert_id VARCHAR, bank_id VARCHAR, account_id VARCHAR, previous_status VARCHAR, new_status VARCHAR,
        reason VARCHAR, note VARCHAR, details JSON)""",
    ]
    + [
        f"ALTER TABLE alert_status ADD COLUMN IF NOT EXISTS {c} {t}"
        for c, t in (
            ("dismiss_reason", "VARCHAR"),
            ("dismissed_score", "DOUBLE"),
            ("dismissed_rules", "VARCHAR[]"),
            ("reported_at", "TIMESTAMPTZ"),
            ("report_file", "VARCHAR"),
        )
    ]
)

ROWS = [
    (
        "INSERT INTO transactions (txn_id, bank_id, account_id, booked_at, direction, amount_eur, channel, submission_id) "
        "VALUES ('t1', 'BANK_A', 'a1', TIMESTAMPTZ '2026-09-01 10:00:00+00', 'credit', 120.50, 'transfer', 's1')"
    ),
    "INSERT INTO accounts (account_id, bank_id, customer_id, customer_type, submission_id) VALUES ('a1', 'BANK_A', 'c1', 'person', 's1')",
    "INSERT INTO submissions (submission_id, bank_id, outcome) VALUES ('s1', 'BANK_A', 'loaded')",
]
SCORED_ROWS = [
    (
        "INSERT INTO alerts (run_id, alert_id, rank, bank_id, account_id, score, typology, rules, status, created_at) "
        "VALUES ('r1', 'r1-00001', 1, 'BANK_A', 'a1', 0.8, 'sexual_exploitation', ['SE01'], 'new', now())"
    ),
    (
        "INSERT INTO alert_status (alert_id, bank_id, account_id, status, opened_run, last_run, last_score, updated_at) "
        "VALUES ('r1-00001', 'BANK_A', 'a1', 'open', 'r1', 'r1', 0.8, now())"
    ),
]


def _old_store(path, ddl, rows):
    con = duckdb.connect(str(path))
    try:
        for statement in ddl + rows:
            con.execute(statement)
    finally:
        con.close()
    return path


def _shape(con) -> dict:
    """Every table with its columns and types, and the rows it holds."""
    cols = con.execute("""SELECT table_name, list(column_name || ' ' || data_type ORDER BY column_index)
                          FROM duckdb_columns() WHERE database_name = current_database() GROUP BY 1""").fetchall()
    return {t: (c, con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t, c in cols}


def _columns(con, table) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_a_fresh_store_has_every_table_at_the_latest_version(tmp_path):
    con = store.connect(tmp_path / "s.duckdb")
    try:
        shape = _shape(con)
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert set(shape) == TABLES
        assert [v for (v,) in versions] == [m.version for m in schema.MIGRATIONS] and schema.LATEST >= 2  # gaps are fine
        assert _columns(con, "transactions") == [c.name for c in contract.TRANSACTIONS] + ["submission_id"]
        assert _columns(con, "fiu_reports") == [c.name for c in contract.TRANSACTIONS + contract.FIU_EXTRA] + ["submission_id"]
        assert _columns(con, "accounts") == [c.name for c in contract.ACCOUNTS] + ["submission_id"]
        assert _columns(con, "alerts")[-3:] == ["case_id", "case_role", "learning_input"]
        assert _columns(con, "runs")[-1] == "window_cache"
        assert _columns(con, "alert_status")[-5:] == [
            "dismiss_reason",
            "dismissed_score",
            "dismissed_rules",
            "reported_at",
            "report_file",
        ]
    finally:
        con.close()


def test_connecting_twice_is_idempotent(tmp_path):
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    for statement in ROWS:
        con.execute(statement)
    first = _shape(con)
    con.close()
    con = store.connect(db)
    try:
        assert _shape(con) == first
        assert schema.migrate(con) == []
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(schema.MIGRATIONS)
    finally:
        con.close()


@pytest.mark.parametrize(
    "ddl, rows",
    [
        pytest.param(OLD_INTAKE, ROWS, id="loaded-never-scored"),
        pytest.param(OLD_INTAKE + OLD_SCORING, ROWS + SCORED_ROWS, id="scored-before-cases-and-dispositions"),
        pytest.param(OLD_INTAKE + OLD_LAST, ROWS + SCORED_ROWS, id="scored-by-the-last-unnumbered-code"),
    ],
)
def test_an_old_store_upgrades_itself_on_connect_and_keeps_its_rows(tmp_path, ddl, rows):
    db = _old_store(tmp_path / "old.duckdb", ddl, rows)
    fresh = store.connect(tmp_path / "fresh.duckdb")
    want = {t: cols for t, (cols, _) in _shape(fresh).items()}
    fresh.close()
    with pytest.raises(schema.StoreVersionError, match="made before numbered migrations; this code needs version"):
        store.connect(db, read_only=True)  # a reader cannot upgrade it and says so
    con = store.connect(db)
    try:
        shape = _shape(con)
        assert {t: cols for t, (cols, _) in shape.items()} == want
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == schema.LATEST
        assert con.execute("SELECT txn_id, account_id, amount_eur FROM transactions").fetchall() == [("t1", "a1", 120.50)]
        assert shape["accounts"][1] == shape["submissions"][1] == 1
        assert shape["alerts"][1] == shape["alert_status"][1] == (1 if rows is not ROWS else 0)
    finally:
        con.close()
    store.connect(db, read_only=True).close()  # now at the latest version: readers are welcome


def test_an_upgraded_store_takes_dispositions(tmp_path):
    db = _old_store(tmp_path / "old.duckdb", OLD_INTAKE + OLD_SCORING, ROWS + SCORED_ROWS)
    snapshot.ensure(db)  # first use upgrades the store and hands its alerts to the casework database
    cw = open_casework(db)
    out = record_disposition(cw, "r1-00001", "dismiss", "ann", reason="explained")
    kept = cw.statuses().select("status", "dismiss_reason", "dismissed_score", "dismissed_rules").rows()
    log = cw.audit_rows().select("user_name", "action", "previous_status", "new_status").rows()
    assert out["status"] == "dismissed"
    assert kept == [("dismissed", "explained", 0.8, ["SE01"])]
    assert log == [("ann", "dismiss", "open", "dismissed")]


def test_dispose_on_an_old_loaded_but_never_scored_store_names_the_unknown_alert(tmp_path, capsys):
    db = _old_store(tmp_path / "old.duckdb", OLD_INTAKE, ROWS)  # the old code failed here with a CatalogException
    rc = main(["dispose", "--db", str(db), "--alert", "r1-00001", "--action", "escalate", "--user", "ann"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().startswith(f"thb-signals dispose: error: store {db} has never been scored") and "\n" not in err.strip()


def test_dispose_on_a_loaded_but_never_scored_store_raises_a_disposition_error(tmp_path, samples):
    db = tmp_path / "s.duckdb"
    assert ingest(samples / "valid" / "BANK_A", db).outcome == "loaded"
    with pytest.raises(DispositionError, match="no alert nope"):
        record_disposition(open_casework(db), "nope", "dismiss", "ann", reason="explained")


def test_a_store_newer_than_the_code_is_refused_with_one_line(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    store.connect(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [schema.LATEST + 1])
    con.execute("INSERT INTO runs (run_id) VALUES ('r1')")  # scored once: the command gets as far as opening it
    con.close()
    for read_only in (False, True):
        with pytest.raises(schema.StoreVersionError, match=f"schema version {schema.LATEST + 1}, newer than this code"):
            store.connect(db, read_only=read_only)
    assert main(["dispose", "--db", str(db), "--alert", "x", "--action", "escalate", "--user", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"thb-signals dispose: error: store {db} is at schema version {schema.LATEST + 1}") and "\n" not in err
    assert main(["status", "--db", str(db)]) == 2  # status reads old stores as they are, never a newer one's tables
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"thb-signals status: error: store {db} is at schema version {schema.LATEST + 1}") and "\n" not in err


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    db = _old_store(tmp_path / "old.duckdb", OLD_INTAKE, ROWS)
    broken = schema.Migration(
        schema.LATEST + 1, "test", ("CREATE TABLE extra (x INTEGER)", "ALTER TABLE nowhere ADD COLUMN y INTEGER")
    )
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (broken,))
    monkeypatch.setattr(schema, "LATEST", broken.version)
    with pytest.raises(duckdb.CatalogException):
        store.connect(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert tables == {"transactions", "accounts", "fiu_reports", "submissions", "quarantine"}  # nothing half-applied
