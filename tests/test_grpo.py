"""The GRPO stage of `sqlft train` on a tiny Llama (CPU): the adapter changes, the run resumes and merges, the
reward's rates reach the logs, prompts are SFT's, and the vLLM settings map onto TRL's config without a GPU."""

import json

import pytest
import torch
from safetensors.torch import load_file

from sqlft.config import ConfigError, load_config
from sqlft.model.loading import load_tokenizer


def grpo_config(tiny_model_dir, data_path, run_dir, *overrides):
    return load_config(None, [
        "train.stage=grpo", f"model.name={tiny_model_dir}", "model.method=lora", "model.dtype=float32",
        f"data.train=[{{path: {data_path}}}]", "data.template=chatml", "data.max_length=128",
        "data.val_fraction=0.25", f"train.output_dir={run_dir}", "train.max_steps=2", "train.batch_size=8",
        "train.lr=1e-2", "train.save_steps=1", "train.logging_steps=1", "train.gradient_checkpointing=false",
        "train.report_to=tensorboard", "train.warmup_ratio=0", "train.num_threads=2",
        "grpo.num_generations=4", "grpo.max_completion_length=2", "grpo.reward.overlong_penalty=0.5",
        "grpo.reward.instances=1", *overrides])


@pytest.fixture
def eos_half_the_time(monkeypatch, tiny_model_dir):
    """A random tiny model never writes SQL, so every answer would earn the same and GRPO would have nothing to
    learn from. Biasing its end-of-turn token to about 0.3 a token makes about half of the answers end within the
    2-token budget and the others not: the real reward's over-long penalty then differs within a group."""
    import sqlft.training.grpo as grpo

    tokenizer = load_tokenizer(str(tiny_model_dir))
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    build = grpo.grpo_args

    def with_bias(config, run_dir):
        args = build(config, run_dir)
        args.generation_kwargs = {"sequence_bias": [[[end], 10.0]]}  # ~0.3 a token against a flat distribution
        return args
    monkeypatch.setattr(grpo, "grpo_args", with_bias)


def test_grpo_changes_the_adapter_resumes_and_merges(tiny_model_dir, sql_jsonl, tmp_path, eos_half_the_time):
    from sqlft.training.merge import merge
    from sqlft.commands.train import train
    from sqlft.training.common import newest_checkpoint

    run_dir = train(grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "run"))
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero: GRPO must have moved it"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    logged = [e for e in metrics["log_history"] if "reward" in e]
    for key in ("reward", "reward_std", "execution/match_rate", "execution/run_wrong_rate", "execution/error_rate",
                "completions/mean_length", "rewards/execution/mean"):
        assert key in logged[0], key
    assert any(e["reward_std"] > 0 for e in logged), "answers of one prompt earned different rewards"
    assert list((run_dir / "logs").rglob("events.out.tfevents.*")), "TensorBoard logs"
    report = json.loads((run_dir / "data_report.json").read_text())["grpo"]
    assert report["records"] > 0 and report["dropped_gold_does_not_run"] == 0
    assert (run_dir / "validation.jsonl").read_text().strip()

    # --resume continues from the newest checkpoint to the new max_steps
    assert newest_checkpoint(run_dir / "checkpoints").name == "checkpoint-2"
    resumed = train(grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "run", "train.max_steps=3"), resume=True)
    history = json.loads((resumed / "metrics.json").read_text())["log_history"]
    assert [e["step"] for e in history if "reward" in e] == [1, 2, 3]

    merged = merge(resumed, dtype="float32")  # verifies merged == adapter (a random model has near ties in 16 bits)
    assert (merged / "model.safetensors").is_file() and (merged / "sqlft.yaml").is_file()


def test_grpo_continues_an_sft_adapter(tiny_model_dir, sql_jsonl, tmp_path, eos_half_the_time):
    from sqlft.commands.train import train

    # A barely trained SFT adapter (a bigger step teaches the tiny model to end at once: no reward variance left)
    sft = train(grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "sft", "train.stage=sft", "train.max_steps=1",
                            "train.batch_size=2", "train.lr=1e-5", "train.report_to=none"))
    before = load_file(sft / "adapter" / "adapter_model.safetensors")
    run_dir = train(grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "grpo", f"model.adapter={sft}",
                                "train.report_to=none"))
    after = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert before.keys() == after.keys(), "the SFT adapter itself is trained on, not a new one"
    assert any(not torch.equal(before[k], after[k]) for k in before)

    with pytest.raises(ConfigError, match="data.template='chatml'"):
        train(grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "other", f"model.adapter={sft}",
                          "data.template=sql"))


