"""A scoring run: window -> features -> rules -> isolation forest -> fusion -> alerts in DuckDB and files.

Alerts keep their history: every run appends its rows to `alerts`; an account whose alert is still
being worked keeps the same `alert_id` (the alert is updated, not raised twice), a dismissed account
is not raised again for the same reasons unless its score rises materially, and `alert_status`
holds the current state per alert (casework/dispositions.py). Connected alerts are grouped into
cases (detectors/cases.py). Each run is recorded in `runs`. The tables are defined in schemas/store.py.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from detectors.anomaly import AnomalyDetector
from detectors.cases import CASE_COLUMNS, CaseGrouper
from detectors.features import compute_features
from detectors.fusion import Fusion
from detectors.rule_detector import RuleDetector
from detectors.window import CATEGORIES, define_window
from pipelines import store
from detectors.timing import Stopwatch

ALERT_COLUMNS = ["run_id", "alert_id", "rank", "bank_id", "account_id", "score", "typology", "reasons", "evidence",
                 "rules", "rule_score", "anomaly", "status", "case_id", "case_role"]


def load_config(path: str | Path | None) -> dict:
    """Rule overrides, categories and fusion settings from YAML (see detectors/config.example.yaml)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    return data


# an error message may quote a value; identifier-like strings are masked before it is stored or logged
_RAW_IDENTIFIER = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b|[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d -]{8,}\d")


def mask_identifiers(text: str) -> str:
    return _RAW_IDENTIFIER.sub("[masked]", text)


