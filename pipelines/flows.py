"""Prefect flows: thin wiring of plain functions into tasks with retries, runs and artifacts.

Tasks receive paths, never DuckDB connections (one writer per database file; each task opens
and closes its own). Tasks run one after another because DuckDB allows one writer per file;
where one machine is outgrown, the scoring stages are what fans out (prefect-dask), not ingest.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from pipelines.batch import (
    file_submission,
    is_transient,
    new_submissions,
    outcome_record,
    previous_run,
    record_batch_run,
    run_summary_markdown,
    top_alerts_table,
    typology_counts,
)
from pipelines.ingest import ingest


def retry_if_transient(task, task_run, state) -> bool:
    """Retry a locked database or an I/O error; a validation failure or a bug fails at once."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception
        return is_transient(exc)
    return False


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_if_transient,
    task_run_name="ingest {path}",
)
def ingest_submission(path: str, db: str, require_manifest: bool = False) -> dict:
    log = get_run_logger()
    return outcome_record(
        ingest(
            path,
            db,
            require_manifest=require_manifest,
            timer=_logging_stopwatch(log, Path(path).name + " "),
            progress=lambda message: log.info("%s", message),
        )
    )


def _logging_stopwatch(log, prefix: str = ""):
    """Each stage's time and row counts in the run's log, as the stage finishes."""
    from detectors.timing import Stopwatch, stage_line

    return Stopwatch(on_stage=lambda name, seconds, info: log.info("%s", stage_line(prefix + name, seconds, info)))


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=retry_if_transient)
def score_store_task(db: str, out: str, config: str | None, window_days: int | None, mode: str, as_of: str | None = None) -> dict:
    from pipelines.snapshot import score_and_publish

    # flow parameters override the file; a bad one fails the run
    cfg, over = config, {"window.days": window_days, "window.as_of": as_of}
    res = score_and_publish(
        db, out, cfg, mode=mode, flow_run_id=_flow_run_id(), timer=_logging_stopwatch(get_run_logger(), "score "), overrides=over
    )
    for line in res.warnings:
        get_run_logger().warning(line)
    return score_summary(res)


def score_summary(res) -> dict:
    """What a flow keeps of a ScoreResult: counts, files, the top alerts without identifiers, warnings."""
    alerts = res.alerts.to_dicts()
    return {
        "run_id": res.run_id,
        "alerts": res.alerts.height,
        "new": sum(1 for a in alerts if a["status"] == "new"),
        "rule_set_hash": res.rule_set_hash,
        "model_version": res.model_version,
        "window_start": res.window_start.isoformat(),
        "window_end": res.window_end.isoformat(),
        "files": res.files,
        "top": top_alerts_table(alerts),
        "warnings": res.report_lines(),
        "budget_cut": res.budget_cut,
        "rules_over_ceiling": {k: v for k, v in res.rule_rates.items() if v["over_ceiling"]},
    }


def _score(
    db: str, out: str, config, window_days, mode: str, shards: int = 1, dask_address: str | None = None, as_of: str | None = None
) -> dict:
    """One task in this process, or (shards > 1 or a scheduler named) the sharded subflow on Dask (pipelines/sharded.py)."""
    if shards <= 1 and not dask_address:
        return score_store_task(db, out, config, window_days, mode, as_of)
    from pipelines.sharded import score_on_dask

    return score_summary(
        score_on_dask(db, out, shards, dask_address, config=config, window_days=window_days, mode=mode, as_of=as_of)
    )


def _flow_run_id() -> str | None:
    fid = flow_run.id
    return str(fid) if fid else None


def _has_transactions(db: str) -> bool:
    from pipelines import store

    if not Path(db).exists():
        return False
    with store.writing(db, "batch") as con:
        return bool(
            con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'transactions'").fetchone()[0]
            and con.execute("SELECT count(*) FROM transactions").fetchone()[0]
        )


def _ingest_all(paths: list[str], db: str, file_them: bool, require_manifest: bool = False) -> list[dict]:
    """One task per submission; one that fails outright is reported as rejected and does not stop the others."""
    out = []
    for p in paths:
        state = ingest_submission(p, db, require_manifest, return_state=True)
        if state.is_completed():
            rec = state.result()
        else:
            err = state.result(raise_on_failure=False)
            rec = {
                "path": p,
                "submission_id": None,
                "outcome": "failed",
                "accepted": False,
                "message": f"ingest failed: {err}",
                "rows_loaded": {},
                "rows_quarantined": {},
                "rows_in": 0,
                "report_html": None,
            }
        report = rec.pop("report_html")
        if file_them:
            rec["filed_as"] = str(file_submission(p, rec["accepted"], report))
        out.append(rec)
    return out


def _publish(db: str, submissions: list[dict], score: dict | None) -> None:
    now = typology_counts(db, score["run_id"]) if score else {}
    prev = previous_run(db, score["run_id"]) if score else None
    before = typology_counts(db, prev) if prev else None
    if score:
        create_table_artifact(
            key="top-alerts", table=score["top"], description=f"Top alerts of scoring run {score['run_id']} (no identifiers)"
        )
    create_markdown_artifact(
        key="run-summary",
        markdown=run_summary_markdown(submissions, score, now, before),
        description="Submissions accepted and rejected, alerts per typology against the previous run",
    )


