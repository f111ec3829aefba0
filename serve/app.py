"""The HTTP API: question -> SQL (POST /sql), SQL -> rows (POST /execute), databases, health and readiness.

    app = create_app(Settings())                                             # what `sqlft serve` runs
    app = create_app(Settings(backend="fake", demo_databases=False, database=["restaurants"]))   # tests

The model and databases load in a background thread started by the lifespan, so /healthz answers at once and
/readyz says 503 until they are loaded. Routes: serve/routes/; their dependencies: serve/deps.py; the one
error body: serve/errors.py; what happens before a route is reached: serve/guard.py.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sqlft.model.protocol import Backend
from serve.errors import install_error_handlers
from serve.guard import RequestGuard
from serve.routes import databases, feedback, health, history, sql, tables
from serve.schemas import ErrorBody
from serve.settings import Settings
from serve.state import ServerState

log = logging.getLogger("sqlft.serve")


def load_backend(settings: Settings) -> Backend:
    """The model behind the API: loaded in this process, or a remote OpenAI-compatible server (vLLM)."""
    if settings.backend == "local":
        from sqlft.model.generate import InferenceModel
        model = InferenceModel.load(settings.model, template=settings.template)
        if settings.torch_threads:  # after load(), which sets one thread per core
            import torch
            torch.set_num_threads(settings.torch_threads)
        return model
    if settings.backend == "openai":
        from sqlft.model.remote import OpenAIBackend
        return OpenAIBackend(settings.openai_url, settings.model_name, api_key=settings.openai_api_key,
                             timeout_s=settings.request_timeout_s, template=settings.template,
                             model_dir=settings.model or None)
    from serve.testing import FakeBackend
    return FakeBackend()


def create_app(settings: Settings | None = None, load_backend: Callable[[Settings], Backend] = load_backend) -> FastAPI:
    """The app; `load_backend` is what the lifespan calls to get the model (tests give a fake one)."""
    state = ServerState(settings or Settings(), load_backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # A daemon thread, not asyncio.to_thread: a shutdown during a long model load must not wait for it.
        threading.Thread(target=state.load, name="sqlft-load", daemon=True).start()
        yield
        # uvicorn has stopped accepting connections and let in-flight requests finish (graceful shutdown).
        await asyncio.to_thread(state.close)
        log.info("stopped: %d prompt(s) in %d generate call(s)", state.batcher.prompts if state.batcher else 0,
                 state.batcher.batches if state.batcher else 0)

    app = FastAPI(title="sqlft", version="0.1.0", lifespan=lifespan,
                  description="Text-to-SQL with a fine-tuned model: POST /sql, POST /execute, GET /databases.",
                  responses={code: {"model": ErrorBody} for code in (401, 404, 408, 413, 422, 429, 503, 504)})
    app.state.sqlft = state
    install_error_handlers(app)
    app.add_middleware(RequestGuard, state=state)
    for module in (health, databases, sql, tables, history, feedback):
        app.include_router(module.router)
    return app
