"""Liveness and readiness. /healthz is the one route open without the API key; /readyz says no more than
whether the server can answer (no model path, no database names)."""

from fastapi import APIRouter

from serve.deps import ReadyDep
from serve.schemas import ErrorBody

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """Liveness: the process answers (the model may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
def readyz(state: ReadyDep) -> dict:
    """Readiness: 200 once the model and databases are loaded, 503 before (or if loading failed)."""
    return {"status": "ready", "template": state.backend.template, "max_context": state.batcher.max_context,
            "batching": state.settings.batching, "generate_calls": state.batcher.batches,
            "prompts": state.batcher.prompts}
