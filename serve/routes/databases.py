"""GET /databases: the registered databases and the schema text the model is given for each."""

from fastapi import APIRouter

from serve.deps import DatabasesDep
from serve.schemas import DatabaseInfo

router = APIRouter(tags=["databases"])


@router.get("/databases")
def databases(databases: DatabasesDep) -> list[DatabaseInfo]:
    """Registered databases with their schema (the CREATE TABLE text the model is given)."""
    return [DatabaseInfo(name=d.name, tables=d.tables, db_schema=d.ddl) for d in databases.values()]
