"""The GRPO stage of `sqlft train` (train.stage: grpo): reinforcement fine-tuning on executed answers.

    sqlft train configs/smollm2-135m-spider-grpo-cpu.yaml [section.key=value ...] [--resume]

TRL's GRPOTrainer samples grpo.num_generations answers to each SQL record's prompt (rendered exactly as SFT renders
it: same template, system text and schema format); sqlft.training.reward runs each one beside the gold SQL on the record's
database, as `sqlft eval` scores it, and the policy moves towards the answers that beat their group's mean. It
starts from a base or merged model (model.name) or continues an SFT run's adapter (model.adapter), with LoRA, QLoRA
or full fine-tuning. The run folder is an SFT run's (sqlft.config.run_folder: config.yaml, data_report.json, adapter/ or
model/, metrics.json, loss.png, logs/, checkpoints/, validation.jsonl): --resume, TensorBoard and `sqlft merge` work
the same.
"""

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from sqlft.data.examples import record_example
from sqlft.training import shared_prefix
from sqlft.training.reward import ExecutionReward, RewardSettings
from sqlft.model import precision
from sqlft.config import Config, ConfigError
from sqlft.training.dataset import build_training_data, held_out_sql_rows
from sqlft.data.errors import DataError
from sqlft.model.generate import stop_token_ids
from sqlft.model.loading import add_lora, has_gpu, load_base_model, load_tokenizer, memory_mb, parameter_counts
from sqlft.prompts.record import Record
from sqlft.config.run_folder import RunFolder
from sqlft.prompts.templates import OWN_BOS, render_prompt
from sqlft.training.common import (StopOnNonFiniteLoss, first_non_finite, is_main_process, newest_checkpoint,
                                   non_finite_key, optimisation_args, prepare_run_dir, save_outputs)


def train_grpo(config: Config, resume: bool = False) -> Path:
    """Called by sqlft.commands.train with the precision and max_length already resolved."""
    from trl import GRPOTrainer

    main_process = is_main_process()
    # GRPO samples whole prompts: shared-schema packing falls back to ordinary packing, with its one message
    config = shared_prefix.resolve_packing(config, verbose=main_process)  # before config.yaml records it
    run_dir = prepare_run_dir(config, resume) if main_process else config.run_dir

    # Data and databases first: bad data or gold SQL that does not run fails in seconds, before the model loads.
    tokenizer = load_tokenizer(config.model.name, config.model)
    data = build_training_data(config, tokenizer)
    records = [r for r in data.train_records if r.task == "sql"]
    if not records:
        raise DataError("train.stage=grpo needs SQL records (a schema, a question and gold SQL) to execute answers "
                        "against; the training data has none")
    reward = build_reward(config, records, tokenizer)
    kept = [(str(i), r) for i, r in enumerate(records) if str(i) in reward.targets]
    if not kept:
        reward.close()
        raise DataError(f"no record's gold SQL runs (e.g. {next(iter(reward.dropped.values()), '')}); nothing to "
                        "reward. Check data.sql_dialect and the databases (grpo.reward.db_root)")
    dataset = prompt_dataset(kept, config, tokenizer)
    if main_process:
        print(data.report.summary())
        print(f"[sqlft] grpo: {len(kept)} records to sample from, {len(reward.dropped)} dropped (gold SQL does not "
              f"run), {len(data.train_records) - len(records)} not SQL")
        write_reports(run_dir, data, records, reward, len(data.train_records) - len(records))

    args = grpo_args(config, run_dir)
    model = policy_model(config, tokenizer, verbose=main_process)
    if not has_gpu():
        small_logprob_tiles()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[StopOnNonFiniteLoss()])
    checkpoint = newest_checkpoint(RunFolder(run_dir).checkpoints) if resume else None
    if resume and main_process:
        print(f"[sqlft] resuming from {checkpoint}" if checkpoint else "[sqlft] no complete checkpoint: starting anew")
    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        reward.close()
    seconds = time.perf_counter() - start

    non_finite = trainer.state.log_history and first_non_finite(trainer.state.log_history)
    if non_finite:
        key = non_finite_key(non_finite)
        sys.exit(f"sqlft train: the {key} became {non_finite[key]} at step {non_finite['step']}; training stopped. "
                 "Lower train.lr, then --resume from the last good checkpoint.")
    save_outputs(config, trainer, tokenizer, run_dir, result, seconds)
    if trainer.is_world_process_zero():
        add_reward_summary(RunFolder(run_dir).metrics, trainer.state.log_history)
    return run_dir


