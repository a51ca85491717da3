"""`thb-signals status` (read-only, one line when the store is busy), failed runs in `runs`, progress on stderr."""

import subprocess
import sys

import duckdb
import pytest

from detectors.scoring import score_store
from detectors.timing import Progress, Stopwatch
from pipelines.cli import main
from pipelines.ingest import ingest
from tests.conftest import SAMPLES


def _failing_rule_run(db, out):
    """A scoring run whose rule stage fails midway (as a rule whose SQL no longer binds would)."""
    from unittest import mock

    from detectors.rule_detector import RuleDetector

    def broken(self, con, days):
        raise RuntimeError("rule SE01_AD_PREMIUM failed: Binder Error: no_such_column")

    with mock.patch.object(RuleDetector, "run_rules", broken):
        return score_store(db, out, {})


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A store with one loaded and one rejected submission, an ok scoring run and a failed one; an inbox with one waiting."""
    root = tmp_path_factory.mktemp("status")
    db = root / "s.duckdb"
    assert ingest(SAMPLES / "valid" / "BANK_A", db).outcome == "loaded"
    assert ingest(SAMPLES / "broken" / "empty_file", db).outcome == "rejected"
    ok = score_store(db, root / "out", {})
    with pytest.raises(RuntimeError, match="rule SE01_AD_PREMIUM failed") as failure:
        _failing_rule_run(db, root / "out")
    import shutil

    shutil.copytree(SAMPLES / "valid" / "BANK_B", root / "inbox" / "BANK_B")
    (root / "inbox" / "processed").mkdir()
    return root, db, ok, str(failure.value)


def test_failed_scoring_run_is_recorded_with_its_error(scored):
    root, db, ok, message = scored
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT run_id, outcome, error, ended_at IS NOT NULL FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert [(r[1], r[3]) for r in rows] == [("ok", True), ("failed", True)]
    assert rows[0][0] == ok.run_id and rows[0][2] is None
    assert rows[1][2].startswith("RuntimeError: rule SE01_AD_PREMIUM failed: Binder Error") and "no_such_column" in rows[1][2]
    assert rows[1][2].split(": ", 1)[1][:60] == message[:60]


def test_status_shows_runs_submissions_open_alerts_size_and_inbox(scored, capsys):
    root, db, ok, _ = scored
    before = db.stat().st_mtime_ns
    assert main(["status", "--db", str(db), "--inbox", str(root / "inbox")]) == 0
    out = capsys.readouterr().out
    con = duckdb.connect(str(db), read_only=True)
    open_a = con.execute("SELECT count(*) FROM alert_status WHERE bank_id = 'BANK_A' AND status = 'open'").fetchone()[0]
    tx = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
    con.close()
    assert f"transactions {tx:,}" in out and (" MB (" in out.splitlines()[0] or " KB (" in out.splitlines()[0])
    run_lines = [line for line in out.splitlines() if ok.run_id in line]
    assert len(run_lines) == 1 and " ok " in run_lines[0] and f"alerts {ok.alerts.height:,}" in run_lines[0]
    assert (
        " failed " in out and "error: RuntimeError: rule SE01_AD_PREMIUM failed: Binder Error" in out and "no_such_column" in out
    )
    assert "submissions: 1 loaded, 1 rejected" in out and "empty file" in out
    assert f"BANK_A: {open_a} / 0 / 0" in out and open_a == ok.alerts.height
    assert "1 submissions waiting (0 processed, 0 rejected so far)" in out and "  BANK_B: 3 files" in out
    assert db.stat().st_mtime_ns == before  # read-only: nothing written


def test_status_says_in_one_line_when_another_process_holds_the_store(scored, capsys):
    _, db, _, _ = scored
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert main(["status", "--db", str(db)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another process" in err[0] and f"PID {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()


def test_status_of_a_missing_or_foreign_store_is_one_line(tmp_path, capsys):
    assert main(["status", "--db", str(tmp_path / "none.duckdb")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no store there" in err[0]
    assert not (tmp_path / "none.duckdb").exists()
    (tmp_path / "notes.duckdb").write_text("not a database\n" * 500)
    assert main(["status", "--db", str(tmp_path / "notes.duckdb")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read as a store" in err[0]


def test_stopwatch_reports_finished_stages_with_their_counts():
    heard = []
    timer = Stopwatch(on_stage=lambda name, seconds, info: heard.append((name, seconds >= 0, dict(info))))
    with timer.stage("load") as info:
        info["rows"] = 12
    with pytest.raises(RuntimeError):
        with timer.stage("broken"):
            raise RuntimeError("x")
    assert heard == [("load", True, {"rows": 12})] and set(timer.times) == {"load", "broken"}


def test_ingest_and_score_show_progress_on_stderr_unless_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    db = str(tmp_path / "s.duckdb")
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", db]) == 0
    cap = capsys.readouterr()
    assert "BANK_A: 3,504 rows read (transactions 3,432, accounts 72)" in cap.err
    assert "BANK_A/transactions: " in cap.err and " checks done on 3,432 rows" in cap.err
    assert "BANK_A: validate: " in cap.err and "BANK_A: load: " in cap.err and "rows loaded 3,504" in cap.err
    assert "rows read" not in cap.out  # results on stdout, progress on stderr
    assert main(["score", "--db", db, "--out", str(tmp_path / "out"), "--top", "1"]) == 0
    err = capsys.readouterr().err
    stages = [line.split(":")[0] for line in err.splitlines() if line.startswith("score ")]
    from detectors.scoring import STAGES

    assert stages == [f"score {st.name}" for st in STAGES] and stages[:3] == ["score window", "score features", "score network"]
    from detectors.rules import RULES

    assert f"(rules {len(RULES)}, hits " in err and "(alerts " in err


@pytest.mark.parametrize("how", ["--quiet", "CI=true"])
def test_progress_is_quiet_with_quiet_or_on_ci(tmp_path, capsys, monkeypatch, how):
    monkeypatch.delenv("CI", raising=False)
    flag = []
    if how == "CI=true":
        monkeypatch.setenv("CI", "true")
    else:
        flag = ["--quiet"]
    db = str(tmp_path / "s.duckdb")
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", db, *flag]) == 0
    assert main(["score", "--db", db, "--out", str(tmp_path / "out"), "--top", "1", *flag]) == 0
    assert main(["generate", str(tmp_path / "gen"), "--accounts", "300", "--days", "20", "--banks", "1", *flag]) == 0
    cap = capsys.readouterr()
    progress = [line for line in cap.err.splitlines() if not line.startswith("WARNING: rule ")]  # flooding rules are not progress
    assert progress == [] and "alerts written to" in cap.out


def test_generate_reports_progress(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert main(["generate", str(tmp_path / "gen"), "--accounts", "300", "--days", "20", "--banks", "1"]) == 0
    err = capsys.readouterr().err
    assert "generate: " in err and "transactions for 300 accounts" in err and "BANK_A written" in err


def test_progress_writes_nothing_when_disabled(monkeypatch):
    import io

    monkeypatch.delenv("CI", raising=False)  # CI=true silences progress like --quiet (tested above)

    buf = io.StringIO()
    Progress(quiet=True, stream=buf)("x")
    Progress(quiet=False, stream=buf).stage("rules", 1.25, {"hits": 1234})
    assert buf.getvalue() == "rules: 1.2 s (hits 1,234)\n"


def test_status_says_when_the_inbox_is_a_file(scored, tmp_path, capsys):
    """Found by a hostile-input sweep: an inbox that is a file was reported as not existing, "the batch creates it";
    the batch refuses both."""
    db = scored[1]
    (tmp_path / "afile").write_text("x")
    assert main(["status", "--db", str(db), "--inbox", str(tmp_path / "afile")]) == 0
    assert f"inbox {tmp_path / 'afile'}: is a file, not a folder (the batch needs an existing folder)" in capsys.readouterr().out
