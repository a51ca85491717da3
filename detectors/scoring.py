"""A scoring run: window -> features -> rules -> isolation forest -> fusion -> alerts in DuckDB and files.

Alerts keep their history: every run appends its rows to `alerts`; an account whose alert is still
being worked keeps the same `alert_id` (the alert is updated, not raised twice), a dismissed account
is not raised again for the same reasons unless its score rises materially, and `alert_status`
holds the current state per alert (casework/dispositions.py). Connected alerts are grouped into
cases (detectors/cases.py). Each run is recorded in `runs`, with every rule's firing rate (`rule_rates`) and
what the alert budget cut (`budget_cut`) (detectors/fusion.py).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from detectors.anomaly import AnomalyDetector
from detectors.cases import CASE_COLUMNS, CaseGrouper
from detectors.features import compute_features
from detectors.fusion import AlertBudget, Fusion, budget_lines, rate_warnings
from detectors.rule_detector import RuleDetector
from detectors.window import CATEGORIES, define_window
from pipelines import store
from casework.dispositions import ensure_review_tables
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


def ensure_scoring_tables(con) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS alerts (run_id VARCHAR, alert_id VARCHAR, rank INTEGER, bank_id VARCHAR,
        account_id VARCHAR, score DOUBLE, typology VARCHAR, reasons VARCHAR, evidence VARCHAR[], rules VARCHAR[],
        rule_score DOUBLE, anomaly DOUBLE, status VARCHAR, created_at TIMESTAMPTZ)""")
    con.execute("ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_id VARCHAR")
    con.execute("ALTER TABLE alerts ADD COLUMN IF NOT EXISTS case_role VARCHAR")
    con.execute("""CREATE TABLE IF NOT EXISTS cases (run_id VARCHAR, case_id VARCHAR, typology VARCHAR, accounts INTEGER,
        banks VARCHAR[], account_ids VARCHAR[], roles VARCHAR, money_eur DOUBLE, score DOUBLE, created_at TIMESTAMPTZ)""")
    con.execute("""CREATE TABLE IF NOT EXISTS alert_status (alert_id VARCHAR, bank_id VARCHAR, account_id VARCHAR,
        status VARCHAR, opened_run VARCHAR, last_run VARCHAR, last_score DOUBLE, updated_at TIMESTAMPTZ)""")
    ensure_review_tables(con)
    con.execute("""CREATE TABLE IF NOT EXISTS runs (run_id VARCHAR, flow_run_id VARCHAR, kind VARCHAR, started_at TIMESTAMPTZ,
        ended_at TIMESTAMPTZ, parameters JSON, rule_set_hash VARCHAR, model_version VARCHAR, window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ, rows_in BIGINT, rows_quarantined BIGINT, alerts_out BIGINT, alerts_new BIGINT, outcome VARCHAR)""")
    for col in ("rule_rates", "budget_cut"): con.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {col} JSON")  # fusion's report


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
    rule_rates: dict = field(default_factory=dict)      # rule -> firing rate overall and per bank, ceiling, weight factor
    budget_cut: list = field(default_factory=list)      # per bank: allowed, kept, cut, lowest score kept, highest cut
    warnings: list = field(default_factory=list)        # one line per rule over its firing-rate ceiling

    def report_lines(self) -> list[str]:
        """The rule-rate warnings and what the budget cut, in words."""
        return self.warnings + budget_lines(self.budget_cut)


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
    try:
        store.ensure_schema(con)
        ensure_scoring_tables(con)
        with timer.stage("window"):
            window = define_window(con, days, categories=categories)
        with timer.stage("features"):
            features = compute_features(con, days)
        with timer.stage("rules"):
            rules = RuleDetector(config).fit()
            hits = rules.score(con, days)
        with timer.stage("iforest_fit"):
            if refit or not (models_dir / "LATEST").exists():
                model = AnomalyDetector().fit(features)
                model.save(models_dir)
            else:
                model = AnomalyDetector.load(models_dir)
        fusion = Fusion(mode=mode, **(config.get("fusion") or {}))
        budget = AlertBudget(**(config.get("budget") or {}))
        grouper = CaseGrouper(**(config.get("cases") or {}))
        scored = features.group_by("bank_id").agg(pl.len().alias("accounts_scored"))
        rates = rules.rates(hits, scored)
        with timer.stage("iforest_score"):
            anomaly = model.score(features)
            odd = anomaly.filter(pl.col("anomaly") > fusion.anomaly_floor).select("bank_id", "account_id")
            explanations = model.explain(features.join(odd, on=["bank_id", "account_id"], how="semi"))
        with timer.stage("fusion"):
            acc = fusion.account_scores(hits, anomaly, explanations, rates)
            acc = fusion.corroborate(acc, grouper.links(con, fusion.evidence(acc)))
            alerts = fusion.rank(acc)
        rule_rates = fusion.rate_report(rates)
        with timer.stage("cases"):
            alerts = _assign_alert_ids(con, alerts, run_id, float(config.get("dismissed_rise", 0.15)))
            alerts, cut = budget.apply(alerts, scored)
            alerts, cases = grouper.group(con, alerts)
            alerts = alerts.with_columns(pl.when(pl.col("corroborated").is_not_null() & pl.col("case_id").is_not_null())
                                         .then(pl.col("reasons") + ", in case " + pl.col("case_id")).otherwise(pl.col("reasons")).alias("reasons"))
        with timer.stage("write_alerts"):
            alerts = _persist(con, alerts.select(ALERT_COLUMNS), cases, run_id)
            files = write_alert_files(alerts, cases, out_dir)
        rows_in = con.execute("SELECT count(*) FROM win_tx").fetchone()[0]
        record_run(con, run_id=run_id, flow_run_id=flow_run_id, kind="score", started_at=started,
                   parameters=json.dumps({"db": str(db_path), "out": str(out_dir), "mode": mode, "window_days": days,
                                          "config": config}, default=str),
                   rule_set_hash=rules.version, model_version=model.version, window_start=window.start,
                   window_end=window.end, rows_in=rows_in, alerts_out=alerts.height,
                   alerts_new=int((alerts["status"] == "new").sum()) if alerts.height else 0, outcome="ok",
                   rule_rates=json.dumps(rule_rates), budget_cut=json.dumps(cut))
        return ScoreResult(run_id, alerts, rules.version, model.version, window.start, window.end, features.height, files, cases,
                           rule_rates, cut, rate_warnings(rule_rates))
    finally:
        con.close()


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
        con.execute(f"INSERT INTO cases SELECT '{run_id}', {', '.join(CASE_COLUMNS)}, now() FROM new_cases")
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
