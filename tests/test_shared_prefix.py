"""Shared-schema packing (data.packing: shared_prefix, sqlft.training.shared_prefix) trains exactly what the records alone do.

On a tiny random Llama with LoRA: each block of a packed row gives the logits of its record run alone, the summed
loss and the LoRA gradients of a packed batch are those of the records one by one, a block's question changes no other
block, and the runs that cannot use it (GRPO, templates whose schema is not a prefix, loss on the prompt) fall back
to ordinary packing with one message.
"""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from sqlft.training import shared_prefix
from sqlft.config import ConfigError, load_config
from sqlft.training.dataset import build_training_data
from sqlft.model.loading import add_lora, load_base_model, load_tokenizer
from sqlft.prompts.record import sql_record
from sqlft.prompts.templates import TEMPLATES, render_prompt
from sqlft.commands.train import train
from sqlft.training.sft import build_trainer

IGNORE = -100


def overrides(tiny_model_dir, sql_jsonl, tmp_path, *extra):
    return [f"model.name={tiny_model_dir}", "model.method=lora", "model.dtype=float32", "lora.dropout=0",
            f"data.train=[{{path: {sql_jsonl}}}]", "data.template=chatml", "data.max_length=192",
            "data.val_fraction=0", "data.packing=shared_prefix", f"train.output_dir={tmp_path / 'run'}",
            "train.max_steps=1", "train.batch_size=2", "train.eval_steps=0", "train.gradient_checkpointing=false",
            "train.report_to=none", "train.precision=fp32", *extra]


def setup(tiny_model_dir, sql_jsonl, tmp_path, *extra, attention="auto"):
    config = load_config(None, overrides(tiny_model_dir, sql_jsonl, tmp_path, *extra))
    # As train() sets it (sqlft.training.shared_prefix.attention_for)
    config = dataclasses.replace(config, model=dataclasses.replace(
        config.model, attn_implementation=shared_prefix.attention_for(attention)))
    tokenizer = load_tokenizer(config.model.name)
    data = build_training_data(config, tokenizer)
    torch.manual_seed(0)
    model = add_lora(load_base_model(config.model, for_training=True), config)
    with torch.no_grad():  # LoRA B starts at zero: give it values so that A's gradients are not zero too
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    model.eval()  # no dropout anywhere: packed and alone must compute the same function
    trainer = build_trainer(config, model, tokenizer, data, tmp_path / "run")
    return config, data, model, trainer


def blocks_of(row: dict):
    """(prefix length, [(block number, start, end)]) of a packed row."""
    ids = row["block_ids"]
    prefix = ids.count(0)
    numbers = sorted(set(ids) - {0})
    return prefix, [(n, ids.index(n), len(ids) - ids[::-1].index(n)) for n in numbers]


def row_logits(model, trainer, rows: list[dict]):
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        return model(**batch).logits, batch


def alone_logits(model, ids: list[int]):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


