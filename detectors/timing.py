"""Stage timings and progress: `with timer.stage("load") as info: ...` adds the elapsed seconds; what the stage
puts in `info` (row counts) goes with its time to the `on_stage` callback, so long work reports each stage as it
finishes (stderr on the command line, the run logger in a Prefect run)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, TextIO

StageCallback = Callable[[str, float, dict], None]


class Stopwatch:
    def __init__(self, on_stage: StageCallback | None = None):
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # the process's CPU seconds per stage (DuckDB's threads included)
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str):
        t, cpu = time.perf_counter(), time.process_time()
        info: dict = {}
        try:
            yield info
        finally:
            elapsed = time.perf_counter() - t
            self.times[name] = self.times.get(name, 0.0) + elapsed
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu
        if self.on_stage is not None:  # only for a stage that finished (not while an exception passes)
            self.on_stage(name, elapsed, info)


def quiet_by_default() -> bool:
    """CI logs stay clean: CI=true (GitHub, GitLab and most others set it) silences progress like --quiet."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def stage_line(name: str, seconds: float, info: dict) -> str:
    counts = ", ".join(
        f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}" for k, v in info.items()
    )
    return f"{name}: {seconds:.1f} s" + (f" ({counts})" if counts else "")


class Progress:
    """Progress lines on stderr (never stdout, which carries the results), or nothing when quiet."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.enabled = not (quiet or quiet_by_default())
        self.stream = stream

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(message, file=self.stream or sys.stderr, flush=True)

    def stage(self, name: str, seconds: float, info: dict) -> None:
        self(stage_line(name, seconds, info))

    def stopwatch(self, prefix: str = "") -> Stopwatch:
        return Stopwatch(on_stage=lambda n, s, i: self.stage(prefix + n, s, i))
