"""Learning from decisions: what the re-ranker learns from (each alert's input as its run saw it), decisions replayed
as they stood on an as-of day, the bounded blend, and the simulation's measure."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from casework.dispositions import record_disposition
from casework.learning import LearningError, decided_inputs, fit_reranker, labelled_alerts
from detectors.fusion import blend_learned
from detectors.reranker import CS, KEYS, Reranker, from_json, to_json
from pipelines import snapshot, store
from pipelines.casework_db import open_casework
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings
from synthetic.learning_sim import precision_at, summary
from tests.conftest import generated_store
from tests.test_tuning import _toy_design

FEW = {"rerank.min_positives": 2, "rerank.min_negatives": 2}


def test_learning_input_round_trips_and_an_older_input_reads_as_zero():
    x, _ = _toy_design(2, n=30)
    back = from_json(x.select(*KEYS, to_json(x)))
    assert back.select(x.columns).equals(x.with_columns(pl.col(c).cast(pl.Float64) for c in x.columns if x[c].dtype.is_float()))
    old = pl.DataFrame({"bank_id": ["B"], "account_id": ["a"], "learning_input": ['{"senders": 3, "rules": ["SE01_AD_MICRO"]}']})
    row = from_json(old)
    assert row["senders"][0] == 3 and row["fused_score"][0] == 0 and row["rule:SE01_AD_MICRO"][0] == 1
    assert row["rule:SE02_HOTELS"][0] == 0 and row["top_rule"][0] is None


def test_blend_moves_a_score_by_at_most_its_weight():
    alerts = pl.DataFrame(
        {"rank": [1, 2, 3], "bank_id": ["B"] * 3, "account_id": ["x", "y", "z"], "score": [0.9, 0.5, 0.0], "reasons": ["r"] * 3}
    )
    learned = pl.DataFrame({"bank_id": ["B"] * 3, "account_id": ["x", "y", "z"], "p": [0.0, 1.0, 1.0], "why": ["w"] * 3})
    moved = blend_learned(alerts, learned, 0.4, 50).sort("account_id")
    assert moved["score"].to_list() == pytest.approx([0.9 * 0.6, 0.5 * 1.4, 0.0])  # nothing lifts an account from 0
    neutral = learned.with_columns(pl.lit(0.5).alias("p"))
    assert blend_learned(alerts, neutral, 0.4, 50)["score"].to_list() == alerts["score"].to_list()


def test_cross_validated_regularisation_is_chosen_and_deterministic():
    x, y = _toy_design(3)
    a, b = Reranker(random_state=1).fit(x, y), Reranker(random_state=1).fit(x.reverse(), y[::-1])
    assert a.chosen_C == b.chosen_C and np.array_equal(a.predict(x), b.predict(x))
    noise = Reranker(random_state=1).fit(x, np.random.default_rng(9).permutation(y))  # labels that say nothing
    lone = np.zeros_like(y)
    lone[0] = 1  # one positive cannot be cross-validated: a fixed, strong regularisation
    assert Reranker(random_state=1).fit(x, lone).chosen_C == 0.1
    assert noise.chosen_C <= 0.01 and np.ptp(noise.predict(x)) < 0.2  # strongly shrunk: no confident guesses from noise


def month_one(root):
    """A generated store scored at the end of its first month (30-day windows): the store, the settings, that run."""
    db = generated_store(root, accounts=2500, days=75, seed=13)
    s = Settings().with_overrides(**{"window.days": 30})
    con = store.peek(db)
    try:
        last = con.execute("SELECT max(booked_at) FROM transactions").fetchone()[0].date()
    finally:
        con.close()
    return db, s, score_and_publish(db, root / "m1", s.with_overrides(**{"window.as_of": last - timedelta(days=31)}))


@pytest.fixture(scope="module")
def two_months(tmp_path_factory):
    """A store scored at the end of one month, decisions on that run's alerts, then scored a month later."""
    root = tmp_path_factory.mktemp("learning")
    db, s, first = month_one(root)
    ids = first.alerts.sort("rank")["alert_id"].to_list()
    cw = open_casework(db)
    for i in ids[:3]:
        record_disposition(cw, i, "escalate", "inv")
    for i in ids[3:6]:
        record_disposition(cw, i, "dismiss", "inv", "explained")
    second = score_and_publish(db, root / "m2", s)
    return root, db, first, second, ids[:6]


