"""Stage timings for the benchmark: `with timer.stage("load"): ...` adds the elapsed seconds."""
from __future__ import annotations

import time
from contextlib import contextmanager


class Stopwatch:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t
