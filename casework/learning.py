"""`thb-signals rerank`: fit the re-ranker (detectors/reranker.py) on what investigators decided.

Labels per account, from casework.dispositions.decisions_frame: positive when any of its alerts was escalated or
reported, negative when dismissed as explained or lawful business (and never positive); other dismissals are no
label. What it learns from is what the decided alert showed: the features, scores before learning and rule hits its
run kept (`alerts.learning_input`, the latest run that raised the alert before it was decided). Only alerts from before
that column existed are featured from the window the settings name, by a scratch run that only reads the store.
With `window.as_of`, decisions recorded after that day are not used: a past month is replayed with the decisions as
they stood then. Fewer escalations than `rerank.min_positives`: no model (the ranking stays as it is).

Fewer dismissals than `rerank.min_negatives` (a team first escalates what is plain, so its early decisions are nearly
all positives): positive-unlabelled learning (detectors/reranker.py). `rerank.unlabelled_per_positive` undecided alerts
per escalated account, drawn reproducibly for the seed from the lists the decided alerts were raised in (scored at least
`fusion.min_score`, as those runs saw them), are learned from as unlabelled; the dismissals there are stay negatives.
0: no model until the dismissals come.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from casework.dispositions import decisions_frame, recorded_after
from detectors.reranker import KEYS, Reranker, design, from_json
from pipelines import store
from pipelines.casework_db import open_casework
from schemas.settings import Settings


class LearningError(ValueError):
    """Not enough decisions to learn from: one line saying how many there are and how many are needed."""


def labelled_alerts(cw, as_of: date | None = None) -> pl.DataFrame:
    """alert_id, bank_id, account_id, label (1/0), decided_at per decided alert; with `as_of`, only decisions recorded
    by the end of that day (UTC)."""
    d = decisions_frame(cw).filter(pl.col("label").is_not_null())
    if as_of is not None:
        d = d.filter(~recorded_after(as_of))
    return d.select("alert_id", *KEYS, "label", "decided_at")


def account_labels(cw, as_of: date | None = None) -> pl.DataFrame:
    """bank_id, account_id, label (1/0) per decided account; a positive on any alert wins."""
    return per_account(labelled_alerts(cw, as_of))


def per_account(decided: pl.DataFrame) -> pl.DataFrame:
    """bank_id, account_id, label per account of decided alerts; a positive on any alert wins."""
    return decided.group_by(KEYS).agg(pl.col("label").max().cast(pl.Int8)).sort(KEYS)


def decided_inputs(db: str | Path, decided: pl.DataFrame) -> pl.DataFrame:
    """Per decided account its label and the design row of its latest decided alert as the run that raised it (before
    the decision) saw it; accounts whose alerts kept no input are missing (the caller features them from a window)."""
    con = store.connect(db, read_only=True)
    try:
        con.register("decided", decided.select("alert_id", "decided_at").to_arrow())
        rows = con.sql("""SELECT a.alert_id, a.created_at, CAST(a.learning_input AS VARCHAR) AS learning_input
                          FROM alerts a JOIN decided d USING (alert_id)
                          WHERE a.learning_input IS NOT NULL AND a.created_at <= d.decided_at
                          QUALIFY row_number() OVER (PARTITION BY a.alert_id ORDER BY a.created_at DESC) = 1""").pl()
    finally:
        con.close()
    seen = decided.join(rows, on="alert_id").sort("created_at", "alert_id")
    last = seen.group_by(KEYS, maintain_order=True).last().select(*KEYS, "learning_input")
    return from_json(last).join(per_account(decided), on=KEYS).sort(KEYS)


def unlabelled_inputs(db: str | Path, decided: pl.DataFrame, n: int, seed: int, floor: float) -> pl.DataFrame:
    """Design rows of `n` undecided accounts (a reproducible sample for `seed`) among the alerts scored at least `floor`
    (fusion.min_score: what the list shows) of the runs that raised the decided alerts before their decision, each as
    its latest such run saw it. What investigators had before them and did not decide: unlabelled, not negative."""
    con = store.connect(db, read_only=True)
    try:
        con.register("decided", decided.select("alert_id", *KEYS, "decided_at").to_arrow())
        rows = con.sql(
            """WITH lists AS (
                              SELECT DISTINCT a.run_id FROM alerts a JOIN decided d USING (alert_id)
                              WHERE a.created_at <= d.decided_at)
                          SELECT a.bank_id, a.account_id, CAST(a.learning_input AS VARCHAR) AS learning_input
                          FROM alerts a JOIN lists USING (run_id)
                          WHERE a.learning_input IS NOT NULL AND CAST(a.learning_input->>'fused_score' AS DOUBLE) >= $floor
                            AND NOT EXISTS (SELECT 1 FROM decided d WHERE d.bank_id = a.bank_id AND d.account_id = a.account_id)
                          QUALIFY row_number() OVER (PARTITION BY a.bank_id, a.account_id
                                                     ORDER BY a.created_at DESC, a.run_id DESC) = 1""",
            params={"floor": floor},
        ).pl()
    finally:
        con.close()
    rows = rows.sort(KEYS)
    if rows.height > n:
        rows = rows[np.sort(np.random.default_rng([seed, 16]).choice(rows.height, n, replace=False))]
    return from_json(rows).with_columns(pl.lit(0, dtype=pl.Int8).alias("label"))


def fit_reranker(db: str | Path, settings: Settings, models_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Fit, save beside the anomaly model and return what was learned (version, counts, weight, path)."""
    from detectors.whatif import scratch_run

    models_dir = Path(models_dir) if models_dir else Path(str(db) + ".models")
    decided = labelled_alerts(
        open_casework(db, create=False), settings.window.as_of
    )  # the casework database (or THB_CASEWORK_URL)
    labels = per_account(decided)
    s = settings.rerank
    pos = int(labels["label"].sum()) if labels.height else 0
    neg = labels.height - pos
    pu = neg < s.min_negatives  # too few dismissals: escalations against undecided alerts (positive-unlabelled)
    if pos < s.min_positives or (pu and not s.unlabelled_per_positive):
        raise LearningError(
            f"not enough decisions to learn from: {pos} escalated or reported (needs {s.min_positives}), "
            f"{neg} dismissed as explained or lawful business (needs {s.min_negatives}"
            f"{' or rerank.unlabelled_per_positive above 0' if pos >= s.min_positives else ''}); the ranking stays as it is"
        )
    x = decided_inputs(db, decided)
    older = labels.join(x, on=KEYS, how="anti")
    if older.height:  # decided before alerts kept their inputs: as they look in this window, before learning
        run = scratch_run(db, settings, models_dir, until="rerank")
        now = design(run["features"], run["hits"], run["alerts"]).join(older, on=KEYS, how="inner")
        x = pl.concat([x, now.select(x.columns)], how="vertical_relaxed")
    unlabelled = np.zeros(x.height, dtype=bool)
    if pu:
        u = unlabelled_inputs(db, decided, s.unlabelled_per_positive * pos, seed, settings.fusion.min_score)
        x = pl.concat([x, u.select(x.columns)], how="vertical_relaxed")
        unlabelled = np.r_[unlabelled, np.ones(u.height, dtype=bool)]
    if x["label"].n_unique() < 2 or x.filter(pl.Series(~unlabelled))["label"].sum() < 1:
        raise LearningError("the decided accounts have no activity in this window, or only one kind of decision")
    model = Reranker(random_state=seed).fit(x.drop("label"), x["label"].to_numpy(), unlabelled)
    model.as_of = settings.window.as_of  # a replay of a later day may blend it in (detectors.reranker.Reranker.latest)
    path = model.save(models_dir)
    return {
        "version": model.version,
        "positives": model.positives,
        "negatives": model.negatives,
        "unlabelled": model.unlabelled,
        "label_frequency": round(model.label_frequency, 4),
        "not_in_window": labels.height - (x.height - model.unlabelled),
        "C": model.chosen_C,
        "weight": model.weight(s.max_weight, s.half_weight_decisions),
        "path": str(path),
    }
