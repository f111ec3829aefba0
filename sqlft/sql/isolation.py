"""Sandboxed SQL in worker processes that are killed at the deadline or when they pass their memory cap.

    with IsolatedExecutor(workers=4, memory_limit="1GB") as pool:
        result = pool.execute("shop.duckdb", "SELECT ...", max_rows=100, timeout_s=5)   # ExecutionResult

Why processes: some DuckDB work is outside both memory_limit and interrupt(). A nested list_transform builds
gigabytes of vectors in one expression (6 GB and 27 s past a 1 GB limit and a 5 s timeout, issue 15) and an
interrupt is only seen between chunks. A worker process running sqlft.sql.duckdb_sandbox.DuckdbSandbox can be killed: the
caller gets "timeout" at most `grace_s` after the deadline, and the server's own memory never holds the
query's data.

Memory, three lines, so that a query's RSS growth stays under `memory_limit` (the limit L) with a margin:
  1. the engines' own limits at DUCKDB_SHARE * L: DuckDB's memory_limit (per database), SQLite's
     hard_heap_limit (per process); a query past them fails inside the engine ("rejected");
  2. a kernel cap, RLIMIT_DATA, on the worker's private writable address space: what it held when started
     (and after each database it opened) plus CAP_SHARE * L (_Cap). It holds whatever allocates (DuckDB's
     vectors outside memory_limit, Python),
     however busy the CPU: an allocation past it fails ("Out of Memory", MemoryError, "rejected"). A
     polling watcher alone overshot: it saw +1,113 MB at a 1 GB limit before its kill (issue 15);
  3. the watcher, as before, kills a worker whose RSS grew past POLL_SHARE * L (file pages the cap does
     not count) or that passed its deadline.
DuckDB's allocator keeps the address space of freed memory, which still counts against the cap: a worker
left with less than half its budget after a query retires and a fresh one takes its place.
Measured per hostile example by benchmarks/hostile_memory.py.
"""

from __future__ import annotations

import os
import pickle
import queue
import resource
import sqlite3
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlft.sql.duckdb_sandbox import _PATH, DuckdbSandbox, check_sql
from sqlft.sql.sandbox import Closing, ExecutionResult
from sqlft.sql.sqlite_sandbox import SqliteSandbox

POLL_S = 0.01  # how often the worker's memory is looked at while it runs
START_S = 60.0  # how long a worker may take to start (import DuckDB) on a busy machine
READY = "ready"  # a worker's first message: started and bounded
DUCKDB_SHARE = 0.5  # of the memory limit: DuckDB's memory_limit and SQLite's hard_heap_limit
CAP_SHARE = 0.75  # of the memory limit: the kernel cap on the worker's private memory above its start
POLL_SHARE = 0.9  # of the memory limit: RSS growth at which the watcher kills the worker
_PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_size(text: str) -> int:
    """'1GB' -> 1_000_000_000 bytes (DuckDB's units: KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)."""
    units = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
             "gib": 2**30, "tib": 2**40}
    number = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if number.endswith(unit):
            return int(float(number[: -len(unit)].strip()) * units[unit])
    return int(float(number))


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _status(pid: int | str = "self") -> dict[str, int]:
    """Bytes from /proc/PID/status (VmData, VmHWM, RssAnon ...); {} where there is no /proc."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    found[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return {}
    return found


def _reset_peak(pid: int) -> bool:
    """Start the kernel's peak-RSS count (VmHWM) of `pid` again from its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Cap:
    """RLIMIT_DATA of this worker: its private address space (VmData) may grow by `budget` bytes past what its
    infrastructure holds. Opening a database is infrastructure, not a query: DuckDB starts ~8 threads per
    database whose 8 MB stacks are address space but barely resident, so the cap is lifted while a database
    opens and raised by what the opening took. Resident private memory can only grow into address space that
    is counted here (or into reserve that was counted before: see retire()), so a query's RSS growth stays
    about `budget`, however late the watcher polls."""

    def __init__(self, budget: int):
        self.budget = budget
        self._hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        data = _status().get("VmData")
        self.limit = None if data is None else data + budget
        if not self._set(self.limit):
            self.limit = None

    def _set(self, soft: int | None) -> bool:
        if soft is None:
            return False
        if self._hard != resource.RLIM_INFINITY:
            soft = min(soft, self._hard)
        try:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, self._hard))
            return True
        except (ValueError, OSError):
            return False

    @contextmanager
    def lifted(self) -> Iterator[None]:
        """No cap while a database opens; afterwards the cap grows by the address space the opening took."""
        if self.limit is None:
            yield
            return
        before = _status().get("VmData", 0)
        self._set(self._hard)
        try:
            yield
        finally:
            self.limit += max(0, _status().get("VmData", 0) - before)
            self._set(self.limit)

    def retire(self) -> bool:
        """Whether less than half the budget is left: DuckDB's allocator keeps the address space of memory a
        query freed (not resident, but counted), and after an "Out of Memory" none is left. A fresh worker
        then takes this one's place. Keeping reserve under half the budget also bounds what a later query
        could make resident without the cap seeing it: reserve + new <= budget."""
        return self.limit is not None and _status().get("VmData", 0) > self.limit - self.budget // 2


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    return pickle.loads(stream.read(struct.unpack("<Q", head)[0]))