def policy_model(config: Config, tokenizer, verbose: bool = True):
    """The model GRPO trains: the base (or merged) model with LoRA added or an SFT run's adapter continued."""
    model = load_base_model(config.model, for_training=True, tokenizer=tokenizer)
    # Answers end at the template's end-of-turn token as at inference (sqlft.model.generate), not only at the EOS.
    model.generation_config.eos_token_id = stop_token_ids(config.data.template, tokenizer)
    model = add_lora(model, config)
    trainable, total = parameter_counts(model)
    if verbose:
        print(f"[sqlft] {config.model.name} ({config.model.method}"
              f"{', from ' + config.model.adapter if config.model.adapter else ''}): {trainable:,} trainable of "
              f"{total:,} parameters, weights {memory_mb(model):.0f} MiB; {config.grpo.num_generations} answers per "
              f"prompt, {config.train.batch_size * config.train.grad_accum // config.grpo.num_generations} prompts "
              "per step")
    return model


# TRL scores every token's log-probability through its LM head in tiles of 4,096 tokens x 32,768 vocabulary columns.
# Without Triton (a CPU) it folds each tile with torch ops whose backward holds about ten float32 copies of the
# tile, 512 MiB each. Smaller tiles add up the same sums (tests/test_grpo.py): on the Spider GRPO recipe's first
# step the peak fell from 14.5 to 11.0 GiB, and steps were no slower (benchmarks/RESULTS.md, session 4).
CPU_LOGPROB_TILE = (512, 8192)  # tokens, vocabulary columns


