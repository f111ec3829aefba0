"""Fine-tune a Llama-family model for SQL with QLoRA, LoRA or full fine-tuning (TRL SFTTrainer + PEFT).

train.stage: grpo runs the reinforcement stage instead (sqlft/training/grpo.py: TRL GRPOTrainer, execution reward).

    sqlft train CONFIG [section.key=value ...] [--resume]
    python -m sqlft.training.sft configs/smollm2-135m-lora-cpu.yaml train.max_steps=20

The run folder (train.output_dir) gets: config.yaml (resolved), data_report.json, adapter/ (or model/ for full
fine-tuning) with the tokenizer, metrics.json, loss.png, logs/ (TensorBoard) and checkpoints/ (sqlft.config.run_folder
owns that layout).
Several GPUs (or CPU processes): `accelerate launch --config_file configs/accelerate/ddp.yaml -m sqlft.training.sft CONFIG`;
every process trains, the main process alone writes the run folder.
"""

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from sqlft.model import precision
from sqlft.training import shared_prefix
from sqlft.config import Config, ConfigError, load_config, save_config
from sqlft.training.dataset import build_training_data, held_out_sql_rows, to_hf_dataset
from sqlft.data.formats import DataError
from sqlft.training.lm_head import use_label_only_head
from sqlft.model.loading import (add_lora, check_device_options, has_gpu, load_base_model, load_tokenizer, memory_mb,
                            parameter_counts, resolve_max_length)
from sqlft.config.run_folder import RunFolder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft train", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.max_steps=20")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    # `deepspeed --module sqlft.training.sft CONFIG` starts each process as `python -u -m sqlft.training.sft --local_rank=N CONFIG`
    # (deepspeed/launcher/launch.py), and torch.distributed.launch passes `--local-rank N`: accept both spellings.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, dest="local_rank",
                        help="set by the deepspeed launcher (the process's GPU on its node); read as LOCAL_RANK")
    args = parser.parse_intermixed_args(argv)  # an option may come between the config and its overrides
    if args.local_rank is not None:
        env = os.environ.get("LOCAL_RANK")
        if env is not None and env != str(args.local_rank):
            parser.error(f"--local_rank={args.local_rank} but the environment has LOCAL_RANK={env}; the launcher "
                         "sets both, so they must agree")
        os.environ["LOCAL_RANK"] = str(args.local_rank)  # transformers places this process by LOCAL_RANK
    return args


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        check_device_options(config)
        check_services(config)
    except ConfigError as err:
        sys.exit(f"sqlft train: {err}")
    try:
        return train(config, resume=args.resume)
    except (DataError, ConfigError, FileNotFoundError) as err:
        sys.exit(f"sqlft train: {err}")


