"""`thb-signals bench`: end-to-end throughput and memory, stage by stage, against DuckDB's single-pass floor.

Each measured run is a fresh process (so its peak RSS is its own) on a fresh store: validate, load,
window, features, rules, isolation-forest fit and score, fusion, write alerts. The floor is one DuckDB
query over the same Parquet files computing the feature stage's aggregates per account in one pass.
Figures go to bench/results/bench-<time>.json with the machine's cores and memory. With `nightly`, also the
nightly run: one day's submissions ingested into a store that holds the other days, and the window scored from
the kept feature parts (detectors/nightly.py).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
TXNS_PER_ACCOUNT = 121  # what the generator books per account in 90 days (family tune)


def peak_rss_gib() -> float:
    """This process's peak resident memory, from the kernel's high-water mark of its own address space (VmHWM).
    Not getrusage's ru_maxrss: Linux keeps that across exec, so a worker started by a bench that had just generated
    a 10 M extract (5.4 GiB) reported that peak as its own. ru_maxrss only where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 2**30, 3)
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 3)


def parse_size(text: str) -> int:
    """'1M', '500K' or '2000' as a number of rows; anything else a ValueError that names the value."""
    text = text.strip().upper()
    try:
        mult = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
        size = int(float(text[:-1] if text[-1] in "KM" else text) * mult)
    except (ValueError, IndexError):
        raise ValueError(f"size {text!r} is not a number of rows such as 1M, 500K or 2000") from None
    if size < 1:
        raise ValueError(f"size {text!r} must be at least one row")
    return size


def machine() -> dict:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


REPLICATE_ABOVE = 20_000_000  # the generator holds a whole extract in memory (about 0.53 GB per million rows)


