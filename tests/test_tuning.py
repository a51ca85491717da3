"""The tuning loop: backtest without touching the queue, --as-of, rule effectiveness, labels for evaluate."""

import hashlib
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from casework.backtest import backtest, compare
from casework.dispositions import decisions_frame, mark_reported, record_disposition
from casework.labels import write_labels
from casework.rule_stats import rule_stats
from detectors.scoring import score_store
from detectors.whatif import scratch_run
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings, SettingsError, parse_settings
from synthetic.evaluate import evaluate
from tests.conftest import generated_store


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """A scored store where investigators escalated three alerts (one reported), dismissed three (two as explained)."""
    root = tmp_path_factory.mktemp("tuning")
    db = generated_store(root, accounts=3000, days=60, seed=7)
    res = score_and_publish(db, root / "out")  # the run's alerts handed to the casework database, where decisions live
    ids = res.alerts.sort("rank")["alert_id"].to_list()
    cw = open_casework(db)
    for i in ids[:3]:
        record_disposition(cw, i, "escalate", "inv")
    mark_reported(cw, ids[0], "inv", "report-1.xml")
    record_disposition(cw, ids[3], "dismiss", "inv", "explained")
    record_disposition(cw, ids[4], "dismiss", "inv", "lawful_business")
    record_disposition(cw, ids[5], "dismiss", "inv", "data_error")
    return root, db, res, ids


def _fingerprint(db) -> dict:
    """Every table of the store with its row count and an order-free hash of its rows, and the file's bytes."""
    con = store.peek(db)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        rows = {t: con.execute(f'SELECT count(*), sum(hash(x::VARCHAR)::HUGEINT) FROM "{t}" x').fetchall()[0] for t in tables}
    finally:
        con.close()
    return {"tables": rows, "file": hashlib.sha256(db.read_bytes()).hexdigest()}


def test_backtest_leaves_every_live_table_identical(decided, tmp_path):
    root, db, res, ids = decided
    before = _fingerprint(db)
    cw_before = open_casework(db).audit_rows()
    assert before["tables"]["alert_status"][0] > 0 and cw_before.height > 0
    cfg = tmp_path / "new.yaml"
    cfg.write_text("budget:\n  share: 0.03\nrules:\n  disabled: [PT_FAN_IN]\n")
    assert main(["backtest", "--db", str(db), "--config", str(cfg), "--out", str(tmp_path / "bt"), "--quiet"]) == 0
    assert main(["backtest", "--db", str(db), "--config", str(cfg), "--against", res.run_id, "--json"]) == 0
    assert _fingerprint(db) == before and open_casework(db).audit_rows().equals(cw_before)
    page = (tmp_path / "bt" / "backtest.html").read_text()
    assert "<svg" in page and "Escalation rate per rule" in page
    r = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert r["alerts_after"] > r["alerts_before"]  # a larger budget share keeps more
    assert r["by_rule"].get("PT_FAN_IN", {"after": 0})["after"] == 0
    assert sum(v["after"] for v in r["by_bank"].values()) == r["alerts_after"]


def test_backtest_against_a_batch_run_is_refused_not_compared_with_nothing(decided, tmp_path, capsys):
    """Found by a hostile-input sweep: a batch run's id (its alerts carry its scoring run's id) was taken, and the
    report said every alert was gained."""
    import shutil

    root, db, res, ids = decided
    copy = tmp_path / "s.duckdb"
    shutil.copy(db, copy)
    shutil.copy(f"{db}.casework.sqlite", f"{copy}.casework.sqlite")
    con = store.connect(copy)
    con.execute(
        "INSERT INTO runs (run_id, kind, outcome, window_end) SELECT 'batch-1', 'batch', 'ok', window_end FROM runs "
        "WHERE run_id = ?",
        [res.run_id],
    )
    con.close()
    cfg = tmp_path / "new.yaml"
    cfg.write_text("budget:\n  share: 0.03\n")
    assert main(["backtest", "--db", str(copy), "--config", str(cfg), "--against", "batch-1"]) == 2
    assert "no successful scoring run batch-1" in capsys.readouterr().err


def test_backtest_refuses_a_models_folder_that_is_not_there_and_an_empty_run_id(decided, tmp_path, capsys):
    """Found by a hostile-input sweep: --models nope refitted the anomaly model silently (other figures), and
    --against '' was ignored (compared with the current config)."""
    root, db, res, ids = decided
    cfg = tmp_path / "new.yaml"
    cfg.write_text("budget:\n  share: 0.03\n")
    base = ["backtest", "--db", str(db), "--config", str(cfg)]
    assert main([*base, "--models", str(tmp_path / "nope")]) == 2
    assert f"--models {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    assert main([*base, "--against", ""]) == 2
    assert "--against needs a run id" in capsys.readouterr().err


