"""A scoring run: window -> features -> rules -> isolation forest -> fusion -> alerts in DuckDB and files.

Alerts keep their history: every run appends its rows to `alerts`; an account whose alert is still
being worked keeps the same `alert_id` (the alert is updated, not raised twice), a dismissed account
is not raised again for the same reasons unless its score rises materially, and `alert_status`
holds the current state per alert (casework/dispositions.py). Connected alerts are grouped into
cases (detectors/cases.py). Each run is recorded in `runs`, with the settings it used, every rule's firing rate
(`rule_rates`) and what the alert budget cut (`budget_cut`). The tables are defined in schemas/store.py.

The run is a list of declared stages (STAGES below; detectors/stages.py runs them): each names the temp
tables and results it reads and writes, so the graph is visible and a missing input is named, not guessed.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from detectors.anomaly import AnomalyDetector, saved_model
from detectors.cases import CASE_COLUMNS, CaseGrouper
from detectors.features import compute_features
from detectors.fusion import AlertBudget, Fusion, blend_learned, budget_lines, rate_warnings
from detectors.network import build_links
from detectors.patterns import PatternDetector
from detectors.reranker import Reranker, design, to_json
from detectors.rule_detector import RuleDetector, add_pattern_hits
from detectors.stages import Run, Stage, run_stages
from detectors.timing import Stopwatch
from detectors.window import CATEGORIES, define_window, window_end
from pipelines import store
from schemas.contract import KEEP_MARK, MASK_STEPS
from schemas.settings import Settings, load_settings, parse_settings

ALERT_COLUMNS = [
    "run_id",
    "alert_id",
    "rank",
    "bank_id",
    "account_id",
    "score",
    "typology",
    "reasons",
    "evidence",
    "rules",
    "rule_score",
    "anomaly",
    "status",
    "case_id",
    "case_role",
]


# an error message may quote a value; identifier-like strings are masked before it is stored or logged
_MASK_STEPS = [(re.compile(pattern, re.ASCII), replacement) for pattern, replacement in MASK_STEPS]


def mask_identifiers(text: str) -> str:
    """IBAN-, e-mail- and phone-like strings in `text` as [masked]; the product's days and ids are kept (schemas/contract.py
    MASK_STEPS; pipelines/validation.py masked_sql does the same in SQL)."""
    for pattern, replacement in _MASK_STEPS:
        text = pattern.sub(replacement, text)
    return text.replace(KEEP_MARK, "")


def error_text(exc: BaseException, limit: int = 1000) -> str:
    """What `runs.error` keeps of an exception: its type and message, identifier-like strings masked, bounded."""
    text = mask_identifiers(f"{type(exc).__name__}: {exc}".strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    rule_rates: dict = field(default_factory=dict)  # rule -> firing rate overall and per bank, ceiling, weight factor
    budget_cut: list = field(default_factory=list)  # per bank: allowed, kept, cut, lowest score kept, highest cut
    warnings: list = field(default_factory=list)  # one line per rule over its firing-rate ceiling

    def report_lines(self) -> list[str]:
        """The rule-rate warnings and what the budget cut, in words."""
        return self.warnings + budget_lines(self.budget_cut)


def score_store(
    db_path: str | Path,
    out_dir: str | Path,
    config: Settings | dict | str | Path | None = None,
    models_dir: str | Path | None = None,
    refit: bool = False,
    mode: str = "fused",
    run_id: str | None = None,
    flow_run_id: str | None = None,
    memory_limit: str | None = None,
    timer: Stopwatch | None = None,
    overrides: dict | None = None,
    decisions: pl.DataFrame | None = None,
    shards: int = 1,
    shard_map=None,
    shard_dir: str | Path | None = None,
    casework_today: bool = False,
) -> ScoreResult:
    """Score the store's window. `config`: typed Settings, a mapping of sections or a YAML file (checked the same way);
    `overrides` ({"window.days": 30}) go over it. A config that does not fit is a failed run, recorded with why.
    `decisions`: the investigators' decisions (casework database, pipelines/casework_db.Casework.statuses), laid over
    the store's alert_status first so dismissed alerts are held back and escalated accounts flag their links. With
    window.as_of (a replay), pass them as they stood on that day (pipelines/casework_as_of.py; score_and_publish does):
    they are laid over a copy, and the re-ranker is the newest that knew only that day's decisions; `casework_today`:
    a simulation whose today is that day (today's decisions over the store's copy, the latest re-ranker).
    `shards` > 1 splits the per-account work by account (detectors/sharding.py); `shard_map` runs the shards (default:
    here, one after the other), `shard_dir` is the folder they share (default: out_dir/.shards).
    Holds the store's write lock (a second scorer waits, bounded by store.lock_wait_seconds)."""
    with store.exclusive(db_path, "score", wait=lock_wait(config)):
        timer = timer or Stopwatch()
        out_dir = Path(out_dir)
        store.private_dir(out_dir)
        models_dir = Path(models_dir) if models_dir else Path(str(db_path) + ".models")
        run_id = run_id or datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        started = datetime.now(timezone.utc)
        con = store.connect(db_path, memory_limit)
        params = json.dumps({"db": str(db_path), "out": str(out_dir), "mode": mode, "config": config}, default=str)
        try:
            try:
                settings = _settings(config).with_overrides(**(overrides or {}))
                as_of = None if casework_today else settings.window.as_of  # tuning: the casework of the replayed day
                if decisions is not None:
                    apply_decisions(con, decisions, replay=as_of is not None)
                params = json.dumps(
                    {"db": str(db_path), "out": str(out_dir), "mode": mode, "settings": settings.as_dict()}, default=str
                )
                context = {"run_id": run_id, "mode": mode, "models_dir": models_dir, "refit": refit, "casework_as_of": as_of}
                stages = STAGES
                if shards > 1:  # sharded scoring (detectors/sharding.py): the per-account stages run per shard
                    from detectors.sharding import in_process, sharded_stages

                    stages = sharded_stages(STAGES)
                    context |= {
                        "shards": shards,
                        "shard_map": shard_map or in_process,
                        "shard_dir": Path(shard_dir or out_dir / ".shards") / run_id,
                        "shard_memory_limit": memory_limit,
                        "rule_config": rule_config(settings),
                    }
                run = run_stages(stages, Run(con, settings, timer, context=context))
                alerts, cases, window, rules = run["alerts"], run["cases"], run["window"], run["rule_detector"]
                files = write_alert_files(alerts, cases, out_dir)
                record_run(
                    con,
                    run_id=run_id,
                    flow_run_id=flow_run_id,
                    kind="score",
                    started_at=started,
                    parameters=params,
                    rule_set_hash=rules.version,
                    model_version=run["model"].version,
                    window_start=window.start,
                    window_end=window.end,
                    rows_in=run["rows_in"],
                    alerts_out=alerts.height,
                    alerts_new=int((alerts["status"] == "new").sum()) if alerts.height else 0,
                    outcome="ok",
                    rule_rates=json.dumps(run["rule_rates"]),
                    budget_cut=json.dumps(run["budget_cut"]),
                    reranker_version=run["reranker"],  # tuning: migration 8
                    window_cache=json.dumps(run.results.get("window_cache")),  # the nightly run: migration 10
                )
                return ScoreResult(
                    run_id,
                    alerts,
                    rules.version,
                    run["model"].version,
                    window.start,
                    window.end,
                    run["features"].height,
                    files,
                    cases,
                    run["rule_rates"],
                    run["budget_cut"],
                    rate_warnings(run["rule_rates"]),
                )
            except Exception as exc:  # the failed run is recorded too, with why, then the error goes on to the caller
                _record_failure(con, run_id, flow_run_id, started, params, exc)
                raise
        finally:
            con.close()


