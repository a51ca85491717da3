"""The command line: a user error is one clear line and exit 2, never a traceback; stores and inboxes are never
created by a typo; --debug shows the traceback; every option explains itself."""

import shutil
import subprocess
import sys

import duckdb
import pytest

from pipelines.cli import UsageError, build_parser, main
from tests.conftest import SAMPLES


def one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def store_with(tmp_path, *ddl) -> str:
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    for d in ddl:
        con.execute(d)
    con.close()
    return str(db)


def test_validate_missing_folder(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    one_line_error(capsys, "nope", "does not exist")


def test_ingest_missing_folder_creates_no_store(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), str(tmp_path / "typo"), "--db", str(db)]) == 2
    one_line_error(capsys, "typo", "does not exist")
    assert not db.exists()


def test_ingest_into_missing_folder(tmp_path, capsys):
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", str(tmp_path / "no" / "s.duckdb")]) == 2
    one_line_error(capsys, "folder", "does not exist")


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "--out", "OUT"],
        ["dispose", "--alert", "a1", "--action", "escalate", "--user", "u"],
        ["export-goaml", "--escalated", "--identities", "ids.csv", "--out", "OUT"],
        ["serve"],
        ["identities", "--out", "ids.csv"],
    ],
)
def test_store_that_does_not_exist_is_refused_not_created(tmp_path, capsys, argv):
    db = tmp_path / "typo.duckdb"
    argv = [x.replace("OUT", str(tmp_path / "out")) for x in argv] + ["--db", str(db)]
    assert main(argv) == 2
    one_line_error(capsys, "typo.duckdb", "does not exist")
    assert not db.exists()


@pytest.mark.parametrize("argv", [["status"], ["verify-audit"]])
def test_a_damaged_casework_database_is_one_line(tmp_path, capsys, argv):
    """Found by a hostile-input sweep: a casework file that is not SQLite gave 120 lines of traceback in every command."""
    from pipelines.ingest import ingest

    db = tmp_path / "s.duckdb"
    assert ingest(SAMPLES / "valid" / "BANK_A", db).accepted
    capsys.readouterr()
    (tmp_path / "s.duckdb.casework.sqlite").write_text("garbage\n")
    assert main(argv + ["--db", str(db)]) == 2
    one_line_error(capsys, "the casework database cannot be used: file is not a database")


def test_verify_audit_without_a_casework_database_says_so(tmp_path, capsys):
    """Found by a hostile-input sweep: a store copied without its casework file verified as "intact: 0 entries" (and an
    empty file was made beside it)."""
    from pipelines.ingest import ingest

    db = tmp_path / "s.duckdb"
    assert ingest(SAMPLES / "valid" / "BANK_A", db).accepted
    (tmp_path / "s.duckdb.casework.sqlite").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["verify-audit", "--db", str(db)]) == 2
    one_line_error(capsys, "no casework database beside the store", "nothing to verify")
    assert not (tmp_path / "s.duckdb.casework.sqlite").exists()


