"""A scoring run that cannot touch the store: the stages of detectors/scoring.py over a READ_ONLY attachment.

A backtest or a re-ranker fit needs the same alerts a real run would raise, but must never write into the tables
that feed the investigators' queue (alerts, alert_status, cases, runs, audit_log). The run happens in an
in-memory DuckDB that ATTACHes the store READ_ONLY and makes it the default catalogue: the stages read the live
tables by their usual names and write only their own temp tables; any write to a store table fails in DuckDB
itself. The last stage (write_alerts) is left out, the anomaly model is loaded (or fitted in memory, never saved),
and dismissed accounts are not held back, so a what-if list shows what the detection logic raises.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from detectors.scoring import STAGES, apply_decisions
from detectors.stages import Run, run_stages
from detectors.timing import Stopwatch
from pipelines import store
from schemas.settings import Settings
from schemas.store import check_version

WHAT_IF_STAGES = tuple(st for st in STAGES if st.name != "write_alerts")


def scratch_run(
    db_path: str | Path,
    settings: Settings,
    models_dir: str | Path | None = None,
    mode: str = "fused",
    memory_limit: str | None = None,
    timer: Stopwatch | None = None,
    until: str = "write_alerts",
    run_id: str = "what-if",
    casework_as_of: date | None = None,
    decisions: pl.DataFrame | None = None,
) -> Run:
    """The stages up to (not including) `until`, over the store read-only; returns the Run with its results
    (alerts, budget_cut, window, features, hits, ...). The connection is closed: results are Python frames.
    `casework_as_of`: the casework as it stood that day, `decisions` (pipelines/casework_as_of.statuses_as_of) laid
    over a copy of alert_status and the re-ranker that knew only that day's decisions."""
    models_dir = Path(models_dir) if models_dir else Path(str(db_path) + ".models")
    names = [st.name for st in STAGES]
    if until not in names:
        raise ValueError(f"no stage {until!r}; one of {', '.join(names)}")
    stages = tuple(st for st in WHAT_IF_STAGES if names.index(st.name) < names.index(until))
    con = store.connect(None, memory_limit)
    try:
        con.execute("ATTACH ? AS live (READ_ONLY)", [str(db_path)])
        con.execute("USE live")
        check_version(con, f"store {db_path}")
        context = {"run_id": run_id, "mode": mode, "models_dir": models_dir, "refit": False, "save_model": False, "what_if": True}
        if casework_as_of is not None:  # a replay (backtest --as-of): the decisions and the re-ranker of that day
            context["casework_as_of"] = casework_as_of
            if decisions is not None:
                apply_decisions(con, decisions, replay=True)
        run = run_stages(stages, Run(con, settings, timer or Stopwatch(), context=context))
        run.con = None  # the connection closes below; a caller must not reach the store through it
        return run
    finally:
        con.close()
