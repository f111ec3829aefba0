"""Execution reward for reinforcement fine-tuning: a sampled answer earns 1 when its result matches the gold's,
0.1 when it runs but gives another result, 0 otherwise (Arctic-Text2SQL-R1's reward; weights configurable).

Answers are scored exactly as `sqlft eval` scores them (sqlft.scoring.execution): the record's real database when it names one,
synthesized instances for schema-only records, the same hardened sandboxes, timeouts and comparison rules. Gold
results are computed once per record when the reward is built; a record whose gold does not run is dropped, with
the reason. Model-free: this module never loads a model.

    reward = ExecutionReward.build(examples, RewardSettings(dialect="sqlite"))
    reward.dropped                                     # {example id: why its gold does not run}
    reward(prompts, completions, record_id=ids)       # TRL's reward-function signature: one float per completion
    reward.close()
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from sqlft.data.examples import Example
from sqlft.scoring.execution import (Gold, Instances, Scoring, instance_key, open_sandboxes, prepare_instances, run_golds,
                          score_pred)
from sqlft.prompts.reply import extract_sql

# Statuses of sqlft.scoring.execution that mean "the answer did not run" (kept apart in the logs: each says what to fix).
ERROR_STATUSES = ("pred_parse_error", "pred_exec_error", "pred_timeout", "rejected")


@dataclass
class RewardSettings:
    dialect: str = "sqlite"  # dialect of the gold SQL and of what the model is asked to write
    mode: str = "spider"  # comparison rules (sqlft.sql.compare.MODES), as `sqlft eval --mode`
    float_tolerance: float = 0.0
    timeout_s: float = 5.0  # per query, gold and answer alike (a runaway answer is stopped and earns 0)
    instances: int = 3  # synthesized databases per schema-only record; an answer must match on every one
    engine: str = "auto"  # as `sqlft eval --engine`: SQLite-dialect SQL on a SQLite file runs on SQLite itself
    match: float = 1.0  # reward of an answer whose result matches the gold's
    runs: float = 0.1  # reward of an answer that runs but gives another result
    overlong_penalty: float = 0.0  # subtracted when the answer used its whole token budget without ending
    malformed_penalty: float = 0.0  # subtracted when no SQL can be read from the answer (none, or it does not parse)
    max_completion_tokens: int = 0  # the token budget (to tell over-long answers); 0: never over-long
    stop_token_ids: tuple[int, ...] = ()  # tokens that end an answer (one that ends with one is not over-long)
    workers: int = 2  # answers scored in parallel (DuckDB releases the GIL while a query runs)


@dataclass
class Outcome:
    status: str  # match, mismatch, or one of ERROR_STATUSES (sqlft.scoring.execution's statuses)
    reward: float
    reason: str = ""
    overlong: bool = False


@dataclass
class _Target:
    example: Example
    inst: Instances
    golds: list[Gold]  # the gold alternatives that ran, with their results (computed once)


class ExecutionReward:
    """A TRL reward function over prepared records; build() it, call it, close() it."""

    def __init__(self, settings: RewardSettings, targets: dict[str, _Target], dropped: dict[str, str],
                 instances: dict[str, Instances]):
        self.settings = settings
        self.targets = targets
        self.dropped = dropped  # example id -> why its gold cannot be executed
        self._instances = instances  # open sandboxes, closed by close()
        self._lock = threading.Lock()
        self.__name__ = "execution"  # TRL names the reward's log entries after it: rewards/execution/mean

    @classmethod
    def build(cls, examples: list[Example], settings: RewardSettings, workers: int = 2) -> ExecutionReward:
        """Prepare every example's database(s) and run its gold SQL once; examples whose gold fails are dropped."""
        scoring = cls._scoring(settings)
        instances = prepare_instances(examples, settings.dialect, settings.instances, workers, settings.engine)
        open_sandboxes(instances, settings.timeout_s, max(1, settings.workers))
        targets, dropped = {}, {}
        for example in examples:
            inst = instances.get(instance_key(example))
            if example.database_error:
                dropped[example.id] = example.database_error
            elif inst is None or inst.error:
                dropped[example.id] = f"no database: {inst.error if inst else 'not prepared'}"
            else:
                golds, failures = run_golds(example, inst, scoring)
                if golds:
                    targets[example.id] = _Target(example, inst, golds)
                else:
                    dropped[example.id] = "the gold SQL does not run: " + " | ".join(dict.fromkeys(failures))
        used = {instance_key(t.example) for t in targets.values()}
        for key, inst in instances.items():
            if key not in used:
                for box in inst.boxes:
                    box.close()
        return cls(settings, targets, dropped, {k: v for k, v in instances.items() if k in used})

    @staticmethod
    def _scoring(settings: RewardSettings) -> Scoring:
        return Scoring(settings.dialect, settings.mode, settings.float_tolerance, settings.timeout_s)

    def score(self, example_id: str, answer: str, completion_ids: list[int] | None = None) -> Outcome:
        """The reward of one answer (the model's text; the SQL is extracted from it as eval does)."""
        s = self.settings
        target = self.targets.get(str(example_id))
        if target is None:
            why = self.dropped.get(str(example_id), "never given")
            raise KeyError(f"no prepared record {example_id!r} (dropped: {why})")
        pred_sql = extract_sql(answer, s.dialect)
        result = score_pred(target.example, pred_sql, target.golds, target.inst, self._scoring(s))
        reward = s.match if result.status == "match" else s.runs if result.status == "mismatch" else 0.0
        if result.status == "pred_parse_error":
            reward -= s.malformed_penalty
        overlong = bool(s.max_completion_tokens and completion_ids is not None
                        and len(completion_ids) >= s.max_completion_tokens
                        and (not completion_ids or completion_ids[-1] not in s.stop_token_ids))
        if overlong:
            reward -= s.overlong_penalty
        return Outcome(result.status, reward, result.reason, overlong)

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None, *,
                 record_id: list | None = None, log_metric: Callable[[str, float], None] | None = None,
                 **_: Any) -> list[float]:
        """TRL's reward-function call: one reward per completion; `record_id` is the dataset column that names each
        completion's record. Logs the share of answers that match, run but differ, and fail (TensorBoard)."""
        if record_id is None:
            raise ValueError("the GRPO dataset needs a record_id column naming each prompt's record")
        ids = completion_ids if completion_ids is not None else [None] * len(completions)
        texts = [_text(c) for c in completions]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.workers)) as pool:
            outcomes = list(pool.map(self.score, record_id, texts, ids))
        if log_metric is not None:
            for name, value in outcome_rates(outcomes).items():
                log_metric(f"execution/{name}", value)
        return [o.reward for o in outcomes]

    def close(self) -> None:
        with self._lock:
            for inst in self._instances.values():
                for box in inst.boxes:
                    box.close()
            self._instances.clear()


def outcome_rates(outcomes: list[Outcome]) -> dict[str, float]:
    """Shares of a batch of answers: match, runs-but-wrong, error (did not run: parse, execution, timeout,
    rejected), timeout alone, and over-long."""
    n = max(1, len(outcomes))
    counts = Counter(o.status for o in outcomes)
    return {"match_rate": counts["match"] / n, "run_wrong_rate": counts["mismatch"] / n,
            "error_rate": sum(counts[s] for s in ERROR_STATUSES) / n, "timeout_rate": counts["pred_timeout"] / n,
            "overlong_rate": sum(o.overlong for o in outcomes) / n}


def _text(completion: Any) -> str:
    """A completion as TRL passes it: text, or (conversational data) a list of messages."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)