def _score_and_publish(
    db: str,
    out: str,
    config: str | None,
    window_days: int,
    mode: str,
    subs: list[dict],
    run_id: str,
    started: datetime,
    params: dict,
    as_of: str | None = None,
    shards: int = 1,
    dask_address: str | None = None,
) -> dict:
    """After ingesting: score what is loaded (if anything), publish the artifacts, record the run. A run that fails
    is recorded as failed with its error, and the flow run fails (which is what Prefect notifications act on)."""
    try:
        score = _score(db, out, config, window_days, mode, shards, dask_address, as_of) if _has_transactions(db) else None
        _publish(db, subs, score)
    except Exception as exc:
        from detectors.scoring import error_text

        record_batch_run(db, run_id, _flow_run_id(), started, params, subs, None, "failed", error=error_text(exc))
        raise
    record_batch_run(db, run_id, _flow_run_id(), started, params, subs, score, "ok")
    return {"submissions": subs, "score": score}


def _check_first(
    db: str, config: str | None, window_days: int | None, as_of: str | None, mode: str, shards: int, kind: str
) -> None:
    """The config and the run's own parameters, checked before any submission is loaded: a typo fails the flow run
    naming the key (which is what Prefect notifications act on) and is recorded as a failed run of `kind` in a store
    that exists, not found after the batch filed its submissions."""
    from detectors.settings_check import check_run, checked_settings

    try:
        checked_settings(config, **{"window.days": window_days, "window.as_of": as_of})
        check_run(mode, shards)
    except ValueError as exc:
        if Path(db).is_file():
            from detectors.scoring import error_text

            started = datetime.now(timezone.utc)
            params = {"db": db, "config": config, "window_days": window_days, "as_of": as_of, "mode": mode, "shards": shards}
            record_batch_run(
                db,
                f"{kind}-{started:%Y%m%dT%H%M%S%f}",
                _flow_run_id(),
                started,
                params,
                [],
                None,
                "failed",
                error=error_text(exc),
            )
        raise


@flow(name="ingest")
def ingest_flow(paths: list[str], db: str) -> list[dict]:
    """Validate and load submissions, one task each."""
    return _ingest_all(paths, db, file_them=False)


@flow(name="score")
def score_flow(
    db: str,
    out: str,
    window_days: int | None = None,
    config: str | None = None,
    mode: str = "fused",
    as_of: str | None = None,
    shards: int = 1,
    dask_address: str | None = None,
) -> dict:
    """Features, rules, isolation forest, fusion, alerts; publishes the top alerts and a summary. `as_of` (YYYY-MM-DD):
    the window ends on that day, to replay a past month; `shards` > 1 or a `dask_address`: scored in shards on Dask."""
    from detectors.settings_check import check_run

    check_run(mode, shards)  # the config is the scoring's own first check (a refused one is recorded as a failed run)
    score = _score(db, out, config, window_days, mode, shards, dask_address, as_of)
    _publish(db, [], score)
    return score


@flow(name="run")
def run_flow(
    paths: list[str],
    db: str,
    out: str,
    window_days: int | None = None,
    config: str | None = None,
    mode: str = "fused",
    require_manifest: bool = False,
    as_of: str | None = None,
    shards: int = 1,
    dask_address: str | None = None,
) -> dict:
    """`thb-signals run`: ingest the given submissions, then score."""
    _check_first(db, config, window_days, as_of, mode, shards, "run")
    started = datetime.now(timezone.utc)
    subs = _ingest_all(paths, db, file_them=False, require_manifest=require_manifest)
    return _score_and_publish(
        db,
        out,
        config,
        window_days,
        mode,
        subs,
        f"run-{started:%Y%m%dT%H%M%S%f}",
        started,
        {"paths": paths, "db": db, "out": out, "config": config, "as_of": as_of, "shards": shards},
        as_of,
        shards,
        dask_address,
    )


@flow(name="batch-scoring")
def batch_scoring_flow(
    inbox: str,
    db: str,
    out: str,
    window_days: int | None = None,
    config: str | None = None,
    require_manifest: bool = False,
    as_of: str | None = None,
    shards: int = 1,
    dask_address: str | None = None,
) -> dict:
    """The scheduled run: every new submission in the inbox is ingested and filed under processed/ or
    rejected/ (with its validation report), then the store is scored and the result published."""
    _check_first(db, config, window_days, as_of, "fused", shards, "batch")
    log = get_run_logger()
    started = datetime.now(timezone.utc)
    paths = [str(p) for p in new_submissions(inbox)]
    log.info("%d new submissions in %s", len(paths), inbox)
    subs = _ingest_all(paths, db, file_them=True, require_manifest=require_manifest)
    for s in subs:
        (log.info if s["accepted"] else log.warning)("%s: %s: %s", Path(s["path"]).name, s["outcome"], s["message"])
    return _score_and_publish(
        db,
        out,
        config,
        window_days,
        "fused",
        subs,
        f"batch-{started:%Y%m%dT%H%M%S%f}",
        started,
        {"inbox": inbox, "db": db, "out": out, "window_days": window_days, "config": config, "as_of": as_of, "shards": shards},
        as_of,
        shards,
        dask_address,
    )


@flow(name="purge")
def purge_flow(db: str, config: str | None = None, dry_run: bool = False, user: str = "prefect-purge") -> dict:
    """Retention: delete what has expired (pipelines/purge.py, periods from the config's retention: section) and record
    it in purge_log. The logs' own purge functions come from the command line's entry point (they live in casework)."""
    from pipelines.cli_privacy import log_purgers
    from pipelines.purge import purge
    from schemas.settings import load_settings

    res = purge(db, load_settings(config), dry_run=dry_run, user=user, logs=log_purgers())
    get_run_logger().info("%s", res.line())
    return {"purge_id": res.purge_id, "dry_run": res.dry_run, "deleted": res.deleted}
