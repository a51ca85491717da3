"""The scoring graph as data: each stage names the tables it reads and writes, and a small runner checks them.

A scoring run passes its work between stages as DuckDB temp tables in one connection (win_tx, features,
net_money, hits, ...) and as Python frames in a `Run` (features, hits, anomaly, alerts). Declaring both
makes the graph visible (docs/architecture.md is written from it), lets the runner refuse a stage whose
inputs are missing with the stage's name instead of a CatalogException deep in a rule, and times every stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from detectors.timing import Stopwatch


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[["Run"], dict | None]  # returns row counts for the progress line (or None)
    reads: tuple[str, ...] = ()  # temp tables (or store tables) that must exist before the stage
    writes: tuple[str, ...] = ()  # temp tables the stage must leave behind
    needs: tuple[str, ...] = ()  # Python results (Run.results keys) from earlier stages
    gives: tuple[str, ...] = ()  # Python results it adds
    doc: str = ""


@dataclass
class Run:
    """What the stages share: the connection, the settings, and the Python results by name."""

    con: Any
    settings: Any
    timer: Stopwatch = field(default_factory=Stopwatch)
    results: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)  # run id, paths, mode: fixed for the run

    def __getitem__(self, key: str) -> Any:
        return self.results[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.results[key] = value


class StageError(RuntimeError):
    """A stage's declared inputs or outputs are missing: a wiring error in the graph, named."""


def tables(con) -> set[str]:
    return {
        r[0]
        for r in con.execute("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()").fetchall()
    }


def run_stages(stages: list[Stage] | tuple[Stage, ...], run: Run) -> Run:
    """Run the stages in order, checking each one's inputs before and outputs after; each is timed by the run's
    Stopwatch, whose `on_stage` callback hears its time and the counts it returned."""
    for st in stages:
        have = tables(run.con)
        missing = [t for t in st.reads if t not in have] + [k for k in st.needs if k not in run.results]
        if missing:
            raise StageError(f"stage {st.name}: missing input(s) {', '.join(missing)}")
        with run.timer.stage(st.name) as info:
            counts = st.run(run)
            if isinstance(counts, dict):
                info.update(counts)
        have = tables(run.con)
        missing = [t for t in st.writes if t not in have] + [k for k in st.gives if k not in run.results]
        if missing:
            raise StageError(f"stage {st.name}: did not produce {', '.join(missing)}")
    return run


def check_graph(stages: list[Stage] | tuple[Stage, ...], store_tables: set[str] = frozenset()) -> None:
    """Statically: every table or result a stage reads is written by an earlier stage (or is a store table)."""
    made: set[str] = set(store_tables)
    for st in stages:
        missing = [x for x in st.reads + st.needs if x not in made]
        if missing:
            raise StageError(f"stage {st.name} reads {', '.join(missing)}, which no earlier stage writes")
        made |= set(st.writes) | set(st.gives)
