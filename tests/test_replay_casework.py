"""A replay (`score --as-of DAY`) sees the casework as it stood on that day: decisions recorded later do not hold an
account back nor seed the network rules, and a re-ranker that knew later decisions is not blended in."""

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from casework.backtest import backtest
from casework.dispositions import record_disposition
from casework.learning import fit_reranker
from detectors.reranker import Reranker
from detectors.scoring import apply_decisions
from pipelines import store
from pipelines.casework_as_of import statuses_as_of
from pipelines.casework_db import open_casework
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings
from tests.conftest import generated_store
from tests.test_tuning import _toy_design

LINKED = "NET_LINKED_TO_REPORTED"
# every account with a score is listed, so a network rule's hit shows whatever else the account scored
EVERYONE = {"window.days": 30, "budget.share": 1.0, "fusion.min_score": 0.0}


def _query(db, sql: str, params=None) -> list:
    con = store.peek(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _linked(alerts: pl.DataFrame) -> int:
    return alerts.filter(pl.col("rules").list.contains(LINKED)).height


@pytest.fixture(scope="module")
def decided_today(tmp_path_factory):
    """A store scored once; today an investigator dismissed its top alert and escalated the next ten (with two more
    dismissed as explained, so a re-ranker can be fitted), all after the store's last booking day."""
    root = tmp_path_factory.mktemp("replay")
    db = generated_store(root, accounts=2000, days=40, seed=11)
    day = _query(db, "SELECT max(booked_at) FROM transactions")[0][0].date()
    assert day < datetime.now(timezone.utc).date()  # so every decision below is recorded after `day`
    first = score_and_publish(db, root / "first", Settings().with_overrides(**EVERYONE))
    assert _linked(first.alerts) == 0  # nothing escalated yet: no seeds
    top = first.alerts.sort("rank")
    cw = open_casework(db)
    record_disposition(cw, top["alert_id"][0], "dismiss", "inv", "explained")
    for i in top["alert_id"][1:11]:
        record_disposition(cw, i, "escalate", "inv")
    for i in top["alert_id"][11:13]:
        record_disposition(cw, i, "dismiss", "inv", "explained")
    dismissed = (top["bank_id"][0], top["account_id"][0])
    return root, db, day, first, dismissed


def _has(alerts: pl.DataFrame, account: tuple) -> bool:
    return alerts.filter((pl.col("bank_id") == account[0]) & (pl.col("account_id") == account[1])).height == 1


def test_a_replay_does_not_hold_back_or_seed_with_later_decisions(decided_today):
    root, db, day, first, dismissed = decided_today
    s = Settings().with_overrides(**EVERYONE)
    now = score_and_publish(db, root / "now", s)
    then = score_and_publish(db, root / "then", s.with_overrides(**{"window.as_of": day}))
    assert not _has(now.alerts, dismissed) and _has(then.alerts, dismissed)  # held back today, not on `day`
    assert _linked(now.alerts) > 0 and _linked(then.alerts) == 0  # the escalations seed today's network rules only
    # the replay laid its decisions over a copy: the store's own copy and the casework keep today's
    assert _query(db, "SELECT status FROM alert_status WHERE alert_id = ?", [first.alerts.sort("rank")["alert_id"][0]]) == [
        ("dismissed",)
    ]
    assert open_casework(db).statuses().filter(pl.col("status") == "escalated").height == 10
    # a backtest of the day replays it alike (its scratch runs would otherwise read the store's copy, now today's)
    r = backtest(db, s.with_overrides(**{"window.as_of": day}))
    linked = r["by_rule"].get(LINKED, {})
    assert r["alerts_after"] > 0 and linked.get("before", 0) == linked.get("after", 0) == 0


def test_a_replay_does_not_blend_a_reranker_fitted_later(decided_today):
    root, db, day, first, dismissed = decided_today
    models = root / "models"
    few = Settings().with_overrides(**{"rerank.min_positives": 2, "rerank.min_negatives": 2})
    fit_reranker(db, few, models_dir=models, seed=1)
    s = Settings().with_overrides(**{"window.days": 30})
    now = score_and_publish(db, root / "rr-now", s, models_dir=models)
    then = score_and_publish(db, root / "rr-then", s.with_overrides(**{"window.as_of": day}), models_dir=models)
    used = dict(_query(db, "SELECT run_id, reranker_version FROM runs WHERE run_id IN (?, ?)", [now.run_id, then.run_id]))
    assert used[now.run_id] is not None and used[then.run_id] is None
    assert (
        now.alerts["reasons"].str.contains("Learned from").any() and not then.alerts["reasons"].str.contains("Learned from").any()
    )


def test_the_newest_reranker_known_by_the_day_is_chosen(tmp_path):
    x, y = _toy_design(2, n=30)
    m, made = Reranker(random_state=0, C=0.1).fit(x, y), {}
    for name, fitted, as_of in (
        ("a", "20260901T000000", None),
        ("b", "20261001T000000", None),
        ("c", "20261201T000000", "2026-09-15"),
    ):
        m.version, m.as_of = f"rerank-{fitted}-{name}", date.fromisoformat(as_of) if as_of else None
        m.save(tmp_path)  # one fit saved three times: as fitted on three days, one of them with `rerank --as-of`
        made[name] = m.version
    pick = {
        d: getattr(Reranker.latest(tmp_path, date.fromisoformat(d)), "version", None)
        for d in ("2026-08-31", "2026-09-14", "2026-09-15", "2026-10-01")
    }
    assert pick == {"2026-08-31": None, "2026-09-14": made["a"], "2026-09-15": made["c"], "2026-10-01": made["b"]}
    assert Reranker.latest(tmp_path).version == made["c"]  # without a day: the last one saved, as before


def test_statuses_as_of_take_each_alerts_last_decision_by_the_day(tmp_path, monkeypatch):
    from pipelines import casework_db

    cw = open_casework(tmp_path / "s.duckdb")
    rows = pl.DataFrame(
        {"alert_id": list("abcd"), "bank_id": ["B"] * 4, "account_id": list("wxyz"), "last_score": [0.9, 0.8, 0.7, 0.6]}
    )
    cw.sync_alerts(rows.with_columns(pl.lit(["R1"]).alias("rules")))
    day = date(2026, 9, 30)
    clock = {"t": datetime(2026, 9, 30, 23, 59, tzinfo=timezone.utc)}
    monkeypatch.setattr(casework_db, "now", lambda: clock["t"])
    for alert in "ab":
        record_disposition(cw, alert, "dismiss", "inv", "explained")
    clock["t"] += timedelta(minutes=2)  # the next day
    record_disposition(cw, "b", "reopen", "inv")
    record_disposition(cw, "c", "escalate", "inv")
    then = statuses_as_of(cw, day).sort("alert_id")
    assert then["status"].to_list() == ["dismissed", "dismissed", "open", "open"]
    assert then["dismiss_reason"].to_list() == ["explained", "explained", None, None]
    assert then["dismissed_score"].to_list() == [0.9, None, None, None]  # b's dismissal is no longer its state
    assert then["decided_at"].to_list()[:2] == [datetime(2026, 9, 30, 23, 59, tzinfo=timezone.utc)] * 2
    today = statuses_as_of(cw, day + timedelta(days=1)).sort("alert_id")
    assert today.drop("decided_at").equals(cw.statuses().sort("alert_id"))


def test_a_replayed_dismissal_no_longer_standing_takes_its_score_from_the_alert_as_raised(tmp_path):
    """Dismissed on the day, reopened since: the replay holds it back with the score and rules its alert had when it
    was dismissed (the casework keeps only the standing dismissal's), over a copy; the store's row is left as it is."""
    con = store.connect(tmp_path / "s.duckdb")
    try:
        t = [datetime(2026, 9, d, tzinfo=timezone.utc) for d in (1, 20, 30)]
        for run, score, rules, at in (("r1", 0.5, ["R1"], t[0]), ("r2", 0.7, ["R1", "R2"], t[1]), ("r3", 0.9, ["R3"], t[2])):
            con.execute(
                "INSERT INTO alerts (run_id, alert_id, score, rules, created_at) VALUES (?, 'a', ?, ?, ?)",
                [run, score, rules, at],
            )
        con.execute("INSERT INTO alert_status (alert_id, bank_id, account_id, status) VALUES ('a', 'B', 'x', 'open')")
        then = pl.DataFrame(
            {
                "alert_id": ["a"],
                "status": ["dismissed"],
                "dismiss_reason": ["explained"],
                "dismissed_score": [None],
                "dismissed_rules": [None],
                "reported_at": [None],
                "report_file": [None],
                "decided_at": [t[1] + timedelta(days=1)],
            },
            schema_overrides={
                "dismissed_score": pl.Float64,
                "dismissed_rules": pl.List(pl.Utf8),
                "reported_at": pl.Datetime("us", "UTC"),
                "report_file": pl.Utf8,
            },
        )
        apply_decisions(con, then, replay=True)
        row = "SELECT status, dismissed_score, dismissed_rules FROM {} WHERE alert_id = 'a'"
        assert con.execute(row.format("alert_status")).fetchall() == [("dismissed", 0.7, ["R1", "R2"])]
        assert con.execute(row.format('"s".main.alert_status')).fetchall() == [("open", None, None)]
    finally:
        con.close()


def test_a_replay_is_seeded_only_by_fiu_reports_on_bookings_up_to_the_day(decided_today, tmp_path):
    """An FIU report seeds the network rules of a replay when its transaction was booked by the as-of day; a report on
    a later booking was not made yet (a report cannot precede its transaction). Today's run is seeded by both."""
    import shutil

    root, db, day, first, dismissed = decided_today
    s = Settings().with_overrides(**EVERYONE)
    for booked, seeds_the_replay in ((day + timedelta(days=5), False), (day - timedelta(days=5), True)):
        copy = tmp_path / f"fiu-{seeds_the_replay}.duckdb"
        shutil.copy(db, copy)  # the store alone, its copy of the decisions emptied: only the report can seed
        con = store.connect(copy)
        try:
            con.execute("DELETE FROM alert_status")
            # one report on the top alert's account, the kind of FIU-NL report the network rules propagate
            con.execute(
                """INSERT INTO fiu_reports BY NAME
                   SELECT * EXCLUDE (booked_at, submission_id), CAST(? AS TIMESTAMPTZ) AS booked_at,
                          'R1' AS report_id, 'ENTITY_X' AS reporting_entity, 'HT01' AS indicator_code
                   FROM transactions WHERE account_id = ? LIMIT 1""",
                [datetime.combine(booked, datetime.min.time(), tzinfo=timezone.utc).isoformat(), dismissed[1]],
            )
        finally:
            con.close()
        now = score_and_publish(copy, tmp_path / f"now-{seeds_the_replay}", s)
        then = score_and_publish(copy, tmp_path / f"then-{seeds_the_replay}", s.with_overrides(**{"window.as_of": day}))
        assert _linked(now.alerts) > 0
        assert (_linked(then.alerts) > 0) == seeds_the_replay, booked
        if not seeds_the_replay:  # a sharded replay's coordinator seeds the network rules alike
            sharded = score_and_publish(copy, tmp_path / "then-sharded", s.with_overrides(**{"window.as_of": day}), shards=2)
            assert _linked(sharded.alerts) == 0 and sharded.alerts.height == then.alerts.height
