"""GET /databases: the registered databases and the schema text the model is given for each;
POST /databases/{name}/reload: read a PostgreSQL database's schema from its catalog again."""

import asyncio

from fastapi import APIRouter

from eval.postgres import PostgresError
from serve.deps import DatabasesDep, ReadyDep
from serve.errors import ApiError
from serve.registry import Database, reload_schema
from serve.routes.sql import find_database
from serve.schemas import DatabaseInfo

router = APIRouter(tags=["databases"])


def database_info(d: Database) -> DatabaseInfo:
    return DatabaseInfo(name=d.name, tables=d.tables, db_schema=d.ddl, engine=d.engine)


@router.get("/databases")
def databases(databases: DatabasesDep) -> list[DatabaseInfo]:
    """Registered databases with their schema (the CREATE TABLE text the model is given) and engine."""
    return [database_info(d) for d in databases.values()]


@router.post("/databases/{name}/reload")
async def reload(name: str, state: ReadyDep, databases: DatabasesDep) -> DatabaseInfo:
    """Read a PostgreSQL database's schema again (after tables were added or changed on the server)."""
    database = find_database(databases, name)
    loop = asyncio.get_running_loop()
    try:
        return database_info(await loop.run_in_executor(state.execute_pool, reload_schema, database))
    except PostgresError as e:  # the server cannot be reached or read now (the message has no password)
        raise ApiError(503, "database_unavailable", str(e)) from None
    except ValueError as e:  # a file: its schema is read at start
        raise ApiError(422, "not_reloadable", str(e)) from None
