"""Dependencies the routes declare as parameters (the FastAPI full-stack template's deps.py).

    async def execute(body: ExecuteRequest, databases: DatabasesDep, slot: SlotDep) -> ExecuteResponse: ...

Tests swap any of them: `app.dependency_overrides[get_batcher] = lambda: MicroBatcher(FakeBackend())`.
The API key and the concurrency slot are checked by the request guard (serve/guard.py) before the body is
read; SlotDep only hands the route the slot it already holds.
"""

from typing import Annotated

from fastapi import Depends, Request

from serve.batching import MicroBatcher
from serve.errors import ApiError
from serve.registry import Database
from serve.settings import Settings
from serve.state import ServerState, Slot


def get_state(request: Request) -> ServerState:
    return request.app.state.sqlft


StateDep = Annotated[ServerState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_ready(state: StateDep) -> ServerState:
    if not state.ready:
        if state.load_error:
            raise ApiError(503, "load_failed", f"The server failed to load: {state.load_error}")
        raise ApiError(503, "not_ready", "The model and databases are still loading; retry in a few seconds.",
                       headers={"Retry-After": "5"})
    return state


ReadyDep = Annotated[ServerState, Depends(require_ready)]


def get_batcher(state: ReadyDep) -> MicroBatcher:
    """The model, behind the micro-batcher."""
    return state.batcher


BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]


def get_databases(state: ReadyDep) -> dict[str, Database]:
    return state.databases


DatabasesDep = Annotated[dict[str, Database], Depends(get_databases)]


def get_slot(request: Request) -> Slot | None:
    """The concurrency slot the guard took for this request (None for routes without one)."""
    return request.scope.get("state", {}).get("slot")


SlotDep = Annotated[Slot | None, Depends(get_slot)]
