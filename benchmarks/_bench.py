"""Helpers shared by the performance benchmarks: the machine, its matmul peak, logging.

Not a benchmark itself. The scripts beside it import it as ``_bench`` (their own folder
is on ``sys.path`` when run as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
DATA_6400 = DATASETS / "alzheimer-mri-6400"

#: /proc/cpuinfo flags that decide which matmul units exist.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def log(msg: str) -> None:
    """Progress line on stderr (stdout is kept for the final JSON line)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """The CPU model, cores, relevant instruction-set flags, torch build and threads."""
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from alzmri.training.precision import cpu_has_native_bf16

    seen = {}  # what PyTorch's own CPU probes report (private helpers; absent in some versions)
    for name in ("avx512", "avx512_bf16", "amx_tile", "vnni"):
        probe = getattr(torch.cpu, f"_is_{name}_supported", None)
        if probe is not None:
            seen[name] = bool(probe())
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in RELEVANT_FLAGS},
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_cpu_probes": seen,
        "native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": load_average(),
    }


_STEP_CLOCK = time.perf_counter


def step_clock() -> float:
    """The clock that times training steps: wall time (default) or, after
    :func:`use_cpu_clock`, this process's CPU time."""
    return _STEP_CLOCK()


def clock_name() -> str:
    """``"cpu"`` after :func:`use_cpu_clock`, else ``"wall"``."""
    return "cpu" if _STEP_CLOCK is time.process_time else "wall"


def use_cpu_clock() -> None:
    """Time training steps by process CPU time (``time.process_time``) with one torch thread.

    CPU time does not count the time the process waits for a core, so ratios stay
    meaningful on a machine that other jobs load; with one thread it is the work of the
    step (more threads would add their spin-waiting). Sets ``torch.set_num_threads(1)``.
    """
    global _STEP_CLOCK
    torch.set_num_threads(1)
    _STEP_CLOCK = time.process_time


def matmul_peak_flops(dtype: torch.dtype, *, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> float:
    """Measured matmul peak of this machine in FLOP/s: the best of ``repeats`` products
    ``torch.matmul(a, b)`` of square ``n x n`` matrices of ``dtype``, over ``sizes``.

    Uses the current ``torch.get_num_threads()`` and :func:`step_clock`; one untimed
    product per size first. ``2 n^3`` FLOPs per product. A measured peak, not the
    data-sheet one: by wall clock on a shared machine it is lower than on a quiet one.
    """
    best = 0.0
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=g).to(dtype)
        b = torch.randn(n, n, generator=g).to(dtype)
        torch.matmul(a, b)
        for _ in range(repeats):
            t0 = step_clock()
            torch.matmul(a, b)
            dt = step_clock() - t0
            best = max(best, 2.0 * n**3 / dt)
    return best


def check_finite_positive(d: dict, keys: list[str]) -> None:
    """Raise ValueError when one of ``keys`` of ``d`` is missing, not finite or not positive."""
    for k in keys:
        v = d.get(k)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{k} = {v!r} is not a positive finite number")


def emit(result: dict) -> None:
    """Print ``result`` as the last line of stdout: one JSON object."""
    result.setdefault("machine", {})["load_average_end"] = load_average()
    print(json.dumps(result, sort_keys=False), flush=True)


def round_floats(obj, ndigits: int = 4):
    """``obj`` with every float rounded to ``ndigits`` significant-ish decimals (for JSON)."""
    if isinstance(obj, float):
        return float(f"{obj:.{ndigits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: round_floats(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, ndigits) for v in obj]
    return obj
