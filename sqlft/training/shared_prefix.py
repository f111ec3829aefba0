"""Shared-schema packing (data.packing: shared_prefix): the schema once per row, then many question -> answer blocks.

A Spider record is ~400 tokens of CREATE TABLE text, ~20 of question and ~30 of SQL, and each database has ~50
questions: ordinary packing runs the same schema forward and backward once per question. Here the records whose
prompt prefix (system text + schema, as the template writes it) is identical share one row:

    [prefix][question 1 -> answer 1][question 2 -> answer 2] ...

Each block attends to the prefix and causally to itself, never to another block (a 4D block mask), and its position
ids continue from the end of the prefix, exactly as at inference. So every token sees what it sees in its own
record: the logits, the loss (answer tokens only, as data.loss=completion) and the gradients are those of the
records trained separately (tests/test_shared_prefix.py checks it on a tiny model).

Where the prefix ends comes from the template code (sqlft.prompts.templates, read only): the prompt is rendered with two
different questions, and the text they share ends where the question begins. A template whose shared text does not
hold the whole schema (alpaca and dolly write the question before their Input: section) has no clean prefix:
training falls back to ordinary packing with one message, as GRPO (which samples, and does not pack) and data.loss
other than completion do. A record whose prefix tokens are not the first tokens of its own tokenization (or that has no
schema) is packed as a block with an empty prefix, which is ordinary packing for that record: correct either way.

Attention (model.attn_implementation): with `auto`, sqlft.training.prefix_attention computes only the scores the
block mask allows, the prefix once and the blocks against the prefix and themselves, each piece one SDPA call (on a
CPU and on a GPU; the layout reaches every layer as a 4D tensor of block ids, which transformers passes on as given).
With `sdpa` or `eager` the dense block mask does (masking_utils uses a 4D mask as given): a boolean mask through
PyTorch's SDPA, or the additive mask for eager; SDPA then computes the whole L x L score matrix and drops the masked
part. Varlen FlashAttention-2 cannot express a shared prefix, so flash_attention_2 trains with the pieces here.
Flex attention was tried (torch 2.13): on a CPU it has no backward (NotImplementedError), and through transformers'
flex path its forward disagreed with SDPA on the tiny test model while flex_attention called directly with the same
mask agreed, so it is not used until that is understood.
"""

import dataclasses
from dataclasses import dataclass

import torch

from sqlft.training import prefix_attention
from sqlft.prompts.record import Record, Turn
from sqlft.prompts.templates import OWN_BOS, render_prompt, sql_record
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION

SHARED_PREFIX = "shared_prefix"
IGNORE = -100
PAD_BLOCK = -1  # block id of padding positions (prefix: 0, blocks: 1, 2, ...)
# Two questions that differ from their first character: the rendered prompts share exactly the text before it.
_PROBES = ("\x00probe one", "\x01probe two")


def fallback_reason(config, tokenizer=None) -> str | None:
    """Why this run cannot use shared-schema packing (None: it can)."""
    if config.train.stage == "grpo":
        return ("GRPO samples answers to single prompts and packs nothing, so the shared-schema packing of "
                "data.packing=shared_prefix does not apply")
    if config.data.loss != "completion":
        return (f"data.loss={config.data.loss} puts loss on prompt tokens, which a shared prefix would count once "
                "for many records; shared-schema packing needs data.loss=completion")
    return template_problem(config.data.template, tokenizer, config.data.schema_format, config.data.system,
                            schema_format_version=config.data.schema_format_version)


def template_problem(template: str, tokenizer=None, schema_format: str = "ddl", system: str = "", *,
                     schema_format_version: int = SCHEMA_FORMAT_VERSION) -> str | None:
    """None when the template writes the system text and schema before the question (a clean prefix)."""
    from sqlft.sql.schema import format_schema

    schema = "CREATE TABLE head (age INTEGER);\nCREATE TABLE dept (id INTEGER, name TEXT)"
    sample = sql_record(schema, "How many heads are older than 56?", system=system or "")
    try:
        prefix = prefix_text(sample, template, tokenizer, schema_format, schema_format_version=schema_format_version)
    except ValueError as err:  # e.g. template 'tokenizer' without a chat template
        return f"template '{template}' cannot render a probe prompt ({err})"
    if prefix is None or format_schema(schema, schema_format, schema_format_version) not in prefix:
        return (f"template '{template}' writes the question before the end of the schema, so the schema is not a "
                "prefix shared by the questions on it")
    return None


