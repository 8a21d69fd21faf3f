"""Peak memory of training per model, batch size and image size; the decoded cache's size in RAM.

Run from the repository root (about 5 minutes on a quiet 2-core CPU)::

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --batch-sizes 32,64,128,256,512 --image-sizes 64,128,224 --steps 3   # longer

Training: every (model, batch size, image size) runs in a **fresh subprocess** that loads
the decoded 6,400 set from alzmri's cache (written once beforehand by this script, in a
temporary folder) and trains ``--warmup + --steps`` steps with alzmri's pipeline (the
DataModule, ``SliceClassifier`` and Trainer settings of ``alzmri train``, via
``train_throughput.run_alzmri``). It reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), its RSS after importing torch,
Lightning and alzmri, and after loading the images (``psutil``), so that the growth due to
training itself (activations, gradients, Adam state, allocator caches) is their
difference. On a CUDA machine the peak allocated GPU memory is reported too.

Cache: the 6,400-image set, and a 44,000-image set made from it by augmentation (the
eight flips and right-angle rotations of every real slice, taken in that order until
44,000 images; written as JPEG class folders into a temporary folder, never into the
repository), are decoded by :func:`alzmri.data.cache.load_images` in a fresh subprocess
(cold: decode and write the ``.npz``) and loaded again in another (warm: read it back).
Reported: the array's size (``nbytes``), the RSS growth of the warm load, the ``.npz``
size on disk and both times.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

MODELS = ("altzcnn", "mobilenet_v2")
N_AUGMENTED = 44_000


def rss_mb() -> float:
    """Current resident set size of this process in MB (10^6 bytes)."""
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``, KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def _child(cmd_args: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *cmd_args]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def child_train(data: Path, cache_dir: Path, model: str, batch_size: int, image_size: int, steps: int, warmup: int) -> dict:
    """(In the subprocess) train a few steps and report the memory figures."""
    import torch

    from train_throughput import run_alzmri  # imports torch, Lightning and alzmri's training code

    from alzmri.data import load_images
    from alzmri.data import discover
    from alzmri.data import make_split

    rss_imports = rss_mb()
    index = discover(data)
    cached = load_images(index, image_size, cache_dir=cache_dir)
    splits = make_split("stratified", index.labels, seed=42)
    rss_data = rss_mb()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    r = run_alzmri(cached.images, index.labels, splits, model, image_size, batch_size=batch_size, lr=3e-4, steps=steps, warmup=warmup)
    out = {"model": model, "batch_size": batch_size, "image_size": image_size, "rss_after_imports_mb": rss_imports,
           "rss_after_data_mb": rss_data, "peak_rss_mb": peak_rss_mb(), "images_per_s": r["images_per_s"], "cache_hit": cached.hit}
    out["training_growth_mb"] = out["peak_rss_mb"] - rss_data
    if torch.cuda.is_available():
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 1e6
    return out


def child_cache(data: Path, cache_dir: Path, image_size: int) -> dict:
    """(In the subprocess) load a dataset through alzmri's cache and report its RAM size."""
    from alzmri.data import load_images
    from alzmri.data import discover

    index = discover(data)
    index.content_hash()
    before = rss_mb()
    t0 = time.perf_counter()
    cached = load_images(index, image_size, cache_dir=cache_dir)
    dt = time.perf_counter() - t0
    after = rss_mb()
    return {"n_images": len(index), "image_size": image_size, "hit": cached.hit, "load_s": dt, "array_mb": cached.images.nbytes / 1e6,
            "rss_growth_mb": after - before, "npz_mb": cached.path.stat().st_size / 1e6 if cached.path else None,
            "peak_rss_mb": peak_rss_mb()}


def build_augmented_set(src: Path, dest: Path, n_images: int = N_AUGMENTED) -> Path:
    """Write ``n_images`` JPEGs made from the real slices of ``src`` into class folders under ``dest``.

    The eight flips/right-angle rotations of every slice (identity first), transform by
    transform, until ``n_images``; JPEG quality 95. ``dest`` must be outside the repository.
    """
    from PIL import Image

    from alzmri.data import discover

    if REPO_ROOT in dest.resolve().parents:
        raise ValueError(f"{dest}: the augmented set must not be written inside the repository")
    T = Image.Transpose
    ops = [None, T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM, T.ROTATE_90, T.ROTATE_180, T.ROTATE_270, T.TRANSPOSE, T.TRANSVERSE]
    index = discover(src)
    count = 0
    for k, op in enumerate(ops):
        for rec in index.records:
            if count >= n_images:
                return dest
            p = Path(rec.path)
            out = dest / p.parent.name / f"{p.stem}_t{k}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(index.root / p) as im:
                im = im.convert("L")
                (im if op is None else im.transpose(op)).save(out, quality=95)
            count += 1
    return dest


REPO_ROOT = _bench.REPO


