"""Execution-guided decoding: when the greedy answer does not run, sample more answers and keep the first that does.

"Runs" means: it parses, and DuckDB binds and executes it on an empty copy of the schema (the tables with no
rows). That catches what most wrong answers of a small model are (unknown tables and columns, type errors, broken
syntax) and it reads no data at all, so an eval that picks with it learns nothing about the expected answer.

    picker = ExecutionGuide(dialect="sqlite", candidates=4, temperature=0.7)
    outputs = picker.improve(model, prompts, schemas, outputs, gen)   # same list, failures replaced where possible
"""

from __future__ import annotations

import dataclasses
import threading

import torch

from eval.sandbox import Sandbox
from eval.sql import extract_sql, parse_sql, to_duckdb
from sqlft.config import GenerationConfig
from sqlft.schema import create_table_sql, parse_tables


class EmptySchemaCheck:
    """Why a model answer cannot run on its schema ("" when it runs). One in-memory sandbox per schema."""

    def __init__(self, dialect: str, timeout_s: float = 2.0):
        self.dialect, self.timeout_s = dialect, timeout_s
        self._boxes: dict[str, tuple[Sandbox, set[str]] | None] = {}
        self._lock = threading.Lock()

    def error(self, answer: str, ddl: str) -> str:
        sql = extract_sql(answer, self.dialect)
        parsed = parse_sql(sql, self.dialect)
        if not parsed.ok:
            return f"parse: {parsed.error}"
        box = self._box(ddl)
        if box is None:
            return ""  # a schema that cannot be rebuilt: no evidence against the answer
        sandbox, columns = box
        result = sandbox.execute(to_duckdb(sql, self.dialect, columns), max_rows=1)
        return "" if result.status == "ok" else f"{result.status}: {result.error}"

    def _box(self, ddl: str) -> tuple[Sandbox, set[str]] | None:
        with self._lock:
            if ddl not in self._boxes:
                tables = parse_tables(ddl, "duckdb") or parse_tables(ddl, self.dialect)
                self._boxes[ddl] = None if not tables else (
                    Sandbox.from_sql([create_table_sql(t) for t in tables], timeout_s=self.timeout_s),
                    {c.name for t in tables for c in t.columns})
            return self._boxes[ddl]

    def close(self) -> None:
        for box in self._boxes.values():
            if box:
                box[0].close()


@dataclasses.dataclass
class ExecutionGuide:
    dialect: str
    candidates: int = 4  # answers per question at most: the greedy one and candidates - 1 samples
    temperature: float = 0.7
    seed: int = 0
    check: EmptySchemaCheck | None = None

    def __post_init__(self):
        self.check = self.check or EmptySchemaCheck(self.dialect)
        self.replaced = 0  # answers that a sample replaced
        self.sampled = 0  # samples drawn

    def improve(self, model, prompts: list[str], schemas: list[str], outputs: list, gen: GenerationConfig) -> list:
        """`outputs` (one per prompt) with every answer that does not run replaced by the first sample that does.
        Samples are drawn in rounds, one per still-failing question, so a question stops costing once it runs."""
        outputs = list(outputs)
        failing = [i for i, (out, ddl) in enumerate(zip(outputs, schemas)) if self.check.error(out.text, ddl)]
        sampling = dataclasses.replace(gen, do_sample=True, temperature=self.temperature, num_beams=1)
        torch.manual_seed(self.seed)  # the same samples on a rerun
        for _ in range(self.candidates - 1):
            if not failing:
                break
            samples = model.generate([prompts[i] for i in failing], sampling)
            self.sampled += len(failing)
            still = []
            for i, sample in zip(failing, samples):
                if self.check.error(sample.text, schemas[i]):
                    still.append(i)
                else:
                    # the time spent on the question so far is kept on it
                    sample.seconds += outputs[i].seconds
                    outputs[i] = sample
                    self.replaced += 1
            failing = still
        return outputs

    def close(self) -> None:
        self.check.close()
