"""Loss choices (completion, assistant_turns, full_text), over-long records, and the trainer options' mapping onto
TRL's SFTConfig: what each key turns into, and the clear errors of the ones that cannot work here."""

import json
from types import SimpleNamespace

import pytest

from sqlft.config import ConfigError, load_config
from sqlft.training.dataset import build_training_data, encode
from sqlft.data.errors import DataError
from sqlft.model.loading import load_tokenizer
from sqlft.prompts.record import Record, Turn, sql_record
from sqlft.prompts.templates import render, render_turns

CHAT = Record(turns=[Turn("user", "Hi there"), Turn("assistant", "Hello!"), Turn("user", "Name a colour."),
                     Turn("assistant", "Blue.")], system="Be brief.", task="chat")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def trained(example, tokenizer) -> str:
    """The text of the tokens with loss, runs joined by '|'."""
    runs, current = [], []
    for token, bit in zip(example.input_ids, example.completion_mask):
        if bit:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return "|".join(tokenizer.decode(run) for run in runs)


def test_completion_loss_is_on_the_last_answer_only(tokenizer):
    example = encode(CHAT, "chatml", tokenizer, loss="completion")
    assert trained(example, tokenizer) == "Blue.<|im_end|>"


@pytest.mark.parametrize("template, answers", [
    ("chatml", "Hello!<|im_end|>|Blue.<|im_end|>"),
    ("llama3", "Hello!<|eot_id|>|Blue.<|eot_id|>"),
    ("llama2", " Hello! </s>| Blue. </s>"),
    ("alpaca", "Hello!\n\n### End<|im_end|>|Blue.\n\n### End<|im_end|>"),
    ("yuan", "Hello!<eod>\n|Blue.<eod>\n"),
])
def test_assistant_turns_loss_is_on_every_answer_and_nothing_else(tokenizer, template, answers):
    example = encode(CHAT, template, tokenizer, loss="assistant_turns")
    assert trained(example, tokenizer).replace("  ", " ") == answers.replace("  ", " ")
    # Same text as the whole conversation rendered at once: the pieces add up to it.
    whole = render(CHAT, template, tokenizer)
    assert tokenizer.decode(example.input_ids) == tokenizer.decode(
        tokenizer(whole.prompt + whole.completion, add_special_tokens=template not in ("llama2", "llama3"))["input_ids"])
    pieces = render_turns(CHAT, template, tokenizer)
    assert len(pieces) == 2 and pieces[-1].completion == whole.completion


def test_full_text_loss_is_on_every_token(tokenizer):
    example = encode(CHAT, "chatml", tokenizer, loss="full_text")
    whole = render(CHAT, "chatml", tokenizer)
    assert all(example.completion_mask) and tokenizer.decode(example.input_ids) == whole.prompt + whole.completion


def test_single_turn_assistant_turns_equals_completion(tokenizer):
    record = sql_record("CREATE TABLE t (a INT)", "How many rows?", "SELECT COUNT(*) FROM t")
    a, b = encode(record, "chatml", tokenizer), encode(record, "chatml", tokenizer, loss="assistant_turns")
    assert (a.input_ids, a.completion_mask) == (b.input_ids, b.completion_mask)


def test_pre_rendered_text_trains_as_is_with_full_text_only(tokenizer):
    record = Record(turns=[], text="<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>", task="text")
    example = encode(record, "chatml", tokenizer, loss="full_text")
    assert tokenizer.decode(example.input_ids) == record.text and all(example.completion_mask)
    with pytest.raises(DataError, match="data.loss=full_text"):
        encode(record, "chatml", tokenizer, loss="completion")


def config_for(tiny_model_dir, data, tmp_path, *overrides):
    return load_config(None, [f"model.name={tiny_model_dir}", "model.method=lora", f"data.train=[{{path: {data}}}]",
                              "data.template=chatml", "data.val_fraction=0", f"train.output_dir={tmp_path / 'run'}",
                              "train.report_to=none", *overrides])


