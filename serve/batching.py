"""Micro-batching: prompts of concurrent requests share one backend.generate call, on one worker thread.

The first prompt of a batch waits at most `max_wait_s` (20 ms) for others, up to `max_batch` prompts; prompts
that arrive while a batch runs form the next one. The event loop only awaits a future, so it keeps answering
(health checks, 429s) while the model works. Every tokenizer use (token counting included) happens on the
worker thread: a Hugging Face fast tokenizer shared between threads can fail with "Already borrowed".
"""

import asyncio
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlft.config import GenerationConfig
from sqlft.model.protocol import Backend, Generation


class PromptTooLong(Exception):
    """The prompt plus the answer budget does not fit in the model's context."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, max_context: int):
        self.prompt_tokens, self.max_new_tokens, self.max_context = prompt_tokens, max_new_tokens, max_context
        super().__init__(f"prompt {prompt_tokens} + max_new_tokens {max_new_tokens} > context {max_context}")


class BatcherClosed(Exception):
    """The server is shutting down."""


@dataclass
class Result:
    generation: Generation
    batch_size: int  # prompts in the generate call that produced it


@dataclass
class _Job:
    prompt: str
    gen: GenerationConfig
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


_STOP = None  # queue sentinel: finish what is queued before it, then end the worker


class MicroBatcher:
    def __init__(self, backend: Backend, *, max_batch: int = 8, max_wait_s: float = 0.02,
                 before_generate: Callable[[], object] | None = None):
        """max_batch=1, max_wait_s=0 turns batching off: one prompt per call, in arrival order. `before_generate`
        runs in the batcher's thread before each generate call (serve.threads chooses torch threads there)."""
        self.backend, self.max_batch, self.max_wait_s = backend, max(1, max_batch), max(0.0, max_wait_s)
        self.before_generate = before_generate
        self.max_context = backend.max_context
        self.batches = 0  # generate calls made (for /readyz and the load test)
        self.prompts = 0  # prompts generated
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="sqlft-batcher", daemon=True)
        self._thread.start()

    async def generate(self, prompt: str, gen: GenerationConfig) -> Result:
        """Raises PromptTooLong, BatcherClosed, or whatever the backend raised for this batch."""
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(prompt, gen, future, loop))
        return await future  # cancelled by a request timeout: the worker then skips the job

    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking prompts, finish the queued ones (drain), end the worker thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout_s)

    # ------------------------------------------------------------------------- worker thread

    def _work(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is _STOP:
                return
            batch = [job]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                wait = deadline - time.monotonic()
                try:
                    # Past the deadline, still take what is already queued (it arrived while the last batch ran).
                    job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                batch.append(job)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        # Requests with different generation settings cannot share a generate call.
        groups: dict[tuple, list[_Job]] = {}
        for job in batch:
            if not job.future.cancelled():  # its request timed out while queued
                groups.setdefault(dataclasses.astuple(job.gen), []).append(job)
        for jobs in groups.values():
            max_new_tokens = jobs[0].gen.max_new_tokens
            fitting = []
            for job in jobs:
                try:
                    tokens = self.backend.count_tokens(job.prompt)
                except Exception as e:  # noqa: BLE001 - reported to the request, the worker goes on
                    _settle(job, error=e)
                    continue
                if tokens + max_new_tokens > self.max_context:
                    _settle(job, error=PromptTooLong(tokens, max_new_tokens, self.max_context))
                else:
                    fitting.append(job)
            if not fitting:
                continue
            gen = dataclasses.replace(jobs[0].gen, batch_size=len(fitting))  # one generate call for all
            try:
                if self.before_generate:
                    self.before_generate()
                generations = self.backend.generate([j.prompt for j in fitting], gen)
            except Exception as e:  # noqa: BLE001 - one failed batch must not end the worker
                for job in fitting:
                    _settle(job, error=e)
                continue
            self.batches += 1
            self.prompts += len(fitting)
            for job, generation in zip(fitting, generations):
                _settle(job, result=Result(generation, len(fitting)))


def _settle(job: _Job, result: Result | None = None, error: BaseException | None = None) -> None:
    """Hand a result to the request's future, on its event loop (futures are not thread-safe)."""
    def settle() -> None:
        if job.future.done():  # cancelled by a timeout meanwhile
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