def lock_wait(config) -> float | None:
    """How long a scorer waits for the store's write lock under `config`; the default when the config does not fit
    (the run then fails inside, recorded with why)."""
    try:
        return _settings(config).store.lock_wait_seconds
    except Exception:
        return None


def replay_day(config, overrides: dict | None = None):
    """The day a run under `config` and `overrides` replays (window.as_of), or None; None too when the config does not
    fit (the run then fails inside, recorded with why)."""
    try:
        return _settings(config).with_overrides(**(overrides or {})).window.as_of
    except Exception:
        return None


def apply_decisions(con, decisions: pl.DataFrame, replay: bool = False) -> None:
    """The casework database's decisions over the store's alert_status, the copy the stages read. `replay`: the
    decisions of a past day (with decided_at), laid over a temp copy that write_alerts drops, so the store's copy is
    not set back; a dismissal that is no longer the alert's state takes its score and rules from its alert as raised."""
    con.register("cw_decisions", decisions.to_arrow())
    try:
        if replay:
            con.execute("CREATE OR REPLACE TEMP TABLE alert_status AS SELECT * FROM alert_status")
        con.execute("""UPDATE alert_status s SET status = d.status, dismiss_reason = d.dismiss_reason,
                              dismissed_score = d.dismissed_score, dismissed_rules = d.dismissed_rules,
                              reported_at = d.reported_at, report_file = d.report_file
                       FROM cw_decisions d WHERE s.alert_id = d.alert_id""")
        if replay and "decided_at" in decisions.columns:
            con.execute("""UPDATE alert_status s SET dismissed_score = a.score, dismissed_rules = a.rules
                           FROM (SELECT alert_id, arg_max(a.score, a.created_at) AS score, arg_max(a.rules, a.created_at) AS rules
                                 FROM alerts a JOIN cw_decisions d USING (alert_id)
                                 WHERE d.status = 'dismissed' AND d.dismissed_score IS NULL AND a.created_at <= d.decided_at
                                 GROUP BY 1) a
                           WHERE s.alert_id = a.alert_id""")
    finally:
        con.unregister("cw_decisions")


