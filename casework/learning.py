"""`thb-signals rerank`: fit the re-ranker (detectors/reranker.py) on what investigators decided.

Labels per account, from casework.dispositions.decisions_frame: positive when any of its alerts was escalated or
reported, negative when dismissed as explained or lawful business (and never positive); other dismissals are no
label. The features and rule hits are those of the window the settings name (`window.as_of` replays a past month),
computed by a scratch run that only reads the store. Fewer decisions than `rerank.min_positives` / `min_negatives`:
no model (the ranking stays as it is).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from casework.dispositions import decisions_frame
from detectors.reranker import KEYS, Reranker, design
from pipelines.casework_db import open_casework
from schemas.settings import Settings


class LearningError(ValueError):
    """Not enough decisions to learn from: one line saying how many there are and how many are needed."""


def account_labels(cw) -> pl.DataFrame:
    """bank_id, account_id, label (1/0) per decided account; a positive on any alert wins."""
    d = decisions_frame(cw).filter(pl.col("label").is_not_null())
    return d.group_by(KEYS).agg(pl.col("label").max().cast(pl.Int8)).sort(KEYS)


def fit_reranker(db: str | Path, settings: Settings, models_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Fit, save beside the anomaly model and return what was learned (version, counts, weight, path)."""
    from detectors.whatif import scratch_run

    models_dir = Path(models_dir) if models_dir else Path(str(db) + ".models")
    labels = account_labels(open_casework(db))  # decisions: the casework database beside the store (or THB_CASEWORK_URL)
    s = settings.rerank
    pos = int(labels["label"].sum()) if labels.height else 0
    neg = labels.height - pos
    if pos < s.min_positives or neg < s.min_negatives:
        raise LearningError(
            f"not enough decisions to learn from: {pos} escalated or reported (needs {s.min_positives}), "
            f"{neg} dismissed as explained or lawful business (needs {s.min_negatives}); the ranking stays as it is"
        )
    run = scratch_run(db, settings, models_dir, until="rerank")  # the scores before learning, as the run will blend them
    x = design(run["features"], run["hits"], run["alerts"]).join(labels, on=KEYS, how="inner")
    if x["label"].n_unique() < 2:
        raise LearningError("the decided accounts have no activity in this window, or only one kind of decision")
    model = Reranker(random_state=seed).fit(x.drop("label"), x["label"].to_numpy())
    path = model.save(models_dir)
    return {
        "version": model.version,
        "positives": model.positives,
        "negatives": model.negatives,
        "not_in_window": labels.height - x.height,
        "weight": model.weight(s.max_weight, s.half_weight_decisions),
        "path": str(path),
    }
