"""What the SFT and GRPO recipes share: the run folder and its outputs (metrics, loss plot), checkpoints to resume
from, stopping on a non-finite loss, precision made concrete, checks of outside services, and the trainer arguments
both TRL trainers take. Neither recipe imports the other."""

import dataclasses
import json
import math
import os
import resource
from pathlib import Path

import torch
from transformers import TrainerCallback

from sqlft.config import Config, ConfigError, save_config
from sqlft.config.run_folder import RunFolder
from sqlft.data.errors import DataError
from sqlft.model import precision
from sqlft.model.loading import has_gpu


def is_main_process() -> bool:
    """True in a single-process run and in rank 0 under `accelerate launch`, torchrun or deepspeed (they set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def resolve_precision(config: Config, verbose: bool = True) -> Config:
    """train.precision and model.compute_dtype with `auto` replaced by what this machine computes natively
    (sqlft.model.precision); an explicit bf16 where it is emulated is kept and warned about once."""
    hw = precision.hardware()
    chosen = precision.resolve(config.train.precision, hw)
    compute = config.model.compute_dtype
    if compute == "auto":  # the 4-bit matmuls follow the autocast precision
        compute = precision.DTYPE_NAMES[chosen]
    elif config.model.method == "qlora":
        compute = precision.resolve_dtype_name(compute, hw)  # warns where an explicit 16-bit type is emulated
    if verbose:
        line = precision.describe(chosen, config.train.precision, hw)
        print(f"[sqlft] {line}" + (f", 4-bit compute {compute}" if config.model.method == "qlora" else ""))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=chosen),
                               model=dataclasses.replace(config.model, compute_dtype=compute))


def check_services(config: Config) -> None:
    """Options that need something outside sqlft (a W&B install, the hub) fail here, before any work is done."""
    import importlib.util

    t = config.train
    if t.report_to == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError("train.report_to=wandb needs the wandb package: pip install wandb (and `wandb login`), "
                          "or set train.report_to=tensorboard")
    if t.push_to_hub:
        reason = hub_unreachable()
        if reason:
            raise ConfigError(f"train.push_to_hub needs the Hugging Face hub, and {reason}. Set "
                              "train.push_to_hub=false here and upload the run folder where the hub is reachable "
                              "(`hf upload REPO RUN/merged`)")


def hub_unreachable() -> str | None:
    """Why the hub cannot take an upload from here (offline mode, no login, no network), or None."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set on this machine"
    try:
        from huggingface_hub import HfApi
        HfApi().whoami()
    except Exception as err:  # no token (LocalTokenNotFoundError), no network, an expired token, ...
        return f"it cannot be reached or no one is logged in ({type(err).__name__}: {err}); run `hf auth login`"
    return None


def prepare_run_dir(config: Config, resume: bool) -> Path:
    run_dir = config.run_dir
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise DataError(f"run folder {run_dir} already holds a run: pass --resume to continue it, or choose "
                        f"another name (name=... or train.output_dir=...)")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, RunFolder(run_dir).config_file)
    return run_dir


class StopOnNonFiniteLoss(TrainerCallback):
    """Stops training at the first logged NaN/inf loss (train() then exits with a message)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if non_finite_key(logs or {}):
            control.should_training_stop = True
            control.should_save = False
        return control


def non_finite_key(entry: dict) -> str | None:
    """Name of the first NaN/inf training value in a log entry (loss or gradient norm), if any."""
    for key in ("loss", "grad_norm"):
        value = entry.get(key)
        if value is not None and not math.isfinite(value):
            return key
    return None


def first_non_finite(log_history: list[dict]):
    return next((e for e in log_history if non_finite_key(e)), None)


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written completely (trainer_state.json is written last)."""
    if not folder.is_dir():
        return None
    steps = sorted((int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*")
                   if p.name.split("-")[1].isdigit())
    for _, path in reversed(steps):
        if (path / "trainer_state.json").is_file() and (
                (path / "adapter_model.safetensors").is_file() or any(path.glob("model*.safetensors"))):
            return path
    return None


def peak_memory_mb() -> float:
    if has_gpu():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def save_outputs(config: Config, trainer, tokenizer, run_dir: Path, result, seconds: float, records: int = 0,
                 rows: int = 0) -> None:
    run = RunFolder(run_dir)
    out = run.weights(config.model.method)
    # save_model, not model.save_pretrained: it writes from the main process only, and gathers the weights
    # that ZeRO-3 / FSDP hold in shards (the tokenizer goes along as the trainer's processing_class).
    trainer.save_model(str(out))
    if not trainer.is_world_process_zero():
        return
    history = trainer.state.log_history
    eval_losses = [e["eval_loss"] for e in history if "eval_loss" in e]
    tokens = trainer.state.num_input_tokens_seen
    metrics = {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "final_logged_loss": next((e["loss"] for e in reversed(history) if "loss" in e), None),
        "eval_loss": eval_losses[-1] if eval_losses else None,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "train_runtime_s": round(seconds, 1),
        "tokens_seen": int(tokens),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "peak_memory_mb": round(peak_memory_mb(), 1),
        # Records per hour: rows trained (steps x rows per step x processes) x records per row, over the run's time
        "train_records": records,
        "train_rows": rows,
        "records_per_hour": round(records_per_hour(trainer, records, rows, seconds)) if rows and seconds else None,
        "epoch": trainer.state.epoch,
        "device": "cuda" if has_gpu() else "cpu",
        "log_history": history,
    }
    run.metrics.write_text(json.dumps(metrics, indent=2))
    plot_loss(history, run.loss_plot)
    print(f"[sqlft] done: step {metrics['global_step']}, train loss {metrics['final_logged_loss']}, "
          f"eval loss {metrics['eval_loss']}, {metrics['tokens_per_s']} tokens/s, "
          f"peak memory {metrics['peak_memory_mb']:.0f} MiB -> {run_dir}")


def records_per_hour(trainer, records: int, rows: int, seconds: float) -> float:
    args = trainer.args
    rows_trained = trainer.state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps \
        * args.world_size
    return rows_trained * records / rows / seconds * 3600


def plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def optimisation_args(t, autocast: str, run_dir: Path) -> dict:
    """The trainer arguments SFT and GRPO share (TrainingArguments fields): steps, batch, optimizer, schedule,
    precision, checkpointing. `autocast` is the resolved train.precision (bf16, fp16 or fp32)."""
    return dict(
        output_dir=str(RunFolder(run_dir).checkpoints),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        per_device_train_batch_size=t.batch_size,  # GRPO: answers, not prompts (batch_size / num_generations prompts)
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.scheduler,
        # transformers 5 has one argument: an int is a number of steps, a float < 1 a share of the steps.
        warmup_steps=t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        bf16=autocast == "bf16",
        fp16=autocast == "fp16",
        use_cpu=not has_gpu(),
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": t.use_reentrant},
    )
