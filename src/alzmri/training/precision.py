"""Numeric precision of a run: bf16 autocast where the hardware runs it natively."""

from __future__ import annotations

from pathlib import Path

import resource

import torch

__all__ = ["cpu_has_native_bf16", "peak_memory_mb", "resolve_precision"]


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning precision for ``"auto"``: bf16 autocast where the hardware runs it natively.

    CUDA GPUs with bf16 support and CPUs with AMX or AVX512-BF16 get ``"bf16-mixed"``;
    other CPUs get ``"32-true"`` (emulated bf16 is slower than fp32 there).
    """
    if precision != "auto":
        return "32-true" if precision == "32" else precision
    use_cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"

def cpu_has_native_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 instructions (Linux /proc/cpuinfo)."""
    if "AMX" in torch.backends.cpu.get_cpu_capability().upper():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process in MB: allocated CUDA memory on a GPU, else peak RSS."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
