"""Sharded scoring on a Dask cluster through Prefect: each shard of accounts is a Prefect task on prefect-dask's runner.

detectors/sharding.py does the work and says which parts run per shard; this module only chooses where they run.
The shards are Prefect tasks (retries, states, the run log) submitted to a `DaskTaskRunner`: a `LocalCluster` of
worker processes on this machine by default, or an existing cluster's scheduler (`tcp://scheduler:8786`). Dask does
the scheduling and holds the workers to their memory limits; the workers read the shard Parquet from `shard_dir`,
which on a real cluster must be a folder every worker sees (a network share) at the same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff
from prefect_dask import DaskTaskRunner

from pipelines.flows import _flow_run_id, _logging_stopwatch, retry_if_transient


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=retry_if_transient)
def shard_task(function: Callable, call: dict) -> dict:
    """One shard's work (detectors.sharding.score_shard or score_shard_anomaly) on a Dask worker."""
    return function(**call)


def prefect_map(function: Callable, calls: list[dict]) -> list:
    """The shard_map of a sharded run: one Prefect task per shard, all submitted at once, results in shard order."""
    futures = [
        shard_task.with_options(task_run_name=f"{function.__name__} {call['shard']}").submit(function, call) for call in calls
    ]
    return [f.result() for f in futures]


def dask_runner(address: str | None = None, workers: int = 2, worker_memory: str | None = None) -> DaskTaskRunner:
    """An existing cluster's scheduler, or a LocalCluster of `workers` single-threaded worker processes."""
    if address:
        _scheduler_answers(address)
        return DaskTaskRunner(address=address)
    kwargs = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    if worker_memory:
        kwargs["memory_limit"] = worker_memory
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


def _scheduler_answers(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line and before any flow starts, a scheduler address that is malformed or does not answer (a flow
    that fails to reach it would time out after 30 s and log a traceback)."""
    import socket
    from urllib.parse import urlsplit

    try:
        u = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if u.scheme != "tcp" or not host or not port:
        raise ValueError(f"--dask-address {address!r} is not a scheduler address such as tcp://scheduler:8786")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"no Dask scheduler answers at {address}: {e.strerror or e}") from None


def _share_prefect_api() -> None:
    """Give the LocalCluster's workers (started after this, with this environment) the Prefect API this process uses.
    Without a configured API each worker would start a temporary Prefect server of its own: slow, and under load it
    times out. On a real cluster, set PREFECT_API_URL in the workers' environment."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the one temporary server of this process (a singleton), started once
        server.start()
        url = server.api_url
    os.environ.setdefault("PREFECT_API_URL", url)


@flow(name="score-sharded")
def score_sharded_flow(
    db: str,
    out: str,
    shards: int,
    config=None,
    window_days: int | None = None,
    mode: str = "fused",
    models: str | None = None,
    refit: bool = False,
    shard_dir: str | None = None,
    memory_limit: str | None = None,
    as_of: str | None = None,
):
    """Score the store with its accounts in `shards` shards, each a task on the flow's Dask runner; like any scoring run,
    under the store's lock, with the casework decisions, and a new snapshot published for the page after."""
    from pipelines.snapshot import score_and_publish

    res = score_and_publish(
        db,
        out,
        config,
        models_dir=models,
        refit=refit,
        mode=mode,
        flow_run_id=_flow_run_id(),
        memory_limit=memory_limit,
        timer=_logging_stopwatch(get_run_logger(), "score "),
        overrides={"window.days": window_days, "window.as_of": as_of},
        shards=shards,
        shard_map=prefect_map,
        shard_dir=shard_dir,
    )
    for line in res.warnings:
        get_run_logger().warning(line)
    return res


def score_on_dask(
    db: str | Path,
    out: str | Path,
    shards: int,
    dask_address: str | None = None,
    workers: int = 2,
    worker_memory: str | None = None,
    **kwargs,
):
    """score_sharded_flow on a Dask runner chosen here (the flow decorator cannot know the address); a ScoreResult."""
    runner = dask_runner(dask_address, workers, worker_memory)  # a scheduler address is checked before anything starts
    _share_prefect_api()
    return score_sharded_flow.with_options(task_runner=runner)(str(db), str(out), shards, **kwargs)