def test_truncate_cuts_instructions_and_drops_sql(tiny_model_dir, tokenizer, tmp_path):
    rows = [{"instruction": "Tell a long story. " * 20, "output": "Once upon a time. " * 10},
            {"context": "CREATE TABLE t (" + ", ".join(f"c{i} INT" for i in range(60)) + ")",
             "question": "How many rows?", "answer": "SELECT COUNT(*) FROM t"},
            {"instruction": "Say hi.", "output": "Hi."}]
    paths = []
    for i, row in enumerate(rows):
        paths.append(tmp_path / f"d{i}.jsonl")
        paths[-1].write_text(json.dumps(row) + "\n")
    specs = "[" + ", ".join(f"{{path: {p}}}" for p in paths) + "]"
    config = load_config(None, [f"model.name={tiny_model_dir}", f"data.train={specs}", "data.val_fraction=0",
                                "data.max_length=64", "data.overlong=truncate"])
    data = build_training_data(config, tokenizer)
    long = max(data.train, key=lambda e: len(e.input_ids))
    assert len(long.input_ids) == 64, "the long instruction was cut to max_length"
    # LLaMA-Factory's cutoff_len share: the prompt's start and the answer's start are both kept
    assert long.completion_mask[0] == 0 and 0 < sum(long.completion_mask) < 64
    assert tokenizer.decode([i for i, m in zip(long.input_ids, long.completion_mask) if m]).startswith("Once upon")
    assert len(data.train) == 2 and data.report.truncated == 1
    assert data.report.counts == {"overlong": 1}
    assert "never cut" in data.report.examples["overlong"][0].message


def test_max_length_defaults_to_the_models_context(tiny_model_dir, sql_jsonl, tokenizer, tmp_path):
    config = config_for(tiny_model_dir, sql_jsonl, tmp_path)
    assert config.data.max_length == 0
    build_training_data(config, tokenizer)
    assert config.data.max_length == 1024  # the tiny Llama's max_position_embeddings


def test_warmup_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"warmup_ratio' is 10; .*train.warmup_steps=10"):
        load_config(None, ["train.warmup_ratio=10"])
    with pytest.raises(ConfigError, match="both set"):
        load_config(None, ["train.warmup_steps=10", "train.warmup_ratio=0.1"])
    config = load_config(None, ["train.warmup_steps=10"])
    assert config.train.warmup_ratio == 0.0, "the saved config says steps were used"


def test_trainer_options_reach_sft_config(tiny_model_dir, tmp_path):
    from sqlft.training.sft import training_args

    config = load_config(None, [
        "train.warmup_steps=7", "train.group_by_length=true", "train.eval_strategy=epoch", "train.save_strategy=epoch",
        "train.eval_batch_size=3", "train.batch_size=2", "train.use_reentrant=true", "data.preprocessing_workers=2",
        "train.report_to=none", "data.max_length=64"])
    args = training_args(config, tmp_path, SimpleNamespace(validation=[1]))
    assert args.warmup_steps == 7 and args.train_sampling_strategy == "group_by_length"
    assert args.eval_strategy == "epoch" and args.save_strategy == "epoch" and args.eval_steps is None
    assert args.per_device_eval_batch_size == 3 and args.per_device_train_batch_size == 2
    assert args.activation_checkpointing_kwargs == {"use_reentrant": True} and args.dataset_num_proc == 2
    assert args.report_to == []
    ratio = training_args(load_config(None, ["train.warmup_ratio=0.1", "data.max_length=64"]), tmp_path,
                          SimpleNamespace(validation=[]))
    assert ratio.warmup_steps == 0.1 and ratio.eval_strategy == "no"


def test_services_that_are_not_here_fail_before_training(monkeypatch):
    import importlib.util

    from sqlft.training.common import check_services

    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="pip install wandb"):
            check_services(load_config(None, ["train.report_to=wandb"]))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="push_to_hub needs the Hugging Face hub.*HF_HUB_OFFLINE"):
        check_services(load_config(None, ["train.push_to_hub=true"]))


def test_packed_rows_are_rounded_to_a_few_lengths(tmp_path):
    """Packed rows are padded up to data.pad_packed_to_multiple_of (64): on a CPU every distinct row length adds
    kernels to oneDNN's cache, which is what made resident memory grow step after step."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from sqlft.training.sft import training_args

    def args(*overrides):
        return training_args(load_config(None, ["data.max_length=256", "train.report_to=none", *overrides]),
                             tmp_path, SimpleNamespace(validation=[]))

    packed = args("data.packing=true")
    assert packed.pad_to_multiple_of == 64
    # TRL's padding-free collator (what packing uses) with that setting: 50 + 30 tokens become one 128-token row.
    collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True,
                                              pad_to_multiple_of=packed.pad_to_multiple_of)
    batch = collate([{"input_ids": list(range(1, 51))}, {"input_ids": list(range(1, 31))}])
    assert batch["input_ids"].shape == (1, 128) and (batch["labels"][0, 80:] == -100).all()
    assert args("data.packing=true", "data.pad_packed_to_multiple_of=0").pad_to_multiple_of is None
    assert args("data.packing=false").pad_to_multiple_of is None  # unpacked: the longest example's length
    assert args("data.packing=false", "data.pad_to_max_length=true").pad_to_multiple_of == 256
    with pytest.raises(ConfigError, match="pad_packed_to_multiple_of' is -1"):
        load_config(None, ["data.pad_packed_to_multiple_of=-1"])