def resolve_packing(config, tokenizer=None, verbose: bool = True):
    """config as given, or with data.packing=true (ordinary packing) and one message when shared-schema packing
    cannot apply."""
    if config.data.packing != SHARED_PREFIX:
        return config
    reason = fallback_reason(config, tokenizer)
    if reason is None:
        return config
    if verbose:
        print(f"[sqlft] data.packing=shared_prefix: {reason}; using ordinary packing (data.packing=true) instead")
    return dataclasses.replace(config, data=dataclasses.replace(config.data, packing=True))


def prefix_text(record: Record, template: str, tokenizer=None, schema_format: str = "ddl", *,
                schema_format_version: int = SCHEMA_FORMAT_VERSION) -> str | None:
    """The record's prompt up to where its question starts, as the template renders it (None: not a one-question
    SQL record with a schema)."""
    if record.task != "sql" or not record.context or record.text or len(record.turns) > 2:
        return None
    probes = [render_prompt(Record(**{**record.__dict__, "turns": [Turn("user", q)]}), template, tokenizer,
                            schema_format, schema_format_version=schema_format_version) for q in _PROBES]
    shared = 0
    while shared < min(map(len, probes)) and probes[0][shared] == probes[1][shared]:
        shared += 1
    return probes[0][:shared]


@dataclass
class Row:
    input_ids: list[int]
    labels: list[int]  # the token itself on answer tokens, IGNORE elsewhere (prefix, questions)
    position_ids: list[int]
    block_ids: list[int]  # 0 on the prefix, 1, 2, ... on the blocks


@dataclass
class Packed:
    rows: list[Row]
    report: dict  # records, rows, blocks per row, records without a shared prefix, padding share


def split_example(record: Record, example, template: str, tokenizer, schema_format: str, cache: dict, *,
                  schema_format_version: int = SCHEMA_FORMAT_VERSION) -> tuple[tuple[int, ...], list[int], list[int]]:
    """(prefix ids, block ids, block loss mask) of one encoded record; prefix () when it has none."""
    ids, mask = example.input_ids, example.completion_mask
    text = prefix_text(record, template, tokenizer, schema_format, schema_format_version=schema_format_version)
    if text:
        if text not in cache:
            cache[text] = tuple(tokenizer(text, add_special_tokens=template not in OWN_BOS)["input_ids"])
        prefix = cache[text]
        # The prefix must be exactly the record's own first tokens (no token merged across where the question
        # starts), and hold no loss: then prefix + block is the record, token for token.
        if len(prefix) < len(ids) and tuple(ids[:len(prefix)]) == prefix and not any(mask[:len(prefix)]):
            return prefix, ids[len(prefix):], mask[len(prefix):]
    return (), ids, mask


def pack(records: list[Record], examples: list, row_length: int, template: str, tokenizer,
         schema_format: str = "ddl", *, schema_format_version: int = SCHEMA_FORMAT_VERSION) -> Packed:
    """Rows of at most row_length tokens: records grouped by prefix, each group's blocks placed first-fit
    decreasing, so that a database with more questions than one row holds is split across rows that each repeat the
    prefix, and rows are as full as the blocks allow."""
    groups: dict[tuple[int, ...], list[tuple[list[int], list[int]]]] = {}
    cache: dict[str, tuple[int, ...]] = {}
    for record, example in zip(records, examples):
        prefix, ids, mask = split_example(record, example, template, tokenizer, schema_format, cache,
                                          schema_format_version=schema_format_version)
        groups.setdefault(prefix, []).append((ids, mask))
    rows = []
    for prefix, blocks in groups.items():
        room = row_length - len(prefix)
        bins: list[list] = []  # [free tokens, blocks]
        for ids, mask in sorted(blocks, key=lambda b: -len(b[0])):
            target = next((b for b in bins if b[0] >= len(ids)), None)
            if target is None:
                target = [room, []]
                bins.append(target)
            target[0] -= len(ids)
            target[1].append((ids, mask))
        rows += [make_row(prefix, row_blocks) for _, row_blocks in bins]
    tokens = sum(len(r.input_ids) for r in rows)
    blocks_per_row = [max(r.block_ids) for r in rows]
    report = {
        "packing": SHARED_PREFIX,
        "records": len(examples),
        "rows": len(rows),
        "records_per_row": round(len(examples) / len(rows), 2) if rows else 0,
        "max_blocks_per_row": max(blocks_per_row, default=0),
        "prefixes": sum(1 for p in groups if p),
        "records_without_shared_prefix": len(groups.get((), [])),
        "row_length": row_length,
        "tokens": tokens,
        "tokens_unpacked": sum(len(e.input_ids) for e in examples),  # what ordinary packing would run
        "fill": round(tokens / (len(rows) * row_length), 3) if rows else 0,  # the rest is padding or unused
    }
    return Packed(rows, report)


