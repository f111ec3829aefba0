"""Validation of loaded records before training: duplicates, over-long examples, and a report of every drop.

`validate(records, problems=..., length_of=..., max_length=..., overlong=..., dedupe=...)` returns the records to
train on and a `ValidationReport` (per-reason counts, the first examples of each, kept/total) that also carries the
loader's problems. An over-long record is dropped or fails the run; with overlong="truncate" an instruction record
may be kept and cut by the caller, while a SQL record is still dropped: an SQL answer is never cut.
"""

from dataclasses import dataclass, field
from typing import Callable, Iterable

from sqlft.data.errors import DataError
from sqlft.data.formats import Problem
from sqlft.prompts.record import Record

EXAMPLES_PER_REASON = 5


@dataclass
class ValidationReport:
    total: int = 0  # rows seen: records given + rows the loader could not read
    kept: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # reason -> records dropped for it
    examples: dict[str, list[Problem]] = field(default_factory=dict)  # reason -> first few
    longest: int = 0  # tokens of the longest kept record: a guide for data.max_length
    truncated: int = 0  # kept, but cut to data.max_length (overlong: truncate)

    def add(self, problem: Problem) -> None:
        self.counts[problem.reason] = self.counts.get(problem.reason, 0) + 1
        shown = self.examples.setdefault(problem.reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(problem)

    def summary(self) -> str:
        """A table for the terminal: counts per reason, then each reason's first examples."""
        lines = [f"data: kept {self.kept} of {self.total} records (longest kept: {self.longest} tokens)"]
        if self.truncated:
            lines.append(f"  {self.truncated} kept records were cut to data.max_length (overlong: truncate)")
        if self.counts:
            lines.append(f"  {'dropped for':<16}{'records':>8}")
            lines += [f"  {reason:<16}{count:>8}" for reason, count in sorted(self.counts.items())]
        for reason, problems in sorted(self.examples.items()):
            lines.append(f"  {reason}, first {len(problems)}:")
            lines += [f"    {p.source}: {p.message}" for p in problems]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready, for data_report.json beside the run."""
        return {"total": self.total, "kept": self.kept, "longest": self.longest, "truncated": self.truncated,
                "dropped": dict(self.counts),
                "examples": {reason: [{"source": p.source, "message": p.message} for p in problems]
                             for reason, problems in self.examples.items()}}


def drop_duplicates(records: list[Record], seen: dict | None = None) -> tuple[list[Record], list[Problem]]:
    """Records whose (system, context, turns) no earlier record has, and a problem for each one dropped. `seen`
    carries what earlier calls kept, so that duplicates are found across datasets too."""
    seen = {} if seen is None else seen
    kept, dropped = [], []
    for record in records:
        key = (record.system, record.context, tuple((t.role, t.content) for t in record.turns), record.text)
        if key in seen:
            dropped.append(Problem(record.source, "duplicate", f"same system, context and turns as {seen[key]}"))
        else:
            seen[key] = record.source or "an earlier record"
            kept.append(record)
    return kept, dropped


def validate(records: list[Record], *, length_of: Callable[[Record], int], max_length: int, overlong: str,
             dedupe: bool, problems: Iterable[Problem] = (),
             truncatable: Callable[[Record], bool] | None = None) -> tuple[list[Record], ValidationReport]:
    """Records to train on, and the report of what was dropped and why (loader `problems` included).

    length_of: tokens of a record as rendered by the run's template (prompt + answer).
    overlong: "drop" (count them, keep going), "fail" (raise DataError after looking at every record), or
      "truncate": keep those for which truncatable(record) is true (counted in report.truncated; the caller cuts
      them), drop the others (SQL records) as "drop" does.
    dedupe: drop records whose (system, context, turns) equal an earlier record's (sqlft.training.dataset does it before
    mixing instead, where a record repeated for a weight above 1 is not yet there to be taken for a duplicate).
    Raises DataError when nothing is left to train on.
    """
    if overlong not in ("drop", "fail", "truncate"):
        raise DataError(f"data.overlong is '{overlong}'; use drop, fail or truncate")
    report = ValidationReport()
    for problem in problems:
        report.add(problem)
    report.total = len(records) + sum(report.counts.values())
    if dedupe:  # before length_of: no need to tokenise a duplicate
        records, duplicates = drop_duplicates(records)
        for problem in duplicates:
            report.add(problem)
    kept, too_long = [], []
    for record in records:
        try:
            length = length_of(record)
        except ValueError as err:  # the template cannot render it (turn order, missing answer, ...)
            report.add(Problem(record.source, "render_error", str(err)))
            continue
        if length > max_length:
            if overlong == "truncate" and truncatable is not None and truncatable(record):
                report.truncated += 1
                length = max_length
            else:
                # Dropped whole: cutting tokens would cut the SQL answer (the end of the example) first.
                why = " (an SQL answer is never cut)" if overlong == "truncate" else ""
                too_long.append(Problem(record.source, "overlong",
                                        f"{length} tokens > data.max_length={max_length}{why}"))
                report.add(too_long[-1])
                continue
        report.longest = max(report.longest, length)
        kept.append(record)
    report.kept = len(kept)
    if too_long and overlong == "fail":
        first = ", ".join(f"{p.source} ({p.message.split()[0]} tokens)" for p in too_long[:5])
        raise DataError(f"{len(too_long)} of {len(records)} records are longer than data.max_length={max_length} "
                        f"tokens (first: {first}). Raise data.max_length, or set data.overlong=drop to leave them "
                        "out; the SQL answer is never truncated")
    if not kept:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.counts.items())) or "no records given"
        raise DataError(f"no training records left after validation ({counts}).\n{report.summary()}")
    return kept, report