def bound_memory(limit_bytes: int) -> tuple[str, _Cap]:
    """Bound this process (a worker) for queries that may grow by at most limit_bytes: SQLite's heap limit and
    the kernel cap; returns DuckDB's memory_limit to open databases with, and the cap."""
    engine_limit = int(DUCKDB_SHARE * limit_bytes)
    con = sqlite3.connect(":memory:")
    try:  # process-wide: every SQLite connection of this worker
        con.execute(f"PRAGMA hard_heap_limit = {engine_limit}")
    finally:
        con.close()
    check_sql("SELECT 1", set())  # the parser's own database opens before the cap (infrastructure)
    return f"{engine_limit}B", _Cap(int(CAP_SHARE * limit_bytes))


def main() -> None:
    """The worker process (python -m sqlft.sql.isolation): one sandbox per database file, one query at a time,
    requests on stdin and results on stdout, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the result pipe
    sandbox_kwargs = _recv(stdin)
    sandbox_kwargs["memory_limit"], cap = bound_memory(sandbox_kwargs.pop("memory_bytes"))
    _send(stdout, READY)  # the caller measures a query's memory from here, not from the interpreter's start
    boxes: dict[tuple[str, str], DuckdbSandbox | SqliteSandbox] = {}
    while True:
        try:
            engine, path, sql, max_rows, timeout_s = _recv(stdin)
        except EOFError:
            return
        try:
            box = boxes.get((engine, path))
            if box is None:
                with cap.lifted():
                    if engine == "sqlite":
                        box = SqliteSandbox(path, max_result_bytes=sandbox_kwargs["max_result_bytes"])
                    else:
                        box = DuckdbSandbox(path, **sandbox_kwargs)
                boxes[(engine, path)] = box
            result = box.execute(sql, max_rows=max_rows, timeout_s=timeout_s)
        except MemoryError:
            result = ExecutionResult("rejected", error="the query needed more memory than its limit")
        except Exception as e:  # noqa: BLE001 - opening the database failed: an answer, not a dead worker
            result = ExecutionResult("error", error=f"the database could not be opened ({type(e).__name__})")
        retire = cap.retire()
        _send(stdout, (result, retire))
        if retire:
            return


class _Worker:
    """A started `python -m sqlft.sql.isolation` (a fresh interpreter: nothing of the server is inherited)."""

    def __init__(self, sandbox_kwargs: dict[str, Any]):
        self.process = subprocess.Popen([sys.executable, "-m", "sqlft.sql.isolation"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        self.started = False  # READY received
        _send(self.process.stdin, sandbox_kwargs)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_started(self, wait_s: float) -> bool:
        """Whether the worker is started and bounded (it imports DuckDB first: seconds on a busy CPU)."""
        if not self.started:
            try:
                self.started = self.ready(wait_s) and self.recv() == READY
            except (EOFError, OSError, pickle.UnpicklingError):
                return False
        return self.started

    def send(self, request: tuple) -> None:
        _send(self.process.stdin, request)

    def ready(self, wait_s: float) -> bool:
        return bool(select.select([self.process.stdout], [], [], wait_s)[0])

    def recv(self) -> Any:
        return _recv(self.process.stdout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class IsolatedExecutor(Closing):
    """At most `workers` queries at once, each in its own process (started once, reused until killed)."""

    def __init__(self, workers: int = 4, *, memory_limit: str = "1GB", max_result_bytes: int = 16_000_000,
                 grace_s: float = 0.5):
        self.memory_limit = memory_limit
        self.memory_bytes = parse_size(memory_limit)
        self.grace_s = grace_s
        self._kwargs = {"memory_bytes": self.memory_bytes, "max_result_bytes": max_result_bytes, "threads": 1}
        self._size = workers
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._idle.put(None)  # a place; its process starts on first use
        self._closed = False
        self._lock = threading.Lock()
        self.killed = 0  # workers killed at a deadline or a memory cap, or retired (for tests and logs)
        # RSS growth of the latest query's worker at its peak (the kernel's VmHWM; sampled where there is
        # none), in bytes: what the memory limit bounds (for tests, logs and benchmarks/hostile_memory.py).
        self.last_peak_bytes = 0

    def execute(self, db_path: str | Path, sql: str, *, max_rows: int, timeout_s: float,
                engine: str = "duckdb") -> ExecutionResult:
        """`sql` on the DuckDB (engine "duckdb") or SQLite ("sqlite") file at db_path, in a worker."""
        start = time.perf_counter()
        worker = self._idle.get()  # at most `workers` queries at once
        try:
            if self._closed:
                return ExecutionResult("error", error="the server is shutting down")
            if worker is None or not worker.alive():
                worker = _Worker(self._kwargs)
            if not worker.wait_started(START_S):
                worker.kill()
                worker = None
                return ExecutionResult("error", error=f"the SQL worker did not start within {START_S:g} s")
            result, worker = self._run(worker, (engine, str(db_path), sql, max_rows, timeout_s), timeout_s)
            if worker is None and not self._closed:
                worker = _Worker(self._kwargs)  # the replacement starts now, not when the next query comes
        finally:
            self._idle.put(worker)
        result.error = _PATH.sub("<path>", result.error)  # "cannot open /home/...": not the client's business
        result.elapsed_s = time.perf_counter() - start
        return result

    def _run(self, worker: _Worker, request: tuple, timeout_s: float) -> tuple[ExecutionResult, _Worker | None]:
        """The request on a started worker; the worker back, or None when it was stopped."""
        baseline = _rss(worker.pid)
        exact = _reset_peak(worker.pid)
        deadline = time.perf_counter() + timeout_s + self.grace_s
        sampled = baseline

        def peak() -> int:
            high = _status(worker.pid).get("VmHWM", 0) if exact else 0
            return max(high, sampled) - baseline

        try:
            worker.send(request)
            while True:
                if worker.ready(POLL_S):
                    result, retire = worker.recv()
                    self.last_peak_bytes = peak()
                    if retire:
                        self._stop(worker)
                        return result, None
                    return result, worker
                sampled = max(sampled, _rss(worker.pid))
                if sampled - baseline > POLL_SHARE * self.memory_bytes:
                    self.last_peak_bytes = peak()
                    self._stop(worker)
                    return ExecutionResult("rejected", error=f"stopped: the query needed more than "
                                           f"{self.memory_limit} of memory"), None
                if time.perf_counter() > deadline:
                    self.last_peak_bytes = peak()
                    self._stop(worker)
                    return ExecutionResult("timeout", error=f"stopped after {timeout_s:g} s"), None
        except (EOFError, OSError, pickle.UnpicklingError):  # the worker died (the OS killed it, or a crash)
            worker.kill()
            self.last_peak_bytes = sampled - baseline
            return ExecutionResult("rejected", error="the query stopped its worker (out of memory?)"), None

    def _stop(self, worker: _Worker) -> None:
        worker.kill()
        self.killed += 1

    def warm(self) -> None:
        """Start every worker now (a fresh interpreter importing duckdb takes a while on a busy CPU)."""
        workers = [self._idle.get() for _ in range(self._size)]
        for i, worker in enumerate(workers):
            if worker is None or not worker.alive():
                workers[i] = _Worker(self._kwargs)
        for worker in workers:
            self._idle.put(worker)

    def close(self) -> None:
        """Kills the idle workers; not once only: a worker whose query was in flight comes back to the queue
        after, and a later close() kills it too."""
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.kill()


class IsolatedSandbox(Closing):
    """A file sandbox whose queries run in an IsolatedExecutor's workers; same execute() as the sandbox."""

    def __init__(self, inner: DuckdbSandbox | SqliteSandbox, executor: IsolatedExecutor):
        self.inner, self.executor = inner, executor
        self.engine = "sqlite" if isinstance(inner, SqliteSandbox) else "duckdb"
        self.tables = inner.tables
        self.timeout_s, self.max_rows = inner.timeout_s, inner.max_rows

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        return self.executor.execute(self.inner.path, sql, engine=self.engine,
                                     max_rows=self.max_rows if max_rows is None else max_rows,
                                     timeout_s=self.timeout_s if timeout_s is None else timeout_s)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else (schema, columns) from the sandbox itself
        return getattr(self.inner, name)


def isolate(sandbox: Any, executor: IsolatedExecutor) -> Any:
    """`sandbox` with its queries in `executor`'s workers when it is over a DuckDB or SQLite file; any other
    (an in-memory DuckDB, a PostgreSQL server with its own server-side bounds) as it is."""
    if isinstance(sandbox, (DuckdbSandbox, SqliteSandbox)) and getattr(sandbox, "path", None) is not None:
        return IsolatedSandbox(sandbox, executor)
    return sandbox


if __name__ == "__main__":
    main()
