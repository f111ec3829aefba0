"""Which floating-point precision this machine computes natively: the one home of the `auto` precision choice.

`auto` resolves to bf16 on a GPU with bf16 or a CPU with AVX512-BF16/AMX, fp16 on a GPU with fp16 only, and fp32
otherwise. It drives training autocast (train.precision), the 4-bit compute dtype (model.compute_dtype) and the
weights generation runs in. On a CPU that only emulates bf16 (AVX2: Zen 3 and older, most laptops) bf16 costs
10-20x per step, so an explicit bf16 there still runs but warns once.

SQLFT_CPU_BF16=0 (or 1) overrides what the CPU is taken to have: with ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 it approximates an AVX2-only CPU on an AVX512-BF16 one (benchmarks use it).
"""

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

CHOICES = ("auto", "bf16", "fp16", "fp32")
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # model.compute_dtype spells them so
CPU_BF16_ENV = "SQLFT_CPU_BF16"


@dataclass(frozen=True)
class Hardware:
    """What the machine computes natively, and the words that say why."""
    device: str  # "cuda" or "cpu"
    bf16: bool
    fp16: bool
    reason: str  # e.g. "CPU with avx512_bf16 (torch capability AVX512)"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86: flags, ARM: Features
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_capability() -> str:
    """torch's vector ISA for its own kernels: AVX2, AVX512, DEFAULT, ... (ATEN_CPU_CAPABILITY can lower it)."""
    return torch.backends.cpu.get_cpu_capability()


def hardware() -> Hardware:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        # including_emulation=False: pre-Ampere GPUs report bf16 "supported" through slow emulation.
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return Hardware("cuda", bf16, True, f"GPU {name}" + (" with bf16" if bf16 else " without native bf16"))
    flags, capability = cpu_flags(), cpu_capability()
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    # torch's capability below AVX512 (forced by ATEN_CPU_CAPABILITY, or an older CPU) or oneDNN held to an ISA
    # without bf16 (ONEDNN_MAX_CPU_ISA) means bf16 kernels fall back to emulation even where the flag is set.
    onednn_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    bf16 = bool(native) and capability.startswith("AVX512") and (
        not onednn_isa or "BF16" in onednn_isa or "AMX" in onednn_isa or onednn_isa == "ALL")
    override = os.environ.get(CPU_BF16_ENV)
    if override in ("0", "1"):
        bf16 = override == "1"
        reason = f"CPU taken as {'with' if bf16 else 'without'} native bf16 ({CPU_BF16_ENV}={override})"
    else:
        has = ", ".join(native) if native else "no avx512_bf16/amx_bf16"
        reason = f"CPU with {has} (torch capability {capability})"
        if native and not bf16:
            reason += f", bf16 emulated under ONEDNN_MAX_CPU_ISA={onednn_isa}" if onednn_isa else ", bf16 emulated"
    # fp16 autocast on a CPU is emulated on every x86 CPU sqlft has been measured on (AVX512-FP16 aside).
    return Hardware("cpu", bf16, False, reason)


def resolve(requested: str, hw: Hardware | None = None) -> str:
    """`auto`, bf16, fp16 or fp32 -> the precision to compute in (bf16, fp16 or fp32). An explicit 16-bit choice is
    kept, with one warning where the hardware only emulates it."""
    hw = hw or hardware()
    if requested == "auto":
        return "bf16" if hw.bf16 else "fp16" if hw.fp16 and hw.device == "cuda" else "fp32"
    if requested not in TORCH_DTYPES:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(CHOICES)}")
    if (requested == "bf16" and not hw.bf16) or (requested == "fp16" and not hw.fp16):
        warn_emulated(requested, hw)
    return requested


_warned: set[str] = set()


def warn_emulated(requested: str, hw: Hardware) -> None:
    """Once per process and precision: the run still goes ahead, only slower."""
    if requested in _warned:
        return
    _warned.add(requested)
    warnings.warn(f"{requested} is emulated on this machine ({hw.reason}): every step will be several times slower "
                  f"(10-20x measured on an AVX2 CPU). Set train.precision=auto and model.compute_dtype=auto (or "
                  f"fp32 / float32) to compute in {resolve('auto', hw)}.", RuntimeWarning, stacklevel=3)


def resolve_dtype_name(compute_dtype: str, hw: Hardware | None = None) -> str:
    """model.compute_dtype (auto, bfloat16, float16, float32) -> a concrete dtype name, through resolve()."""
    short = {v: k for k, v in DTYPE_NAMES.items()}
    return DTYPE_NAMES[resolve("auto" if compute_dtype == "auto" else short[compute_dtype], hw)]


def weights_dtype(requested: str = "auto", hw: Hardware | None = None) -> torch.dtype:
    """dtype to hold weights in (model.dtype, and generation's --dtype): `auto` is the native 16-bit type on a
    GPU and fp32 on a CPU, whatever it computes natively: fp32 weights with bf16 autocast is the fast CPU path for
    training (bf16 weights lose the optimizer's small updates), and generation on a CPU keeps fp32 answers."""
    if requested != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[requested]
    hw = hw or hardware()
    if hw.device == "cpu":
        return torch.float32
    return TORCH_DTYPES[resolve("auto", hw)]


def describe(choice: str, requested: str, hw: Hardware | None = None) -> str:
    """One line for the start of a run: `precision: bf16 (auto: CPU with avx512_bf16 (torch capability AVX512))`."""
    hw = hw or hardware()
    return f"precision: {choice} ({'auto' if requested == 'auto' else 'set in the config'}: {hw.reason})"
