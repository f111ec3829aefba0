"""Distributed training: a real two-process data-parallel run of `sqlft train` (sqlft.commands.train) on the CPU (gloo backend).

`accelerate launch --config_file configs/accelerate/cpu_ddp_2proc.yaml` starts this file twice with `--worker`;
each process runs `sqlft.commands.train.main` unchanged, plus a callback that writes a hash of its LoRA weights, so the
test can check that both processes end with the same adapter as the one rank 0 saved. The model is conftest's tiny
Llama (hidden 16, 2 layers, the embedded SmolLM2 tokenizer).
    .venv/bin/pytest tests/test_distributed.py    (~2.5 min on 2 cores; -m "not slow" leaves out the QLoRA run)
"""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sqlft.core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
CPU_DDP = ROOT / "configs" / "accelerate" / "cpu_ddp_2proc.yaml"


def tensors_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names and exact fp32 bytes: equal only if every weight is bit-identical."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def launch_two_processes(tmp_path: Path, model: Path, data: Path, method: str) -> tuple[Path, Path, str]:
    """Runs `accelerate launch` (2 CPU processes) on sqlft.commands.train; returns (run folder, hash folder, output)."""
    run_dir, hash_dir = tmp_path / "run", tmp_path / "hashes"
    hash_dir.mkdir()
    config = {
        "name": f"ddp-{method}",
        "model": {"name": str(model), "method": method, "dtype": "float32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"train": [{"path": str(data)}], "template": "chatml", "max_length": 128, "val_fraction": 0.0},
        "train": {"output_dir": str(run_dir), "max_steps": 3, "batch_size": 2, "lr": 0.01, "scheduler": "constant",
                  "warmup_ratio": 0.0, "eval_steps": 0, "save_steps": 100, "logging_steps": 1, "report_to": "none",
                  "gradient_checkpointing": False, "num_threads": 1},  # 1 thread each: 2 processes share 2 cores
    }
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_DDP),
               "--main_process_port", str(free_port()), __file__, "--worker", str(hash_dir), str(config_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return run_dir, hash_dir, output


# QLoRA (bitsandbytes NF4 on the CPU) works the same way; marked slow only for its ~35 s.
@pytest.mark.parametrize("method", ["lora", pytest.param("qlora", marks=pytest.mark.slow)])
def test_ddp_two_cpu_processes_end_with_the_same_adapter(tmp_path, tiny_model_dir, sql_jsonl, method):
    from safetensors.torch import load_file

    run_dir, hash_dir, output = launch_two_processes(tmp_path, tiny_model_dir, sql_jsonl, method=method)
    ranks = [json.loads((hash_dir / f"rank{r}.json").read_text()) for r in (0, 1)]

    # Really data-parallel: two processes, the model wrapped in DDP, each step consumed 2 x batch_size examples.
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert {r["wrapper"] for r in ranks} == {"DistributedDataParallel"}
    assert ranks[0]["epoch"] == pytest.approx(3 * 2 * 2 / 24)
    # Same weights everywhere at the end, and they moved (LoRA B starts at zero).
    assert ranks[0]["final"] == ranks[1]["final"]
    assert ranks[0]["final"] != ranks[0]["initial"]
    # The adapter rank 0 saved is exactly those weights.
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert tensors_hash(saved) == ranks[0]["final"]

    # Rank 0 alone wrote the run folder (the other rank would have failed on the existing folder), once each.
    for name in ("config.yaml", "data_report.json", "metrics.json", "loss.png", "adapter/adapter_config.json"):
        assert (run_dir / name).is_file(), name
    assert output.count("[sqlft] done:") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 3


SHARDED = {"fsdp": {"ACCELERATE_USE_FSDP": "true"},
           "zero3": {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}}


@pytest.mark.parametrize("launcher", ["fsdp", "zero3"])
def test_sharded_qlora_keeps_one_dtype_for_fsdp_and_zero3(tiny_model_dir, monkeypatch, launcher):
    """Under FSDP / ZeRO-3 (as `accelerate launch` announces them) the 4-bit weights are stored in the model dtype
    and nothing is upcast to fp32, so every shard holds one dtype; under DDP the norms are upcast as usual."""
    from sqlft.model import loading as modeling
    from sqlft.config import load_config

    config = load_config(None, [f"model.name={tiny_model_dir}", "model.method=qlora", "model.dtype=bfloat16",
                                "train.gradient_checkpointing=false"])
    for key in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(key, raising=False)
    ddp = modeling.add_lora(modeling.load_base_model(config.model, for_training=True), config)
    assert {p.dtype for n, p in ddp.named_parameters() if "norm" in n} == {torch.float32}

    for key, value in SHARDED[launcher].items():
        monkeypatch.setenv(key, value)
    assert modeling.shards_weights()
    sharded = modeling.add_lora(modeling.load_base_model(config.model, for_training=True), config)
    frozen = {p.dtype for p in sharded.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}, "4-bit storage, norms and embeddings all bf16: shardable"
    assert any(p.requires_grad for p in sharded.parameters())


def test_zero2_does_not_count_as_sharding_weights(monkeypatch):
    from sqlft.model import loading as modeling

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert not modeling.shards_weights()  # ZeRO-2 keeps whole weights per GPU: QLoRA as in a single-GPU run


def load_benchmark():
    """benchmarks/gpu_throughput.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "benchmarks" / "gpu_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_in_small_mode():
    """One QLoRA case of the GPU benchmark on the CPU (tiny Llama): building, quantizing, training, accounting."""
    bench = load_benchmark()
    threads = torch.get_num_threads()
    try:
        (result,) = bench.main(["--small", "--methods", "qlora", "--seq-lens", "128", "--setups", "seed-tutorials",
                                "--warmup", "1", "--steps", "2", "--batch-size", "2", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)  # main() sets it for the whole process
    assert result.tokens_per_s > 0 and result.loss is not None and math.isfinite(result.loss)
    # The seed tutorials' rows are all padded to max_length: 2 timed steps x 2 rows x 128 tokens went through.
    assert result.processed_tokens_per_s * result.seconds == pytest.approx(2 * 2 * 128, rel=0.01)
    assert 0 < result.padding_share < 1


def test_model_flops_per_token_formula():
    """6N for full fine-tuning; 4N (frozen base: forward + input gradients) + 6N_lora for LoRA."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    bench = load_benchmark()
    model = LlamaForCausalLM(LlamaConfig(**{**bench.TINY, "vocab_size": 64}))
    n = sum(p.numel() for p in model.parameters())
    assert bench.flops_per_token(model, "full") == 6 * n
    lora = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear"))
    n_lora = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert bench.flops_per_token(lora, "lora") == 4 * n + 6 * n_lora


def worker(hash_dir: Path, argv: list[str]) -> None:
    """One launched process: sqlft.commands.train.main, with a callback recording this process's LoRA weights."""
    from peft import get_peft_model_state_dict
    from transformers import TrainerCallback

    import sqlft.commands.train as train_command
    import sqlft.training.sft as train_module

    class RecordLora(TrainerCallback):
        def __init__(self, trainer):
            self.trainer, self.record = trainer, {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.record.update(world_size=args.world_size, initial=tensors_hash(get_peft_model_state_dict(model)))

        def on_train_end(self, args, state, control, model=None, **kwargs):
            self.record.update(final=tensors_hash(get_peft_model_state_dict(model)), epoch=state.epoch,
                               wrapper=type(self.trainer.model_wrapped).__name__)
            (hash_dir / f"rank{args.process_index}.json").write_text(json.dumps(self.record))

    build_trainer = train_module.build_trainer

    def build_and_record(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.add_callback(RecordLora(trainer))
        return trainer

    train_module.build_trainer = build_and_record  # train_sft() looks it up at call time
    train_command.main(argv)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(Path(sys.argv[2]), sys.argv[3:])  # --worker HASH_DIR CONFIG [section.key=value ...]