def train(config: Config, resume: bool = False) -> Path:
    from transformers import set_seed

    set_seed(config.train.seed)
    torch.set_num_threads(config.train.num_threads or os.cpu_count())
    # Under a launcher every process runs this function; the main one alone writes the run folder.
    main_process = is_main_process()
    config = resolve_precision(config, verbose=main_process)  # `auto` made concrete: config.yaml records the choice
    resolve_max_length(config)  # before the config is saved: the run records the length it used
    if config.train.stage == "grpo":  # reinforcement on executed answers: its own recipe, the same run folder
        from sqlft.training.grpo import train_grpo
        return train_grpo(shared_prefix.resolve_packing(config, verbose=main_process), resume)

    # Data first: bad data fails in seconds, before the model is loaded.
    tokenizer = load_tokenizer(config.model.name, config.model)
    config = shared_prefix.resolve_packing(config, tokenizer, verbose=main_process)  # config.yaml records it
    run_dir = prepare_run_dir(config, resume) if main_process else config.run_dir
    # For training only (config.yaml keeps the attention that merge, eval and serve load with).
    config = shared_prefix_attention(config, verbose=main_process)
    data = build_training_data(config, tokenizer)
    if main_process:
        write_data(RunFolder(run_dir), data)

    # Before the model: under a launcher this joins the process group and picks this process's GPU (4-bit
    # weights load onto it), and under ZeRO-3 it tells from_pretrained to load the weights partitioned.
    args = training_args(config, run_dir, data)
    model = load_base_model(config.model, for_training=True, tokenizer=tokenizer)
    model = add_lora(model, config)
    trainable, total = parameter_counts(model)
    if main_process:
        print(f"[sqlft] {config.model.name} ({config.model.method}): {trainable:,} trainable of {total:,} "
              f"parameters ({100 * trainable / total:.2f}%), weights {memory_mb(model):.0f} MiB, "
              f"{len(data.train)} train / {len(data.validation)} validation examples, "
              f"{args.world_size} process(es)")

    trainer = build_trainer(config, model, tokenizer, data, run_dir, args)
    checkpoint = newest_checkpoint(RunFolder(run_dir).checkpoints) if resume else None
    if resume and main_process:
        print(f"[sqlft] resuming from {checkpoint}" if checkpoint else "[sqlft] no complete checkpoint: starting anew")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start
    rows = len(trainer.train_dataset)  # after TRL's packing, or the shared-schema rows

    non_finite = trainer.state.log_history and _first_non_finite(trainer.state.log_history)
    if non_finite:
        key = _non_finite(non_finite)
        sys.exit(f"sqlft train: the {key} became {non_finite[key]} at step {non_finite['step']}; training stopped "
                 "and nothing was saved past the last checkpoint. Lower train.lr, check the data, or set "
                 "train.precision=bf16 on hardware with bf16 instead of fp16; then --resume from the last good "
                 "checkpoint.")
    save_outputs(config, trainer, tokenizer, run_dir, result, seconds, records=len(data.train), rows=rows)
    return run_dir


def write_data(run: RunFolder, data) -> None:
    """data_report.json (records kept and dropped; with shared-schema packing how many records went into how many
    rows), the sample prompts for merge's check and the held-out records for `sqlft eval`."""
    print(data.report.summary())
    report = {"train": data.report.to_dict(), "mix": data.mix_info,
              "validation": data.validation_report.to_dict() if data.validation_report else None,
              "examples": {"train": len(data.train), "validation": len(data.validation)}}
    if data.packed is not None:
        report["shared_prefix"] = {"train": data.packed.report, "validation": data.packed_validation.report}
        r = data.packed.report
        print(f"[sqlft] shared-schema packing: {r['records']} records in {r['rows']} rows of <= "
              f"{r['row_length']} tokens ({r['records_per_row']} per row, {r['prefixes']} schemas, "
              f"{r['records_without_shared_prefix']} records without a shared prefix; "
              f"{r['tokens']:,} tokens instead of {r['tokens_unpacked']:,})")
    run.data_report.write_text(json.dumps(report, indent=2))
    run.write_sample_prompts(data.sample_prompts)
    run.write_validation(held_out_sql_rows(data.validation_records))  # never trained on: for `sqlft eval`


