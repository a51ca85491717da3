"""Learning from escalations alone (positive-unlabelled learning): a model is fitted once enough accounts were escalated,
even before any dismissal, and moves accounts like them up; too few escalations: no model and the ranking unchanged."""

import numpy as np
import polars as pl
import pytest

from casework.dispositions import record_disposition
from casework.learning import LearningError, fit_reranker
from detectors.reranker import KEYS, Reranker, from_json
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings
from tests.test_learning import month_one
from tests.test_tuning import _toy_design


def test_unlabelled_rows_are_not_decisions_and_the_label_frequency_rescales():
    x, y = _toy_design(5)
    u = (y == 0) & (np.arange(len(y)) % 2 == 0)  # half the negatives are only unlabelled
    a = Reranker(random_state=3).fit(x, y, u)
    b = Reranker(random_state=3).fit(x.reverse(), y[::-1], u[::-1])
    assert np.array_equal(a.predict(x), b.predict(x)) and a.label_frequency == b.label_frequency  # deterministic
    assert (a.positives, a.negatives, a.unlabelled) == (y.sum(), (~u).sum() - y.sum(), u.sum())
    assert a.decisions == a.positives + a.negatives and 0.05 <= a.label_frequency < 1
    assert sum(a.by_rule["SE01_AD_MICRO"]) == a.decisions  # the words count decisions, not unlabelled rows
    g = a.model.predict_proba(a._matrix(x))[:, 1]
    assert np.allclose(a.predict(x), np.minimum(g / a.label_frequency, 1))
    assert a.predict(x)[y == 1].mean() > a.predict(x)[u].mean() + 0.2
    with pytest.raises(ValueError, match="unlabelled row cannot be a positive"):
        Reranker().fit(x, y, y == 1)


def test_one_escalation_and_its_unlabelled_rows_fit_without_a_label_frequency():
    """Found by a hostile-input sweep: settings allow min_positives 1 with unlabelled rows, and the fit then failed
    ("n_splits=2 cannot be greater than the number of members in each class"). With one positive no held-out
    estimate of c exists: c = 1, no lift."""
    x, y = _toy_design(5)
    first = int(np.flatnonzero(y == 1)[0])
    keep = (y == 0) | (np.arange(len(y)) == first)
    x, y = x.filter(pl.Series(keep)), y[keep]
    r = Reranker(random_state=3).fit(x, y, y == 0)
    assert (r.positives, r.negatives, r.label_frequency) == (1, 0, 1.0) and r.predict(x).shape == (len(y),)


def _inputs(db, run_id: str) -> pl.DataFrame:
    """The run's alerts: rank, score after the blend, reasons and the design row before it."""
    con = store.connect(db, read_only=True)
    try:
        a = con.sql(
            """SELECT bank_id, account_id, score, reasons, CAST(learning_input AS VARCHAR) AS learning_input FROM alerts
               WHERE run_id = $r ORDER BY score DESC, bank_id, account_id""",
            params={"r": run_id},
        ).pl()
    finally:
        con.close()
    return a.select(*KEYS, "score", "reasons").join(from_json(a), on=KEYS, maintain_order="left")


@pytest.fixture(scope="module")
def escalations_only(tmp_path_factory):
    """Month 1 scored; its top 9 alerts escalated, a fit tried and month 2 scored; then 3 more escalated (12, no
    dismissal), a fit and month 2 scored again."""
    root = tmp_path_factory.mktemp("pu")
    db, s, first = month_one(root)
    ids = first.alerts.sort("rank")["alert_id"].to_list()
    cw = open_casework(db)
    for i in ids[:9]:
        record_disposition(cw, i, "escalate", "inv")
    out = {"db": db, "escalated": first.alerts.sort("rank").head(12).select(KEYS)}
    with pytest.raises(LearningError, match="9 escalated or reported \\(needs 10\\), 0 dismissed") as e:
        fit_reranker(db, s, models_dir=root / "models", seed=1)
    out["near_miss_error"], out["near_miss_models"] = str(e.value), (root / "models" / "reranker").exists()
    out["near_miss_run"] = _inputs(db, score_and_publish(db, root / "m2a", s, models_dir=root / "models").run_id)
    for i in ids[9:12]:
        record_disposition(cw, i, "escalate", "inv")
    with pytest.raises(LearningError, match="or rerank.unlabelled_per_positive above 0"):  # the old rule, on request
        fit_reranker(db, s.with_overrides(**{"rerank.unlabelled_per_positive": 0}), models_dir=root / "models", seed=1)
    out["fit"] = fit_reranker(db, s, models_dir=root / "models", seed=1)
    out["again"] = fit_reranker(db, s, models_dir=root / "again", seed=1)
    out["model"] = Reranker.latest(root / "models")
    out["run"] = _inputs(db, score_and_publish(db, root / "m2b", s, models_dir=root / "models").run_id)
    return out


def test_too_few_escalations_fit_nothing_and_leave_the_ranking_as_it_is(escalations_only):
    r = escalations_only
    assert not r["near_miss_models"]
    run = r["near_miss_run"]
    assert run.height > 0 and not run["reasons"].str.contains("Learned from").any()
    assert run["score"].to_list() == pytest.approx(run["fused_score"].to_list())  # the score before learning, unmoved


def test_escalations_alone_fit_a_model_that_moves_accounts_like_them_up(escalations_only):
    r = escalations_only
    fit, model = r["fit"], r["model"]
    assert (fit["positives"], fit["negatives"]) == (12, 0) and fit["unlabelled"] == 48 and 0 < fit["label_frequency"] <= 1
    assert r["again"]["version"].split("-")[-1] == fit["version"].split("-")[-1]  # the same sample and model for a seed
    assert fit["weight"] == pytest.approx(Settings().rerank.max_weight * 12 / (12 + Settings().rerank.half_weight_decisions))
    run = r["run"]
    assert run["reasons"].str.contains("Learned from 12 decisions").any()
    p = pl.Series("p", model.predict(run))
    undecided = run.with_columns(p).join(r["escalated"], on=KEYS, how="anti")  # ranked among themselves
    undecided = undecided.with_columns(
        pl.int_range(1, pl.len() + 1).alias("after"), pl.col("fused_score").rank("ordinal", descending=True).alias("before")
    )
    like = undecided.filter(pl.col("p") >= pl.col("p").quantile(0.9))  # the undecided the model finds most like the escalated
    unlike = undecided.filter(pl.col("p") <= pl.col("p").quantile(0.5))
    assert (like["before"] - like["after"]).mean() > 0 > (unlike["before"] - unlike["after"]).mean()
    decided_now = run.with_columns(p).join(r["escalated"], on=KEYS, how="semi")  # the escalated, as month 2 shows them
    assert decided_now["p"].mean() > undecided["p"].mean() + 0.2


def test_unlabelled_per_positive_is_validated():
    assert Settings().rerank.unlabelled_per_positive == 4
    with pytest.raises(ValueError, match=r"rerank.unlabelled_per_positive: .*\(allowed: 0 <= value <= 100\)"):
        Settings().with_overrides(**{"rerank.unlabelled_per_positive": 101})