def _settings(config) -> Settings:
    if isinstance(config, Settings):
        return config
    if isinstance(config, (str, Path)):
        return load_settings(config)
    return parse_settings(config or {}, "config")


def _record_failure(con, run_id, flow_run_id, started, params, exc) -> None:
    try:
        con.execute("ROLLBACK")
    except Exception:
        pass  # no transaction was open
    try:
        record_run(
            con,
            run_id=run_id,
            flow_run_id=flow_run_id,
            kind="score",
            started_at=started,
            parameters=params,
            outcome="failed",
            error=error_text(exc),
        )
    except Exception:
        pass  # the store itself is the problem; the original error says more than this one


def rule_config(s: Settings) -> dict:
    """The mapping the rule and pattern detectors take: rule ids with their parameters, disabled, network, patterns."""
    return {
        **s.rules.overrides(),
        "disabled": list(s.rules.disabled),
        "network": s.network.model_dump(),
        "patterns": dict(s.patterns),
    }


# ---- the stages of a scoring run, in order ---------------------------------------------------------------------------


def _categories(s) -> dict:
    return {**CATEGORIES, **{k: (list(v.mccs), list(v.names)) for k, v in s.categories.items()}}


def _window(run: Run) -> dict:
    s, kept = run.settings.window, {}
    if _nightly(run):  # the kept window: detectors/nightly_window.py
        from detectors.nightly_window import define_kept_window

        run["window"], run["window_kept"] = define_kept_window(run.con, s.days, _categories(s), run.context["run_id"])
        kept = {"window": "carried" if run["window_kept"]["used"] else "rebuilt"}
    else:
        run["window"] = define_window(run.con, s.days, end=window_end(s.as_of), categories=_categories(s))  # tuning: --as-of
    run["rows_in"] = run.con.execute("SELECT count(*) FROM win_tx").fetchone()[0]
    if s.as_of is not None and not run["rows_in"]:
        raise ValueError(f"window.as_of {s.as_of}: the store has no transactions in the {s.days} days up to that day")
    return {"transactions": run["rows_in"], **kept}


