"""The stage runner: declared inputs checked before, outputs after, every stage timed."""

import pytest

from detectors.stages import Run, Stage, StageError, check_graph, run_stages
from pipelines import store


def _make(name):
    return lambda run: run.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT 1 AS x")


def test_runs_in_order_and_times_each_stage():
    con = store.connect(None)
    seen = []
    from detectors.timing import Stopwatch

    stages = [
        Stage("a", _make("t_a"), writes=("t_a",)),
        Stage(
            "b",
            lambda r: r.results.update(n=r.con.execute("SELECT count(*) FROM t_a").fetchone()[0]),
            reads=("t_a",),
            gives=("n",),
        ),
    ]
    run = run_stages(stages, Run(con, None, timer=Stopwatch(on_stage=lambda name, s, info: seen.append(name))))
    assert run["n"] == 1 and seen == ["a", "b"] and set(run.timer.times) == {"a", "b"}


def test_missing_input_and_missing_output_are_named():
    con = store.connect(None)
    with pytest.raises(StageError, match="stage b: missing input.*t_a"):
        run_stages([Stage("b", _make("t_b"), reads=("t_a",))], Run(con, None))
    with pytest.raises(StageError, match="stage a: did not produce t_x"):
        run_stages([Stage("a", _make("t_a"), writes=("t_x",))], Run(con, None))


def test_check_graph_finds_a_read_nobody_writes():
    check_graph(
        [Stage("a", _make("t_a"), writes=("t_a",)), Stage("b", _make("t_b"), reads=("t_a", "transactions"))],
        store_tables={"transactions"},
    )
    with pytest.raises(StageError, match="stage b reads t_z"):
        check_graph([Stage("a", _make("t_a"), writes=("t_a",)), Stage("b", _make("t_b"), reads=("t_z",))])


def test_the_scoring_graph_is_wired_and_documented():
    """Every stage of a scoring run reads only what an earlier stage or the store provides, and
    docs/architecture.md lists each stage with the tables it reads and writes."""
    import re
    from pathlib import Path

    from detectors.scoring import STAGES
    from schemas.store import MIGRATIONS

    store_tables = {
        m for mig in MIGRATIONS for sql in mig.statements for m in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", sql)
    }
    check_graph(STAGES, store_tables | {"transactions", "accounts", "fiu_reports"})
    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    for st in STAGES:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{st.name}` |")), None)
        assert row, f"docs/architecture.md has no row for stage {st.name}"
        assert all(t in row for t in st.reads + st.writes), (st.name, row)