# auto: sqlft.training.prefix_attention (prefix and blocks apart); sdpa and eager: the dense block mask
@pytest.mark.parametrize("attention", ["auto", "sdpa", "eager"])
def test_each_block_gives_the_logits_of_its_record_alone(tiny_model_dir, sql_jsonl, tmp_path, attention,
                                                        monkeypatch):
    rows_cut = []  # rows that prefix_attention cut into pieces (each layer, each row)
    cut = shared_prefix.prefix_attention.row_attention
    monkeypatch.setattr(shared_prefix.prefix_attention, "row_attention",
                        lambda *args: rows_cut.append(1) or cut(*args))
    _, data, model, trainer = setup(tiny_model_dir, sql_jsonl, tmp_path, attention=attention)
    assert model.config._attn_implementation == shared_prefix.attention_for(attention)
    rows = list(trainer.train_dataset)
    report = data.packed.report
    assert report["records"] == 24 and report["rows"] < 24 and report["records_without_shared_prefix"] == 0
    multi = [r for r in rows if len(blocks_of(r)[1]) >= 3]
    assert len({tuple(r["input_ids"][:blocks_of(r)[0]]) for r in multi}) >= 2, "two schemas, three blocks each"
    records = {tuple(e.input_ids) for e in data.train}
    logits, _ = row_logits(model, trainer, multi)  # several rows in one batch: padding is in play too
    checked = 0
    for i, row in enumerate(multi):
        prefix, blocks = blocks_of(row)
        for _, start, end in blocks:
            ids = row["input_ids"][:prefix] + row["input_ids"][start:end]
            assert tuple(ids) in records, "prefix + block is exactly one record's tokens"
            alone = alone_logits(model, ids)
            torch.testing.assert_close(logits[i, start:end], alone[prefix:], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(logits[i, :prefix], alone[:prefix], rtol=1e-4, atol=1e-5)
            assert row["position_ids"][start:end] == list(range(prefix, prefix + end - start))
            checked += 1
    assert checked >= 6
    layers = model.config.num_hidden_layers
    assert len(rows_cut) == (layers * len(multi) if attention == "auto" else 0)


def test_prefix_attention_equals_sdpa_under_the_block_mask():
    """The pieces (prefix causally; blocks against the prefix and themselves) give what SDPA gives over the whole row
    under the dense block mask, on every real token, with grouped key heads, padding, a row without a prefix and
    blocks of different lengths in one batch; and so do the gradients of q, k and v."""
    torch.manual_seed(0)
    rows = [[0] * 7 + [1] * 3 + [2] * 5 + [3] * 1 + [-1] * 4,  # prefix, three blocks, padding
            [1] * 6 + [2] * 9 + [3] * 5,                        # no prefix (records without a shared schema)
            [0] * 12 + [1] * 8]                                 # one block
    block_ids = torch.tensor(rows)
    real = block_ids != shared_prefix.PAD_BLOCK
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    query, key, value = (torch.randn(3, heads, 20, 8, requires_grad=True) for heads in (4, 2, 2))

    def run(mask):
        out, _ = shared_prefix.prefix_attention.attention(module, query, key, value, mask, scaling=0.3)
        grads = torch.autograd.grad((out[real] ** 2).sum(), (query, key, value))
        return out[real], grads

    pieces, piece_grads = run(shared_prefix.prefix_attention.layout_mask(block_ids))
    dense, dense_grads = run(shared_prefix.allowed(block_ids))  # a bool mask: plain sdpa_attention_forward
    torch.testing.assert_close(pieces, dense, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(piece_grads, dense_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# token_metrics: TRL's own fused LM head instead of sqlft's label-only one (both hand block_ids to the decoder);
# attention: prefix and blocks apart (auto) or the dense block mask (sdpa)
@pytest.mark.parametrize("token_metrics, attention", [(False, "auto"), (True, "auto"), (False, "sdpa")])
def test_summed_loss_and_lora_gradients_equal_the_records_trained_separately(tiny_model_dir, sql_jsonl, tmp_path,
                                                                             token_metrics, attention):
    _, data, model, trainer = setup(tiny_model_dir, sql_jsonl, tmp_path, f"train.token_metrics={token_metrics}",
                                    attention=attention)
    batch = trainer._prepare_inputs(trainer.data_collator(list(trainer.train_dataset)))  # every record once

    def grads_after(loss):
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        model.zero_grad()
        return loss.detach(), grads

    # What SFTTrainer optimizes: TRL's compute_loss through the LM head and the block mask
    packed, packed_grads = grads_after(trainer.compute_loss(model, dict(batch)))
    answer_tokens = sum(sum(e.completion_mask) for e in data.train)
    assert int((batch["labels"] != IGNORE).sum()) == answer_tokens

    def separately():  # each record in its own forward, answer tokens summed, over the same token count
        total = 0
        for example in data.train:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor([[t if m else IGNORE for t, m in zip(example.input_ids, example.completion_mask)]])
            logits = model(input_ids=ids).logits
            total = total + F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE, reduction="sum")
        return total / answer_tokens
    alone, alone_grads = grads_after(separately())

    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-6)
    assert packed_grads.keys() == alone_grads.keys() and len(alone_grads) > 0
    for name, grad in alone_grads.items():
        assert grad.abs().sum() > 0, f"{name}: a LoRA weight without gradient would prove nothing"
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_blocks_question_changes_no_other_block(tiny_model_dir, sql_jsonl, tmp_path):
    _, _, model, trainer = setup(tiny_model_dir, sql_jsonl, tmp_path)
    row = next(r for r in trainer.train_dataset if len(blocks_of(r)[1]) >= 3)
    prefix, blocks = blocks_of(row)
    before, _ = row_logits(model, trainer, [row])
    _, start, end = blocks[1]  # the second block: blocks before and after it
    changed = dict(row, input_ids=list(row["input_ids"]))
    changed["input_ids"][start:start + 3] = [1000, 1001, 1002]  # its question's first tokens (no loss on them)
    after, _ = row_logits(model, trainer, [changed])
    assert not torch.allclose(before[0, start:end], after[0, start:end]), "the changed block itself must move"
    torch.testing.assert_close(after[0, :start], before[0, :start], rtol=0, atol=0)  # prefix and earlier blocks
    torch.testing.assert_close(after[0, end:], before[0, end:], rtol=0, atol=0)  # later blocks


def test_templates_with_a_clean_schema_prefix(embedded_model_dir):
    """Clean exactly where the rendered prompt holds the whole schema before the question (every template, the ones
    added later too); alpaca (and dolly) write "### Instruction: <question>" before the schema's Input: section."""
    tokenizer = load_tokenizer(str(embedded_model_dir))
    schema, question = "CREATE TABLE head (age INTEGER)", "How many heads are older than 56?"
    clean = set()
    for name in TEMPLATES:
        prompt = render_prompt(sql_record(schema, question), name, tokenizer)
        schema_first = prompt.index(schema) + len(schema) <= prompt.index(question)
        problem = shared_prefix.template_problem(name, tokenizer)
        assert (problem is None) == schema_first, (name, problem)
        if problem is None:
            clean.add(name)
    assert {"sql", "chatml", "llama2", "llama3", "yuan", "context_qa", "tokenizer"} <= clean
    assert "alpaca" not in clean
    assert "writes the question before the end of the schema" in shared_prefix.template_problem("alpaca")


@pytest.mark.parametrize("extra, reason", [
    (["data.template=alpaca"], "template 'alpaca' writes the question before the end of the schema"),
    (["data.loss=full_text"], "data.loss=full_text puts loss on prompt tokens"),
    (["train.stage=grpo", "grpo.num_generations=2"], "GRPO samples answers"),
])
def test_runs_that_cannot_share_a_prefix_fall_back_to_ordinary_packing(tiny_model_dir, sql_jsonl, tmp_path, capsys,
                                                                       extra, reason):
    config = load_config(None, overrides(tiny_model_dir, sql_jsonl, tmp_path, *extra))
    resolved = shared_prefix.resolve_packing(config, load_tokenizer(config.model.name))
    assert resolved.data.packing is True
    out = capsys.readouterr().out
    assert out.count("[sqlft] data.packing=shared_prefix:") == 1 and reason in out
    assert "using ordinary packing (data.packing=true) instead" in out
    kept = load_config(None, overrides(tiny_model_dir, sql_jsonl, tmp_path))
    assert shared_prefix.resolve_packing(kept, load_tokenizer(kept.model.name)).data.packing == "shared_prefix"


def test_a_misspelt_packing_choice_names_the_right_one():
    with pytest.raises(ConfigError, match="Did you mean 'shared_prefix'"):
        load_config(None, ["data.packing=shared-prefix"])


# full: with TRL's own LM head (train.token_metrics), which hands block_ids to the decoder as sqlft's head does;
# qlora: with gradient checkpointing, as the QLoRA configs train (the mask is built once, before the layers)
@pytest.mark.parametrize("method, validation, extra", [("lora", True, []),
                                                       ("qlora", False, ["train.gradient_checkpointing=true"]),
                                                       ("full", False, ["train.token_metrics=true"])])
def test_training_writes_how_many_records_went_into_how_many_rows(tiny_model_dir, sql_jsonl, tmp_path, method,
                                                                  validation, extra):
    held_out = ["data.val_fraction=0.25", "train.eval_steps=1"] if validation else []  # 1 of the 4 databases
    config = load_config(None, overrides(tiny_model_dir, sql_jsonl, tmp_path, f"model.method={method}",
                                         "train.max_steps=2", "train.save_steps=10", *held_out, *extra))
    run = train(config)
    records = 18 if validation else 24
    packed = json.loads((run / "data_report.json").read_text())["shared_prefix"]
    report = packed["train"]
    assert report["packing"] == "shared_prefix" and report["records"] == records
    # one schema per row at least, several records each
    assert report["prefixes"] == records // 6 and records // 6 <= report["rows"] < records
    assert report["tokens"] < report["tokens_unpacked"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_records"] == records and metrics["train_rows"] == report["rows"]
    assert metrics["records_per_hour"] > 0 and metrics["tokens_seen"] > 0
    assert (run / "config.yaml").read_text().count("packing: shared_prefix") == 1
    if validation:  # the held-out database's rows, evaluated through the same collator and block mask
        assert packed["validation"]["records"] == 6 and 1 <= packed["validation"]["rows"] < 6
        assert metrics["eval_loss"] is not None and metrics["eval_loss"] > 0


@pytest.mark.slow
def test_real_model_on_spider_rows_gives_each_records_own_answer_logits(tmp_path):
    """The embedded SmolLM2-135M, its tokenizer and the Spider recipe's template on real Spider records: a packed row's
    answer logits are those of each record alone (the tiny model above proves the mechanism; this, the real path)."""
    from tests.conftest import shared_data

    spider = shared_data("spider_train", "spider_train.jsonl")
    config = load_config("configs/smollm2-135m-spider-cpu.yaml", [
        f"data.train=[{{path: {spider}, max_records: 12}}]", "data.val_fraction=0", "data.val_dbs=[]",
        "data.max_length=512", "data.packing=shared_prefix"])
    tokenizer = load_tokenizer(config.model.name, config.model)
    data = build_training_data(config, tokenizer)
    assert data.packed.report["records_without_shared_prefix"] == 0  # chatml + SmolLM2's tokenizer: clean prefixes
    row = max(data.packed.rows, key=lambda r: max(r.block_ids))
    prefix, blocks = blocks_of(vars(row))
    assert len(blocks) >= 3
    training_attention = shared_prefix.attention_for(config.model.attn_implementation)  # as train() sets it
    model = load_base_model(dataclasses.replace(config.model, attn_implementation=training_attention),
                            for_training=False)
    assert model.config._attn_implementation == shared_prefix.prefix_attention.NAME
    shared_prefix.install_block_mask(model)
    batch = shared_prefix.Collator(tokenizer.pad_token_id)([vars(row)])
    with torch.no_grad():
        logits = model(**batch).logits[0]
    records = {tuple(e.input_ids) for e in data.train}
    for _, start, end in blocks:
        ids = row.input_ids[:prefix] + row.input_ids[start:end]
        assert tuple(ids) in records
        answer = [i for i in range(start, end) if row.labels[i] != IGNORE]
        alone = alone_logits(model, ids)
        torch.testing.assert_close(logits[answer[0] - 1:answer[-1]], alone[prefix + answer[0] - 1 - start:
                                                                           prefix + answer[-1] - start],
                                   rtol=1e-4, atol=2e-4)
