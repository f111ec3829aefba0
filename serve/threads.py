"""Torch threads for a local model, chosen again before each generate call: one per core that other processes
leave free.

Why (benchmarks/serve_load.py --compare, benchmarks/RESULTS.md "Serve defaults"): with the cores to itself, /sql is
fastest with one torch thread per core; with another process busy on one of two cores, every parallel region waits
for the thread that shares that core, and one thread answered 8 clients 1.29-1.35x faster. No fixed setting was
within 1.2x of the best in every cell, because which one wins depends on what else the machine runs, and that
changes while a server runs. So the server looks: the CPU time the whole machine spent since the last look, minus
this process's own, is what others use.
"""

import os
import time
from collections.abc import Callable

import psutil

MIN_INTERVAL_S = 0.5  # a shorter window measures noise; between looks the last choice stands


class FreeCoreThreads:
    """Call before each generate: sets the calling thread's torch threads (`set_threads`) to the cores that other
    processes left free over the last window, at least 1, at most one per core."""

    def __init__(self, set_threads: Callable[[int], None], cores: int | None = None,
                 min_interval_s: float = MIN_INTERVAL_S):
        self.set_threads, self.min_interval_s = set_threads, min_interval_s
        self.cores = cores or os.cpu_count() or 1
        self.threads = self.cores
        self._process = psutil.Process()
        self._last = self._sample()

    def __call__(self) -> int:
        now = self._sample()
        seconds = now[0] - self._last[0]
        if seconds >= self.min_interval_s:
            others = ((now[1] - self._last[1]) - (now[2] - self._last[2])) / seconds  # cores' worth of others' work
            self._last = now
            threads = min(self.cores, max(1, self.cores - round(others)))
            if threads != self.threads:
                self.threads = threads
                self.set_threads(threads)
        return self.threads

    def _sample(self) -> tuple[float, float, float]:
        """(wall clock, CPU seconds the machine spent busy, CPU seconds this process spent)."""
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + getattr(machine, "irq", 0.0) \
            + getattr(machine, "softirq", 0.0) + getattr(machine, "steal", 0.0)  # steal: the host took the core
        own = self._process.cpu_times()
        return time.monotonic(), busy, own.user + own.system
