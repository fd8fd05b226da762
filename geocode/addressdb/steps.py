"""Named steps of a long load, timed and reported as they start and finish (CLI progress bars)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str, str], None]  # (event 'start' | 'done', step name)


class Steps:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress("start", name)
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 2)
        if self.progress:
            self.progress("done", name)
