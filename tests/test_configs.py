"""Every shipped config loads: run configs through sqlft.config, accelerate configs through accelerate's own code.

Also the GPU path on a CPU: options that need a GPU are refused up front, each named with what to set instead.
    .venv/bin/pytest tests/test_configs.py
"""

import os
from pathlib import Path
from unittest import mock

import pytest
import torch

from sqlft.config import ConfigError, ModelConfig, load_config
from sqlft.model.loading import check_device_options, has_gpu, quantization_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_CONFIGS = sorted(CONFIGS.glob("*.yaml"))
ACCELERATE_CONFIGS = sorted((CONFIGS / "accelerate").glob("*.yaml"))
cpu_only = pytest.mark.skipif(has_gpu(), reason="checks what a machine without a GPU refuses")


def test_configs_are_found():
    assert RUN_CONFIGS and {p.name for p in ACCELERATE_CONFIGS} >= {
        "ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml", "cpu_ddp_2proc.yaml"}


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_run_config_loads(path):
    config = load_config(path)
    assert config.name and config.data.train, "a shipped config names its run and its training data"


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads_as_accelerate_launch_reads_it(path):
    """accelerate's ClusterConfig (rejects unknown keys), then the launcher's own argument checks and environment,
    then the FSDP / DeepSpeed plugin that each launched process builds from that environment."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    cluster = load_config_from_file(str(path))
    assert isinstance(cluster, ClusterConfig) and cluster.num_processes >= 2
    # Precision belongs to the run config (train.precision), saved with the run; a second source could disagree.
    assert cluster.mixed_precision == "no"

    # `_validate_launch_command` is what `accelerate launch` runs on its arguments (private, pinned accelerate).
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "sqlft.commands.train", "run.yaml"])
    args, defaults, _ = _validate_launch_command(args)
    if cluster.distributed_type == DistributedType.DEEPSPEED:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
        with mock.patch.dict(os.environ, env):
            plugin = DeepSpeedPlugin()  # builds without the deepspeed package; training needs it
        zero = plugin.deepspeed_config["zero_optimization"]
        assert plugin.zero_stage == zero["stage"] == int(path.stem[-1])  # deepspeed_zero2 / deepspeed_zero3
        if plugin.zero_stage == 3:
            assert plugin.zero3_init_flag and zero["stage3_gather_16bit_weights_on_model_save"]
        # Batch size, accumulation and clipping are filled in from the run config by the trainer.
        assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"
    else:
        assert args.multi_gpu or args.use_fsdp, "MULTI_CPU would start one process without mpirun"
        env = prepare_multi_gpu_env(args)
        if cluster.distributed_type == DistributedType.FSDP:
            # sync_module_states looks up the current GPU when the plugin is built: stand one in on a CPU.
            with mock.patch.dict(os.environ, env), \
                    mock.patch("accelerate.utils.dataclasses.is_cuda_available", return_value=True), \
                    mock.patch("torch.cuda.current_device", return_value=0):
                plugin = FullyShardedDataParallelPlugin()
            # PEFT's FSDP-QLoRA recipe: FSDP1, flat parameters per LoRA / frozen group, rank 0 loads the weights.
            assert plugin.fsdp_version == 1 and plugin.use_orig_params is False
            assert plugin.cpu_ram_efficient_loading and plugin.sharding_strategy.name == "FULL_SHARD"


def test_qlora_weights_are_stored_in_the_model_dtype_so_fsdp_and_zero3_can_shard_them():
    quant = quantization_config(ModelConfig(method="qlora", dtype="bfloat16"))
    assert quant.bnb_4bit_quant_storage == torch.bfloat16
    # fp32 weights (the CPU default) keep the packed uint8 storage: nothing to shard on a CPU.
    assert quantization_config(ModelConfig(method="qlora", dtype="float32")).bnb_4bit_quant_storage == torch.uint8


GPU_ONLY = [  # (override, words the message must contain)
    ("train.optim=paged_adamw_32bit", ["train.optim=paged_adamw_32bit", "adamw_torch"]),
    ("train.optim=paged_adamw_8bit", ["train.optim=paged_adamw_8bit", "adamw_torch"]),
    ("model.attn_implementation=flash_attention_2", ["flash_attention_2", "sdpa"]),
    ("train.precision=fp16", ["train.precision=fp16", "train.precision=auto"]),
    ("model.quant_bits=8", ["model.quant_bits=8", "use 4"]),
]


@cpu_only
@pytest.mark.parametrize("override, words", GPU_ONLY, ids=[o for o, _ in GPU_ONLY])
def test_gpu_only_option_is_refused_on_a_cpu_with_what_to_set(override, words):
    config = load_config(CONFIGS / "smollm2-135m-lora-cpu.yaml", ["model.method=qlora", override])
    with pytest.raises(ConfigError, match="GPU-only options") as err:
        check_device_options(config)
    for word in words:
        assert word in str(err.value)


@cpu_only
def test_all_gpu_only_options_are_reported_at_once():
    config = load_config(CONFIGS / "smollm2-135m-lora-cpu.yaml", ["model.method=qlora", *(o for o, _ in GPU_ONLY[1:])])
    with pytest.raises(ConfigError) as err:
        check_device_options(config)
    assert len(str(err.value).splitlines()) == 1 + 4  # header + one line per option


@cpu_only
def test_cpu_config_passes_and_gpu_config_is_refused_on_a_cpu():
    check_device_options(load_config(CONFIGS / "smollm2-135m-lora-cpu.yaml"))
    with pytest.raises(ConfigError, match="paged_adamw_8bit"):
        check_device_options(load_config(CONFIGS / "llama2-7b-qlora.yaml"))


@cpu_only
def test_train_cli_exits_with_the_message(tmp_path):
    from sqlft.commands.train import main

    with pytest.raises(SystemExit, match="flash_attention_2 needs a GPU"):
        main([str(CONFIGS / "smollm2-135m-lora-cpu.yaml"), "model.attn_implementation=flash_attention_2",
              f"train.output_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists(), "refused before anything was written"


def test_the_grpo_recipe_goes_on_from_the_spider_recipes_run_with_its_prompts(tmp_path):
    """The GRPO config names the Spider SFT run's model/ (it fine-tunes all weights): its output folder, and the
    same prompts and held-out databases, so that the check at the start of training passes on the shipped pair."""
    from sqlft.config import save_config
    from sqlft.config.run_folder import RunFolder
    from sqlft.model.loading import check_training_start

    sft, grpo = load_config(CONFIGS / "smollm2-135m-spider-cpu.yaml"), load_config(
        CONFIGS / "smollm2-135m-spider-grpo-cpu.yaml")
    assert sft.model.method == "full" and Path(grpo.model.name) == RunFolder(sft.run_dir).model
    assert grpo.data.val_dbs == sft.data.val_dbs and grpo.data.train == sft.data.train
    run = RunFolder(tmp_path / "spider")  # the SFT run as training leaves it, where the GRPO config can name it
    run.model.mkdir(parents=True)
    save_config(sft, run.config_file)
    grpo.model.name = str(run.model)
    check_training_start(grpo)
