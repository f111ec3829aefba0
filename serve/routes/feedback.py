"""POST /feedback: an answer marked right (thumbs up) or wrong (thumbs down), kept as a training record.

Thumbs up appends a know_sql record (context, question, answer, db_id, db_path) to DATA_DIR/feedback/up.jsonl,
a file `sqlft train data.train=DATA_DIR/feedback/up.jsonl` takes as it is. Thumbs down goes to
DATA_DIR/feedback/down.jsonl with the SQL under `wrong_sql` and no `answer`: a wrong answer must never be
trained on as gold by mistake (the loader refuses a record without `answer`); write the right SQL as its
`answer` to use it. The schema is the server's own for a registered database, as the model was given it.
"""

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from serve.deps import DatabasesDep, SettingsDep
from serve.errors import ApiError
from serve.registry import Database
from serve.routes.history import stored_in
from serve.routes.sql import find_database
from serve.schemas import MAX_QUESTION_CHARS, MAX_SCHEMA_CHARS, MAX_SQL_CHARS, one_schema_source
from serve.schemas import Request as StrictBody

MAX_FEEDBACK_BYTES = 256_000_000  # per file: a client (with the key) cannot fill the disk one verdict at a time

router = APIRouter(tags=["feedback"])
_append_lock = threading.Lock()  # routes run on a thread pool: one line at a time, never interleaved


class Feedback(StrictBody):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="the SQL judged (as edited, if it was)")
    verdict: Literal["up", "down"] = Field(description="up: the SQL answers the question; down: it does not")
    database: str | None = Field(None, min_length=1, max_length=200, description="the registered database asked")
    db_schema: str | None = Field(None, min_length=1, max_length=MAX_SCHEMA_CHARS,
                                  description="or the pasted CREATE TABLE text")
    model_sql: str | None = Field(None, max_length=MAX_SQL_CHARS,
                                  description="the model's own SQL, when the judged SQL is an edit of it")

    @model_validator(mode="after")
    def schema_source(self) -> "Feedback":
        one_schema_source(self.db_schema, self.database)
        return self


class FeedbackSaved(BaseModel):
    verdict: str
    file: str = Field(description="the JSONL file the record was appended to, on the server")
    records: int = Field(description="records in that file now")
    trainable: bool = Field(description="the file is training data as it is (thumbs up)")


def feedback_record(body: Feedback, database: Database | None) -> dict:
    """The know_sql record: context, question, answer (thumbs up) or wrong_sql (thumbs down), and where it ran."""
    record = {"context": database.ddl if database else body.db_schema, "question": body.question,
              "answer" if body.verdict == "up" else "wrong_sql": body.sql}
    if database:
        # eval runs a record on its db_path: a file (made absolute: the server's folder is not the trainer's),
        # a defog-data name, or a PostgreSQL URL (never holding a password: the registry refuses those).
        source = Path(database.source).expanduser()
        record |= {"db_id": database.name, "db_path": str(source.resolve()) if source.is_file() else database.source,
                   "engine": database.engine}
    if body.model_sql and body.model_sql != body.sql:
        record["model_sql"] = body.model_sql
    return record | {"verdict": body.verdict, "marked_at": datetime.now(UTC).isoformat(timespec="seconds")}


@router.post("/feedback", status_code=201)
def feedback(body: Feedback, databases: DatabasesDep, settings: SettingsDep) -> FeedbackSaved:
    """Keep an answer marked right (a training record in feedback/up.jsonl) or wrong (feedback/down.jsonl)."""
    database = find_database(databases, body.database) if body.database else None
    path = Path(settings.data_dir, "feedback", f"{body.verdict}.jsonl").resolve()
    line = json.dumps(feedback_record(body, database), ensure_ascii=False) + "\n"
    with _append_lock:
        if path.exists() and path.stat().st_size + len(line) > MAX_FEEDBACK_BYTES:
            raise ApiError(507, "feedback_full", f"{path.name} on the server holds {MAX_FEEDBACK_BYTES:,} bytes, "
                           "its limit: train on it, then move it away (a new file is started).")
        with stored_in(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(line)
            with path.open("rb") as f:
                records = sum(1 for _ in f)
    return FeedbackSaved(verdict=body.verdict, file=str(path), records=records, trainable=body.verdict == "up")
