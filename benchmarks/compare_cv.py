"""Wall time of the main job: ``alzmri compare --config configs/cpu.yaml`` (5-fold CV by brain) on all 6,400 slices.

The target (issue 16): the cross-validated comparison of configs/cpu.yaml (six models, the
three baselines and a brain-level row, ``folds: 5``) in at most 60 minutes on 2 cores.

The command runs as a user runs it, in a fresh process, with an empty alzmri cache folder
(``--cold``, the default: decoding the images, recovering the brains and the frozen-backbone
features all count, as on a fresh clone); ``--warm`` keeps the user's cache. The comparison
folder must not hold finished folds (they would not be retrained): use a new ``--out``.

    python benchmarks/compare_cv.py --out ../runs/compare-cpu-cv            # the committed run
    python benchmarks/compare_cv.py --out /tmp/cv --config configs/cpu.yaml --folds 2

Writes OUT/benchmark.json: wall time (s), the target, the per-row training times from
comparison.json, the machine (CPU model, cores, bf16), the commit and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import DATA_6400, REPO, load_average, log, machine  # noqa: E402

TARGET_S = 3600.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "cpu.yaml")
    ap.add_argument("--data", type=Path, default=DATA_6400)
    ap.add_argument("--out", type=Path, required=True, help="comparison folder (new)")
    ap.add_argument("--folds", type=int, default=None, help="override the config's folds")
    ap.add_argument("--warm", action="store_true", help="keep the user's alzmri cache (default: an empty one)")
    args = ap.parse_args(argv)
    if (args.out / "runs").is_dir() and any((args.out / "runs").iterdir()):
        print(f"{args.out}: holds rows already; a benchmark needs a new --out", file=sys.stderr)
        return 2
    env = dict(os.environ)
    tmp = None
    if not args.warm:
        tmp = tempfile.TemporaryDirectory(prefix="alzmri-bench-cache-")
        env["ALZMRI_CACHE_DIR"] = tmp.name
    cmd = [sys.executable, "-m", "alzmri", "compare", "--config", str(args.config), "--data", str(args.data), "--out", str(args.out),
           "--no-progress", *(["--folds", str(args.folds)] if args.folds else [])]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip())
    load_before = load_average()
    log(f"running: {' '.join(cmd)}")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    load_after = load_average()
    if tmp is not None:
        tmp.cleanup()
    rows = []
    cj = args.out / "comparison.json"
    if cj.is_file():
        summary = json.loads(cj.read_text(encoding="utf-8"))
        rows = [{"name": r["name"], "train_time_s": r.get("train_time_s"),
                 "epochs_run": [f.get("epochs_run") for f in r.get("per_fold", [])]} for r in summary.get("rows", [])]
    result = {
        "command": " ".join(cmd),
        "exit_code": proc.returncode,
        "wall_time_s": round(wall, 1),
        "wall_time_min": round(wall / 60, 2),
        "target_s": TARGET_S,
        "target_met": bool(proc.returncode == 0 and wall <= TARGET_S),
        "cache": "warm (user's)" if args.warm else "cold (empty cache folder)",
        "started_utc": started,
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "rows": rows,
        "training_time_all_rows_s": round(sum(r["train_time_s"] or 0 for r in rows), 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"wall time {wall / 60:.1f} min (target {TARGET_S / 60:.0f} min: {'met' if result['target_met'] else 'NOT met'}); "
        f"{args.out / 'benchmark.json'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
