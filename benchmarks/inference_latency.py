"""Inference latency: PyTorch eager against ONNX Runtime, ms per image at batch 1 and batch 32.

Run from the repository root (under a minute on a quiet 2-core CPU)::

    .venv/bin/python benchmarks/inference_latency.py
    .venv/bin/python benchmarks/inference_latency.py --repeats 200 --image-size 128   # longer

For each model a run folder with **random weights** (seed 0; latency does not depend on
the weights) is written to a temporary folder with alzmri's own format
(:class:`alzmri.runs.RunInfo`, :func:`alzmri.runs.save_weights`) and exported with
:func:`alzmri.inference.onnx_export.export_onnx`. The two paths are the ones ``predict``
offers, from uint8 slices to probabilities, preprocessing and softmax included:

- ``eager``: :func:`alzmri.runs.load_model` + :func:`alzmri.runs.predict_proba`
  (``torch.inference_mode``, fp32, torch's default threads);
- ``onnx``: :class:`alzmri.inference.onnx_export.OnnxPredictor` (onnxruntime's CPU
  provider, its default threads) ``.predict_proba``.

Inputs are real slices of ``--data`` decoded at ``--image-size`` (the first image of every
``len/64``-th file). Timing: ``--warmup`` untimed calls, then ``--repeats`` timed calls per
batch size, the two paths interleaved call by call; ms per image is the median call time
divided by the batch size. ``--clock cpu`` (for a machine that other jobs load) runs both
with one thread and times calls by this process's CPU time. The model-only time (``model(x)`` against ``session.run`` on
the same float input) is reported beside it.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

MODELS = ("altzcnn", "mobilenet_v2")


def random_run(model: str, folder: Path, *, image_size: int = 64, in_chans: int = 1, seed: int = 0) -> Path:
    """A run folder holding ``model`` with random weights (run.json + model.safetensors)."""
    from alzmri.data import CLASS_NAMES
    from alzmri.models import create_model, get_spec
    from alzmri.runs import RunInfo, save_weights

    spec = get_spec(model)
    torch.manual_seed(seed)
    net = create_model(model, num_classes=len(CLASS_NAMES), in_chans=in_chans, image_size=image_size).eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(net, folder)
    RunInfo(model=model, image_size=image_size, in_chans=in_chans, mean=spec.mean, std=spec.std, class_names=list(CLASS_NAMES)).save(folder)
    return folder


def real_slices(data: Path, image_size: int, n: int = 64) -> np.ndarray:
    """``n`` real slices of ``data`` spread over the classes, uint8 (n, S, S)."""
    from alzmri.data import discover
    from alzmri.data import decode_image

    index = discover(data)
    step = max(1, len(index) // n)
    rows = list(range(0, len(index), step))[:n]
    arr = np.stack([decode_image(index.root / index.records[r].path, image_size) for r in rows])
    reps = -(-n // len(arr))
    return np.concatenate([arr] * reps)[:n]


def _interleaved(fns: dict, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function (by :func:`_bench.step_clock`), the functions called in turn."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = _bench.step_clock()
            f()
            times[k].append(_bench.step_clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def measure_latency(data: Path, *, models=MODELS, image_size: int = 64, batch_sizes=(1, 32), warmup: int = 5, repeats: int = 30,
                    work_dir: Path | None = None) -> dict:
    """ms per image of eager PyTorch and ONNX Runtime for each model and batch size.

    Returns
    -------
    dict
        ``models``: per model and batch size ``eager_ms``, ``onnx_ms`` (end to end),
        ``eager_model_ms``, ``onnx_model_ms`` (model only), ``onnx_speedup`` (eager / onnx)
        and ``faster``; ``faster_path``: the faster end-to-end path in every row, else
        ``"mixed"``.
    """
    from alzmri.inference.onnx_export import OnnxPredictor, export_onnx, preprocess
    from alzmri.runs import predict_proba
    from alzmri import load_model

    out: dict = {"benchmark": "inference_latency", "machine": _bench.machine()}
    import onnxruntime as ort

    out["machine"]["onnxruntime"] = ort.__version__
    out["settings"] = dict(data=str(data), models=list(models), image_size=image_size, batch_sizes=list(batch_sizes), warmup=warmup,
                           repeats=repeats, weights="random (seed 0)", torch_threads=torch.get_num_threads(), clock=_bench.clock_name(),
                           onnx_threads=1 if _bench.clock_name() == "cpu" else "onnxruntime default")
    slices = real_slices(data, image_size, max(batch_sizes))
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="alzmri-bench-onnx-", dir=work_dir) as tmp:
        for m in models:
            run = random_run(m, Path(tmp) / m, image_size=image_size)
            t0 = time.perf_counter()
            onnx_path = export_onnx(run, Path(tmp) / f"{m}.onnx")
            export_s = time.perf_counter() - t0
            net, info = load_model(run)
            pred = OnnxPredictor(onnx_path, threads=1 if _bench.clock_name() == "cpu" else None)
            row = {"export_s": export_s, "onnx_mb": onnx_path.stat().st_size / 1e6}
            for b in batch_sizes:
                x8 = slices[:b]
                xf = preprocess(x8, mean=info.mean, std=info.std, in_chans=info.in_chans)
                xt = torch.from_numpy(xf)
                np.testing.assert_allclose(predict_proba(net, info, x8), pred.predict_proba(x8), atol=1e-4)

                def eager_model(xt=xt):
                    with torch.inference_mode():
                        net(xt)

                med = _interleaved({
                    "eager": lambda x8=x8, b=b: predict_proba(net, info, x8, batch_size=b),
                    "onnx": lambda x8=x8, b=b: pred.predict_proba(x8, batch_size=b),
                    "eager_model": eager_model,
                    "onnx_model": lambda xf=xf: pred.session.run(None, {pred.input_name: xf}),
                }, warmup, repeats)
                r = {f"{k}_ms": v / b * 1000 for k, v in med.items()}
                r["onnx_speedup"] = med["eager"] / med["onnx"]
                r["faster"] = "onnx" if med["onnx"] < med["eager"] else "eager"
                row[f"batch{b}"] = r
                _bench.log(f"{m} batch {b}: eager {r['eager_ms']:.3f} ms/image, onnx {r['onnx_ms']:.3f} ms/image")
            rows[m] = row
    out["models"] = rows
    winners = {rows[m][f"batch{b}"]["faster"] for m in rows for b in batch_sizes}
    out["faster_path"] = winners.pop() if len(winners) == 1 else "mixed"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_bench.DATA_6400)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default; onnxruntime keeps its own)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: one thread for torch and onnxruntime, calls timed by process CPU time (robust to other jobs' load)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.clock == "cpu":
        _bench.use_cpu_clock()
    res = measure_latency(a.data, models=[m for m in a.models.split(",") if m], image_size=a.image_size,
                          batch_sizes=[int(b) for b in a.batch_sizes.split(",")], warmup=a.warmup, repeats=a.repeats)
    _bench.emit(_bench.round_floats(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