def test_alerts_keep_their_input_and_a_fit_learns_from_it_as_decided(two_months, tmp_path):
    root, db, first, second, ids = two_months
    con = store.connect(db, read_only=True)
    try:
        kept = con.execute(
            "SELECT run_id, count(*), count(learning_input) FROM alerts GROUP BY 1 ORDER BY min(created_at)"
        ).fetchall()
        then = con.sql(
            "SELECT bank_id, account_id, CAST(learning_input AS VARCHAR) AS learning_input FROM alerts WHERE run_id = $r",
            params={"r": first.run_id},
        ).pl()
    finally:
        con.close()
    assert [r[0] for r in kept] == [first.run_id, second.run_id] and all(n == k > 0 for _, n, k in kept)
    assert "learning_input" not in first.alerts.columns  # the alert files and the page do not carry it
    page = snapshot.open_current(db)
    try:
        assert "learning_input" not in [c[0] for c in page.execute("DESCRIBE alerts").fetchall()]
    finally:
        page.close()
    x = decided_inputs(db, labelled_alerts(open_casework(db)))
    assert x.height == 6 and x["label"].sum() == 3
    expected = from_json(then).join(x.select(KEYS), on=KEYS, how="semi").sort(KEYS)
    assert x.drop("label").equals(expected.select(x.drop("label").columns))  # as the first run showed them, not the second
    out = fit_reranker(db, Settings().with_overrides(**FEW), models_dir=tmp_path / "m", seed=2)
    assert (out["positives"], out["negatives"], out["not_in_window"]) == (3, 3, 0) and out["C"] in CS


def test_as_of_uses_only_the_decisions_recorded_by_then(two_months, tmp_path):
    root, db, first, second, ids = two_months
    cw = open_casework(db)
    assert labelled_alerts(cw, date.today() - timedelta(days=1)).height == 0
    assert labelled_alerts(cw, date.today()).height == 6
    before = Settings().with_overrides(**FEW, **{"window.as_of": date.today() - timedelta(days=1)})
    with pytest.raises(LearningError, match="0 escalated or reported"):
        fit_reranker(db, before, models_dir=tmp_path / "m")
    assert not (tmp_path / "m" / "reranker").exists()


def test_sim_precision_counts_only_undecided_accounts():
    ranked = pl.DataFrame({"bank_id": ["B"] * 5, "account_id": list("abcde")})
    labels = pl.DataFrame({"bank_id": ["B"] * 5, "account_id": list("abcde"), "positive": [True, True, False, True, False]})
    decided = pl.DataFrame({"bank_id": ["B"], "account_id": ["a"]})
    p, top = precision_at(ranked, decided, labels, 2)
    assert p == 0.5 and top["account_id"].to_list() == ["b", "c"]
    months = [{"p": v} for v in (0.6, 0.65, 0.64, 0.7, 0.72)]
    assert summary(months, "p") == {
        "precision": [0.6, 0.65, 0.64, 0.7, 0.72],
        "gain_1_to_last": 0.12,
        "largest_fall": 0.01,
        "goal_met": True,
    }
    assert not summary([{"p": v} for v in (0.6, 0.75, 0.7, 0.8)], "p")["goal_met"]  # a fall of 0.05
    assert not summary([{"p": v} for v in (0.6, 0.62, 0.65, 0.69)], "p")["goal_met"]  # below 0.9, a rise of 0.09 only
    assert summary([{"p": v} for v in (0.99, 0.98, 0.97, 0.99)], "p")["goal_met"]  # from 0.9 up only the falls count
    assert not summary([{"p": v} for v in (0.99, 0.98, 0.95, 0.97)], "p")["goal_met"]  # a fall of 0.03


def test_backtest_as_of_counts_later_decisions_as_open(two_months):
    from casework.backtest import account_decisions

    root, db, first, second, ids = two_months
    cw = open_casework(db)
    now = account_decisions(cw)
    then = account_decisions(cw, as_of=date.today() - timedelta(days=1))
    assert set(now["decision"]) >= {"escalated", "dismissed"} and set(then["decision"]) == {"open"}
    assert then["reason"].null_count() == then.height
    assert account_decisions(cw, as_of=date.today()).sort(KEYS).equals(now.sort(KEYS))
