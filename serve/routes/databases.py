"""GET /databases: the registered databases and the schema text the model is given for each;
POST /databases/{name}/reload: read a PostgreSQL database's schema from its catalog again."""

import logging

from fastapi import APIRouter

from sqlft.sql.postgres import PostgresError, PrivilegedRole
from serve.deps import DatabasesDep, ReadyDep, SlotDep
from serve.errors import ApiError
from serve.registry import Database, reload_schema
from serve.routes.sql import find_database, run_on
from serve.schemas import DatabaseInfo

log = logging.getLogger("sqlft.serve")
router = APIRouter(tags=["databases"])


def database_info(d: Database) -> DatabaseInfo:
    return DatabaseInfo(name=d.name, tables=d.tables, db_schema=d.ddl, engine=d.engine)


@router.get("/databases")
def databases(databases: DatabasesDep) -> list[DatabaseInfo]:
    """Registered databases with their schema (the CREATE TABLE text the model is given) and engine."""
    return [database_info(d) for d in databases.values()]


@router.post("/databases/{name}/reload")
async def reload(name: str, state: ReadyDep, databases: DatabasesDep, slot: SlotDep) -> DatabaseInfo:
    """Read a PostgreSQL database's schema again (after tables were added or changed on the server). It takes a
    concurrency slot, as /sql and /execute do: 200 reloads at once must not slow every query down."""
    database = find_database(databases, name)
    try:
        return database_info(await run_on(state.execute_pool, slot, reload_schema, database))
    except PrivilegedRole as e:  # the role gained privileges since the start: its queries are refused too
        log.error("reload of %s refused: %s", name, e)
        raise ApiError(503, "database_unavailable", f"Database {name!r}: its role may now do more than read; see "
                       "the server log.") from None
    except PostgresError as e:  # the server cannot be reached or read now; the details (host) go to the log only
        log.warning("reload of %s failed: %s", name, e)
        raise ApiError(503, "database_unavailable", f"Database {name!r} cannot be read now; retry shortly.",
                       headers={"Retry-After": "5"}) from None
    except ValueError as e:  # a file: its schema is read at start
        raise ApiError(422, "not_reloadable", str(e)) from None
