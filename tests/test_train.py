"""Training behaviour on a tiny Llama: what changes, what must not, resume, loss masking, merge, bad runs."""

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sqlft.config import load_config
from sqlft.training.dataset import build_training_data, encode
from sqlft.model.loading import load_tokenizer
from sqlft.prompts.record import sql_record
from sqlft.prompts.templates import render


def tiny_config(tiny_model_dir, data_path, run_dir, *overrides):
    return load_config(None, [
        f"model.name={tiny_model_dir}", "model.method=lora", "model.dtype=float32",
        f"data.train=[{{path: {data_path}}}]", "data.template=chatml", "data.max_length=128",
        "data.val_fraction=0.25", f"train.output_dir={run_dir}", "train.max_steps=6", "train.batch_size=2",
        "train.lr=1e-2", "train.save_steps=2", "train.eval_steps=3", "train.logging_steps=1",
        "train.gradient_checkpointing=false", "train.report_to=none", "train.warmup_ratio=0", *overrides])


def test_lora_changes_adapter_and_leaves_base_untouched(tiny_model_dir, sql_jsonl, tmp_path, monkeypatch):
    import sqlft.training.sft as sft_module
    from sqlft.commands.train import train

    loaded = {}

    def load_and_snapshot(*args, **kwargs):  # the very model object that training then wraps and trains
        model = real_load(*args, **kwargs)
        loaded["model"], loaded["before"] = model, {n: p.detach().clone() for n, p in model.named_parameters()}
        return model

    real_load = sft_module.load_base_model
    monkeypatch.setattr(sft_module, "load_base_model", load_and_snapshot)
    run_dir = train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run"))
    base = load_file(tiny_model_dir / "model.safetensors")
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero and must have been trained"
    assert not any(k.replace("base_model.model.", "") in base for k in adapter), "adapter holds only LoRA weights"
    # In memory, after training: every base weight (LoRA wraps a layer's weight as base_layer.weight) is unchanged.
    after = {n.replace(".base_layer", ""): p for n, p in loaded["model"].named_parameters() if "lora_" not in n}
    assert set(after) == set(loaded["before"])
    changed = [n for n, before in loaded["before"].items() if not torch.equal(after[n].detach().cpu(), before.cpu())]
    assert not changed, f"training changed frozen base weights: {changed[:5]}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["tokens_seen"] > 0
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["train"]["precision"] in ("bf16", "fp32"), "config.yaml records what `auto` resolved to"
    for name in ("config.yaml", "data_report.json", "loss.png", "sample_prompts.json", "adapter/tokenizer.json"):
        assert (run_dir / name).is_file(), name
    held_out = [json.loads(line) for line in (run_dir / "validation.jsonl").read_text().splitlines()]
    assert len(held_out) == 6 and all(row["context"] and row["answer"] for row in held_out)