def _nightly(run: Run) -> bool:
    s = run.settings.window
    return s.keep_parts and s.as_of is None and not run.context.get("what_if")


def _features(run: Run) -> dict:
    s = run.settings.window
    if _nightly(run):  # the nightly run: detectors/nightly.py
        from detectors.nightly import features

        run["features"], run["window_cache"] = features(
            run.con, run["window"], _categories(s), run["rows_in"], run.context["run_id"]
        )
        run["window_cache"]["window"] = run["window_kept"]
        counts = {k: v for k, v in run["window_cache"].items() if k in ("bookings_added", "bookings_removed")}
        return {"accounts": run["features"].height, "parts": "carried" if run["window_cache"]["used"] else "rebuilt", **counts}
    run["features"] = compute_features(run.con, s.days)
    return {"accounts": run["features"].height}


def _network(run: Run) -> dict:
    build_links(run.con, run.settings.network.max_group, reported_until=window_end(run.settings.window.as_of))
    return {"money_links": run.con.execute("SELECT count(*) FROM net_money").fetchone()[0]}


def _rules(run: Run) -> dict:
    run["rule_detector"] = RuleDetector(rule_config(run.settings)).fit()
    return {"rules": len(run["rule_detector"].rules), "hits": run["rule_detector"].run_rules(run.con, run.settings.window.days)}


def _patterns(run: Run) -> dict:
    n = add_pattern_hits(run.con, PatternDetector(rule_config(run.settings)))
    run["hits"] = run.con.sql("SELECT * FROM hits ORDER BY bank_id, account_id, rule_id").pl()
    return {"pattern_hits": n}


def _iforest_fit(run: Run) -> dict:
    models_dir = run.context["models_dir"]
    saved = saved_model(models_dir, run.context["refit"])
    if saved is None:
        run["model"] = AnomalyDetector().fit(run["features"])
        if run.context.get("save_model", True):  # tuning: a backtest fits in memory and saves nothing
            run["model"].save(models_dir)
        return {"model": "fitted"}
    run["model"] = AnomalyDetector.load(saved)
    return {"model": "loaded"}


def _iforest_score(run: Run) -> dict:
    features = run["features"]
    run["anomaly"] = run["model"].score(features)
    odd = run["anomaly"].filter(pl.col("anomaly") > run.settings.fusion.anomaly_floor).select("bank_id", "account_id")
    run["explanations"] = run["model"].explain(features.join(odd, on=["bank_id", "account_id"], how="semi"))
    return {"accounts": run["anomaly"].height, "above_floor": odd.height}


def _fuse(run: Run) -> dict:
    fusion = Fusion(mode=run.context["mode"], **run.settings.fusion.model_dump())
    run["scored"] = run["features"].group_by("bank_id").agg(pl.len().alias("accounts_scored"))
    rates = run["rule_detector"].rates(run["hits"], run["scored"])
    acc = fusion.account_scores(run["hits"], run["anomaly"], run["explanations"], rates)
    acc = fusion.corroborate(acc, CaseGrouper(**run.settings.cases.model_dump()).links(run.con, fusion.evidence(acc)))
    run["alerts"] = fusion.rank(acc)
    run["rule_rates"] = fusion.rate_report(rates)
    return {"alerts": run["alerts"].height}


def _rerank(run: Run) -> dict:
    """tuning: blend in the re-ranker learned from decisions (detectors/reranker.py), if one was fitted and it is enabled."""
    s, run["reranker"] = run.settings.rerank, None
    keys = ["bank_id", "account_id"]
    x = design(run["features"], run["hits"], run["alerts"]).join(run["alerts"].select(keys), on=keys, how="semi")
    # each alert keeps its design row as this run saw it, before learning: what a later fit learns from if it is decided
    inputs = x.select(*keys, to_json(x))
    run["alerts"] = run["alerts"].join(inputs, on=keys, how="left", maintain_order="left")
    model = Reranker.latest(run.context["models_dir"], run.context.get("casework_as_of")) if s.enabled else None
    if model is None or run["alerts"].height == 0:
        return {"reranker": "none"}
    learned = x.select("bank_id", "account_id").with_columns(pl.Series("p", model.predict(x)), pl.Series("why", model.explain(x)))
    weight = model.weight(s.max_weight, s.half_weight_decisions)
    run["alerts"], run["reranker"] = blend_learned(run["alerts"], learned, weight, model.decisions), model.version
    return {"decisions": model.decisions, "weight": round(weight, 3)}