def ensure_extract(size: int, cache: Path) -> Path:
    """Generate (once) a two-bank extract of about `size` transactions over 90 days; above 20 M rows,
    copies of the 10 M extract with fresh ids (see replicate_extract)."""
    folder = cache / f"{size}"
    if (folder / "labels.parquet").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    if size > REPLICATE_ABOVE:
        base = ensure_extract(10_000_000, cache)
        return replicate_extract(base, folder, round(size / 10_000_000))
    from synthetic.generate import generate

    generate(folder, accounts=max(300, size // TXNS_PER_ACCOUNT), days=90, banks=2, seed=1)
    return folder


def replicate_extract(base: Path, folder: Path, copies: int) -> Path:
    """`copies` disjoint populations from one extract, streamed by DuckDB: copy i gets banks <BANK>_R<i>,
    every pseudonymous id re-hashed with i (so copies never share an account) and txn ids prefixed.
    Generating 50 M rows at once would need about 27 GB."""
    from pipelines import store
    from pipelines.submission import write_manifest
    from schemas.contract import PSEUDONYMISED

    con = store.connect(None, "4GB")
    folder.mkdir(parents=True)
    for i in range(copies):
        for bank in sorted(p for p in base.iterdir() if p.is_dir()):
            manifest = json.loads((bank / "manifest.json").read_text())
            out = folder / f"{bank.name}_R{i}"
            out.mkdir()
            rows = {}
            for file, cols in PSEUDONYMISED.items():
                src = bank / f"{file}.parquet"
                swap = ", ".join(
                    [f"md5({c} || '-{i}') AS {c}" for c in cols]
                    + [f"'{out.name}' AS bank_id"]
                    + ([f"'R{i}-' || txn_id AS txn_id"] if file == "transactions" else [])
                )
                con.execute(f"COPY (SELECT * REPLACE ({swap}) FROM read_parquet('{src}')) TO '{out / src.name}' (FORMAT parquet)")
                rows[src.name] = manifest["files"][src.name]["rows"]
            write_manifest(out, out.name, manifest["period_start"], manifest["period_end"], rows)
    con.close()
    shutil.copy(base / "labels.parquet", folder / "labels.parquet")  # marks the cache entry complete
    return folder


def _worker(kind: str, extract: str, memory_limit: str | None, store_path: str | None = None) -> dict:
    import resource

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    extract = Path(extract)
    banks = sorted(p for p in extract.iterdir() if p.is_dir())
    t0 = time.perf_counter()
    if kind in ("nightly_setup", "nightly"):
        stages, result = _nightly_worker(kind, banks, Path(store_path), memory_limit)
    elif kind == "floor":
        import duckdb

        from detectors.features import FEATURES

        files = [str(b / "transactions.parquet") for b in banks]
        con = duckdb.connect()
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        aggs = ", ".join(f"{sql} AS {name}" for name, _, sql in FEATURES)
        # Materialised: under `SELECT count(*) FROM (... GROUP BY ...)` DuckDB prunes every unused aggregate and
        # the "floor" would be a bare group-by (1.1 s instead of 9 s at 10 M rows).
        con.execute(f"""
            CREATE TEMP TABLE floor AS
            WITH t AS (SELECT bank_id, account_id, CAST(amount_eur AS DOUBLE) AS amount, counterparty_id, location_city,
                              device_id, channel, counterparty_country, direction = 'credit' AS is_in,
                              channel IN ('cash_deposit', 'cash_withdrawal') AS is_cash,
                              channel IN ('transfer', 'instant_transfer') AND counterparty_type = 'person' AS is_p2p,
                              hour(booked_at) >= 22 OR hour(booked_at) < 6 AS is_night,
                              CASE WHEN mcc = '7011' THEN 'lodging' WHEN mcc = '4121' THEN 'taxi' WHEN mcc = '4814' THEN 'telecom'
                                   WHEN mcc IN ('7273', '5967') THEN 'adult_ads' WHEN mcc = '6051' THEN 'vasp' WHEN mcc = '5944' THEN 'luxury'
                                   WHEN mcc = '5411' THEN 'grocery' END AS category
                       FROM read_parquet({files}))
            SELECT t.bank_id, t.account_id, {aggs} FROM t GROUP BY ALL""")
        rows, booked = con.execute("SELECT count(*), sum(n_in + n_out) FROM floor").fetchall()[0]
        stages = {"floor": time.perf_counter() - t0}
        result = {
            "accounts": rows,
            "transactions_aggregated": int(booked),
            "columns": len(con.execute("DESCRIBE floor").fetchall()),
        }
    else:
        from detectors.scoring import score_store
        from detectors.timing import Stopwatch
        from pipelines.ingest import ingest

        timer = Stopwatch()
        work = Path(tempfile.mkdtemp(prefix="thb-bench-"))
        try:
            db = work / "s.duckdb"
            rows = 0
            for b in banks:
                out = ingest(b, db, memory_limit=memory_limit, timer=timer)
                assert out.accepted, out.message
                rows += out.rows_loaded.get("transactions", 0)
            res = score_store(db, work / "out", refit=True, memory_limit=memory_limit, timer=timer)
            stages = dict(timer.times)
            result = {"transactions": rows, "accounts": res.accounts_scored, "alerts": res.alerts.height}
            result["stages_cpu_s"] = {k: round(v, 3) for k, v in timer.cpu.items()}  # this process's CPU seconds per stage
        finally:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **result,
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "total_s": round(total, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # steadier than wall time on a shared machine
        "peak_rss_gib": peak_rss_gib(),
    }


def _nightly_worker(kind: str, submissions: list[Path], db: Path, memory_limit: str | None) -> tuple[dict, dict]:
    """nightly_setup: load the base submissions into the store at `db` and score it (the parts are kept);
    nightly: ingest one night's submissions into that store and score the window again, from the kept parts."""
    from detectors.scoring import score_store
    from detectors.timing import Stopwatch
    from pipelines.ingest import ingest

    timer, rows = Stopwatch(), 0
    for b in submissions:
        out = ingest(b, db, memory_limit=memory_limit, timer=timer)
        assert out.accepted, out.message
        rows += out.rows_loaded.get("transactions", 0)
    res = score_store(db, db.parent / "out", refit=kind == "nightly_setup", memory_limit=memory_limit, timer=timer)
    from pipelines import store

    con = store.connect(db)
    try:
        cache = json.loads(con.execute("SELECT window_cache FROM runs WHERE run_id = ?", [res.run_id]).fetchall()[0][0])
    finally:
        con.close()
    result = {"transactions": rows, "accounts": res.accounts_scored, "alerts": res.alerts.height, "cache": cache}
    result["stages_cpu_s"] = {k: round(v, 3) for k, v in timer.cpu.items()}  # this process's CPU seconds per stage
    return dict(timer.times), result


def _run_worker(kind: str, extract: Path, memory_limit: str | None, store_path: Path | None = None) -> dict:
    cmd = (
        [sys.executable, "-m", "synthetic.bench", "--worker", kind, str(extract)]
        + (["--memory-limit", memory_limit] if memory_limit else [])
        + (["--store", str(store_path)] if store_path else [])
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(
    sizes: list[int],
    out: Path,
    reps: int = 3,
    cache: Path | None = None,
    memory_limit: str | None = None,
    progress: Callable[[str], None] | None = None,
    nightly: bool = False,
) -> dict:
    """`nightly`: also time the nightly run (one run per size): the store holds every day but the last and its kept
    parts, one day's submissions are ingested and the window scored again (nightly_row prints it)."""
    progress = progress or (lambda message: None)
    cache = cache or REPO / "bench" / "cache"
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "reps": reps,
        "memory_limit": memory_limit,
        "sizes": [],
    }
    for size in sizes:
        t = time.perf_counter()
        progress(f"bench {size:,}: extract (generated once, then cached under {cache})")
        extract = ensure_extract(size, cache)
        gen_s = time.perf_counter() - t
        runs, floors = [], []
        for kind, done in (("pipeline", runs), ("floor", floors)):
            for i in range(reps):
                done.append(_run_worker(kind, extract, memory_limit))
                progress(f"bench {size:,}: {kind} run {i + 1}/{reps}: {done[-1]['total_s']:.1f} s")
        med = lambda xs: round(statistics.median(xs), 3)
        stages = {k: med([r["stages"].get(k, 0.0) for r in runs]) for k in runs[0]["stages"]}
        entry = {
            "requested": size,
            "transactions": runs[0]["transactions"],
            "accounts": runs[0]["accounts"],
            "alerts": runs[0]["alerts"],
            "generate_s": round(gen_s, 1),
            "stages_median_s": stages,
            "total_median_s": med([r["total_s"] for r in runs]),
            "cpu_median_s": med([r["cpu_s"] for r in runs]),
            "floor_median_s": med([f["total_s"] for f in floors]),
            "peak_rss_gib_max": max(r["peak_rss_gib"] for r in runs),
            "runs": runs,
            "floors": floors,
        }
        entry["multiple_of_floor"] = round(entry["total_median_s"] / entry["floor_median_s"], 2)
        if nightly:
            entry["nightly"] = bench_nightly(extract, cache, memory_limit, progress)
            entry["nightly"]["multiple_of_floor"] = round(entry["nightly"]["total_s"] / entry["floor_median_s"], 2)
            floor_cpu = statistics.median(f["cpu_s"] for f in floors)  # steadier than wall time on a shared machine
            entry["nightly"]["cpu_multiple_of_floor"] = round(entry["nightly"]["cpu_s"] / floor_cpu, 2) if floor_cpu else None
        report["sizes"].append(entry)
        print(format_row(entry), flush=True)
    if len(report["sizes"]) >= 2:
        a, b = report["sizes"][0], report["sizes"][-1]
        report["scaling"] = {
            "from": a["transactions"],
            "to": b["transactions"],
            "time_ratio": round(b["total_median_s"] / a["total_median_s"], 2),
            "size_ratio": round(b["transactions"] / a["transactions"], 2),
        }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    report["path"] = str(path)
    return report


def bench_nightly(extract: Path, cache: Path, memory_limit: str | None, progress: Callable[[str], None]) -> dict:
    """One nightly run in a fresh process, on a store that a first process loaded with every day but the last."""
    from synthetic.nightly import split_days

    split = cache / f"{extract.name}-nightly"
    if not (split / "done").exists():
        split_days(extract, split)
        (split / "done").write_text("")
    work = Path(tempfile.mkdtemp(prefix="thb-bench-nightly-"))
    try:
        setup = _run_worker("nightly_setup", split / "base", memory_limit, work / "s.duckdb")
        progress(f"bench nightly: store of {setup['transactions']:,} rows loaded and scored: {setup['total_s']:.1f} s")
        night = _run_worker("nightly", split / "night1", memory_limit, work / "s.duckdb")
        progress(f"bench nightly: one day ({night['transactions']:,} rows) ingested and scored: {night['total_s']:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**night, "window_rows": setup["transactions"] + night["transactions"], "setup": setup}


NIGHTLY_STAGES = ["validate", "load", "window", "features", "network", "rules", "patterns", "iforest_score"]
NIGHTLY_HEADER = (
    "| window rows | new day's rows | total s | CPU s | floor s | x floor | x floor (CPU s) | peak RSS GiB | "
    + " | ".join(NIGHTLY_STAGES)
    + " | other |\n|"
    + " --- |" * (9 + len(NIGHTLY_STAGES))
)


def nightly_row(e: dict) -> str:
    n, s = e["nightly"], e["nightly"]["stages"]
    other = sum(v for k, v in s.items() if k not in NIGHTLY_STAGES)
    return (
        f"| {n['window_rows']:,} | {n['transactions']:,} | {n['total_s']:.1f} | {n['cpu_s']:.0f} | {e['floor_median_s']:.2f} | "
        f"{n['multiple_of_floor']:.1f} | {n.get('cpu_multiple_of_floor') or 0:.1f} | {n['peak_rss_gib']:.2f} | "
        + " | ".join(f"{s.get(c, 0):.1f}" for c in NIGHTLY_STAGES)
        + f" | {other:.1f} |"
    )


STAGES = ["validate", "load", "window", "features", "rules", "iforest_fit", "iforest_score", "fusion", "cases", "write_alerts"]
HEADER = (
    "| transactions | total s | CPU s | floor s | x floor | peak RSS GiB | validate | load | window | features | rules (incl. links) | "
    "iforest fit | iforest score | fusion | cases | write |\n|" + " --- |" * 16
)


def format_row(e: dict) -> str:
    s = e["stages_median_s"]
    return (
        f"| {e['transactions']:,} | {e['total_median_s']:.1f} | {e.get('cpu_median_s', 0):.0f} | {e['floor_median_s']:.2f} | "
        f"{e['multiple_of_floor']:.1f} | "
        f"{e['peak_rss_gib_max']:.2f} | " + " | ".join(f"{s.get(c, 0):.1f}" for c in STAGES) + " |"
    )


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=("pipeline", "floor", "nightly_setup", "nightly"), required=True)
    p.add_argument("extract")
    p.add_argument("--memory-limit")
    p.add_argument("--store")
    a = p.parse_args()
    print(json.dumps(_worker(a.worker, a.extract, a.memory_limit, a.store)))
