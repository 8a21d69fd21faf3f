"""Training throughput with 1 and 2 processes (Lightning DDP) on the same work: docs/scaling.md.

Run from the repository root::

    ALZMRI_CACHE_DIR=/tmp/alzmri-cache .venv/bin/python benchmarks/ddp_scaling.py            # CPU, gloo
    ALZMRI_CACHE_DIR=/tmp/alzmri-cache .venv/bin/python benchmarks/ddp_scaling.py --accelerator gpu --devices 1 2 4

For each process count D it runs ``alzmri train --devices D --strategy ddp`` (D = 1:
``--strategy auto``, one plain process) as a subprocess on the same real subset of
alzheimer-mri-6400 (``--per-class`` slices of each class, every ``--stride``-th file), the
same split (stratified, seed 0), the same epochs and the same per-process batch size;
every configuration therefore trains on the same images the same number of times (the
same total work), D processes each taking 1/D of every epoch, and the effective batch
is ``batch_size x D``. The first configuration also builds the decode-once cache, so a
warm-up run (1 epoch, 1 process, not timed) comes first.

Throughput is ``training images x epochs / fit seconds`` with the fit seconds from
``run.json`` (``train_time_s``: the fit loop on rank 0, training and validation
together, without process start-up and data loading); the wall seconds of the whole
command are reported too. Evaluation after training is switched off. ``os.getloadavg()``
is recorded before and after each run: a 1-minute load above the number of idle cores
means other jobs shared the machine and the figures are measured-under-load.

Progress goes to stderr; the last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "alzheimer-mri-6400"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def subset(src: Path, dest: Path, per_class: int, stride: int) -> Path:
    """Symlink every ``stride``-th file (sorted by name), at most ``per_class``, of each class folder."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        out = dest / cls.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(p for p in cls.iterdir() if p.is_file())[::stride][:per_class]:
            (out / f.name).symlink_to(f)
    return dest


def train(data: Path, out: Path, config: Path, devices: int, args, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "alzmri", "train", "--config", str(config), "--data", str(data), "--out", str(out),
           "--model", args.model, "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--image-size", str(args.image_size), "--seed", "0", "--split-strategy", "stratified",
           "--accelerator", args.accelerator, "--devices", str(devices), "--strategy", "ddp" if devices > 1 else "auto",
           "--no-progress"]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"alzmri train --devices {devices} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    info = json.loads((out / "run.json").read_text())
    n_train = int(info["split_counts"]["train"])
    seconds = float(info["train_time_s"])
    return {
        "processes": devices,
        "train_images": n_train,
        "epochs": int(info["epochs_run"]),
        "batch_per_process": args.batch_size,
        "effective_batch": args.batch_size * devices,
        "fit_seconds": round(seconds, 2),
        "command_wall_seconds": round(wall, 2),
        "images_per_s": round(n_train * int(info["epochs_run"]) / seconds, 2),
        "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "device": info.get("device"),
        "precision": info.get("precision"),
        "best_val_epoch": info.get("best_epoch"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--per-class", type=int, default=400, help="slices per class (ModerateDemented has 64)")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--model", default="altzcnn")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32, help="per process")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    ap.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="alzmri-ddp-bench-") as tmp:
        root = Path(args.out) if args.out is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = subset(args.data, root / "data", args.per_class, args.stride) if not (root / "data").exists() else root / "data"
        config = root / "bench.yaml"
        config.write_text("evaluate: false\n")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log("warm-up (builds the decode-once cache and the subject groups, 1 epoch, not timed)")
        train(data, root / f"warmup-{stamp}", config, 1, args, 1)
        results = []
        for d in args.devices:
            log(f"{d} process(es): {args.epochs} epochs")
            r = train(data, root / f"d{d}-{stamp}", config, d, args, args.epochs)
            log(f"  {r['images_per_s']} images/s (fit {r['fit_seconds']} s, command {r['command_wall_seconds']} s, "
                f"load {r['loadavg_1min_before']} -> {r['loadavg_1min_after']})")
            results.append(r)
    base = results[0]["images_per_s"]
    for r in results:
        r["speedup_vs_first"] = round(r["images_per_s"] / base, 3)
    import torch

    print(json.dumps({
        "benchmark": "ddp_scaling",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cuda": torch.cuda.is_available()},
        "settings": {"data": str(args.data), "per_class": args.per_class, "stride": args.stride, "model": args.model,
                     "image_size": args.image_size, "epochs": args.epochs, "batch_per_process": args.batch_size,
                     "accelerator": args.accelerator, "split": "stratified, seed 0"},
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
