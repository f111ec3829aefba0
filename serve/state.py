"""What one server holds: the model (behind the micro-batcher), the databases, its own thread pools and the
concurrency slots. The app's lifespan loads it in a background thread (serve/app.py); routes reach it
through serve/deps.py.
"""

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlft.model.protocol import Backend
from sqlft.sql.isolation import IsolatedExecutor, isolate
from sqlft.sql.postgres import PostgresUnreachable, redact
from serve.batching import MicroBatcher
from serve.registry import Database, Databases, close_databases, open_database
from serve.settings import Settings

log = logging.getLogger("sqlft.serve")


class Slot:
    """One of --max-concurrency places. Released when the request is done AND the work it started has stopped:
    a 504 does not free the place while its SQL still runs on a worker."""

    def __init__(self, slots: "Slots"):
        self._slots, self._pending, self._done = slots, 0, False

    def track(self, work: concurrent.futures.Future) -> None:
        """Keep the slot until `work` (running on a pool thread) has finished, whatever the request does."""
        loop = asyncio.get_running_loop()
        self._pending += 1

        def finished(_: concurrent.futures.Future) -> None:
            try:
                loop.call_soon_threadsafe(self._finish_one)
            except RuntimeError:  # the event loop is closed: the server has stopped, nobody counts slots
                pass

        work.add_done_callback(finished)

    def release(self) -> None:
        self._done = True
        self._maybe_free()

    def _finish_one(self) -> None:
        self._pending -= 1
        self._maybe_free()

    def _maybe_free(self) -> None:
        if self._done and self._pending == 0 and self._slots is not None:
            self._slots.in_flight -= 1
            self._slots = None


class Slots:
    """Requests in flight; used on the event loop only, so plain ints are safe."""

    def __init__(self, limit: int):
        self.limit, self.in_flight = limit, 0

    def acquire(self) -> Slot | None:
        if self.in_flight >= self.limit:
            return None
        self.in_flight += 1
        return Slot(self)


class ServerState:
    def __init__(self, settings: Settings, load_backend: Callable[[Settings], Backend]):
        self.settings, self._load_backend = settings, load_backend
        self.backend: Backend | None = None
        self.batcher: MicroBatcher | None = None
        self.databases: Databases = Databases()
        self.dialect: str | None = None  # the model's SQL dialect (None: unknown, SQL runs as written)
        self.ready = False
        self.load_error = ""
        self.slots = Slots(settings.max_concurrency)
        # Pools of their own: six slow prunings cannot make a SELECT 1 wait (the default pool is shared).
        self.execute_pool = ThreadPoolExecutor(settings.execute_workers, thread_name_prefix="sqlft-execute")
        self.prune_pool = ThreadPoolExecutor(settings.prune_workers, thread_name_prefix="sqlft-prune")
        # One worker process per execution thread: SQL runs where it can be killed (sqlft/sql/isolation.py).
        self.isolated = IsolatedExecutor(settings.execute_workers, memory_limit=settings.memory_limit,
                                         max_result_bytes=settings.max_result_bytes)
        self._lock = threading.Lock()  # load() runs in its own thread; close() may come while it runs
        self._closed = False
        self._stopped = threading.Event()  # ends the background retries of unreachable sources

    def load(self) -> None:
        settings = self.settings
        try:
            started = time.perf_counter()
            databases = self._open_databases(settings.sources())
            with self._lock:
                self.databases = databases
            if databases.unavailable:
                threading.Thread(target=self._retry_unavailable, name="sqlft-retry", daemon=True).start()
            self.isolated.warm()
            backend = self._load_backend(settings)
            batch, wait = (settings.max_batch, settings.max_wait_ms / 1000) if settings.batching else (1, 0.0)
            with self._lock:
                if self._closed:
                    close_databases(databases)
                    return
                self.backend = backend
                self.dialect = settings.dialect or getattr(backend, "sql_dialect", None)
                self.batcher = MicroBatcher(backend, max_batch=batch, max_wait_s=wait,
                                            before_generate=threads_policy(settings))
                self.ready = True
            log.info("ready in %.1f s: backend %s (%s, template %s, SQL dialect %s), databases %s",
                     time.perf_counter() - started, settings.backend, settings.model, backend.template,
                     self.dialect or "unknown", ", ".join(f"{d.name} ({d.engine})" for d in databases.values())
                     or "none")
        except Exception as e:  # noqa: BLE001 - reported by /readyz; the log has the traceback
            self.load_error = redact(f"{type(e).__name__}: {e}")
            log.exception("loading failed; /readyz answers 503 until the server is restarted with a fix")

    def _open_one(self, name: str, source: str) -> Database:
        settings = self.settings
        database = open_database(name, source, timeout_s=settings.execute_timeout_s, max_rows=settings.max_rows,
                                 memory_limit=settings.memory_limit, max_result_bytes=settings.max_result_bytes,
                                 pool_size=settings.pool_size, pool_wait_s=settings.pool_wait_s,
                                 allow_privileged_role=settings.allow_privileged_role)
        database.sandbox = isolate(database.sandbox, self.isolated)  # files: queries in killable processes
        warning = getattr(database.sandbox, "role_warning", "")
        if warning:
            print(warning, file=sys.stderr, flush=True)
        return database

    def _open_databases(self, sources: dict[str, str]) -> Databases:
        """Every source opened; a PostgreSQL server that cannot be reached now is left to the background retry
        (its database answers 503 meanwhile) so that one server down does not take the others with it. Any other
        failure (a missing file, a bad URL, a privileged role) stops the load: the configuration is wrong."""
        databases = Databases()
        try:
            for name, source in sources.items():
                try:
                    databases[name] = self._open_one(name, source)
                except PostgresUnreachable as e:
                    databases.unavailable[name] = str(e)
                    log.warning("database %s cannot be reached (%s); retrying in the background", name, e)
        except Exception:
            close_databases(databases)
            raise
        return databases

    def _retry_unavailable(self) -> None:
        sources, wait = self.settings.sources(), 1.0
        while not self._stopped.wait(wait):
            for name in list(self.databases.unavailable):
                try:
                    database = self._open_one(name, sources[name])
                except PostgresUnreachable as e:
                    self.databases.unavailable[name] = str(e)
                    continue
                except Exception as e:  # noqa: BLE001 - reachable now but unusable: say why, keep answering 503
                    self.databases.unavailable[name] = redact(f"{type(e).__name__}: {e}")
                    log.error("database %s is reachable but cannot be used: %s", name, redact(str(e)))
                    continue
                with self._lock:
                    if self._closed:
                        database.sandbox.close()
                        return
                    self.databases[name] = database
                    self.databases.unavailable.pop(name, None)
                log.info("database %s (%s) is reachable again", name, database.engine)
            if not self.databases.unavailable:
                return
            wait = min(wait * 2, 30.0)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            self._closed, self.ready = True, False
            if self.batcher is not None:
                self.batcher.close(timeout_s=self.settings.request_timeout_s)  # finishes queued prompts
            self.prune_pool.shutdown(wait=False, cancel_futures=True)
            self.execute_pool.shutdown(wait=True, cancel_futures=True)  # running SQL stops at its deadline
            self.isolated.close()
            close_databases(self.databases)


def threads_policy(settings: Settings):
    """--threads 0 (the default) with the local model: one torch thread per core that other processes leave free,
    chosen again before each generate call (serve.threads); a fixed --threads N, or another backend: nothing."""
    if settings.backend != "local" or settings.torch_threads:
        return None
    import torch  # already loaded with the model

    from serve.threads import FreeCoreThreads
    return FreeCoreThreads(torch.set_num_threads)