def test_score_an_empty_store(tmp_path, capsys):
    db = store_with(tmp_path)
    assert main(["score", "--db", db, "--out", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "holds no transactions", "ingest")


@pytest.mark.parametrize(
    "argv",
    [
        ["dispose", "--alert", "a1", "--action", "escalate", "--user", "u"],
        ["serve"],
        ["export-goaml", "--escalated", "--identities", "x.csv", "--out", "o"],
    ],
)
def test_store_never_scored(tmp_path, capsys, argv):
    db = store_with(tmp_path, "CREATE TABLE transactions (txn_id VARCHAR)", "INSERT INTO transactions VALUES ('t1')")
    assert main(argv + ["--db", db]) == 2
    one_line_error(capsys, "never been scored", "thb-signals score")


def test_malformed_yaml_config_names_the_line(tmp_path, capsys):
    db = store_with(tmp_path, "CREATE TABLE transactions (txn_id VARCHAR)", "INSERT INTO transactions VALUES ('t1')")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window_days: 90\nfusion: [1, 2\n")
    assert main(["score", "--db", db, "--out", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    one_line_error(capsys, "c.yaml", "not valid YAML", "line")
    cfg.write_text("- a list\n- not a mapping\n")
    assert main(["score", "--db", db, "--out", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    one_line_error(capsys, "must be a YAML mapping")
    assert main(["score", "--db", db, "--out", str(tmp_path / "o"), "--config", str(tmp_path / "none.yaml")]) == 2
    one_line_error(capsys, "none.yaml", "does not exist")


def test_malformed_users_file(tmp_path, capsys):
    db = store_with(tmp_path, "CREATE TABLE runs (run_id VARCHAR); INSERT INTO runs VALUES ('r1')")  # scored once
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  ann: {role: admin\n")
    assert main(["serve", "--db", db, "--users", str(users)]) == 2
    one_line_error(capsys, "users.yaml", "not valid YAML")


def test_pseudonymise_missing_or_short_key(tmp_path, capsys):
    raw = SAMPLES / "valid" / "BANK_A"
    assert main(["pseudonymise", str(raw), str(tmp_path / "out"), "--key-file", str(tmp_path / "nokey")]) == 2
    one_line_error(capsys, "key file", "does not exist")
    key = tmp_path / "k"
    key.write_text("short")
    assert main(["pseudonymise", str(raw), str(tmp_path / "out"), "--key-file", str(key)]) == 2
    one_line_error(capsys, "at least 16 bytes")


def test_bad_memory_limit(tmp_path, capsys):
    assert (
        main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", str(tmp_path / "s.duckdb"), "--memory-limit", "4GB'; --"]) == 2
    )
    one_line_error(capsys, "memory limit", "4GB or 512MiB")


def _hold_lock(db: str, *argv: str) -> subprocess.Popen:
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, db, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("argv, kind", [((), "another program"), (("thb-signals", "serve"), "the review page")])
def test_locked_store_names_the_holder(tmp_path, capsys, argv, kind):
    db = store_with(tmp_path, "CREATE TABLE transactions (txn_id VARCHAR)", "INSERT INTO transactions VALUES ('t1')")
    proc = _hold_lock(db, *argv)
    try:
        assert main(["score", "--db", db, "--out", str(tmp_path / "o")]) == 2
        line = one_line_error(capsys, "in use by", kind, f"PID {proc.pid}")
        assert "run this" in line and "--debug" not in line
    finally:
        proc.kill()
        proc.wait()


def test_batch_refuses_a_missing_inbox(tmp_path, capsys):
    inbox = tmp_path / "inbox"
    assert main(["batch", str(inbox), "--db", str(tmp_path / "s.duckdb"), "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, "inbox", "does not exist")
    assert not inbox.exists() and not (tmp_path / "s.duckdb").exists()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    one_line_error(capsys, "did not make", "not empty")
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_hash_password_refuses_an_empty_password(monkeypatch, capsys):
    monkeypatch.setenv("THB_PASSWORD", "")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "  ")
    assert main(["hash-password"]) == 2
    one_line_error(capsys, "password is empty")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(UsageError):
        main(["--debug", "score", "--db", str(tmp_path / "nope.duckdb"), "--out", str(tmp_path / "o")])
    with pytest.raises(UsageError):
        main(["score", "--debug", "--db", str(tmp_path / "nope.duckdb"), "--out", str(tmp_path / "o")])


def test_submission_without_manifest_needs_the_flag(tmp_path, capsys):
    sub = tmp_path / "BANK_A"
    shutil.copytree(SAMPLES / "valid" / "BANK_A", sub)
    (sub / "manifest.json").unlink()
    assert main(["validate", str(sub), "--gx-sample-rows", "0"]) == 1
    assert "missing manifest" in capsys.readouterr().out
    assert main(["validate", str(sub), "--gx-sample-rows", "0", "--no-manifest"]) == 0
    db = str(tmp_path / "s.duckdb")
    assert main(["ingest", str(sub), "--db", db]) == 1
    assert "missing manifest" in capsys.readouterr().out
    assert main(["ingest", str(sub), "--db", db, "--no-manifest"]) == 0
    assert "-> loaded" in capsys.readouterr().out


def test_usage_errors_exit_2():
    for argv in (["generate", "out", "--accounts", "0"], ["score"], ["validate"], ["nonsense"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2


def test_every_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    missing = [
        f"{name} {act.dest}"
        for name, p in sub.choices.items()
        for act in p._actions
        if act.dest != "help" and not (act.help or "").strip()
    ]
    assert not missing, missing
    assert all((a.help or "").strip() for a in sub._choices_actions)  # and every command


@pytest.mark.parametrize(
    "args", [["disseminate", "--out", "OUT"], ["fiu-decide", "--report", "R1", "--decision", "not_suspicious", "--user", "a"]]
)
def test_fiu_commands_refuse_a_store_that_does_not_exist(tmp_path, capsys, args):
    db = tmp_path / "none.duckdb"
    assert main([args[0], "--db", str(db), *[str(tmp_path / "o") if x == "OUT" else x for x in args[1:]]]) == 2
    one_line_error(capsys, "none.duckdb", "does not exist")
    assert not db.exists()  # nothing created by a mistyped path


def test_evaluate_a_file_that_is_not_parquet(tmp_path, capsys):
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet\n")
    assert main(["evaluate", "--subjects", str(junk), "--labels", str(junk)]) == 2
    one_line_error(capsys, "could not read a data file", "parquet")


def test_a_casework_database_that_cannot_be_opened_is_one_line_without_its_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THB_CASEWORK_URL", "unset")  # --casework-url sets it for the process: recorded, so undone after
    monkeypatch.delenv("THB_CASEWORK_URL")
    db = store_with(tmp_path, "CREATE TABLE t (x INT)")
    assert main(["verify-audit", "--db", db, "--casework-url", "notaurl://x"]) == 2
    one_line_error(capsys, "casework database URL notaurl://x is not usable")
    url = "postgresql+psycopg://thb:s3cret@127.0.0.1:1/thb"  # nothing listens on port 1
    assert main(["verify-audit", "--db", db, "--casework-url", url]) == 2
    line = one_line_error(capsys, "cannot open the casework database", "127.0.0.1:1")
    assert "s3cret" not in line


def test_a_dask_scheduler_that_does_not_answer_is_one_line_before_anything_starts(tmp_path, capsys):
    db = store_with(tmp_path, "CREATE TABLE transactions (x INT)", "INSERT INTO transactions VALUES (1)")
    argv = ["score", "--db", db, "--out", str(tmp_path / "o"), "--shards", "2", "--quiet"]
    assert main([*argv, "--dask-address", "tcp://127.0.0.1:1"]) == 2
    one_line_error(capsys, "no Dask scheduler answers at tcp://127.0.0.1:1")
    assert main([*argv, "--dask-address", "http://scheduler"]) == 2
    one_line_error(capsys, "is not a scheduler address such as tcp://scheduler:8786")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["status", "--db", "s.duckdb", "--runs", "-5"], "argument --runs: -5 must be at least 0"),
        (["serve", "--db", "s.duckdb", "--users", "u.yaml", "--port", "99999"], "argument --port: 99999 must be at most 65535"),
        # a typo would silently believe no proxy (uvicorn takes it as a name), `*` every client's X-Forwarded-For
        (
            ["serve", "--db", "s.duckdb", "--users", "u.yaml", "--proxy", "10.0.0.1,ngnix"],
            "argument --proxy: 'ngnix' is not an IP",
        ),
        (["serve", "--db", "s.duckdb", "--users", "u.yaml", "--proxy", "*"], "argument --proxy: '*' is not an IP address"),
        (["validate", "x", "--gx-sample-rows", "-5"], "argument --gx-sample-rows: -5 must be at least 0"),
        (["generate", "out", "--accounts", "50"], "argument --accounts: 50 must be at least 100"),
        (["generate", "out", "--fiu", "--networks", "0"], "argument --networks: 0 must be at least 1"),
        (["generate", "out", "--fiu", "--reports", "-5"], "argument --reports: -5 must be at least 100"),
        (["generate", "out", "--fiu", "--reports", "99999999999999999999"], "must be at most 10000000"),
        (["generate", "out", "--fiu", "--end", "0001-01-01"], "argument --end: 0001-01-01 is not a day from 2000 to 2999"),
        (["generate", "out", "--end", "foo"], "argument --end: 'foo' is not a day as YYYY-MM-DD"),
        (["generate", "out", "--days", "800000"], "argument --days: 800000 must be at most 3650"),
        (["generate", "out", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
        (["score", "--db", "s.duckdb", "--out", "o", "--window-days", "1"], "argument --window-days: 1 must be at least 7"),
        (["backtest", "--db", "s", "--config", "c", "--window-days", "1000"], "argument --window-days: 1000 must be at most 731"),
        (["rerank", "--db", "s.duckdb", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
        (["rerank", "--db", "s.duckdb", "--seed", str(2**32)], f"argument --seed: {2**32} must be at most {2**32 - 1}"),
        (["screen", "--db", "s", "--period", "2026-01-01..2026-01-31", "--top", "-1"], "argument --top: -1 must be at least 0"),
    ],
)
def test_out_of_range_numbers_are_refused_when_read(capsys, argv, says):
    """Found by a hostile-input sweep: these reached DuckDB or the socket and came back as tracebacks or as faults
    blamed on the store."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and says in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "--db", "s.duckdb", "--out", "{file}"],
        ["run", "x", "--db", "s.duckdb", "--out", "{file}"],
        ["batch", "x", "--db", "s.duckdb", "--out", "{file}"],
        ["backtest", "--db", "s.duckdb", "--config", "c.yaml", "--out", "{file}"],
        ["export-goaml", "--db", "s.duckdb", "--out", "{file}", "--user", "u"],
        ["screen", "--db", "s.duckdb", "--period", "2026-01-01..2026-01-31", "--out", "{file}"],
        ["disseminate", "--db", "s.duckdb", "--out", "{file}"],
        ["bench", "--out", "{file}"],
        ["generate", "{file}"],
        ["pseudonymise", "raw", "{file}", "--key-file", "k"],
    ],
)
def test_a_file_where_a_command_writes_a_folder_is_refused_before_anything_runs(tmp_path, capsys, argv):
    """Found by a hostile-input sweep: `score --out FILE` scored, stored its alerts, then failed writing alerts.parquet."""
    out = tmp_path / "afile"
    out.write_text("kept")
    with pytest.raises(SystemExit) as e:
        main([a.replace("{file}", str(out)) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"{out} is a file, not a folder")
    assert out.read_text() == "kept"


def test_a_config_naming_an_unknown_rule_is_refused_before_anything_runs(tmp_path, capsys):
    """Found by a hostile-input sweep: the rules' own checks ran only when scoring began (after `run` had loaded its
    submission) and did not name the file."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rules:\n  disabled: [NOPE_RULE]\n")
    db = tmp_path / "s.duckdb"
    argv = ["run", str(SAMPLES / "valid" / "BANK_A"), "--db", str(db), "--out", str(tmp_path / "out"), "--config", str(cfg)]
    assert main(argv + ["--no-prefect"]) == 2
    one_line_error(capsys, f"{cfg}: config names unknown rules: NOPE_RULE (in disabled)")
    assert not db.exists()  # nothing was loaded
    for text, says in (
        ("rules:\n  disabled: [PT_FAN_INN]\n", "config names unknown patterns: PT_FAN_INN (in disabled)"),
        ("rules:\n  PT_CYCEL: {max_days: 5}\n", "config names unknown patterns: PT_CYCEL"),
        ("patterns:\n  min_amout: 5\n", "config 'patterns' has no setting(s) min_amout"),
    ):
        cfg.write_text(text)
        assert main(argv + ["--no-prefect"]) == 2
        one_line_error(capsys, f"{cfg}: {says}")
        assert not db.exists()


def test_a_memory_limit_too_small_is_one_line(tmp_path, capsys):
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", str(tmp_path / "s.duckdb"), "--memory-limit", "1KB"]) == 2
    one_line_error(capsys, "DuckDB ran out of memory under its limit (--memory-limit")


def test_hash_password_without_a_terminal_or_a_password_is_one_line(monkeypatch, capsys):
    import getpass

    monkeypatch.delenv("THB_PASSWORD", raising=False)

    def no_terminal(prompt=""):
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", no_terminal)
    assert main(["hash-password"]) == 2
    one_line_error(capsys, "the password is empty")


def test_a_config_nested_too_deeply_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("rules: " + "[" * 50_000 + "]" * 50_000 + "\n")
    db = tmp_path / "s.duckdb"
    store_with(tmp_path, "CREATE TABLE t (x INTEGER)")
    assert main(["purge", "--db", str(db), "--config", str(cfg), "--dry-run"]) == 2
    one_line_error(capsys, "nested too deeply")


def test_a_reader_that_stops_early_ends_the_command_quietly(monkeypatch, capsys):
    """Found by a README walk-through: `thb-signals rules | head` printed "error: [Errno 32] Broken pipe"."""
    import io

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("no file")

    monkeypatch.setattr("sys.stdout", Closed())
    assert main(["rules"]) == 141  # as a process ended by SIGPIPE: quiet, but not "done"
    assert capsys.readouterr().err == ""


def test_an_fiu_extract_shorter_than_its_networks_is_refused_in_words(tmp_path, capsys):
    """Found by a hostile-input sweep: generate --fiu --days 10 said only "high <= 0" (numpy)."""
    assert main(["generate", str(tmp_path / "f"), "--fiu", "--days", "10"]) == 2
    assert capsys.readouterr().err.strip().endswith("--days 10: an FIU extract needs at least 41 days")


def test_an_unknown_option_is_named_with_its_commands_usage(capsys):
    """Found by a README walk-through: `validate X --quiet` printed the whole program's usage and list of commands."""
    with pytest.raises(SystemExit) as e:
        main(["validate", "x", "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: thb-signals validate" in err
    assert err.strip().splitlines()[-1] == "thb-signals validate: error: unrecognized arguments: --quiet"


def test_generate_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    """Found by a README walk-through: generating 1 bank into a folder an earlier run had filled with 2 left the old
    BANK_B beside the new labels, which then described other accounts."""
    (tmp_path / "g" / "BANK_B").mkdir(parents=True)
    assert main(["generate", str(tmp_path / "g"), "--accounts", "100", "--days", "10", "--banks", "1"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{tmp_path / 'g'} is not empty: generate writes into a new or empty folder")
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["BANK_B"]


def test_an_error_repeats_what_was_typed_without_control_characters_or_raw_identifiers(tmp_path, capsys):
    """Found by a hostile-input sweep: `dispose --alert` echoed a newline and a terminal escape code as typed, and an
    IBAN given as the alert id in full."""
    db = str(tmp_path / "s.duckdb")
    assert main(["ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", db, "--quiet"]) == 0
    assert main(["score", "--db", db, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()
    for alert, shown in (("a\nb\x1b[31m", "error: no alert a b [31m"), ("NL91ABNA0417164300", "error: no alert [masked]")):
        assert main(["dispose", "--db", db, "--alert", alert, "--action", "escalate", "--user", "ann"]) == 2
        err = capsys.readouterr().err
        assert err == shown + "\n"


def test_batch_refuses_an_inbox_whose_processed_is_a_file_before_loading(tmp_path, capsys):
    """Found by a hostile-input sweep: with inbox/processed a file, the batch loaded the submission, then failed to
    file it (a Prefect traceback), and the submission stayed in the inbox as if waiting."""
    import shutil

    inbox = tmp_path / "inbox"
    shutil.copytree(SAMPLES / "valid" / "BANK_A", inbox / "BANK_A")
    (inbox / "processed").write_text("x")
    db = tmp_path / "s.duckdb"
    assert main(["batch", str(inbox), "--db", str(db), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().endswith("is a file: the batch files submissions into a folder of that name")
    assert not db.exists()


def test_batch_and_its_flow_check_the_config_before_loading(tmp_path, capsys):
    """Found by a hostile-input sweep: `batch --config` with `fusion: {min_scor: 0.3}` loaded and filed the
    submission, then failed with a traceback and two failed run rows; the flows never checked the config first."""
    import shutil

    from pipelines.flows import batch_scoring_flow

    inbox = tmp_path / "inbox"
    shutil.copytree(SAMPLES / "valid" / "BANK_A", inbox / "BANK_A")
    typo = tmp_path / "typo.yaml"
    typo.write_text("fusion: {min_scor: 0.3}\n")
    db = tmp_path / "s.duckdb"
    assert main(["batch", str(inbox), "--db", str(db), "--out", str(tmp_path / "out"), "--config", str(typo)]) == 2
    assert "fusion.min_scor: unknown key" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fusion.min_scor: unknown key"):
        batch_scoring_flow(str(inbox), str(db), str(tmp_path / "out"), config=str(typo))
    assert (inbox / "BANK_A").is_dir() and not (inbox / "processed").exists() and not db.exists()


def test_dispose_refuses_a_reason_with_an_action_that_keeps_none(tmp_path, capsys):
    """Found by a hostile-input sweep: `--action escalate --reason explained` dropped the reason without saying so."""
    argv = ["dispose", "--db", str(tmp_path / "s.duckdb"), "--alert", "a1", "--action", "escalate", "--user", "ann"]
    assert main([*argv, "--reason", "explained"]) == 2
    assert capsys.readouterr().err.strip().endswith("--reason is for --action dismiss, not escalate")
