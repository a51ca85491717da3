"""Sharded against one-process scoring on the same store: wall and CPU seconds, peak memory, and whether the alerts agree.

    python -m synthetic.bench_shards 1M --shards 4 --workers 2

The extract is the benchmark's (synthetic/bench.py, cached under bench/cache), loaded once into a store; each scoring
run is a fresh process on its own copy of that store, with the same saved isolation forest. The sharded run goes
through Prefect on a Dask LocalCluster of `workers` processes; its CPU seconds include the worker processes (children,
counted when the cluster closes), its wall time includes starting Prefect and the cluster ("startup"), reported apart
from the scoring stages. Figures go to bench/results/shards-<time>.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from synthetic.bench import REPO, ensure_extract, machine, parse_size, peak_rss_gib

DUCKDB_SHARE = 0.75  # of a process's memory limit, for its DuckDB: Arrow and polars frames and Python sit beside it


def duckdb_limit(memory: str | None) -> str | None:
    """DuckDB's memory_limit inside a process limited to `memory` (e.g. 4GiB -> 3072MiB), as the store's default 3GB
    keeps a one-process run near 4 GiB. Raises ValueError naming the value when it is not a size."""
    if memory is None:
        return None
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(memory)
    except (ValueError, TypeError):
        raise ValueError(f"--memory-limit: {memory[:40]!r} is not a size such as 4GB or 512MiB") from None
    if size < 256 * 2**20:
        raise ValueError(f"--memory-limit: {memory[:40]!r} is below 256MiB")
    return f"{int(size * DUCKDB_SHARE) // 2**20}MiB"


def _worker(kind: str, db: str, out: str, models: str, shards: int, workers: int, memory: str | None = None) -> dict:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from detectors.timing import Stopwatch

    t0 = time.perf_counter()
    if kind == "single":
        from detectors.scoring import score_store

        timer = Stopwatch()
        res = score_store(db, out, models_dir=models, timer=timer, memory_limit=duckdb_limit(memory))
        stages = dict(timer.times)
    else:
        import logging
        import re

        from pipelines.sharded import score_on_dask

        stages = {}  # each stage's line in the flow run's log: "score shards: 12.3 s (...)"
        handler = logging.Handler()
        handler.emit = lambda r: stages.update(
            {m[1]: float(m[2]) for m in [re.match(r"score (\w+): ([\d.]+) s", r.getMessage())] if m}
        )
        logging.getLogger("prefect.flow_runs").addHandler(handler)
        refit = not (Path(models) / "LATEST").exists()
        res = score_on_dask(
            db, out, shards, None, workers, worker_memory=memory, models=models, memory_limit=duckdb_limit(memory), refit=refit
        )
    total = time.perf_counter() - t0
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    alerts = res.alerts.sort("bank_id", "account_id")
    return {
        "kind": kind,
        "alerts": alerts.height,
        "alert_keys": [
            f"{b}/{a}:{','.join(sorted(r))}" for b, a, r in alerts.select("bank_id", "account_id", "rules").iter_rows()
        ],
        "scores": alerts["score"].to_list(),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "total_s": round(total, 2),
        "cpu_s": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1),
        # the Dask workers' peak (ru_maxrss of the largest child: what they inherit at fork is at most this process's)
        "peak_rss_gib": max(peak_rss_gib(), round(children.ru_maxrss * 1024 / 2**30, 3)),
    }


def _run(kind: str, store: Path, work: Path, models: Path, shards: int, workers: int, memory: str | None) -> dict:
    db = work / f"{kind}.duckdb"
    shutil.copy(store, db)
    cmd = [sys.executable, "-m", "synthetic.bench_shards", "--worker", kind, str(db), str(work / kind), str(models)]
    cmd += ["--shards", str(shards), "--workers", str(workers)] + (["--memory-limit", memory] if memory else [])
    # to files, not pipes: a helper process Prefect starts (its temporary API server) may outlive the worker holding them
    with open(work / f"{kind}.out", "w") as out, open(work / f"{kind}.err", "w") as err:
        rc = subprocess.run(cmd, stdout=out, stderr=err, cwd=REPO).returncode
    if rc != 0:
        raise RuntimeError(f"bench worker {kind} failed:\n{(work / f'{kind}.err').read_text()[-3000:]}")
    return json.loads((work / f"{kind}.out").read_text().strip().splitlines()[-1])


def bench_shards(size: int, shards: int, workers: int, out: Path, memory: str | None = None, single: bool = True) -> dict:
    """`memory` bounds each process: the Dask workers by Dask's limit, and every DuckDB (coordinator and shards) to
    three quarters of it, which leaves room for the frames beside it.
    Without `single` only the sharded run is made (50 M rows in one process takes long and is measured by `bench`)."""
    from detectors.scoring import score_store
    from pipelines.ingest import ingest

    extract = ensure_extract(size, REPO / "bench" / "cache")
    work = Path(tempfile.mkdtemp(prefix="thb-bench-shards-"))
    try:
        store, models = work / "s.duckdb", work / "models"
        for bank in sorted(p for p in extract.iterdir() if p.is_dir()):
            assert ingest(bank, store).accepted
        if single:  # the model both runs load; alone, the sharded run fits it (once, on a sample across shards)
            fit = work / "fit.duckdb"
            shutil.copy(store, fit)
            score_store(fit, work / "fit", models_dir=models, refit=True)
        single = _run("single", store, work, models, shards, workers, memory) if single else None
        sharded = _run("sharded", store, work, models, shards, workers, memory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = single["alert_keys"] == sharded["alert_keys"] if single else None
    diff = max((abs(a - b) for a, b in zip(single["scores"], sharded["scores"])), default=0.0) if same else None
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "transactions_requested": size,
        "shards": shards,
        "workers": workers,
        "memory_limit": memory,
        "alerts_match": same,
        "max_score_difference": diff,
        "runs": [{k: v for k, v in r.items() if k not in ("alert_keys", "scores")} for r in (single, sharded) if r],
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"shards-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    report["path"] = str(path)
    return report


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=("single", "sharded"))
    p.add_argument("args", nargs="+", help="SIZE (e.g. 1M), or for a worker: DB OUT MODELS")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", help="each process's memory limit, e.g. 4GB (Dask's for the workers; DuckDB gets 3/4)")
    p.add_argument("--sharded-only", action="store_true", help="skip the one-process run (no alert comparison)")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(_worker(a.worker, *a.args, a.shards, a.workers, a.memory_limit)))
    else:
        try:
            size = parse_size(a.args[0])
        except ValueError as e:
            p.error(str(e))
        if a.shards < 1 or a.workers < 1:
            p.error("--shards and --workers must be at least 1")
        try:
            duckdb_limit(a.memory_limit)
        except ValueError as e:
            p.error(str(e))
        r = bench_shards(size, a.shards, a.workers, REPO / "bench" / "results", a.memory_limit, not a.sharded_only)
        print(json.dumps(r, indent=2))
