"""A supervised re-ranker learned from investigators' decisions, in the scikit-learn shape of detectors/anomaly.py.

Escalated and reported accounts are positives, accounts dismissed as explained or lawful business negatives (the
caller, casework/learning.py, reads the decisions; this module only sees features and labels). The model is a
logistic regression over the account's features (signed log scale, standardised) and its rule hits: small, exactly
reproducible for a seed, and its coefficients say in words what moved a score. Fitted models are versioned and saved
beside the anomaly model (MODELS/reranker/); a scoring run loads the latest and fusion blends its probability in with a
weight that grows with the number of decisions it learned from (detectors.fusion.blend_learned). No saved model:
nothing changes.

What it learns from is what the investigator saw: each alert keeps its design row (`learning_input`, the window of
the run that raised it), so an account decided months ago is learned from as it looked then, not as it looks in the
current window (a victim who has since gone quiet would otherwise teach that quiet accounts are positives). The
regularisation is chosen by cross-validated log-loss, so the probabilities stay calibrated on few decisions.

Escalations alone (too few dismissals yet): positive-unlabelled learning (Elkan & Noto, "Learning classifiers from only
positive and unlabeled data", KDD 2008). The caller adds a sample of undecided alerts as `unlabelled` rows with label 0
(any dismissals stay known negatives); the model g(x) then estimates how likely an account is to be one of the escalated,
and p(x) = g(x) / c, c the mean out-of-fold g over the escalated (the label frequency), is the probability of being a
positive like them. Ranking by p is ranking by g; dividing by c keeps the blend's p on the scale of a probability. The
blend's weight counts decisions only, never unlabelled rows.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from detectors.features import describe, feature_names
from detectors.patterns import PATTERNS
from detectors.rules import RULES
from pipelines import store

KEYS = ["bank_id", "account_id"]
FOLDER = "reranker"
CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # the regularisation strengths cross-validation chooses among
# a rule hit is shrunk harder than a feature (standardised, then scaled by this: about 11 times the penalty): a rule is
# one column that a handful of dismissals could otherwise condemn wholesale, while on generated data the same rule
# raises victims in one context and look-alikes in another
RULE_SHRINK = 0.3
# the score fusion gave the account: learning starts from it, so an account unlike any decided one keeps its rank
SCORE_COLUMNS = {"fused_score": "the score before learning", "rule_score": "the rules' score", "anomaly": "the anomaly score"}


def rule_columns() -> list[str]:
    return [f"rule:{r.id}" for r in RULES + PATTERNS]


def design(features: pl.DataFrame, hits: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
    """One row per account of `features`: its features, its fused score, rule score and anomaly (from `scored`, the
    ranked alerts before learning; 0 for an account below the floor), a 0/1 column per catalogue rule it hit, and
    `top_rule`: its heaviest rule, for the words."""
    cols = rule_columns()
    if hits.height:
        on = (
            hits.select(*KEYS, pl.format("rule:{}", "rule_id").alias("rule"), "severity")
            .unique([*KEYS, "rule"])
            .with_columns(pl.lit(1, dtype=pl.Int8).alias("hit"))
        )
        wide = on.pivot(on="rule", index=KEYS, values="hit", aggregate_function="max")
        top = on.sort("severity", "rule", descending=[True, False]).group_by(KEYS, maintain_order=True).first()
        wide = wide.join(top.select(*KEYS, pl.col("rule").str.strip_prefix("rule:").alias("top_rule")), on=KEYS)
    else:
        wide = pl.DataFrame(schema={"bank_id": pl.Utf8, "account_id": pl.Utf8, "top_rule": pl.Utf8})
    missing = [c for c in cols if c not in wide.columns]
    wide = wide.with_columns(*(pl.lit(0, dtype=pl.Int8).alias(c) for c in missing))
    scores = scored.select(*KEYS, pl.col("score").alias("fused_score"), "rule_score", "anomaly")
    out = (
        features.select(*KEYS, *feature_names())
        .join(scores, on=KEYS, how="left")
        .join(wide.select(*KEYS, "top_rule", *cols), on=KEYS, how="left")
    )
    return out.with_columns(*(pl.col(c).fill_null(0) for c in [*cols, *SCORE_COLUMNS]))


def to_json(x: pl.DataFrame) -> pl.Series:
    """Per row of design(): one JSON object (the features and scores by name, `rules`: the rules hit, `top_rule`),
    the alert's `learning_input`. Names, not positions: a model fitted later reads what it knows and takes 0 for the rest."""
    numbers = [*feature_names(), *SCORE_COLUMNS]
    hit = [pl.when(pl.col(c) > 0).then(pl.lit(c.removeprefix("rule:"))) for c in rule_columns()]
    return x.select(
        pl.struct(
            *(pl.col(c).cast(pl.Float64) for c in numbers),
            pl.concat_list(hit).list.drop_nulls().alias("rules"),
            "top_rule",
        )
        .struct.json_encode()
        .alias("learning_input")
    ).to_series()