def test_prompts_are_sfts_token_for_token(tiny_model_dir, sql_jsonl, tmp_path):
    from sqlft.training.dataset import build_training_data
    from sqlft.training.grpo import prompt_dataset

    tokenizer = load_tokenizer(str(tiny_model_dir))
    for template in ("chatml", "sql", "llama3"):
        config = grpo_config(tiny_model_dir, sql_jsonl, tmp_path / "run", f"data.template={template}",
                             "data.max_length=512")
        data = build_training_data(config, tokenizer)
        dataset = prompt_dataset([(str(i), r) for i, r in enumerate(data.train_records)], config, tokenizer)
        for row, example in zip(dataset, data.train):
            ids = tokenizer(row["prompt"])["input_ids"]  # how TRL tokenizes a text prompt
            assert example.input_ids[:len(ids)] == ids and example.completion_mask[len(ids)] == 1, template


def test_config_checks_and_vllm_mapping(tiny_model_dir, sql_jsonl, tmp_path, monkeypatch):
    import importlib.util

    from sqlft.training.grpo import grpo_args

    with pytest.raises(ConfigError, match="multiple of grpo.num_generations"):
        grpo_config(tiny_model_dir, sql_jsonl, tmp_path, "train.batch_size=6")
    with pytest.raises(ConfigError, match="at least 2"):
        grpo_config(tiny_model_dir, sql_jsonl, tmp_path, "grpo.num_generations=1")
    with pytest.raises(ConfigError, match="vllm_server_url"):
        grpo_config(tiny_model_dir, sql_jsonl, tmp_path, "grpo.use_vllm=true", "grpo.vllm_mode=server")

    config = grpo_config(tiny_model_dir, sql_jsonl, tmp_path, "grpo.use_vllm=true", "grpo.vllm_mode=server",
                         "grpo.vllm_server_url=http://10.0.0.2:8000", "grpo.temperature=0.8", "grpo.beta=0.01")
    real_find_spec = importlib.util.find_spec
    if real_find_spec("vllm") is None:  # this machine: the missing package is named, with what to do
        with pytest.raises(ConfigError, match="pip install vllm"):
            grpo_args(config, tmp_path)
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a))
    args = grpo_args(config, tmp_path)
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://10.0.0.2:8000")
    assert (args.num_generations, args.max_completion_length, args.temperature, args.beta) == (4, 2, 0.8, 0.01)
    assert args.vllm_max_model_length == 128 + 2
    assert args.per_device_train_batch_size == 8 and args.generation_batch_size == 8


def test_reward_keys_of_the_config_reach_the_reward(tiny_model_dir, sql_jsonl, tmp_path):
    from sqlft.training.grpo import reward_settings

    config = grpo_config(tiny_model_dir, sql_jsonl, tmp_path, "grpo.reward.match=2.0", "grpo.reward.runs=0.3",
                         "grpo.reward.instances=2", "grpo.reward.timeout_s=1.5", "grpo.reward.mode=strict",
                         "grpo.reward.malformed_penalty=0.2")
    settings = reward_settings(config, load_tokenizer(str(tiny_model_dir)))
    assert (settings.match, settings.runs, settings.instances, settings.timeout_s, settings.mode,
            settings.overlong_penalty, settings.malformed_penalty) == (2.0, 0.3, 2, 1.5, "strict", 0.5, 0.2)


def test_small_logprob_tiles_give_trls_log_probs_and_gradients(monkeypatch):
    """On a CPU sqlft shrinks the tiles of TRL's chunked log-probability kernel (memory): the values and gradients
    must be those of TRL's own tiles. Fails too if TRL renames the constants being set."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    from sqlft.training.grpo import small_logprob_tiles

    monkeypatch.setattr(kernel, "TOKEN_CHUNK_SIZE", kernel.TOKEN_CHUNK_SIZE)  # restored after the test
    monkeypatch.setattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    torch.manual_seed(0)
    hidden, weight = torch.randn(300, 16), torch.randn(1000, 16)
    targets = torch.randint(0, 1000, (300,))

    def log_probs_and_grads():
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        log_probs, entropy, *_ = kernel.ChunkedLogProbFunction.apply(
            h, w, None, targets, 0.8, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, ("log_probs", "entropy"))
        (log_probs.sum() + 0.1 * entropy.sum()).backward()
        return log_probs.detach(), entropy.detach(), h.grad, w.grad

    trls = log_probs_and_grads()
    small_logprob_tiles((64, 128))  # 5 token tiles x 8 vocabulary tiles
    assert (kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE) == (64, 128)
    for ours, theirs in zip(log_probs_and_grads(), trls):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)  # float32 sums in another order
