"""Precision follows the hardware: `auto` is bf16 where it is native and fp32 on a CPU without it; an explicit bf16
where it is emulated runs with one warning; the choice is printed and recorded in the run's config.yaml.

The CPU is described to sqlft.model.precision by monkeypatching its flag reader and torch's capability, so these tests
check both CPU kinds on any machine.
"""

import warnings

import pytest
import torch
import yaml

from sqlft.model import precision
from sqlft.config import ConfigError, ModelConfig, load_config

AVX2_FLAGS = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})  # Zen 3: no avx512_bf16, no amx_bf16
AVX512_BF16_FLAGS = AVX2_FLAGS | {"avx512f", "avx512bw", "avx512_bf16"}  # Zen 4, Cooper Lake


@pytest.fixture
def cpu(monkeypatch):
    """cpu(flags, capability) makes sqlft.model.precision see that CPU (and no GPU); resets the once-only warning."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "_warned", set())

    def describe(flags, capability):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision, "cpu_capability", lambda: capability)
    return describe


def test_auto_is_fp32_on_a_cpu_without_bf16(cpu):
    cpu(AVX2_FLAGS, "AVX2")
    assert precision.resolve("auto") == "fp32"
    assert precision.resolve_dtype_name("auto") == "float32"  # the 4-bit compute dtype too
    assert precision.weights_dtype("auto") == torch.float32


def test_auto_is_bf16_on_a_cpu_with_avx512_bf16_or_amx(cpu):
    cpu(AVX512_BF16_FLAGS, "AVX512")
    assert precision.resolve("auto") == "bf16"
    cpu(AVX2_FLAGS | {"amx_bf16", "avx512f"}, "AVX512")
    assert precision.resolve("auto") == "bf16"
    assert precision.weights_dtype("auto") == torch.float32, "CPU weights stay fp32: bf16 is for autocast"


def test_bf16_flag_with_torch_or_onednn_held_to_avx2_counts_as_emulated(cpu, monkeypatch):
    """The AVX2 approximation on an AVX512-BF16 machine: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2."""
    cpu(AVX512_BF16_FLAGS, "AVX2")
    assert precision.resolve("auto") == "fp32"
    cpu(AVX512_BF16_FLAGS, "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.resolve("auto") == "fp32"
    assert "emulated" in precision.hardware().reason


def test_environment_override_says_what_the_cpu_has(cpu, monkeypatch):
    cpu(AVX512_BF16_FLAGS, "AVX512")
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert precision.resolve("auto") == "fp32"
    assert precision.CPU_BF16_ENV in precision.hardware().reason


def test_explicit_bf16_on_an_emulating_cpu_runs_with_one_warning(cpu):
    cpu(AVX2_FLAGS, "AVX2")
    with pytest.warns(RuntimeWarning, match="emulated") as caught:
        assert precision.resolve("bf16") == "bf16"  # kept: the user asked for it
        assert precision.resolve_dtype_name("bfloat16") == "bfloat16"
    assert len(caught) == 1, "one warning, however many places ask for bf16"
    message = str(caught[0].message)
    assert "train.precision=auto" in message and "fp32" in message, "says what to set instead"


def test_explicit_bf16_on_a_native_cpu_does_not_warn(cpu):
    cpu(AVX512_BF16_FLAGS, "AVX512")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve("bf16") == "bf16"


def test_train_prints_and_records_the_resolved_precision(cpu, capsys):
    from sqlft.training.common import resolve_precision

    cpu(AVX2_FLAGS, "AVX2")
    config = resolve_precision(load_config(None, ["model.method=qlora"]))
    assert (config.train.precision, config.model.compute_dtype) == ("fp32", "float32")
    assert "precision: fp32 (auto: CPU with no avx512_bf16" in capsys.readouterr().out
    cpu(AVX512_BF16_FLAGS, "AVX512")
    config = resolve_precision(load_config(None, ["model.method=qlora"]))
    assert (config.train.precision, config.model.compute_dtype) == ("bf16", "bfloat16")
    # an explicit fp32 run on a bf16 CPU computes the 4-bit matmuls in fp32 too
    config = resolve_precision(load_config(None, ["model.method=qlora", "train.precision=fp32"]))
    assert config.model.compute_dtype == "float32"


def test_quantization_compute_dtype_auto_follows_the_hardware(cpu):
    from sqlft.model.loading import quantization_config

    cpu(AVX2_FLAGS, "AVX2")
    assert quantization_config(ModelConfig(method="qlora")).bnb_4bit_compute_dtype == torch.float32
    cpu(AVX512_BF16_FLAGS, "AVX512")
    assert quantization_config(ModelConfig(method="qlora")).bnb_4bit_compute_dtype == torch.bfloat16


def test_renamed_bf16_key_says_what_replaced_it():
    with pytest.raises(ConfigError, match=r"'train.bf16' is now train.precision"):
        load_config(None, ["train.bf16=true"])
    with pytest.raises(ConfigError, match=r"Did you mean 'fp32'"):
        load_config(None, ["train.precision=fp23"])


def test_run_folder_config_yaml_records_the_choice(cpu, tmp_path):
    from sqlft.training.common import prepare_run_dir, resolve_precision

    cpu(AVX2_FLAGS, "AVX2")
    config = resolve_precision(load_config(None, ["model.method=qlora", f"train.output_dir={tmp_path / 'run'}"]))
    saved = yaml.safe_load((prepare_run_dir(config, resume=False) / "config.yaml").read_text())
    assert saved["train"]["precision"] == "fp32" and saved["model"]["compute_dtype"] == "float32"


def test_the_offline_kernel_notice_of_bitsandbytes_is_dropped_and_nothing_else():
    import logging

    import sqlft

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    notice = [f for f in logger.filters if isinstance(f, sqlft._OfflineKernelNotice)]
    assert len(notice) == 1  # installed on the logger bitsandbytes warns through, once

    def record(msg: str, *args) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, None)

    assert not notice[0].filter(record("Failed to load CPU gemm_4bit_forward from kernels-community: %s.",
                                       "No module named 'kernels'"))
    assert notice[0].filter(record("another bitsandbytes warning"))
