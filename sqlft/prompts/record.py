"""The one internal record that every dataset format maps to, and that every template renders.

A record is a conversation: optional system text, optional context that belongs to the first user turn
(the CREATE TABLE schema of a SQL record, Dolly's context, Alpaca's input), then user/assistant turns.
For training, the last assistant turn is the target; for inference, the record ends with a user turn.
"""

from dataclasses import dataclass, field

SQL_SYSTEM = "Use the following contextual information to concisely answer the question."


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass
class Record:
    turns: list[Turn]
    system: str = ""
    context: str = ""  # joined to the first user turn by the template
    task: str = "instruct"  # "sql" (context is a schema, answer is SQL), "instruct", or "chat"
    db_id: str = ""  # database a SQL record runs against; also the unit of the train/validation split
    source: str = ""  # "file:line" or "dataset[index]", for messages that point at the bad record
    meta: dict = field(default_factory=dict)  # anything else the format carried (category, difficulty, ...)
    text: str = ""  # a pre-rendered record: the whole training text, template already applied (turns are empty)

    @property
    def question(self) -> str:
        """The first user turn (the question of a SQL record)."""
        return next((t.content for t in self.turns if t.role == "user"), "")

    @property
    def answer(self) -> str:
        """The training target: the last assistant turn, or '' for an inference record."""
        if self.text:
            return self.text
        return self.turns[-1].content if self.turns and self.turns[-1].role == "assistant" else ""


def sql_record(db_schema: str, question: str, sql: str = "", db_id: str = "", source: str = "",
               system: str = SQL_SYSTEM, meta: dict | None = None) -> Record:
    """A know_sql-style record; with sql="" it is an inference record (a question to answer)."""
    turns = [Turn("user", question)] + ([Turn("assistant", sql)] if sql else [])
    return Record(turns=turns, system=system, context=db_schema, task="sql", db_id=db_id,
                  source=source, meta=dict(meta or {}))