def make_row(prefix: tuple[int, ...], blocks: list[tuple[list[int], list[int]]]) -> Row:
    ids, labels = list(prefix), [IGNORE] * len(prefix)
    positions, block_ids = list(range(len(prefix))), [0] * len(prefix)
    for number, (block, mask) in enumerate(blocks, start=1):
        ids += block
        labels += [t if m else IGNORE for t, m in zip(block, mask)]
        positions += range(len(prefix), len(prefix) + len(block))  # as if the block followed the prefix alone
        block_ids += [number] * len(block)
    return Row(ids, labels, positions, block_ids)


def to_hf_dataset(rows: list[Row]):
    from datasets import Dataset

    return Dataset.from_dict({key: [getattr(r, key) for r in rows]
                              for key in ("input_ids", "labels", "position_ids", "block_ids")})


@dataclass
class Collator:
    """Rows -> a batch: right-padded (to a multiple of pad_to_multiple_of: a few shapes, see
    data.pad_packed_to_multiple_of), with a 2D attention_mask of the real tokens (what the trainers count as tokens
    seen) and block_ids, which the hook of install_block_mask turns into the 4D mask in the model."""
    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict]) -> dict:
        length = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of

        def padded(key, value):
            return torch.tensor([list(r[key]) + [value] * (length - len(r[key])) for r in rows])
        block_ids = padded("block_ids", PAD_BLOCK)
        return {"input_ids": padded("input_ids", self.pad_token_id), "labels": padded("labels", IGNORE),
                "position_ids": padded("position_ids", 0), "attention_mask": (block_ids != PAD_BLOCK).long(),
                "block_ids": block_ids}


def allowed(block_ids: torch.Tensor) -> torch.Tensor:
    """[batch, 1, q, kv] True where query q may attend key kv: earlier or same position, and the key is in the
    prefix or in the query's own block. Padding attends to the prefix and itself (no empty row, no NaN)."""
    length = block_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=block_ids.device).tril()
    query, key = block_ids[:, :, None], block_ids[:, None, :]
    return (causal & ((key == 0) | (key == query)))[:, None]


def block_mask(block_ids: torch.Tensor, implementation: str, dtype: torch.dtype):
    """The 4D mask in the form the attention implementation takes (transformers passes a 4D mask through as is)."""
    if implementation == prefix_attention.NAME:  # the layout itself: that attention computes only what is allowed
        return prefix_attention.layout_mask(block_ids)
    mask = allowed(block_ids)
    if implementation == "sdpa":
        return mask
    if implementation == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    raise ValueError(f"attention '{implementation}' cannot take a block mask; shared-schema packing needs auto, "
                     "sdpa or eager (model.attn_implementation)")


def decoder_of(model):
    """The transformer stack (LlamaModel) under PEFT and the causal-LM head: the module that builds the mask."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    return model.get_decoder() if hasattr(model, "get_decoder") else model.model


def install_block_mask(model) -> None:
    """Let the model take `block_ids` (from Collator): a forward pre-hook on its decoder replaces the 2D attention
    mask with the block mask. Every path to the decoder (PEFT, TRL's fused head, sqlft.training.lm_head) passes it on."""
    decoder = decoder_of(model)
    if getattr(decoder, "_sqlft_block_mask", False):
        return

    def hook(module, args, kwargs):
        block_ids = kwargs.pop("block_ids", None)
        if block_ids is not None:
            config = module.config
            dtype = next(module.parameters()).dtype
            kwargs["attention_mask"] = block_mask(block_ids, config._attn_implementation, dtype)
        return args, kwargs

    decoder.register_forward_pre_hook(hook, with_kwargs=True)
    decoder._sqlft_block_mask = True


def attention_for(requested: str) -> str:
    """The attention implementation for shared-schema packing, registered with transformers: sqlft's piecewise SDPA
    (sqlft.training.prefix_attention: only the allowed scores) for `auto` and for flash_attention_2 (which cannot take
    the mask); `sdpa` and `eager` as asked, with the dense block mask."""
    if requested in ("sdpa", "eager"):
        return requested
    return prefix_attention.register()
