"""`sqlft train`: fine-tune with the recipe the config names (train.stage: sft, the default, or grpo).

    sqlft train CONFIG [section.key=value ...] [--resume]
    python -m sqlft.commands.train configs/smollm2-135m-lora-cpu.yaml train.max_steps=20

SFT: sqlft.training.sft (TRL SFTTrainer + PEFT: QLoRA, LoRA or full fine-tuning). GRPO: sqlft.training.grpo (TRL
GRPOTrainer, execution reward). Both write the same run folder (sqlft.config.run_folder).
Several GPUs (or CPU processes): `accelerate launch --config_file configs/accelerate/ddp.yaml -m sqlft.commands.train
CONFIG`; every process trains, the main process alone writes the run folder.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

from sqlft.config import Config, load_config
from sqlft.core.errors import SqlftError
from sqlft.model.loading import check_device_options, check_training_start, resolve_max_length
from sqlft.training.common import check_services, is_main_process, resolve_precision


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft train", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.max_steps=20")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    # `deepspeed --module sqlft.commands.train CONFIG` starts each process as `python -u -m sqlft.commands.train --local_rank=N CONFIG`
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
    except SqlftError as err:
        sys.exit(f"sqlft train: {err}")
    try:
        return train(config, resume=args.resume)
    except (SqlftError, FileNotFoundError) as err:
        sys.exit(f"sqlft train: {err}")


def train(config: Config, resume: bool = False) -> Path:
    """Seed, threads, precision and max_length made concrete, then the recipe train.stage names."""
    from transformers import set_seed

    check_training_start(config)  # a run's model/ goes on with that run's prompts, before anything loads

    set_seed(config.train.seed)
    torch.set_num_threads(config.train.num_threads or os.cpu_count())
    # Under a launcher every process runs this function; the main one alone writes the run folder.
    main_process = is_main_process()
    config = resolve_precision(config, verbose=main_process)  # `auto` made concrete: config.yaml records the choice
    resolve_max_length(config)  # before the config is saved: the run records the length it used
    if config.train.stage == "grpo":  # reinforcement on executed answers: its own recipe, the same run folder
        from sqlft.training.grpo import train_grpo
        return train_grpo(config, resume)
    from sqlft.training.sft import train_sft
    return train_sft(config, resume)


if __name__ == "__main__":
    main()