def test_backtest_counts_lost_escalations_and_dropped_dismissals(decided):
    """A config that raises nothing loses every decided account, counted by what was decided."""
    root, db, res, ids = decided
    r = backtest(db, parse_settings({"fusion": {"min_score": 1.0}}), against=res.run_id)
    assert r["alerts_after"] == 0 and r["lost"] == r["alerts_before"] == res.alerts.height
    assert r["lost_escalated"] == 2 and r["lost_reported"] == 1
    assert r["dropped_dismissed"] == 3
    assert r["dropped_dismissed_by_reason"] == {"data_error": 1, "explained": 1, "lawful_business": 1}


def test_compare_per_rule_typology_and_bank():
    before = pl.DataFrame(
        {
            "bank_id": ["A", "A", "B"],
            "account_id": ["1", "2", "3"],
            "typology": ["x", "y", "x"],
            "rules": [["R1"], ["R2"], ["R1", "R2"]],
        }
    )
    after = pl.DataFrame({"bank_id": ["A", "B"], "account_id": ["1", "4"], "typology": ["x", "x"], "rules": [["R1"], ["R2"]]})
    decisions = pl.DataFrame(
        {"bank_id": ["A", "B"], "account_id": ["2", "3"], "decision": ["escalated", "dismissed"], "reason": [None, "explained"]}
    )
    r = compare(before, after, decisions)
    assert (r["gained"], r["lost"], r["lost_escalated"], r["dropped_dismissed"]) == (1, 2, 1, 1)
    assert r["by_rule"]["R2"] == {
        "before": 2,
        "after": 1,
        "gained": 1,
        "lost": 2,
        "escalation_rate_before": 0.5,
        "escalation_rate_after": None,
    }
    assert r["by_bank"] == {
        "A": {"before": 2, "after": 1, "gained": 0, "lost": 1},
        "B": {"before": 1, "after": 1, "gained": 1, "lost": 1},
    }
    assert r["by_typology"]["y"] == {"before": 1, "after": 0, "gained": 0, "lost": 1}


