"""The notebook's six experiments on a GPU: does every row of configs/notebook.yaml train and evaluate, how fast, in how much memory?

The prepared GPU check of issue 16. ``configs/notebook.yaml`` (AltzCNN, ResNet-50 and
EfficientNet-B0 each with and without DoRA, ViT-B/16 at 224 x 224) is run with **random
weights** (a GPU machine here cannot download ImageNet files) for **one epoch per row** on
the 6,400 slices, split by brain; recorded per row: training throughput (images/s), peak
GPU memory (MB, allocated), training time (s), and that it trained and was evaluated (test
balanced accuracy present).

    python benchmarks/notebook_gpu.py --out /tmp/notebook-gpu              # on the GPU machine
    python benchmarks/notebook_gpu.py --out /tmp/notebook-gpu --dry-run    # anywhere: check the derived config only

Writes OUT/gpu_notebook.json and prints one line per row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import DATA_6400, REPO, log, machine  # noqa: E402


def derived_config(source: Path, out: Path, *, epochs: int = 1) -> dict:
    """configs/notebook.yaml with random weights, ``epochs`` per row, no early stopping, the GPU."""
    cfg = yaml.safe_load(source.read_text(encoding="utf-8"))
    cfg["out"] = str(out / "compare")
    cfg["title"] = f"{cfg.get('title', 'notebook')}: random weights, {epochs} epoch(s) per row (GPU check)"
    cfg.setdefault("defaults", {}).update({"epochs": epochs, "accelerator": "gpu"})
    for row in cfg["models"]:
        row["epochs"] = epochs
        kwargs = dict(row.get("model_kwargs") or {})
        kwargs.pop("weights", None)  # random initialisation: no download
        row["model_kwargs"] = kwargs
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "notebook.yaml")
    ap.add_argument("--data", type=Path, default=DATA_6400)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="write and validate the derived config, train nothing")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = derived_config(args.config, args.out.resolve(), epochs=args.epochs)
    cfg_path = args.out / "notebook-gpu.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    from alzmri.comparison import load_compare_config

    load_compare_config(cfg_path, data=args.data)  # every row validated before anything trains
    if args.dry_run:
        log(f"derived config valid: {cfg_path} ({len(cfg['models'])} rows)")
        return 0
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "alzmri", "compare", "--config", str(cfg_path), "--data", str(args.data), "--no-progress"], cwd=REPO)
    wall = time.perf_counter() - t0
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    rows = []
    cj = Path(cfg["out"]) / "comparison.json"
    if cj.is_file():
        for r in json.loads(cj.read_text(encoding="utf-8"))["rows"]:
            rows.append({k: r.get(k) for k in ("name", "model", "image_size", "batch_size", "epochs_run", "train_time_s", "train_images_per_s",
                                               "peak_memory_mb", "inference_ms_per_image", "precision", "device", "balanced_accuracy")}
                        | {"trained_and_evaluated": r.get("balanced_accuracy") is not None})
            log(f"{r['name']}: {r.get('train_images_per_s')} images/s, peak GPU memory {r.get('peak_memory_mb')} MB, "
                f"test balanced accuracy {r.get('balanced_accuracy')}")
    result = {"command": " ".join(sys.argv), "exit_code": proc.returncode, "wall_time_s": round(wall, 1), "gpu": gpu, "machine": machine(),
              "rows": rows, "every_row_trained_and_evaluated": bool(rows) and all(r["trained_and_evaluated"] for r in rows) and len(rows) == len(cfg["models"])}
    (args.out / "gpu_notebook.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
