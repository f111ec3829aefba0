"""Training data, from dataset files to token ids: load -> validate -> mix -> split -> render -> tokenize.

Runs before any model is loaded (it needs only the tokenizer), so that bad data fails in seconds, not after a
model download. Loss is on the answer only: `completion_mask` marks answer tokens, and TRL turns it into labels.
"""

import dataclasses
from dataclasses import dataclass, field

from sqlft.config import Config
from sqlft.data.errors import DataError
from sqlft.data.formats import load_records
from sqlft.data.mixing import mix, split
from sqlft.data.demo import resolve_data_path
from sqlft.prompts.record import SQL_SYSTEM, Record
from sqlft.training.shared_prefix import SHARED_PREFIX, Packed, pack
from sqlft.prompts.templates import OWN_BOS, render, render_prompt, render_turns
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION
from sqlft.data.validate import ValidationReport, drop_duplicates, validate


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
    train_records: list[Record] = field(default_factory=list)  # behind `train` (GRPO samples answers to their prompts)
    # data.packing: shared_prefix: the rows (sqlft.training.shared_prefix), the schema once per row; None otherwise
    packed: Packed | None = None
    packed_validation: Packed | None = None


def with_system(record: Record, config: Config) -> Record:
    """SQL records get the configured system text unless they carry their own (loaders give SQL_SYSTEM)."""
    if record.task == "sql" and record.system in ("", SQL_SYSTEM):
        record.system = config.data.system
    return record


LOSSES = ("completion", "assistant_turns", "full_text")


def encode(record: Record, template: str, tokenizer, schema_format: str = "ddl", loss: str = "completion", *,
           schema_format_version: int = SCHEMA_FORMAT_VERSION) -> Example:
    """Token ids and loss mask of one record.

    completion: prompt and answer tokenized separately and concatenated, so the boundary is exact; loss on the answer.
    assistant_turns: every piece of text tokenized separately the same way; loss on every assistant turn.
    full_text: the whole text tokenized at once, as the tutorials' causal-LM trainers do; loss on every token.
    A pre-rendered record (record.text) is tokenized as it is: full_text only.
    """
    if loss not in LOSSES:
        raise DataError(f"data.loss is '{loss}'; use one of {', '.join(LOSSES)}")
    if record.text:
        if loss != "full_text":
            raise DataError(pre_rendered_needs_full_text(record))
        bos = getattr(tokenizer, "bos_token", None)
        # The text holds its template, BOS text included where the template has one: do not add a second BOS.
        ids = tokenizer(record.text, add_special_tokens=not (bos and record.text.startswith(bos)))["input_ids"]
        return Example(ids, [1] * len(ids))
    add_special = template not in OWN_BOS  # those templates write their own BOS text
    if loss == "assistant_turns":
        ids, mask = [], []
        for i, piece in enumerate(render_turns(record, template, tokenizer, schema_format,
                                                       schema_format_version=schema_format_version)):
            before = tokenizer(piece.prompt, add_special_tokens=add_special and i == 0)["input_ids"]
            answer = tokenizer(piece.completion, add_special_tokens=False)["input_ids"]
            ids += before + answer
            mask += [0] * len(before) + [1] * len(answer)
        return Example(ids, mask)
    rendered = render(record, template, tokenizer, schema_format, schema_format_version=schema_format_version)
    if loss == "full_text":
        ids = tokenizer(rendered.prompt + rendered.completion, add_special_tokens=add_special)["input_ids"]
        return Example(ids, [1] * len(ids))
    prompt_ids = tokenizer(rendered.prompt, add_special_tokens=add_special)["input_ids"]
    answer_ids = tokenizer(rendered.completion, add_special_tokens=False)["input_ids"]
    return Example(prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids))


