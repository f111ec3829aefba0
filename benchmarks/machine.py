"""The machine a benchmark ran on, printed with its figures: CPU model, torch CPU capability, cores, precision.

    from machine import machine, print_machine   # benchmarks/ is on sys.path when a benchmark runs as a script

Figures from different CPUs are not comparable (bf16 is native on AVX512-BF16/AMX and emulated on AVX2): every
benchmark prints this line and stores the dict beside its figures.
"""

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(precision: str = "auto") -> dict:
    """precision: the run's train.precision (or generation dtype), resolved as sqlft resolves it."""
    import torch

    from sqlft.model import precision as prec

    hw = prec.hardware()
    resolved = prec.resolve(precision, hw) if precision in prec.CHOICES else precision
    info = {
        "cpu": cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "native_bf16": hw.bf16,
        "precision": resolved + (" (auto)" if precision == "auto" else ""),
        "torch": torch.__version__,
    }
    # Set to approximate another CPU (README: "AVX2 approximation"); recorded so that such figures say so.
    overrides = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", prec.CPU_BF16_ENV)
                 if k in os.environ}
    if overrides:
        info["overrides"] = overrides
    return info


def describe(info: dict) -> str:
    where = f"GPU {info['gpu']}, " if info["gpu"] else ""
    text = (f"machine: {where}{info['cpu']}, {info['cores']} cores, torch CPU capability "
            f"{info['torch_cpu_capability']}, native bf16 {'yes' if info['native_bf16'] else 'no'}, "
            f"precision {info['precision']}, torch {info['torch']}")
    if info.get("overrides"):
        text += " | APPROXIMATION: " + " ".join(f"{k}={v}" for k, v in info["overrides"].items())
    return text


def print_machine(precision: str = "auto") -> dict:
    info = machine(precision)
    print(describe(info), flush=True)
    return info
