"""`thb-signals screen` refuses what would record an empty or half screening (the latest one is what the FIU pages
show): an empty period, a period that is not two days, a themes folder that is not there, a store without FIU reports,
an --out under a file. Found by a hostile-input sweep; each used to record a screening first."""

import pytest

from pipelines import store
from pipelines.cli import main
from tests.test_fiu import planted_and_background


@pytest.fixture()
def fiu_db(tmp_path):
    db = tmp_path / "fiu.duckdb"
    con = store.connect(db)
    planted_and_background().store(con)
    con.close()
    return db


def _screenings(db) -> int:
    con = store.peek(db)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return (
            con.execute("SELECT count(DISTINCT screen_id) FROM fiu_subjects").fetchall()[0][0] if "fiu_subjects" in tables else 0
        )
    finally:
        con.close()


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--period", "2030-01-01..2030-12-31"], "no FIU reports in 2030-01-01..2030-12-31: the store holds reports from"),
        (["--period", "2026-W36..2026-W38"], "expected YYYY-MM-DD..YYYY-MM-DD"),
        (["--period", "2026-09-01..2026-09-30", "--themes", "nope"], "--themes folder nope does not exist"),
    ],
)
def test_nothing_is_recorded_for_a_screening_that_cannot_be_whole(fiu_db, capsys, extra, says):
    assert main(["screen", "--db", str(fiu_db), *extra]) == 2
    assert says in capsys.readouterr().err
    assert _screenings(fiu_db) == 0


def test_a_store_without_fiu_reports_is_refused(tmp_path, capsys):
    db = tmp_path / "bank.duckdb"
    store.connect(db).close()
    assert main(["screen", "--db", str(db), "--period", "2026-09-01..2026-09-30"]) == 2
    assert "holds no fiu_reports" in capsys.readouterr().err


def test_an_out_folder_under_a_file_is_refused_when_read(fiu_db, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit):
        main(["screen", "--db", str(fiu_db), "--period", "2026-09-01..2026-09-30", "--out", str(tmp_path / "afile" / "x")])
    assert "is a file, not a folder" in capsys.readouterr().err
    assert _screenings(fiu_db) == 0


def test_a_report_loaded_after_the_last_screening_can_be_decided(fiu_db, capsys):
    """Found by a hostile-input sweep: fiu-decide read only the published snapshot and said "no FIU report" of a report
    ingested since; the store itself, read-only, has it."""
    assert main(["screen", "--db", str(fiu_db), "--period", "2026-09-01..2026-09-30"]) in (0, 1)
    con = store.connect(fiu_db)
    con.execute("INSERT INTO fiu_reports SELECT * REPLACE ('NEW-0001' AS report_id) FROM fiu_reports LIMIT 1")
    con.close()
    argv = ["fiu-decide", "--db", str(fiu_db), "--decision", "not_suspicious", "--user", "fiona", "--report"]
    assert main([*argv, "NEW-0001"]) == 0
    assert "NEW-0001: undecided -> not_suspicious" in capsys.readouterr().out
    assert main([*argv, "NOPE-1"]) == 2
    assert "no FIU report NOPE-1" in capsys.readouterr().err


def test_the_theme_sandbox_spills_into_a_private_folder_of_the_store(fiu_db):
    """From a review: the sandbox's spill files went to DuckDB's default, .tmp in the working folder: neither the
    store's folder nor private, and FIU reports would be in them."""
    import stat
    from datetime import date
    from pathlib import Path

    from casework.fiu.themes import create_period_view, sandbox

    con = store.connect(fiu_db)
    try:
        create_period_view(con, date(2026, 9, 1), date(2026, 9, 30))
        box = sandbox(con)
        folder = Path(box.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
        box.close()
    finally:
        con.close()
    assert folder == Path(f"{fiu_db}.tmp") / "themes"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
