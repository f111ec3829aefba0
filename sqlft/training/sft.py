"""The SFT recipe: fine-tune a Llama-family model for SQL with QLoRA, LoRA or full fine-tuning (TRL SFTTrainer +
PEFT), on ordinary or shared-schema packed rows. `sqlft train` (sqlft.commands.train) runs it, or GRPO
(sqlft.training.grpo) for train.stage: grpo.

The run folder (train.output_dir) gets: config.yaml (resolved), data_report.json, adapter/ (or model/ for full
fine-tuning) with the tokenizer, metrics.json, loss.png, logs/ (TensorBoard) and checkpoints/ (sqlft.config.run_folder
owns that layout).
"""

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from sqlft.config import Config
from sqlft.config.run_folder import RunFolder
from sqlft.model import precision
from sqlft.model.loading import add_lora, load_base_model, load_tokenizer, memory_mb, parameter_counts
from sqlft.training import shared_prefix
from sqlft.training.common import (StopOnNonFiniteLoss, first_non_finite, is_main_process, newest_checkpoint,
                                   non_finite_key, optimisation_args, prepare_run_dir, save_outputs)
from sqlft.training.dataset import build_training_data, held_out_sql_rows, to_hf_dataset
from sqlft.training.lm_head import use_label_only_head


def train_sft(config: Config, resume: bool = False) -> Path:
    """The SFT recipe; sqlft.commands.train has seeded, set threads and made precision and max_length concrete."""
    main_process = is_main_process()
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

    non_finite = trainer.state.log_history and first_non_finite(trainer.state.log_history)
    if non_finite:
        key = non_finite_key(non_finite)
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
    """With data.packing=shared_prefix, an attention implementation that takes the rows' blocks: sqlft's piecewise
    SDPA (sqlft.training.prefix_attention), or sdpa / eager with the dense block mask when asked for; varlen
    FlashAttention-2 cannot express a shared prefix (sqlft.training.shared_prefix)."""
    if config.data.packing != shared_prefix.SHARED_PREFIX:
        return config
    requested = config.model.attn_implementation
    chosen = shared_prefix.attention_for(requested)
    if verbose:
        note = " (flash_attention_2 cannot express a shared prefix)" if requested == "flash_attention_2" else ""
        how = "prefix and blocks apart" if chosen == shared_prefix.prefix_attention.NAME else "a block mask"
        print(f"[sqlft] shared-schema packing: attention {chosen} ({how}){note}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, attn_implementation=chosen))


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
