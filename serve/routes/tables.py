"""GET /databases/{name}/tables: a registered database's tables, columns, types and keys, for a schema browser.

Read from the schema text the model is given (GET /databases), parsed by sqlglot through sqlft.sql.schema's DDL
reader, so the browser shows exactly the keys and types the model sees: a key missing here is missing from
the prompt too.
"""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from serve.deps import DatabasesDep
from serve.routes.sql import find_database
from sqlft.sql.schema import parse_tables

router = APIRouter(tags=["databases"])


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="the declared type as sqlglot names it (DuckDB's VARCHAR reads as TEXT); '' "
                      "when the schema gives none")
    primary_key: bool = Field(description="part of the table's primary key")
    references: str | None = Field(None, description="table.column this column's foreign key points at")


class ForeignKeyInfo(BaseModel):
    columns: list[str]
    table: str
    ref_columns: list[str]


class TableInfo(BaseModel):
    name: str
    columns: list[ColumnInfo]
    primary_key: list[str]
    foreign_keys: list[ForeignKeyInfo]


def describe_tables(ddl: str, dialect: str, names: list[str] | None = None) -> list[TableInfo]:
    """Tables of CREATE TABLE text; `names` (the database's table list) adds, without columns, any table whose
    statement sqlglot cannot read, so no table is hidden from the browser."""
    tables = []
    for table in parse_tables(ddl, dialect):
        references = {cols[0].lower(): f"{ref_table}.{ref_cols[0]}"
                      for cols, ref_table, ref_cols in table.foreign_keys if len(cols) == 1}
        keyed = {c.lower() for c in table.primary_key}
        # c.declared: the type as declared, in sqlglot's own dialect (BIGINT stays BIGINT, not SQLite's INTEGER);
        # c.type is DuckDB's, for synthesized databases.
        columns = [ColumnInfo(name=c.name, type=c.declared,
                              primary_key=c.name.lower() in keyed, references=references.get(c.name.lower()))
                   for c in table.columns]
        tables.append(TableInfo(name=table.name, columns=columns, primary_key=table.primary_key,
                                foreign_keys=[ForeignKeyInfo(columns=cols, table=ref_table, ref_columns=ref_cols)
                                              for cols, ref_table, ref_cols in table.foreign_keys]))
    found = {t.name.lower() for t in tables} | {t.name.lower().rsplit(".", 1)[-1] for t in tables}
    for name in names or []:
        if name.lower() not in found and name.lower().rsplit(".", 1)[-1] not in found:
            tables.append(TableInfo(name=name, columns=[], primary_key=[], foreign_keys=[]))
    return tables


@router.get("/databases/{name}/tables")
def tables(name: str, databases: DatabasesDep) -> list[TableInfo]:
    """The tables of a registered database: columns with their types, primary keys and foreign keys."""
    database = find_database(databases, name)
    return describe_tables(database.ddl, database.engine, database.tables)