def error_text(exc: BaseException, limit: int = 1000) -> str:
    """What `runs.error` keeps of an exception: its type and message, identifier-like strings masked, bounded."""
    text = mask_identifiers(f"{type(exc).__name__}: {exc}".strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def record_run(con, **cols) -> None:
    """One row of `runs`, by column name (ended_at is now); columns left out are NULL."""
    names = list(cols) + ["ended_at"]
    con.execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' for _ in cols)}, now())", list(cols.values()))


@dataclass
class ScoreResult:
    run_id: str
    alerts: pl.DataFrame
    rule_set_hash: str
    model_version: str
    window_start: datetime
    window_end: datetime
    accounts_scored: int
    files: dict
    cases: pl.DataFrame


def score_store(db_path: str | Path, out_dir: str | Path, config: dict | None = None, models_dir: str | Path | None = None,
                refit: bool = False, mode: str = "fused", run_id: str | None = None, flow_run_id: str | None = None,
                memory_limit: str | None = None, timer: Stopwatch | None = None) -> ScoreResult:
    config = config or {}
    timer = timer or Stopwatch()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models_dir = Path(models_dir) if models_dir else Path(str(db_path) + ".models")
    run_id = run_id or datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    started = datetime.now(timezone.utc)
    days = int(config.get("window_days", 90))
    categories = {**CATEGORIES, **{k: (list(v.get("mccs", [])), list(v.get("names", [])))
                                   for k, v in (config.get("categories") or {}).items()}}
    con = store.connect(db_path, memory_limit)
    params = json.dumps({"db": str(db_path), "out": str(out_dir), "mode": mode, "window_days": days, "config": config}, default=str)
    try:
        try:
            return _score(con, config, timer, out_dir, models_dir, refit, mode, run_id, flow_run_id, started, days, categories, params)
        except Exception as exc:   # the failed run is recorded too, with why, then the error goes on to the caller
            _record_failure(con, run_id, flow_run_id, started, params, exc)
            raise
    finally:
        con.close()


def _record_failure(con, run_id, flow_run_id, started, params, exc) -> None:
    try:
        con.execute("ROLLBACK")
    except Exception:
        pass   # no transaction was open
    try:
        record_run(con, run_id=run_id, flow_run_id=flow_run_id, kind="score", started_at=started, parameters=params,
                   outcome="failed", error=error_text(exc))
    except Exception:
        pass   # the store itself is the problem; the original error says more than this one


def _score(con, config, timer, out_dir, models_dir, refit, mode, run_id, flow_run_id, started, days, categories, params) -> ScoreResult:
    with timer.stage("window") as info:
        window = define_window(con, days, categories=categories)
        info.update(transactions=con.execute("SELECT count(*) FROM win_tx").fetchone()[0])
    with timer.stage("features") as info:
        features = compute_features(con, days)
        info.update(accounts=features.height)
    with timer.stage("rules") as info:
        rules = RuleDetector(config).fit()
        hits = rules.score(con, days)
        info.update(rules=len(rules.rules), hits=hits.height)
    with timer.stage("iforest_fit") as info:
        if refit or not (models_dir / "LATEST").exists():
            model = AnomalyDetector().fit(features)
            model.save(models_dir)
            info.update(model="fitted")
        else:
            model = AnomalyDetector.load(models_dir)
            info.update(model="loaded")
    fusion = Fusion(mode=mode, **(config.get("fusion") or {}))
    with timer.stage("iforest_score") as info:
        anomaly = model.score(features)
        odd = anomaly.filter(pl.col("anomaly") > fusion.anomaly_floor).select("bank_id", "account_id")
        explanations = model.explain(features.join(odd, on=["bank_id", "account_id"], how="semi"))
        info.update(accounts=anomaly.height, above_floor=odd.height)
    with timer.stage("fusion") as info:
        alerts = fusion.fuse(hits, anomaly, explanations)
        info.update(alerts=alerts.height)
    with timer.stage("cases") as info:
        alerts = _assign_alert_ids(con, alerts, run_id, float(config.get("dismissed_rise", 0.15)))
        alerts, cases = CaseGrouper(**(config.get("cases") or {})).group(con, alerts)
        info.update(alerts=alerts.height, cases=cases.height)
    with timer.stage("write_alerts") as info:
        alerts = _persist(con, alerts.select(ALERT_COLUMNS), cases, run_id)
        files = write_alert_files(alerts, cases, out_dir)
        info.update(alerts=alerts.height)
    rows_in = con.execute("SELECT count(*) FROM win_tx").fetchone()[0]
    record_run(con, run_id=run_id, flow_run_id=flow_run_id, kind="score", started_at=started, parameters=params,
               rule_set_hash=rules.version, model_version=model.version, window_start=window.start,
               window_end=window.end, rows_in=rows_in, alerts_out=alerts.height,
               alerts_new=int((alerts["status"] == "new").sum()) if alerts.height else 0, outcome="ok")
    return ScoreResult(run_id, alerts, rules.version, model.version, window.start, window.end, features.height, files, cases)


def _assign_alert_ids(con, alerts: pl.DataFrame, run_id: str, rise: float) -> pl.DataFrame:
    """Reuse the alert_id of an account's alert that is still being worked (status 'updated'), else a new one
    (status 'new'). An account whose alert was dismissed is not alerted again for the same reasons unless its
    score rose by `rise` or more since the dismissal."""
    tracked = con.sql("""SELECT bank_id, account_id, max(alert_id) AS alert_id FROM alert_status
                         WHERE status <> 'dismissed' GROUP BY ALL""").pl()
    dismissed = con.sql("""SELECT bank_id, account_id, max(dismissed_score) AS dismissed_score,
                                  list_distinct(flatten(list(coalesce(dismissed_rules, [])))) AS dismissed_rules
                           FROM alert_status WHERE status = 'dismissed' GROUP BY ALL""").pl()
    a = alerts.join(dismissed, on=["bank_id", "account_id"], how="left")
    same_reasons = pl.col("rules").list.set_difference(pl.col("dismissed_rules")).list.len() == 0
    suppressed = pl.col("dismissed_score").is_not_null() & same_reasons & (pl.col("score") < pl.col("dismissed_score") + rise)
    a = a.filter(~suppressed.fill_null(False)).drop("dismissed_score", "dismissed_rules")
    return a.join(tracked, on=["bank_id", "account_id"], how="left").with_columns(
        pl.when(pl.col("alert_id").is_null()).then(pl.lit("new")).otherwise(pl.lit("updated")).alias("status"),
        pl.col("alert_id").fill_null(pl.lit(run_id + "-") + pl.col("rank").cast(pl.Utf8).str.zfill(5)),
        pl.lit(run_id).alias("run_id"))


def _persist(con, a: pl.DataFrame, cases: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """Append this run's alerts and cases; update alert_status."""
    con.register("new_alerts", a.to_arrow())
    con.register("new_cases", cases.to_arrow())
    con.execute("BEGIN TRANSACTION")
    try:
        names = ", ".join(ALERT_COLUMNS)
        con.execute(f"INSERT INTO alerts ({names}, created_at) SELECT {names}, now() FROM new_alerts")
        con.execute(f"INSERT INTO cases SELECT ?, {', '.join(CASE_COLUMNS)}, now() FROM new_cases", [run_id])
        con.execute("""UPDATE alert_status s SET last_run = n.run_id, last_score = n.score, updated_at = now()
                       FROM new_alerts n WHERE s.alert_id = n.alert_id""")
        con.execute("""INSERT INTO alert_status (alert_id, bank_id, account_id, status, opened_run, last_run, last_score, updated_at)
                       SELECT alert_id, bank_id, account_id, 'open', run_id, run_id, score, now()
                       FROM new_alerts WHERE status = 'new'""")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("new_alerts")
        con.unregister("new_cases")
    return a


def write_alert_files(alerts: pl.DataFrame, cases: pl.DataFrame, out_dir: Path) -> dict:
    pq, csv, cases_pq = out_dir / "alerts.parquet", out_dir / "alerts.csv", out_dir / "cases.parquet"
    alerts.write_parquet(pq)
    alerts.with_columns(pl.col("evidence").list.join(";"), pl.col("rules").list.join(";")).write_csv(csv)
    cases.write_parquet(cases_pq)
    return {"parquet": str(pq), "csv": str(csv), "cases": str(cases_pq)}