def pre_rendered_needs_full_text(record: Record) -> str:
    return (f"{record.source or 'a record'} is pre-rendered text (format: text): it has no turns to tell the answer "
            "from the prompt, so the loss can only be on the whole text; set data.loss=full_text")


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
    data = config.data
    pre_rendered = next((r for r in records if r.text), None)
    if pre_rendered is not None and data.loss != "full_text":
        raise DataError(pre_rendered_needs_full_text(pre_rendered))
    cache: dict[int, Example] = {}

    def example_of(record: Record) -> Example:
        if id(record) not in cache:
            cache[id(record)] = encode(record, data.template, tokenizer, data.schema_format, data.loss,
                                       schema_format_version=data.schema_format_version)
        return cache[id(record)]

    def truncatable(record: Record) -> bool:
        # Instructions may lose their end (LLaMA-Factory's cutoff_len, TRL's truncation); SQL never: a cut query
        # teaches the model to write broken SQL. What is left must still hold tokens with loss.
        return record.task != "sql" and sum(truncated(example_of(record), data.max_length).completion_mask) > 0

    kept, report = validate(records, problems=problems, length_of=lambda r: len(example_of(r).input_ids),
                            max_length=data.max_length, overlong=data.overlong, dedupe=False,
                            truncatable=truncatable)
    examples = [truncated(example_of(r), data.max_length) for r in kept]
    return kept, examples, report, mix_info


def truncated(example: Example, max_length: int) -> Example:
    """An over-long instruction example cut to max_length (validate() lets no SQL record be cut).

    Prompt + answer (data.loss=completion): both keep their start, shared as LLaMA-Factory's cutoff_len shares them
    (a short answer is kept whole, a short prompt too, else each keeps its share). Otherwise the first max_length
    tokens (TRL's truncation, keep_start).
    """
    ids, mask = example.input_ids, example.completion_mask
    if len(ids) <= max_length:
        return example
    prompt = mask.index(1) if 1 in mask else len(mask)
    if all(mask[prompt:]):  # one prompt, then one answer
        answer = len(ids) - prompt
        if answer * 2 < max_length:
            answer_max = max_length
        elif prompt * 2 < max_length:
            answer_max = max_length - prompt
        else:
            answer_max = int(max_length * answer / (prompt + answer))
        keep_answer = min(answer_max, answer)
        keep_prompt = min(max_length - keep_answer, prompt)
        return Example(ids[:keep_prompt] + ids[prompt:prompt + keep_answer], [0] * keep_prompt + [1] * keep_answer)
    return Example(ids[:max_length], mask[:max_length])


def build_training_data(config: Config, tokenizer) -> TrainingData:
    if not config.data.train:
        raise DataError("no training data: set data.train to a list of datasets "
                        "(e.g. data.train=[{path: my.jsonl}]; see configs/)")
    if config.data.max_length == 0:  # the model's context length (train() resolves it before saving the config)
        from sqlft.model.loading import resolve_max_length
        resolve_max_length(config)
    records, examples, report, mix_info = load_split(config.data.train, config, tokenizer)
    val_report = None
    if config.data.validation:
        val_records, val_examples, val_report, _ = load_split(config.data.validation, config, tokenizer)
        train_records, train_examples = records, examples
    else:
        example_of = {id(r): e for r, e in zip(records, examples)}
        train_records, val_records = split(records, config.data.val_fraction, config.data.split_by_db,
                                           config.data.seed, config.data.val_dbs)
        train_examples = [example_of[id(r)] for r in train_records]
        val_examples = [example_of[id(r)] for r in val_records]
    check_loss_mask(train_examples)
    samples = [sample_prompt(r, config, tokenizer) for r in (val_records or records)[:4]]
    packed = packed_validation = None
    if config.data.packing == SHARED_PREFIX:  # train() has checked that it applies (shared_prefix.resolve_packing)
        d = config.data
        schema = dict(schema_format=d.schema_format, schema_format_version=d.schema_format_version)
        packed = pack(train_records, train_examples, d.max_length, d.template, tokenizer, **schema)
        packed_validation = pack(val_records, val_examples, d.max_length, d.template, tokenizer, **schema)
    return TrainingData(train_examples, val_examples, report, val_report, mix_info, samples, val_records,
                        train_records, packed, packed_validation)


def sample_prompt(record: Record, config: Config, tokenizer) -> str:
    """A prompt for merge's merged == adapter check: the record's inference prompt, or the first half of a
    pre-rendered text (no prompt can be told apart there; any text shows whether two models answer alike)."""
    if record.text:
        return record.text[:max(1, len(record.text) // 2)]
    return render_prompt(record, config.data.template, tokenizer, config.data.schema_format,
                         schema_format_version=config.data.schema_format_version)


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
