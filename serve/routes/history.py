"""GET /history, POST /history, DELETE /history: the questions asked and the SQL answered, kept on the server.

Each API key has its own history (the key is stored only as a hash); without a key, each client address has
one. It lives in DATA_DIR/history.sqlite (--data-dir), so it survives a page reload and a server restart, and
keeps the newest HISTORY_LIMIT entries per owner and the OWNER_LIMIT owners who wrote last (without a key,
every client address is an owner: a client rotating addresses must not grow the file without bound). The page appends an entry after each answer (POST), so
/sql itself stays as it is; any other client may do the same.
"""

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, model_validator

from serve.deps import SettingsDep
from serve.errors import ApiError
from serve.schemas import MAX_QUESTION_CHARS, MAX_SCHEMA_CHARS, MAX_SQL_CHARS, one_schema_source
from serve.schemas import Request as StrictBody

HISTORY_LIMIT = 200  # entries kept per owner; the oldest go first
OWNER_LIMIT = 1000  # owners kept; a new owner past it drops the one whose newest entry is oldest (<= 200,000 rows)

router = APIRouter(tags=["history"])


class HistoryEntry(StrictBody):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    database: str | None = Field(None, min_length=1, max_length=200, description="the registered database asked")
    db_schema: str | None = Field(None, min_length=1, max_length=MAX_SCHEMA_CHARS,
                                  description="or the pasted CREATE TABLE text")
    sql: str = Field("", max_length=MAX_SQL_CHARS, description="the answer's SQL ('' when the model wrote none)")
    status: Literal["ok", "error", "timeout", "rejected"] | None = Field(
        None, description="how running it went, when it was run")
    rows: int | None = Field(None, ge=0, description="rows it returned, when it was run")

    @model_validator(mode="after")
    def schema_source(self) -> "HistoryEntry":
        one_schema_source(self.db_schema, self.database)
        return self


class HistoryItem(BaseModel):
    id: int
    at: str = Field(description="when it was recorded, ISO 8601 UTC")
    question: str
    database: str | None = None
    db_schema: str | None = None
    sql: str = ""
    status: str | None = None
    rows: int | None = None


class HistoryFile:
    """One SQLite file for every owner. A connection per call: routes run on a thread pool, and SQLite's own
    locking (with a busy timeout) serialises the writers."""

    def __init__(self, path: Path, limit: int = HISTORY_LIMIT, owner_limit: int = OWNER_LIMIT):
        self.path, self.limit, self.owner_limit = path, limit, owner_limit

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        con.execute("CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, "
                    "at TEXT NOT NULL, entry TEXT NOT NULL)")
        con.execute("CREATE INDEX IF NOT EXISTS history_owner ON history (owner, id)")
        return con

    def append(self, owner: str, entry: HistoryEntry) -> HistoryItem:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as con, con:  # one transaction: the insert and the trims
            new_owner = con.execute("SELECT 1 FROM history WHERE owner = ? LIMIT 1", (owner,)).fetchone() is None
            cursor = con.execute("INSERT INTO history (owner, at, entry) VALUES (?, ?, ?)",
                                 (owner, at, entry.model_dump_json(exclude_none=True)))
            con.execute("DELETE FROM history WHERE owner = ? AND id NOT IN "
                        "(SELECT id FROM history WHERE owner = ? ORDER BY id DESC LIMIT ?)", (owner, owner, self.limit))
            if new_owner:  # only a new owner can push the count past the limit: the grouping runs that rarely
                con.execute("DELETE FROM history WHERE owner IN (SELECT owner FROM history GROUP BY owner "
                            "ORDER BY MAX(id) DESC LIMIT -1 OFFSET ?)", (self.owner_limit,))
        return HistoryItem(id=cursor.lastrowid, at=at, **entry.model_dump())

    def read(self, owner: str, limit: int) -> list[HistoryItem]:
        """The newest `limit` entries, newest first."""
        if not self.path.exists():
            return []
        with closing(self._connect()) as con:
            rows = con.execute("SELECT id, at, entry FROM history WHERE owner = ? ORDER BY id DESC LIMIT ?",
                               (owner, limit)).fetchall()
        return [HistoryItem(id=i, at=at, **json.loads(entry)) for i, at, entry in rows]

    def clear(self, owner: str) -> int:
        if not self.path.exists():
            return 0
        with closing(self._connect()) as con, con:
            return con.execute("DELETE FROM history WHERE owner = ?", (owner,)).rowcount


@contextmanager
def stored_in(path: Path) -> Iterator[None]:
    """A folder that cannot be written (or a broken file) is a clear 503, not a 500 without a word."""
    try:
        yield
    except (OSError, sqlite3.Error) as e:
        raise ApiError(503, "storage_unavailable", f"The server cannot keep this in {path}: {e}. Start it with "
                       "--data-dir set to a folder it can write.") from None


def get_history_file(settings: SettingsDep) -> HistoryFile:
    return HistoryFile(Path(settings.data_dir) / "history.sqlite")


HistoryDep = Annotated[HistoryFile, Depends(get_history_file)]


def owner_of(request: Request) -> str:
    """Whose history: a hash of the API key sent (the guard has checked it), else the client's address."""
    key = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "client:" + (request.client.host if request.client else "unknown")


OwnerDep = Annotated[str, Depends(owner_of)]


@router.get("/history")
def history(history: HistoryDep, owner: OwnerDep,
            limit: Annotated[int, Query(ge=1, le=HISTORY_LIMIT)] = 50) -> list[HistoryItem]:
    """This key's (or client's) questions and answers, newest first."""
    with stored_in(history.path):
        return history.read(owner, limit)


@router.post("/history", status_code=201)
def add_history(body: HistoryEntry, history: HistoryDep, owner: OwnerDep) -> HistoryItem:
    """Record a question and its answer; past HISTORY_LIMIT entries the oldest is dropped."""
    with stored_in(history.path):
        return history.append(owner, body)


@router.delete("/history")
def clear_history(history: HistoryDep, owner: OwnerDep) -> dict:
    """Forget this key's (or client's) history."""
    with stored_in(history.path):
        return {"deleted": history.clear(owner)}