def test_loss_mask_covers_exactly_the_answer(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    record = sql_record("CREATE TABLE t (a INT)", "How many rows?", "SELECT COUNT(*) FROM t", system="S")
    example = encode(record, "chatml", tokenizer)
    answer_ids = [i for i, m in zip(example.input_ids, example.completion_mask) if m]
    prompt_ids = [i for i, m in zip(example.input_ids, example.completion_mask) if not m]
    rendered = render(record, "chatml", tokenizer)
    assert tokenizer.decode(answer_ids) == rendered.completion == "SELECT COUNT(*) FROM t<|im_end|>"
    assert tokenizer.decode(prompt_ids) == rendered.prompt
    assert example.completion_mask == sorted(example.completion_mask), "prompt first, then answer"


def test_data_that_leaves_nothing_to_learn_fails_loudly(tiny_model_dir, sql_jsonl, tmp_path):
    from sqlft.data.errors import DataError

    config = tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run", "data.max_length=16", "data.overlong=fail")
    with pytest.raises(DataError, match="max_length"):
        build_training_data(config, load_tokenizer(str(tiny_model_dir)))


def test_split_by_database_keeps_databases_apart(tiny_model_dir, sql_jsonl, tmp_path):
    config = tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run", "data.split_by_db=true")
    data = build_training_data(config, load_tokenizer(str(tiny_model_dir)))
    assert len(data.train) + len(data.validation) == 24 and 0 < len(data.validation) < 24


def test_killed_run_resumes_to_the_same_result(tiny_model_dir, sql_jsonl, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    import sqlft.training.sft as sft_module
    from sqlft.commands.train import train

    reference = train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "straight"))

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:  # after checkpoint-4 was written, before checkpoint-6
                raise KeyboardInterrupt("simulated kill")

    build = sft_module.build_trainer
    monkeypatch.setattr(sft_module, "build_trainer", lambda *a, **k: _with_callback(build(*a, **k), Crash()))
    killed_config = tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        train(killed_config)
    from sqlft.training.common import newest_checkpoint
    assert newest_checkpoint(tmp_path / "killed" / "checkpoints").name == "checkpoint-4"
    monkeypatch.setattr(sft_module, "build_trainer", build)
    resumed = train(killed_config, resume=True)

    history = json.loads((resumed / "metrics.json").read_text())["log_history"]
    steps = [e["step"] for e in history if "loss" in e]
    assert steps == [1, 2, 3, 4, 5, 6], "one loss point per step, none lost or repeated"
    straight = json.loads((reference / "metrics.json").read_text())["log_history"]
    assert [e["loss"] for e in history if "loss" in e] == pytest.approx(
        [e["loss"] for e in straight if "loss" in e], rel=1e-4)
    a = load_file(reference / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def _with_callback(trainer, callback):
    trainer.add_callback(callback)
    return trainer


def test_existing_run_folder_is_not_overwritten(tiny_model_dir, sql_jsonl, tmp_path):
    from sqlft.data.errors import DataError
    from sqlft.commands.train import train

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(DataError, match="--resume"):
        train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run"))


def test_non_finite_loss_stops_with_a_message(tiny_model_dir, sql_jsonl, tmp_path, monkeypatch):
    import sqlft.training.sft as sft_module
    from sqlft.commands.train import train

    original = sft_module.load_base_model

    def poisoned(*args, **kwargs):  # a model whose weights hold a NaN: the first loss is NaN
        model = original(*args, **kwargs)
        with torch.no_grad():
            model.model.norm.weight[0] = math.nan
        return model

    monkeypatch.setattr(sft_module, "load_base_model", poisoned)
    with pytest.raises(SystemExit, match="(loss|grad_norm) became nan at step 1"):
        train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run"))


def test_merged_model_equals_adapter_and_loads_plainly(tiny_model_dir, sql_jsonl, tmp_path):
    from transformers import AutoModelForCausalLM

    from sqlft.model.generate import InferenceModel
    from sqlft.training.merge import merge
    from sqlft.commands.train import train

    run_dir = train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run", "data.schema_format=compact"))
    merged_dir = merge(run_dir, dtype="float32")  # verify=True: raises if greedy outputs differ
    plain = AutoModelForCausalLM.from_pretrained(merged_dir)  # strict load by plain transformers
    assert not any("lora" in name for name, _ in plain.named_parameters())
    merged = InferenceModel.load(str(merged_dir))
    assert merged.template == "chatml" and (merged_dir / "README.md").read_text().count("chatml")
    # the prompt format travels with the model: the compact schema the run trained on
    prompt = merged.sql_prompt("CREATE TABLE head (age INTEGER);", "How many heads?")
    assert "head(age int)" in prompt and "CREATE TABLE" not in prompt
    samples = json.loads((run_dir / "sample_prompts.json").read_text())
    assert samples and not any("CREATE TABLE" in p for p in samples)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    adapter = InferenceModel.load(str(run_dir), dtype="float32")
    assert torch.allclose(adapter.model(ids).logits, plain(ids).logits, atol=1e-4)


def test_a_16_bit_merge_passes_its_check_and_a_wrong_merge_fails_it(tiny_model_dir, sql_jsonl, tmp_path):
    """In 16 bits a random tiny model is full of near ties (greedy text of merged and adapter models often
    differs), so the check follows the adapter's answers token by token and forgives only ties within rounding;
    a merge that moved one layer's weights is refused."""
    from safetensors.torch import load_file, save_file

    from sqlft.model.generate import InferenceModel
    from sqlft.training.merge import MergeMismatch, merge, reference_answers, verify_merge
    from sqlft.config.run_folder import open_run
    from sqlft.commands.train import train

    run_dir = train(tiny_config(tiny_model_dir, sql_jsonl, tmp_path / "run"))
    merged_dir = merge(run_dir, dtype="bfloat16")  # verifies; raised before on ties
    prompts = open_run(run_dir).read_sample_prompts()
    expected = reference_answers(InferenceModel.load(str(run_dir), dtype="bfloat16"), prompts)
    assert sum(len(r.answer_ids) for r in expected) > 0
    verify_merge(expected, merged_dir, "bfloat16")  # the adapter loaded apart agrees too

    weights = load_file(merged_dir / "model.safetensors")
    name = next(n for n in weights if n.endswith("layers.0.mlp.down_proj.weight"))
    weights[name] = weights[name] * 3  # what a wrong LoRA scaling does to one layer, exaggerated
    save_file(weights, merged_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MergeMismatch, match="does not follow the adapter model"):
        verify_merge(expected, merged_dir, "bfloat16")
