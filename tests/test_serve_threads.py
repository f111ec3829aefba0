"""serve.threads: the local model's torch threads follow the cores other processes leave free."""

import os
import subprocess
import sys
import time

import pytest

from serve.threads import FreeCoreThreads


class Scripted(FreeCoreThreads):
    """Samples given in order instead of read from the machine: (wall s, machine busy CPU s, own CPU s)."""

    def __init__(self, samples, cores):
        self.samples = iter(samples)
        self.calls = []
        super().__init__(self.calls.append, cores=cores)

    def _sample(self):
        return next(self.samples)


def test_one_thread_per_core_others_leave_free():
    # 4 cores; each window is 1 s. Others use: 0 cores, 1.0, 2.6 (rounds to 3), 3.9 (at least 1 thread), 0.4 again.
    policy = Scripted([(0, 0, 0), (1, 0.5, 0.5), (2, 2.5, 1.5), (3, 6.1, 2.5), (4, 10.0, 2.5), (5, 10.4, 2.5)], 4)
    assert [policy() for _ in range(5)] == [4, 3, 1, 1, 4]
    assert policy.calls == [3, 1, 4], "set only when the choice changes"


def test_a_short_window_keeps_the_last_choice():
    policy = Scripted([(0, 0, 0), (0.1, 0.1, 0), (1.0, 1.0, 0)], 2)
    assert policy() == 2 and policy.calls == []  # 0.1 s: too short to tell
    assert policy() == 1 and policy.calls == [1]  # measured over the whole second since the last look


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to leave one free")
def test_a_busy_process_beside_it_takes_a_thread_away():
    chosen = []
    policy = FreeCoreThreads(chosen.append)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5)
        assert policy() <= policy.cores - 1, "a process burning a whole core leaves at most cores - 1 free"
    finally:
        burner.kill()
        burner.wait()
    assert chosen and chosen[-1] == policy.threads