def shared_prefix_attention(config: Config, verbose: bool = True) -> Config:
    """With data.packing=shared_prefix, an attention implementation that takes a block mask: sdpa (or eager when
    asked for); varlen FlashAttention-2 cannot express a shared prefix (sqlft.training.shared_prefix)."""
    if config.data.packing != shared_prefix.SHARED_PREFIX:
        return config
    requested = config.model.attn_implementation
    chosen = shared_prefix.attention_for(requested)
    if verbose:
        note = " (flash_attention_2 cannot express a shared prefix)" if requested == "flash_attention_2" else ""
        print(f"[sqlft] shared-schema packing: attention {chosen} with a block mask{note}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, attn_implementation=chosen))


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


def is_main_process() -> bool:
    """True in a single-process run and in rank 0 under `accelerate launch`, torchrun or deepspeed (they set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


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


def training_args(config: Config, run_dir: Path, data):
    """TRL's SFTConfig from the run config. Creating it sets up the processes under a launcher."""
    from trl import SFTConfig

    t = config.train
    autocast = precision.resolve(t.precision)  # already concrete when train() resolved it; `auto` for other callers
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(RunFolder(run_dir).logs)  # transformers 5: no logging_dir argument
    if t.report_to == "wandb" and t.wandb_project:
        os.environ["WANDB_PROJECT"] = t.wandb_project
    evaluate = t.eval_strategy != "no" and len(data.validation) > 0 and (t.eval_strategy == "epoch" or t.eval_steps > 0)
    early_stop = evaluate and t.early_stopping_patience > 0
    shared = config.data.packing == shared_prefix.SHARED_PREFIX
    return SFTConfig(
        **optimisation_args(t, autocast, run_dir),
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        eval_strategy=t.eval_strategy if evaluate else "no",
        eval_steps=t.eval_steps if evaluate and t.eval_strategy == "steps" else None,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=early_stop,
        metric_for_best_model="eval_loss" if early_stop else None,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # the default hides NaN/inf losses from the logs: we want to stop on them
        report_to=[] if t.report_to == "none" else [t.report_to],
        push_to_hub=t.push_to_hub,
        hub_model_id=(t.hub_model_id or config.name) if t.push_to_hub else None,
        deepspeed=t.deepspeed or None,
        seed=t.seed,
        data_seed=t.seed,
        max_length=config.data.max_length,
        packing=config.data.packing is True,
        pad_to_multiple_of=row_length_multiple(config.data),
        # Shared-schema rows are built by sqlft.training.shared_prefix (labels, position and block ids): TRL neither
        # prepares nor trims their columns, and sqlft's collator batches them.
        remove_unused_columns=not shared,
        dataset_kwargs={"skip_prepare_dataset": True} if shared else None,
        completion_only_loss=True,  # the completion_mask that sqlft.training.dataset built for data.loss
        dataset_num_proc=config.data.preprocessing_workers or None,
        include_num_input_tokens_seen="non_padding",
        save_only_model=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def row_length_multiple(data) -> int | None:
    """Packed rows: rounded up to data.pad_packed_to_multiple_of (a few shapes, not one per length). Unpacked batches:
    the longest example's length, or max_length as the seed tutorials pad (benchmarks/train_throughput.py)."""
    if data.packing:
        return data.pad_packed_to_multiple_of or None
    return data.max_length if data.pad_to_max_length else None


def build_trainer(config: Config, model, tokenizer, data, run_dir: Path, args=None):
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    args = args or training_args(config, run_dir, data)
    evaluate = args.eval_strategy != "no"
    early_stop = args.load_best_model_at_end
    callbacks = [StopOnNonFiniteLoss()]
    if early_stop:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience))
    if config.data.packing == shared_prefix.SHARED_PREFIX:
        datasets = dict(train_dataset=shared_prefix.to_hf_dataset(data.packed.rows),
                        eval_dataset=shared_prefix.to_hf_dataset(data.packed_validation.rows) if evaluate else None,
                        data_collator=shared_prefix.Collator(tokenizer.pad_token_id, args.pad_to_multiple_of))
        shared_prefix.install_block_mask(model)  # the collator's block_ids become the 4D mask in the decoder
    else:
        datasets = dict(train_dataset=to_hf_dataset(data.train),
                        eval_dataset=to_hf_dataset(data.validation) if evaluate else None)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, callbacks=callbacks, **datasets)
    if not config.train.token_metrics:
        use_label_only_head(trainer)  # the loss needs logits on the answer tokens only (sqlft.training.lm_head)
    return trainer


class StopOnNonFiniteLoss(TrainerCallback):
    """Stops training at the first logged NaN/inf loss (train() then exits with a message)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if _non_finite(logs or {}):
            control.should_training_stop = True
            control.should_save = False
        return control


def _non_finite(entry: dict) -> str | None:
    """Name of the first NaN/inf training value in a log entry (loss or gradient norm), if any."""
    for key in ("loss", "grad_norm"):
        value = entry.get(key)
        if value is not None and not math.isfinite(value):
            return key
    return None


def _first_non_finite(log_history: list[dict]):
    return next((e for e in log_history if _non_finite(e)), None)


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


if __name__ == "__main__":
    main()