def _cases(run: Run) -> dict:
    rise = None if run.context.get("what_if") else run.settings.review.dismissed_rise  # tuning: a backtest holds none back
    alerts = _assign_alert_ids(run.con, run["alerts"], run.context["run_id"], rise)
    alerts, run["budget_cut"] = AlertBudget(**run.settings.budget.model_dump()).apply(alerts, run["scored"])
    alerts, run["cases"] = CaseGrouper(**run.settings.cases.model_dump()).group(run.con, alerts)
    run["alerts"] = alerts.with_columns(
        pl.when(pl.col("corroborated").is_not_null() & pl.col("case_id").is_not_null())
        .then(pl.col("reasons") + ", in case " + pl.col("case_id"))
        .otherwise(pl.col("reasons"))
        .alias("reasons")
    )
    return {"alerts": run["alerts"].height, "cases": run["cases"].height}


def _write_alerts(run: Run) -> dict:
    if run.context.get("casework_as_of"):
        run.con.execute("DROP TABLE IF EXISTS temp.alert_status")  # a replay's copy of the decisions (apply_decisions)
    learning = ["learning_input"] if "learning_input" in run["alerts"].columns else []
    alerts = _persist(run.con, run["alerts"].select(*ALERT_COLUMNS, *learning), run["cases"], run.context["run_id"])
    run["alerts"] = alerts.drop(learning)
    return {"alerts": run["alerts"].height}


STAGES: tuple[Stage, ...] = (
    Stage(
        "window",
        _window,
        reads=("transactions", "accounts"),
        writes=("win_tx", "win_accounts"),
        gives=("window", "rows_in"),
        doc="the last N days with local time, night flag and merchant category; accounts with ages and sharing counts",
    ),
    Stage(
        "features",
        _features,
        reads=("win_tx", "win_accounts"),
        writes=("features", "pass_through"),
        gives=("features",),
        doc="about 35 figures per account",
    ),
    Stage(
        "network",
        _network,
        reads=("win_tx", "win_accounts", "accounts"),
        writes=("net_money", "net_shared", "net_flagged"),
        doc="the link graph across banks: who pays whom, shared keys, escalated and FIU-reported seeds",
    ),
    Stage(
        "rules",
        _rules,
        reads=("win_tx", "win_accounts", "features", "pass_through", "net_money", "net_shared", "net_flagged"),
        writes=("hits",),
        gives=("rule_detector",),
        doc="the rule catalogue (detectors/rules/), stage-1 then network rules",
    ),
    Stage(
        "patterns",
        _patterns,
        reads=("win_tx", "win_accounts", "net_money", "hits"),
        writes=("hits",),
        gives=("hits",),
        doc="laundering patterns in time over the link graph, added to the hits",
    ),
    Stage("iforest_fit", _iforest_fit, needs=("features",), gives=("model",), doc="fit or load the isolation forest"),
    Stage(
        "iforest_score",
        _iforest_score,
        needs=("features", "model"),
        gives=("anomaly", "explanations"),
        doc="anomaly score and its explanation in words",
    ),
    Stage(
        "fusion",
        _fuse,
        reads=("net_money", "net_shared", "win_accounts"),
        needs=("hits", "anomaly", "explanations", "rule_detector"),
        gives=("alerts", "rule_rates", "scored"),
        doc="rule weights by base rate, anomaly, corroboration across linked accounts",
    ),
    Stage(
        "rerank",
        _rerank,
        needs=("alerts", "features", "hits"),
        gives=("alerts", "reranker"),
        doc="blend in the re-ranker learned from investigators' decisions, if one was fitted (else nothing changes)",
    ),
    Stage(
        "cases",
        _cases,
        reads=("alert_status", "net_money", "net_shared", "hits", "win_accounts"),
        needs=("alerts", "scored"),
        gives=("alerts", "cases", "budget_cut"),
        doc="alert ids kept, dismissed accounts held back, the budget, cases and roles",
    ),
    Stage(
        "write_alerts",
        _write_alerts,
        reads=("alerts", "cases", "alert_status"),
        needs=("alerts", "cases"),
        doc="append alerts and cases, update alert_status, in one transaction",
    ),
)