def small_logprob_tiles(tile: tuple[int, int] = CPU_LOGPROB_TILE) -> None:
    """Set TRL's log-probability tile to `tile` (module constants TRL reads at each call)."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = tile


def reward_settings(config: Config, tokenizer) -> RewardSettings:
    r = config.grpo.reward
    return RewardSettings(
        dialect=config.data.sql_dialect,  # the training SQL's (load_config resolved auto: duckdb for demo:*)
        mode=r.mode, timeout_s=r.timeout_s, instances=r.instances, match=r.match, runs=r.runs,
        overlong_penalty=r.overlong_penalty, malformed_penalty=r.malformed_penalty,
        max_completion_tokens=config.grpo.max_completion_length,
        stop_token_ids=tuple(stop_token_ids(config.data.template, tokenizer)),
        workers=config.train.num_threads or os.cpu_count() or 1)


def build_reward(config: Config, records: list[Record], tokenizer) -> ExecutionReward:
    """Databases prepared (real, or synthesized from each schema with all of its records' gold SQL) and every gold
    executed once."""
    settings = reward_settings(config, tokenizer)
    examples = [record_example(r, str(i), config.grpo.reward.db_root or None) for i, r in enumerate(records)]
    return ExecutionReward.build(examples, settings, workers=settings.workers)


def trl_prompt(prompt: str, template: str, tokenizer) -> str:
    """The prompt text as TRL gets it: TRL tokenizes it with the tokenizer's special tokens (BOS), so a template
    that writes its own BOS text (llama2, llama3) loses it here to keep the token ids of SFT's prompts."""
    if template in OWN_BOS and tokenizer.bos_token and prompt.startswith(tokenizer.bos_token):
        ids = tokenizer("x")["input_ids"]
        if ids and ids[0] == tokenizer.bos_token_id:
            return prompt[len(tokenizer.bos_token):]
    return prompt


def prompt_dataset(kept: list[tuple[str, Record]], config: Config, tokenizer):
    """A `prompt` (SFT's prompt text) and a `record_id` (the reward's key) per record. Checks that TRL will see the
    very token ids SFT trained on."""
    from datasets import Dataset

    template, schema_format = config.data.template, config.data.schema_format
    prompts = [render_prompt(r, template, tokenizer, schema_format,
                             schema_format_version=config.data.schema_format_version) for _, r in kept]
    texts = [trl_prompt(p, template, tokenizer) for p in prompts]
    sft_ids = tokenizer(prompts[0], add_special_tokens=template not in OWN_BOS)["input_ids"]
    if tokenizer(texts[0])["input_ids"] != sft_ids:
        raise DataError(f"template {template!r}: the prompt tokenizes differently for GRPO than for SFT with this "
                        "tokenizer; pick another data.template (chatml, sql, ...)")
    return Dataset.from_dict({"prompt": texts, "record_id": [i for i, _ in kept]})


def grpo_args(config: Config, run_dir: Path):
    """TRL's GRPOConfig from the run config: train.* as for SFT, grpo.* for sampling, the loss and vLLM."""
    from trl import GRPOConfig

    t, g = config.train, config.grpo
    autocast = precision.resolve(t.precision)  # already concrete when sqlft.commands.train resolved it
    if g.use_vllm:
        import importlib.util
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("grpo.use_vllm=true needs vLLM (pip install vllm, on a GPU machine); or set "
                              "grpo.use_vllm=false to sample with transformers")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(RunFolder(run_dir).logs)  # transformers 5: no logging_dir argument
    vllm = dict(vllm_mode=g.vllm_mode, vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                vllm_server_base_url=g.vllm_server_url or None,
                vllm_max_model_length=config.data.max_length + g.max_completion_length) if g.use_vllm else {}
    return GRPOConfig(
        **optimisation_args(t, autocast, run_dir),
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,
        report_to=[] if t.report_to == "none" else [t.report_to],
        seed=t.seed,
        data_seed=t.seed,
        save_only_model=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        beta=g.beta,
        epsilon=g.epsilon,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        log_completions=g.log_completions,
        use_vllm=g.use_vllm,
        **vllm,
    )


def write_reports(run_dir: Path, data, records: list[Record], reward: ExecutionReward, not_sql: int) -> None:
    """data_report.json (with the records the reward dropped, per reason), sample prompts for merge's check, and
    the held-out records for `sqlft eval`."""
    reasons = Counter(_reason_kind(why) for why in reward.dropped.values())
    examples = [{"record": records[int(i)].source, "reason": why} for i, why in list(reward.dropped.items())[:20]]
    run = RunFolder(run_dir)
    run.data_report.write_text(json.dumps(
        {"train": data.report.to_dict(), "mix": data.mix_info,
         "validation": data.validation_report.to_dict() if data.validation_report else None,
         "examples": {"train": len(data.train), "validation": len(data.validation)},
         "grpo": {"records": len(reward.targets), "not_sql": not_sql, "dropped_gold_does_not_run": len(reward.dropped),
                  "dropped_by_reason": dict(reasons), "dropped_examples": examples,
                  "reward": vars(reward.settings) | {"stop_token_ids": list(reward.settings.stop_token_ids)}}},
        indent=2))
    run.write_sample_prompts(data.sample_prompts)
    run.write_validation(held_out_sql_rows(data.validation_records))  # never trained on: for `sqlft eval`


def _reason_kind(reason: str) -> str:
    """A dropped record's reason without its details, to count them: 'the gold SQL does not run: error', ..."""
    head, _, rest = reason.partition(": ")
    kind = rest.split(":")[0] if head == "the gold SQL does not run" else ""
    if "synthesized instance" in kind:
        kind = rest.split(": ")[1] if len(rest.split(": ")) > 1 else kind
    return f"{head}: {kind}".rstrip(": ")


def add_reward_summary(metrics_path: Path, history: list[dict]) -> None:
    """metrics.json gets the reward and match rate of the first and last logged steps (the trend at a glance)."""
    logged = [e for e in history if "reward" in e]
    if not metrics_path.is_file() or not logged:
        return
    metrics = json.loads(metrics_path.read_text())
    for when, entry in (("first", logged[0]), ("last", logged[-1])):
        metrics[f"reward_{when}"] = entry.get("reward")
        metrics[f"match_rate_{when}"] = entry.get("execution/match_rate")
    metrics_path.write_text(json.dumps(metrics, indent=2))