def measure_memory(data: Path, *, models=MODELS, batch_sizes=(32, 128, 256), image_sizes=(64, 128), steps: int = 1, warmup: int = 1,
                   n_augmented: int = N_AUGMENTED, cache_sizes=(64, 128), work_dir: Path | None = None) -> dict:
    """Training peak RSS per configuration (fresh subprocesses) and the cache's RAM size.

    Returns
    -------
    dict
        ``training``: one row per (model, batch size, image size); ``cache``: rows for the
        real set and the augmented set at each of ``cache_sizes`` (cold and warm loads);
        headline keys ``altzcnn_peak_rss_mb`` (batch 128 at 64 px, or the first row),
        ``cache_6400_mb`` and ``cache_augmented_mb`` (at the first cache size).
    """
    out: dict = {"benchmark": "memory", "machine": _bench.machine()}
    out["settings"] = dict(data=str(data), models=list(models), batch_sizes=list(batch_sizes), image_sizes=list(image_sizes), steps=steps,
                           warmup=warmup, n_augmented=n_augmented, cache_sizes=list(cache_sizes))
    import psutil

    out["machine"]["ram_total_mb"] = psutil.virtual_memory().total / 1e6
    with tempfile.TemporaryDirectory(prefix="alzmri-bench-mem-", dir=work_dir) as tmp:
        cache = Path(tmp) / "cache"
        cache_rows = []
        for s in cache_sizes:
            for phase in ("cold", "warm"):
                r = _child(["--child-cache", str(data), str(cache), str(s)])
                cache_rows.append({"set": "real", "phase": phase, **r})
                _bench.log(f"cache real {s}px {phase}: {r['array_mb']:.1f} MB array, RSS +{r['rss_growth_mb']:.1f} MB, {r['load_s']:.2f} s")
        for s in image_sizes:  # the training children read the cache at their size
            if s not in cache_sizes:
                _child(["--child-cache", str(data), str(cache), str(s)])
        rows = []
        for m in models:
            for s in image_sizes:
                for b in batch_sizes:
                    r = _child(["--child-train", str(data), str(cache), m, str(b), str(s), str(steps), str(warmup)])
                    rows.append(r)
                    _bench.log(f"train {m} batch {b} {s}px: peak RSS {r['peak_rss_mb']:.0f} MB (after data {r['rss_after_data_mb']:.0f} MB)")
        if n_augmented > 0:
            aug = build_augmented_set(data, Path(tmp) / "augmented", n_augmented)
            _bench.log(f"augmented set of {n_augmented} images written")
            for s in cache_sizes:
                for phase in ("cold", "warm"):
                    r = _child(["--child-cache", str(aug), str(cache), str(s)])
                    cache_rows.append({"set": "augmented", "phase": phase, **r})
                    _bench.log(f"cache augmented {s}px {phase}: {r['array_mb']:.1f} MB array, RSS +{r['rss_growth_mb']:.1f} MB, {r['load_s']:.2f} s")
    out["training"] = rows
    out["cache"] = cache_rows
    head = next((r for r in rows if r["model"] == "altzcnn" and r["batch_size"] == 128 and r["image_size"] == 64), rows[0] if rows else None)
    if head:
        out["altzcnn_peak_rss_mb"] = head["peak_rss_mb"]
        out["altzcnn_training_growth_mb"] = head["training_growth_mb"]
    warm = [r for r in cache_rows if r["phase"] == "warm" and r["image_size"] == cache_sizes[0]]
    for r in warm:
        out[f"cache_{'6400' if r['set'] == 'real' else 'augmented'}_mb"] = r["array_mb"]
        out[f"cache_{'6400' if r['set'] == 'real' else 'augmented'}_rss_growth_mb"] = r["rss_growth_mb"]
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child-train":
        d, c, m, b, s, n, w = argv[1:8]
        print(json.dumps(child_train(Path(d), Path(c), m, int(b), int(s), int(n), int(w))))
        return 0
    if argv and argv[0] == "--child-cache":
        d, c, s = argv[1:4]
        print(json.dumps(child_cache(Path(d), Path(c), int(s))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_bench.DATA_6400)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batch-sizes", default="32,128,256")
    p.add_argument("--image-sizes", default="64,128")
    p.add_argument("--steps", type=int, default=1, help="training steps after the warm-up step")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--n-augmented", type=int, default=N_AUGMENTED, help="size of the augmented set (0: skip it)")
    p.add_argument("--cache-sizes", default="64,128", help="image sizes at which the cache's RAM size is measured")
    a = p.parse_args(argv)
    res = measure_memory(a.data, models=[m for m in a.models.split(",") if m], batch_sizes=[int(x) for x in a.batch_sizes.split(",")],
                         image_sizes=[int(x) for x in a.image_sizes.split(",")], steps=a.steps, warmup=a.warmup, n_augmented=a.n_augmented,
                         cache_sizes=[int(x) for x in a.cache_sizes.split(",")])
    _bench.emit(_bench.round_floats(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