def _assign_alert_ids(con, alerts: pl.DataFrame, run_id: str, rise: float | None) -> pl.DataFrame:
    """Reuse the alert_id of an account's alert that is still being worked (status 'updated'), else a new one
    (status 'new'). An account whose alert was dismissed is not alerted again for the same reasons unless its
    score rose by `rise` or more since the dismissal (rise None: a what-if run, nothing held back)."""
    tracked = con.sql("""SELECT bank_id, account_id, max(alert_id) AS alert_id FROM alert_status
                         WHERE status <> 'dismissed' GROUP BY ALL""").pl()
    dismissed = con.sql("""SELECT bank_id, account_id, max(dismissed_score) AS dismissed_score,
                                  list_distinct(flatten(list(coalesce(dismissed_rules, [])))) AS dismissed_rules
                           FROM alert_status WHERE status = 'dismissed' GROUP BY ALL""").pl()
    a = alerts.join(dismissed, on=["bank_id", "account_id"], how="left")
    same_reasons = pl.col("rules").list.set_difference(pl.col("dismissed_rules")).list.len() == 0
    suppressed = (
        pl.col("dismissed_score").is_not_null() & same_reasons & (pl.col("score") < pl.col("dismissed_score") + (rise or 0))
    )
    if rise is None:
        suppressed = pl.lit(False)
    a = a.filter(~suppressed.fill_null(False)).drop("dismissed_score", "dismissed_rules")
    return a.join(tracked, on=["bank_id", "account_id"], how="left").with_columns(
        pl.when(pl.col("alert_id").is_null()).then(pl.lit("new")).otherwise(pl.lit("updated")).alias("status"),
        pl.col("alert_id").fill_null(pl.lit(run_id + "-") + pl.Series(_alert_numbers(run_id, a.height))),
        pl.lit(run_id).alias("run_id"),
    )


def _alert_numbers(run_id: str, n: int) -> list[str]:
    """A new alert's number within its run: drawn at random (seeded by the run), not its rank, which an investigator
    would read as other banks' alerts between theirs (how many, and where their scores lie)."""
    top = max(100_000, 10 * n)
    rng = np.random.default_rng(int(hashlib.sha256(run_id.encode()).hexdigest()[:16], 16))
    width = len(str(top - 1))
    return [str(x).zfill(width) for x in rng.choice(np.arange(1, top), size=n, replace=False)]


def _persist(con, a: pl.DataFrame, cases: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """Append this run's alerts and cases; update alert_status."""
    con.register("new_alerts", a.to_arrow())
    con.register("new_cases", cases.to_arrow())
    con.execute("BEGIN TRANSACTION")
    try:
        names = ", ".join(ALERT_COLUMNS + (["learning_input"] if "learning_input" in a.columns else []))
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
    for path in (pq, csv, cases_pq):
        store.private_file(path)  # 0600 before a byte is written (the writers truncate, keeping the mode)
    alerts.write_parquet(pq)
    alerts.with_columns(pl.col("evidence").list.join(";"), pl.col("rules").list.join(";")).write_csv(csv)
    cases.write_parquet(cases_pq)
    return {"parquet": str(pq), "csv": str(csv), "cases": str(cases_pq)}
