"""Training data, from dataset files to token ids: load -> validate -> mix -> split -> render -> tokenize.

Runs before any model is loaded (it needs only the tokenizer), so that bad data fails in seconds, not after a
model download. Loss is on the answer only: `completion_mask` marks answer tokens, and TRL turns it into labels.
"""

import dataclasses
from dataclasses import dataclass

from sqlft.config import Config
from sqlft.formats import DataError, load_records
from sqlft.mixing import mix, split
from sqlft.paths import resolve_data_path
from sqlft.record import SQL_SYSTEM, Record
from sqlft.templates import OWN_BOS, render, render_prompt
from sqlft.validate import ValidationReport, drop_duplicates, validate


@dataclass
class Example:
    input_ids: list[int]
    completion_mask: list[int]  # 1 on answer tokens (the loss), 0 on prompt tokens


@dataclass
class TrainingData:
    train: list[Example]
    validation: list[Example]
    report: ValidationReport
    validation_report: ValidationReport | None
    mix_info: dict
    sample_prompts: list[str]  # a few validation prompts: merge checks merged == adapter on them
    validation_records: list[Record]  # held out (whole databases with split_by_db): `sqlft eval` can score them


def with_system(record: Record, config: Config) -> Record:
    """SQL records get the configured system text unless they carry their own (loaders give SQL_SYSTEM)."""
    if record.task == "sql" and record.system in ("", SQL_SYSTEM):
        record.system = config.data.system
    return record


def encode(record: Record, template: str, tokenizer, schema_format: str = "ddl") -> Example:
    """Tokenize prompt and answer separately and concatenate, so the prompt/answer boundary is exact."""
    rendered = render(record, template, tokenizer, schema_format)
    add_special = template not in OWN_BOS  # those templates write their own BOS text
    prompt_ids = tokenizer(rendered.prompt, add_special_tokens=add_special)["input_ids"]
    answer_ids = tokenizer(rendered.completion, add_special_tokens=False)["input_ids"]
    return Example(prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids))


def load_split(specs, config: Config, tokenizer) -> tuple[list[Record], list[Example], ValidationReport, dict]:
    datasets, problems, seen = [], [], {}
    for spec in specs:
        spec = dataclasses.replace(spec, path=resolve_data_path(spec.path))
        records, spec_problems = load_records(spec)
        problems += spec_problems
        records = [with_system(r, config) for r in records]
        if config.data.dedupe:  # before mixing: the repeats that honour a weight above 1 are not duplicates
            records, duplicates = drop_duplicates(records, seen)
            problems += duplicates
        datasets.append((records, spec.weight))
    records, shares = mix(datasets, config.data.num_records, config.data.seed)
    mix_info = {spec.path: share.describe() for spec, share in zip(specs, shares)}
    cache: dict[int, Example] = {}

    def length_of(record: Record) -> int:
        cache[id(record)] = encode(record, config.data.template, tokenizer, config.data.schema_format)
        return len(cache[id(record)].input_ids)

    kept, report = validate(records, problems=problems, length_of=length_of, max_length=config.data.max_length,
                            overlong=config.data.overlong, dedupe=False)
    examples = [cache[id(r)] if id(r) in cache else encode(r, config.data.template, tokenizer, config.data.schema_format)
                for r in kept]
    return kept, examples, report, mix_info


def build_training_data(config: Config, tokenizer) -> TrainingData:
    if not config.data.train:
        raise DataError("no training data: set data.train to a list of datasets "
                        "(e.g. data.train=[{path: my.jsonl}]; see configs/)")
    records, examples, report, mix_info = load_split(config.data.train, config, tokenizer)
    val_report = None
    if config.data.validation:
        val_records, val_examples, val_report, _ = load_split(config.data.validation, config, tokenizer)
        train_examples = examples
    else:
        example_of = {id(r): e for r, e in zip(records, examples)}
        train_records, val_records = split(records, config.data.val_fraction, config.data.split_by_db,
                                           config.data.seed, config.data.val_dbs)
        train_examples = [example_of[id(r)] for r in train_records]
        val_examples = [example_of[id(r)] for r in val_records]
    check_loss_mask(train_examples)
    samples = [render_prompt(r, config.data.template, tokenizer, config.data.schema_format)
               for r in (val_records or records)[:4]]
    return TrainingData(train_examples, val_examples, report, val_report, mix_info, samples, val_records)


def held_out_sql_rows(records: list[Record]) -> list[dict]:
    """The held-out SQL records as know_sql rows, for `sqlft eval RUN --data RUN/validation.jsonl`."""
    return [{"db_id": r.db_id, "question": r.question, "context": r.context, "answer": r.answer, **r.meta}
            for r in records if r.task == "sql"]


def check_loss_mask(examples: list[Example]) -> None:
    """Fail loudly when the prompt mask leaves nothing to learn (a template/tokenizer mismatch, or all prompt)."""
    empty = sum(1 for e in examples if sum(e.completion_mask) == 0)
    if not examples:
        raise DataError("no training examples left after validation and splitting")
    if empty:
        raise DataError(f"{empty} of {len(examples)} examples have no answer tokens to learn from: "
                        "the loss mask covers the whole sequence. Check data.template against the data.")
    answer_tokens = sum(sum(e.completion_mask) for e in examples)
    if answer_tokens == 0:
        raise DataError("the answer tokens are all masked: nothing to learn")


def to_hf_dataset(examples: list[Example]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                              "completion_mask": [e.completion_mask for e in examples]})