def test_bad_config_value_is_refused_with_key_and_range(decided, tmp_path, capsys):
    root, db, res, ids = decided
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("fusion:\n  min_score: 1.5\n")
    before = _fingerprint(db)
    assert main(["backtest", "--db", str(db), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "fusion.min_score" in err and "0 <= value <= 1" in err and "Traceback" not in err
    with pytest.raises(SettingsError, match=r"rerank\.min_positives: .*1 <= value <= 100000"):
        parse_settings({"rerank": {"min_positives": 0}})
    with pytest.raises(SettingsError, match=r"window\.as_of"):
        parse_settings({"window": {"as_of": "2026-02-30"}})
    with pytest.raises(SettingsError, match=r"rerank\.weight: unknown key"):
        parse_settings({"rerank": {"weight": 0.3}})
    assert _fingerprint(db) == before


def test_as_of_moves_the_window(decided, tmp_path):
    root, db, res, ids = decided
    day = (res.window_end.date()).replace(day=1)
    early = scratch_run(db, Settings().with_overrides(**{"window.as_of": day, "window.days": 30}))
    w = early["window"]
    assert w.end == datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert (w.end - w.start).days == 30
    full = scratch_run(db, Settings().with_overrides(**{"window.days": 30}))
    assert full["window"].end == res.window_end and early["rows_in"] > 0 and early["rows_in"] != full["rows_in"]
    # a real run records the window it replayed; the flag reaches the settings the run keeps
    assert (
        main(["score", "--db", str(db), "--out", str(tmp_path / "o"), "--as-of", day.isoformat(), "--quiet", "--top", "0"]) == 0
    )
    con = store.peek(db)
    try:
        end, params = con.execute("SELECT window_end, parameters FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()[0]
    finally:
        con.close()
    assert end.date() == day and json.loads(params)["settings"]["window"]["as_of"] == day.isoformat()
    with pytest.raises(ValueError, match="no transactions"):
        scratch_run(db, Settings().with_overrides(**{"window.as_of": date(2001, 1, 1)}))


def test_decisions_frame_labels(decided):
    root, db, res, ids = decided
    d = decisions_frame(open_casework(db))
    by = {r["alert_id"]: r for r in d.iter_rows(named=True)}
    assert [by[i]["label"] for i in ids[:6]] == [1, 1, 1, 0, 0, None]
    assert by[ids[0]]["status"] == "reported" and by[ids[6]]["label"] is None and by[ids[6]]["decided_at"] is None


def test_labels_round_trip_through_evaluate(decided, tmp_path):
    root, db, res, ids = decided
    con = store.connect(db, read_only=True)
    try:
        n = write_labels(con, open_casework(db), tmp_path / "labels.csv")
    finally:
        con.close()
    assert n == {"positives": 3, "negatives": 2, "skipped": 1}
    lab = pl.read_csv(tmp_path / "labels.csv")
    assert set(lab["role"]) == {"escalated", "reported", "dismissed:explained", "dismissed:lawful_business"}
    m = evaluate(res.files["parquet"], tmp_path / "labels.csv")
    assert (m["accounts"], m["positives"]) == (5, 3)
    assert m["precision@50"] == round(3 / 50, 4)  # the escalated alerts were the first three
    assert m["alerts_not_in_labels"] == res.alerts.height - 5
    assert main(["labels", "--db", str(db), "--out", str(tmp_path / "l.parquet")]) == 0
    assert pl.read_parquet(tmp_path / "l.parquet").height == 5


def test_labels_never_write_over_the_store_or_the_casework_database(decided, tmp_path, capsys):
    """Found by a hostile-input sweep: `labels --out s.duckdb` replaced the store with an 828-byte CSV (exit 0), and
    any name but .parquet got CSV. Only a .csv or .parquet name is taken; the file appears whole or not at all."""
    root, db, res, ids = decided
    before = {p: p.read_bytes() for p in (db, Path(f"{db}.casework.sqlite"))}
    for out in (db, Path(f"{db}.casework.sqlite"), tmp_path / "labels.xlsx", tmp_path):
        with pytest.raises(SystemExit) as e:
            main(["labels", "--db", str(db), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.value.code == 2 and str(out) in err and ("not a .csv or .parquet" in err or "is a folder" in err)
    assert {p: p.read_bytes() for p in before} == before
    assert main(["labels", "--db", str(db), "--out", str(tmp_path / "L.PARQUET")]) == 0
    assert pl.read_parquet(tmp_path / "L.PARQUET").height == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no part file left


def _tiny_store(path):
    """Two runs (one in September, one in October), three rules, two banks, four alerts with decisions."""
    con = store.connect(path)
    rates = {
        "R1": {
            "by_bank": {
                "BANK_A": {"accounts_hit": 4, "accounts_scored": 100},
                "BANK_B": {"accounts_hit": 1, "accounts_scored": 50},
            }
        },
        "R2": {"by_bank": {"BANK_A": {"accounts_hit": 2, "accounts_scored": 100}}},
    }
    for run, end in (("r1", "2026-09-30"), ("r2", "2026-10-31")):
        con.execute(
            "INSERT INTO runs (run_id, kind, started_at, window_end, outcome, rule_rates) VALUES (?, 'score', ?, ?, 'ok', ?)",
            [run, end, end, json.dumps(rates)],
        )
    alerts = [  # alert, run, bank, rules (first = top reason)
        ("a1", "r1", "BANK_A", ["R1", "R2"]),
        ("a1", "r2", "BANK_A", ["R1", "R2"]),  # the same alert raised again: counts once
        ("a2", "r1", "BANK_A", ["R2"]),
        ("a3", "r1", "BANK_B", ["R1"]),
        ("a4", "r2", "BANK_A", ["R1"]),
    ]
    for alert, run, bank, rules in alerts:
        con.execute(
            "INSERT INTO alerts (run_id, alert_id, bank_id, account_id, rules, created_at) VALUES (?, ?, ?, ?, ?, now())",
            [run, alert, bank, "acc-" + alert, rules],
        )
    for alert, bank, status, reason in (
        ("a1", "BANK_A", "escalated", None),
        ("a2", "BANK_A", "dismissed", "explained"),
        ("a3", "BANK_B", "dismissed", "data_error"),
        ("a4", "BANK_A", "open", None),
    ):
        con.execute(
            "INSERT INTO alert_status (alert_id, bank_id, account_id, status, dismiss_reason) VALUES (?, ?, ?, ?, ?)",
            [alert, bank, "acc-" + alert, status, reason],
        )
    open_casework(path).import_store(con)  # decisions written the old way, moved to the casework database
    return con


def test_rule_stats_count_right_on_a_tiny_store(tmp_path):
    con = _tiny_store(tmp_path / "tiny.duckdb")
    try:
        s = rule_stats(con, open_casework(tmp_path / "tiny.duckdb"))
        r1, r2 = s["rules"]["R1"], s["rules"]["R2"]
        assert s["runs"] == 2
        assert (r1["accounts_hit"], r1["accounts_scored"], r1["share"]) == (10, 300, round(10 / 300, 6))
        assert (r1["alerts_with_rule"], r1["alerts_driven"]) == (3, 3)
        assert (r1["escalated"], r1["dismissed"], r1["still_open"], r1["dismissed_by_reason"]) == (1, 1, 1, {"data_error": 1})
        assert r1["escalation_rate"] == 0.5
        assert (r2["alerts_with_rule"], r2["alerts_driven"], r2["dismissed_by_reason"]) == (2, 1, {"explained": 1})
        sept = rule_stats(con, open_casework(tmp_path / "tiny.duckdb"), until=date(2026, 9, 30))
        assert sept["runs"] == 1 and sept["rules"]["R1"]["alerts_driven"] == 2 and sept["rules"]["R1"]["still_open"] == 0
        bank_b = rule_stats(con, open_casework(tmp_path / "tiny.duckdb"), banks=["BANK_B"])
        assert bank_b["rules"]["R1"]["accounts_hit"] == 2 and bank_b["rules"]["R1"]["alerts_driven"] == 1
        assert bank_b["rules"]["R1"]["escalated"] == 0 and "R2" not in bank_b["rules"]
    finally:
        con.close()


def test_rules_stats_command(tmp_path, capsys):
    _tiny_store(tmp_path / "tiny.duckdb").close()
    assert main(["rules", "--stats", "--db", str(tmp_path / "tiny.duckdb"), "--since", "2026-10-01", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 1 and out["rules"]["R1"]["alerts_driven"] == 2
    assert main(["rules", "--stats"]) == 2


def test_rules_stats_refuses_a_period_that_ends_before_it_starts(tmp_path, capsys):
    """It printed an empty table, as if no rule had fired."""
    _tiny_store(tmp_path / "tiny.duckdb").close()
    db = str(tmp_path / "tiny.duckdb")
    assert main(["rules", "--stats", "--db", db, "--since", "2026-10-31", "--until", "2026-10-01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--since 2026-10-31 is after --until 2026-10-01: the period would be empty")
    assert main(["rules", "--stats", "--db", db, "--since", "2026-10-01", "--until", "2026-10-01"]) == 0


def test_rules_page_scopes_figures_to_the_users_bank(tmp_path):
    from starlette.testclient import TestClient

    from casework.review.app import Review
    from casework.review.auth import load_users
    from tests.test_review import login, users_file

    _tiny_store(tmp_path / "tiny.duckdb").close()
    users = load_users(users_file(tmp_path / "users.yaml"))

    def driven(name: str, query: str = "") -> dict:
        c = TestClient(Review(tmp_path / "tiny.duckdb", users, None, tmp_path / "goaml", secret=b"k" * 32).app())
        login(c, name)
        page = c.get("/rules" + query)
        assert page.status_code == 200
        return dict(re.findall(r'data-rule="(\w+)">.*?<td class="driven">(\d+)</td>', page.text, re.S))

    assert driven("fiona") == {"R1": "3", "R2": "1"}
    assert driven("bert") == {"R1": "1"}  # bank B: one alert driven by R1, nothing of bank A
    assert driven("ann", "?until=2026-09-30") == {"R1": "1", "R2": "1"}
    c = TestClient(Review(tmp_path / "tiny.duckdb", users, None, tmp_path / "goaml", secret=b"k" * 32).app())
    login(c, "ann")
    assert c.get("/rules?since=yesterday").status_code == 400


# ---- the re-ranker learned from decisions ---------------------------------------------------------------------------


def _toy_design(seed: int, n: int = 200):
    from detectors.features import feature_names
    from detectors.reranker import rule_columns

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    cols = {f: rng.gamma(2.0, 10.0, n) + 30 * y * (i % 5 == 0) for i, f in enumerate(feature_names())}
    cols |= {"fused_score": rng.random(n) * 0.5 + 0.3 * y, "rule_score": rng.random(n), "anomaly": rng.random(n)}
    rules = {c: ((rng.random(n) < 0.2) | ((y == 1) & (rng.random(n) < 0.5))).astype(np.int8) for c in rule_columns()}
    x = pl.DataFrame(
        {"bank_id": ["B"] * n, "account_id": [f"a{i:04d}" for i in range(n)], **cols, "top_rule": ["SE01_AD_MICRO"] * n, **rules}
    )
    return x, y


def test_reranker_is_deterministic_for_a_seed():
    from detectors.reranker import Reranker

    x, y = _toy_design(1)
    a, b = Reranker(random_state=4).fit(x, y), Reranker(random_state=4).fit(x.reverse(), y[::-1])  # row order does not matter
    assert np.array_equal(a.predict(x), b.predict(x)) and a.version.split("-")[-1] == b.version.split("-")[-1]
    assert a.explain(x.head(3)) == b.explain(x.head(3))
    assert a.predict(x)[y == 1].mean() > a.predict(x)[y == 0].mean() + 0.2  # it learned something
    assert "similar alerts (SE01_AD_MICRO) were escalated" in a.explain(x.head(1))[0]
    assert 0 < a.weight(0.5, 200) < a.weight(0.5, 20) < 0.5  # more decisions relative to the half point: more weight


def test_blend_with_no_weight_changes_nothing():
    from detectors.fusion import blend_learned

    alerts = pl.DataFrame(
        {"rank": [1, 2], "bank_id": ["B", "B"], "account_id": ["x", "y"], "score": [0.9, 0.5], "reasons": ["r", "s"]}
    )
    learned = pl.DataFrame({"bank_id": ["B", "B"], "account_id": ["x", "y"], "p": [0.0, 1.0], "why": ["w", "v"]})
    assert blend_learned(alerts, learned, 0.0, 10).equals(alerts)
    moved = blend_learned(alerts, learned, 0.5, 10)
    assert moved["account_id"].to_list() == ["y", "x"] and moved["rank"].to_list() == [1, 2]
    assert moved["reasons"][0].startswith("s; Learned from 10 decisions: probability 1.0; v")


def test_with_no_decisions_the_ranking_is_exactly_todays(tmp_path):
    from casework.learning import LearningError, fit_reranker

    db = generated_store(tmp_path, accounts=2000, days=45, seed=11)
    res = score_store(db, tmp_path / "out", models_dir=tmp_path / "m")
    with pytest.raises(LearningError, match="0 escalated or reported \\(needs 10\\), 0 dismissed"):
        fit_reranker(db, Settings(), models_dir=tmp_path / "m")
    assert not (tmp_path / "m" / "reranker").exists()
    off = scratch_run(db, Settings().with_overrides(**{"rerank.enabled": False}), tmp_path / "m")["alerts"]
    on = scratch_run(db, Settings(), tmp_path / "m")
    ranking = ["rank", "bank_id", "account_id", "score", "typology", "rules"]
    assert on["reranker"] is None and on["alerts"].select(ranking).equals(off.select(ranking))
    assert on["alerts"].select("account_id", "score").equals(res.alerts.select("account_id", "score"))
    con = store.peek(db)
    try:
        assert con.execute("SELECT reranker_version FROM runs").fetchall() == [(None,)]
    finally:
        con.close()


def test_fitted_reranker_blends_in_and_is_recorded(decided, tmp_path):
    from casework.learning import fit_reranker

    root, db, res, ids = decided
    few = Settings().with_overrides(**{"rerank.min_positives": 2, "rerank.min_negatives": 2})
    out = fit_reranker(db, few, models_dir=tmp_path / "m", seed=3)
    assert (out["positives"], out["negatives"]) == (3, 2) and 0 < out["weight"] < 0.05
    run = scratch_run(db, few, tmp_path / "m")
    assert run["reranker"] == out["version"]
    assert run["alerts"]["reasons"].str.contains("Learned from 5 decisions: probability").all()


def test_commands_that_only_read_decisions_never_make_a_casework_database(decided, tmp_path, capsys):
    """Found by a hostile-input sweep: with the casework database gone, backtest, labels, rules --stats and rerank
    each made an empty one beside the store, and verify-audit then called the lost audit log "intact"."""
    import shutil

    from pipelines.casework_db import default_path

    root, db, res, ids = decided
    copy = tmp_path / "s.duckdb"
    shutil.copy(db, copy)  # the store without its casework database
    cfg = tmp_path / "c.yaml"
    cfg.write_text("fusion: {min_score: 0.3}\n")
    assert main(["backtest", "--db", str(copy), "--config", str(cfg), "--quiet"]) == 0
    assert main(["labels", "--db", str(copy), "--out", str(tmp_path / "labels.csv")]) == 0
    assert main(["rules", "--stats", "--db", str(copy)]) == 0
    assert main(["status", "--db", str(copy)]) == 0
    assert main(["rerank", "--db", str(copy)]) == 1  # no decisions to learn from, said in one line
    assert "decisions" in capsys.readouterr().err
    assert not default_path(copy).exists()
    assert main(["verify-audit", "--db", str(copy)]) == 2
    assert "no casework database beside the store" in capsys.readouterr().err