def from_json(frame: pl.DataFrame) -> pl.DataFrame:
    """KEYS + `learning_input` (to_json) -> design() rows; a feature the input lacks (an older run) is 0."""
    numbers = [*feature_names(), *SCORE_COLUMNS]
    dtype = pl.Struct({**{c: pl.Float64 for c in numbers}, "rules": pl.List(pl.Utf8), "top_rule": pl.Utf8})
    x = frame.select(*KEYS, pl.col("learning_input").str.json_decode(dtype).alias("li")).unnest("li")
    return x.with_columns(
        *(pl.col(c).fill_null(0.0) for c in numbers),
        *(pl.col("rules").list.contains(c.removeprefix("rule:")).fill_null(False).cast(pl.Int8).alias(c) for c in rule_columns()),
    ).drop("rules")


class Reranker:
    def __init__(self, random_state: int = 0, C: float | None = None):
        """C None: the regularisation is chosen by cross-validated log-loss among CS (few decisions: strong)."""
        self.random_state, self.C = random_state, C
        self.columns = feature_names() + list(SCORE_COLUMNS) + rule_columns()
        self.model = None
        self.version: str | None = None
        self.decisions = 0
        self.positives = self.negatives = 0
        self.by_rule: dict[str, list[int]] = {}  # top rule -> [escalated, dismissed] among the decisions learned from
        self.as_of: date | None = None  # the day its decisions stood on (`rerank --as-of`); None: the day it was fitted
        self.unlabelled = 0  # undecided alerts learned from as unlabelled (positive-unlabelled learning)
        self.label_frequency = 1.0  # c of Elkan & Noto: p = g / c; 1 when it learned from dismissals only

    def _shrink(self) -> np.ndarray:
        return np.array([RULE_SHRINK if c.startswith("rule:") else 1.0 for c in self.columns])

    def _matrix(self, x: pl.DataFrame) -> np.ndarray:
        m = x.select(self.columns).fill_null(0).to_numpy().astype(np.float64)
        return np.sign(m) * np.log1p(np.abs(m))

    def fit(self, x: pl.DataFrame, y: np.ndarray, unlabelled: np.ndarray | None = None) -> "Reranker":
        """x from design(), y 1 (escalated/reported) or 0 (dismissed on the merits, or an `unlabelled` row: an
        undecided alert, positive-unlabelled learning)."""
        y = np.asarray(y, dtype=int)
        u = np.zeros(len(y), dtype=bool) if unlabelled is None else np.asarray(unlabelled, dtype=bool)
        if (u & (y == 1)).any():
            raise ValueError("an unlabelled row cannot be a positive")
        order = np.lexsort((x["account_id"].to_numpy(), x["bank_id"].to_numpy()))  # row order never matters
        x, y, u = x[order], y[order], u[order]
        if self.C is not None or min(y.sum(), len(y) - y.sum()) < 2:
            lr = LogisticRegression(C=self.C or 0.1, max_iter=2000, random_state=self.random_state)
        else:
            folds = StratifiedKFold(min(5, int(y.sum()), int(len(y) - y.sum())), shuffle=True, random_state=self.random_state)
            lr = LogisticRegressionCV(
                Cs=CS,
                l1_ratios=(0.0,),
                cv=folds,
                scoring="neg_log_loss",
                max_iter=2000,
                random_state=self.random_state,
                use_legacy_attributes=False,
            )
        shrink = FunctionTransformer(_scale, kw_args={"by": self._shrink()})
        self.model = make_pipeline(StandardScaler(), shrink, lr).fit(self._matrix(x), y)
        self.chosen_C = float(np.ravel(lr.C_ if hasattr(lr, "C_") else lr.C)[0])
        self.unlabelled = int(u.sum())
        self.label_frequency = self._label_frequency(x, y, shrink) if self.unlabelled else 1.0
        self.positives, self.negatives = int(y.sum()), int(len(y) - y.sum() - u.sum())
        self.decisions = self.positives + self.negatives
        counts = pl.DataFrame({"rule": x["top_rule"], "y": y}).filter(pl.col("rule").is_not_null() & pl.Series(~u))
        self.by_rule = {
            r: [int(p), int(n - p)]
            for r, p, n in counts.group_by("rule").agg(pl.col("y").sum(), pl.len()).sort("rule").iter_rows()
        }
        coef = self.model[-1].coef_.ravel().round(10).tolist()
        digest = hashlib.sha256(json.dumps([self.columns, coef, self.random_state]).encode()).hexdigest()[:8]
        self.version = f"rerank-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{digest}"
        return self

    def _label_frequency(self, x: pl.DataFrame, y: np.ndarray, shrink: FunctionTransformer) -> float:
        """c = mean g over the positives, each predicted by a model that did not see it (Elkan & Noto's e1); in
        (0, 1]: a c near 0 would blow every p up to 1. With fewer than two rows of a class no model can be fitted
        without seeing them: c = 1, no lift (what the settings allow: min_positives 1 and unlabelled rows)."""
        if min(int(y.sum()), int(len(y) - y.sum())) < 2:
            return 1.0
        folds = StratifiedKFold(max(2, min(5, int(y.sum()), int(len(y) - y.sum()))), shuffle=True, random_state=self.random_state)
        lr = LogisticRegression(C=self.chosen_C, max_iter=2000, random_state=self.random_state)
        g = cross_val_predict(make_pipeline(StandardScaler(), shrink, lr), self._matrix(x), y, cv=folds, method="predict_proba")
        return float(np.clip(g[y == 1, 1].mean(), 0.05, 1.0))

    def weight(self, max_weight: float, half_weight_decisions: int) -> float:
        """How much the probability counts in the blend: grows with the decisions learned from, towards max_weight."""
        n = self.decisions
        return max_weight * n / (n + half_weight_decisions) if n else 0.0

    def predict(self, x: pl.DataFrame) -> np.ndarray:
        if x.height == 0:
            return np.zeros(0)
        g = self.model.predict_proba(self._matrix(x))[:, 1]
        return np.minimum(g / getattr(self, "label_frequency", 1.0), 1.0)  # a model saved before PU learning: c = 1

    def explain(self, x: pl.DataFrame, top: int = 2) -> list[str]:
        """Per row, in words: how often similar alerts (same top rule) were escalated, and what moved the score most."""
        if x.height == 0:
            return []
        scaler, lr = self.model[0], self.model[-1]
        z = (self._matrix(x) - scaler.mean_) / np.where(scaler.scale_ > 0, scaler.scale_, 1)
        contrib = z * self._shrink() * lr.coef_.ravel()
        words = describe()
        names = {f"rule:{r.id}": f"rule {r.id}" for r in RULES + PATTERNS}
        label = [names.get(c) or SCORE_COLUMNS.get(c) or words.get(c, c) for c in self.columns]
        out = []
        for i, rule in enumerate(x["top_rule"].to_list()):
            parts = []
            if rule and rule in self.by_rule:
                esc, dis = self.by_rule[rule]
                parts.append(f"similar alerts ({rule}) were escalated {_times(esc)} and dismissed {_times(dis)}")
            up = [label[j] for j in np.argsort(-contrib[i])[:top] if contrib[i, j] > 0.25]
            down = [label[j] for j in np.argsort(contrib[i])[:top] if contrib[i, j] < -0.25]
            if up:
                parts.append("raised by " + ", ".join(up))
            if down:
                parts.append("lowered by " + ", ".join(down))
            out.append("; ".join(parts))
        return out

    def save(self, models_dir: str | Path) -> Path:
        folder = store.private_dir(Path(store.private_dir(models_dir)) / FOLDER)
        path = store.private_file(folder / f"{self.version}.joblib")
        joblib.dump(self, path)
        store.private_file(folder / "LATEST").write_text(path.name + "\n")
        return path

    def known_on(self) -> date:
        """The day whose decisions it learned from: its `as_of`, never later than the day it was fitted (UTC)."""
        fitted = datetime.strptime(self.version.split("-")[1], "%Y%m%dT%H%M%S").date()
        as_of = getattr(self, "as_of", None)  # a model saved before `as_of` was kept
        return min(as_of, fitted) if as_of else fitted

    @staticmethod
    def latest(models_dir: str | Path, as_of: date | None = None) -> "Reranker | None":
        """The last fitted re-ranker beside the anomaly model, or None when none was fitted. With `as_of` (a replay of
        that day): the newest one that knew only the decisions of that day or before, or None."""
        marker = Path(models_dir) / FOLDER / "LATEST"
        if as_of is not None:
            known = [m for m in map(joblib.load, marker.parent.glob("rerank-*.joblib")) if m.known_on() <= as_of]
            return max(known, key=lambda m: (m.known_on(), m.version), default=None)
        if not marker.exists():
            return None
        return joblib.load(marker.parent / marker.read_text().strip())


def _scale(m: np.ndarray, by: np.ndarray) -> np.ndarray:
    return m * by


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"
