"""Sandboxed SQL in worker processes that are killed at the deadline or when they pass their memory cap.

    with IsolatedExecutor(workers=4, memory_limit="1GB") as pool:
        result = pool.execute("shop.duckdb", "SELECT ...", max_rows=100, timeout_s=5)   # ExecutionResult

Why processes: some DuckDB work is outside both memory_limit and interrupt(). A nested list_transform builds
gigabytes of vectors in one expression (6 GB and 27 s past a 1 GB limit and a 5 s timeout, issue 15) and an
interrupt is only seen between chunks. A worker process running eval.sandbox.Sandbox can be killed: the
caller gets "timeout" at most `grace_s` after the deadline, "rejected" once the worker's memory grew by more
than the limit, and the server's own memory never holds the query's data.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eval.sandbox import _PATH, ExecutionResult, Sandbox
from eval.sqlite_sandbox import SqliteSandbox

POLL_S = 0.01  # how often the worker's memory is looked at while it runs
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


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    return pickle.loads(stream.read(struct.unpack("<Q", head)[0]))


def main() -> None:
    """The worker process (python -m eval.isolation): one sandbox per database file, one query at a time,
    requests on stdin and results on stdout, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the result pipe
    sandbox_kwargs = _recv(stdin)
    boxes: dict[tuple[str, str], Sandbox | SqliteSandbox] = {}
    while True:
        try:
            engine, path, sql, max_rows, timeout_s = _recv(stdin)
        except EOFError:
            return
        try:
            box = boxes.get((engine, path))
            if box is None:
                if engine == "sqlite":
                    box = SqliteSandbox(path, max_result_bytes=sandbox_kwargs["max_result_bytes"])
                else:
                    box = Sandbox(path, **sandbox_kwargs)
                boxes[(engine, path)] = box
            result = box.execute(sql, max_rows=max_rows, timeout_s=timeout_s)
        except Exception as e:  # noqa: BLE001 - opening the database failed: an answer, not a dead worker
            result = ExecutionResult("error", error=f"the database could not be opened ({type(e).__name__})")
        _send(stdout, result)


class _Worker:
    """A started `python -m eval.isolation` (a fresh interpreter: nothing of the server is inherited)."""

    def __init__(self, sandbox_kwargs: dict[str, Any]):
        self.process = subprocess.Popen([sys.executable, "-m", "eval.isolation"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        _send(self.process.stdin, sandbox_kwargs)

    def alive(self) -> bool:
        return self.process.poll() is None

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


class IsolatedExecutor:
    """At most `workers` queries at once, each in its own process (started once, reused until killed)."""

    def __init__(self, workers: int = 4, *, memory_limit: str = "1GB", max_result_bytes: int = 16_000_000,
                 grace_s: float = 0.5):
        self.memory_limit = memory_limit
        self.memory_bytes = parse_size(memory_limit)
        self.grace_s = grace_s
        self._kwargs = {"memory_limit": memory_limit, "max_result_bytes": max_result_bytes, "threads": 1}
        self._size = workers
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._idle.put(None)  # a place; its process starts on first use
        self._closed = False
        self._lock = threading.Lock()
        self.killed = 0  # workers killed at a deadline or a memory cap (for tests and logs)

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
            result, worker = self._run(worker, (engine, str(db_path), sql, max_rows, timeout_s), timeout_s, start)
        finally:
            self._idle.put(worker)
        result.error = _PATH.sub("<path>", result.error)  # "cannot open /home/...": not the client's business
        result.elapsed_s = time.perf_counter() - start
        return result

    def _run(self, worker: _Worker, request: tuple, timeout_s: float,
             start: float) -> tuple[ExecutionResult, _Worker | None]:
        baseline = _rss(worker.pid)
        deadline = start + timeout_s + self.grace_s
        peak = baseline
        try:
            worker.send(request)
            while True:
                if worker.ready(POLL_S):
                    return worker.recv(), worker
                peak = max(peak, _rss(worker.pid))
                if peak - baseline > self.memory_bytes:
                    worker.kill()
                    self.killed += 1
                    return ExecutionResult("rejected", error=f"stopped: the query needed more than "
                                           f"{self.memory_limit} of memory"), None
                if time.perf_counter() > deadline:
                    worker.kill()
                    self.killed += 1
                    return ExecutionResult("timeout", error=f"stopped after {timeout_s:g} s"), None
        except (EOFError, OSError, pickle.UnpicklingError):  # the worker died (the OS killed it, or a crash)
            worker.kill()
            return ExecutionResult("rejected", error="the query stopped its worker (out of memory?)"), None

    def warm(self) -> None:
        """Start every worker now (a fresh interpreter importing duckdb takes a while on a busy CPU)."""
        workers = [self._idle.get() for _ in range(self._size)]
        for i, worker in enumerate(workers):
            if worker is None or not worker.alive():
                workers[i] = _Worker(self._kwargs)
        for worker in workers:
            self._idle.put(worker)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.kill()

    def __enter__(self) -> IsolatedExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IsolatedSandbox:
    """A file sandbox whose queries run in an IsolatedExecutor's workers; same execute() as the sandbox."""

    def __init__(self, inner: Sandbox | SqliteSandbox, executor: IsolatedExecutor):
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
    if isinstance(sandbox, (Sandbox, SqliteSandbox)) and getattr(sandbox, "path", None) is not None:
        return IsolatedSandbox(sandbox, executor)
    return sandbox


if __name__ == "__main__":
    main()
