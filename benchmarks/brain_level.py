"""Brain-level results table: baselines, AltzCNN (slice level) and brain-level models, 5-fold CV by brain.

Every configuration is cross-validated on the same 5 folds by brain of all 200 brains of
alzheimer-mri-6400 (:func:`alzmri.data.folds.subject_folds`, seed 42; validation brains
carved from each training fold). Reported per configuration: the pooled out-of-fold
metrics of the test brains (every brain scored once) with 95 % intervals resampling brains,
and the mean validation score (binary: ROC-AUC; 4class: balanced accuracy).

No selection on test brains: the brain-level configuration called "chosen" and the "best
baseline" are the ones with the best *validation* score; the paired difference between
them (same resampled brains for both) is then read on the test brains, and the chosen
configuration is cross-validated again with another fold seed (7) to show whether its
figure holds.

AltzCNN is trained once per fold as the notebook's 4-class slice classifier (alzmri train
--folds 5); its brain prediction is the mean of its slices' probabilities, and its binary
score is P(demented) = 1 - P(NonDemented), the binary threshold chosen on the fold's
validation brains.

    python benchmarks/brain_level.py --out ../runs/brain-level            # everything (resumes)
    python benchmarks/brain_level.py --out ../runs/brain-level --only binary-atrophy

Writes OUT/<config>/ (cross-validation folders), OUT/results.json and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import DATA_6400, load_average, log, machine  # noqa: E402

FROZEN = {"model_kwargs": {"weights": "imagenet"}, "image_size": 128, "frozen_encoder": True}
#: Every configuration tried, in the order run. kind: baseline | brain | slice.
CONFIGS = [
    {"name": "binary-atrophy", "task": "binary", "kind": "baseline", "model": "baseline:atrophy"},
    {"name": "binary-knn", "task": "binary", "kind": "baseline", "model": "baseline:knn"},
    {"name": "binary-pixels", "task": "binary", "kind": "baseline", "model": "baseline:pixels"},
    {"name": "binary-lite0-mean", "task": "binary", "kind": "brain", "model": "efficientnet_lite0", "pooling": "mean", **FROZEN},
    {"name": "binary-lite0-attention", "task": "binary", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", **FROZEN},
    {"name": "binary-lite0-attention-position", "task": "binary", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", "slice_position": True, **FROZEN},
    {"name": "4class-atrophy", "task": "4class", "kind": "baseline", "model": "baseline:atrophy"},
    {"name": "4class-knn", "task": "4class", "kind": "baseline", "model": "baseline:knn"},
    {"name": "4class-pixels", "task": "4class", "kind": "baseline", "model": "baseline:pixels"},
    {"name": "4class-lite0-mean", "task": "4class", "kind": "brain", "model": "efficientnet_lite0", "pooling": "mean", **FROZEN},
    {"name": "4class-lite0-attention", "task": "4class", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", **FROZEN},
    {"name": "4class-lite0-attention-ordinal", "task": "4class", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", "loss": "ordinal", **FROZEN},
    {"name": "binary-lite0-finetuned", "task": "binary", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", "image_size": 64,
     "frozen_encoder": False, "model_kwargs": {"weights": "imagenet"}, "epochs": 6, "patience": 3, "lr": 3e-4, "batch_size": 4},
    {"name": "altzcnn-slice", "task": "4class", "kind": "slice", "model": "altzcnn", "image_size": 64, "epochs": 5, "batch_size": 64, "lr": 3e-4,
     "model_kwargs": {"init": "he"}, "read_as": ["binary", "4class"]},
    {"name": "4class-lite0-finetuned", "task": "4class", "kind": "brain", "model": "efficientnet_lite0", "pooling": "attention", "image_size": 64,
     "frozen_encoder": False, "model_kwargs": {"weights": "imagenet"}, "epochs": 6, "patience": 3, "lr": 3e-4, "batch_size": 4},
]
SETTING_KEYS = ("model", "task", "pooling", "slice_position", "frozen_encoder", "loss", "image_size", "epochs", "patience", "lr", "batch_size", "model_kwargs")


def run_config(c: dict, out: Path, seed: int) -> Path:
    """Cross-validate one configuration into ``out`` (kept when finished: reruns resume)."""
    from alzmri import load_train_config

    done = out / ("cv.json")
    if done.is_file():
        return out
    if out.exists():
        import shutil

        shutil.rmtree(out)  # an unfinished earlier attempt (never a finished one)
    values = {k: c[k] for k in SETTING_KEYS if k in c}
    if c["kind"] == "brain":
        values["level"] = "brain"
    cfg = load_train_config(None, data=str(DATA_6400), out=str(out), folds=5, seed=seed, **values)
    if c["kind"] == "slice":
        from alzmri import train_cv

        train_cv(cfg, progress=False)
    else:
        from alzmri.pipeline import train_brain_cv

        train_brain_cv(cfg, progress=False)
    return out


def brain_oof(c: dict, folder: Path, task_name: str) -> dict:
    """Pooled out-of-fold brain predictions of a finished configuration: ids, y, prob, thresholds, validation score."""
    import csv

    from alzmri.data import get_task

    task = get_task(task_name)
    if c["kind"] != "slice":
        cv = json.loads((folder / "cv.json").read_text())
        rows = list(csv.DictReader(open(folder / "oof_predictions.csv")))
        ids = np.array([int(r["brain"]) for r in rows])
        y = np.array([task.class_names.index(r["class"]) for r in rows])
        prob = np.array([[float(r[f"p_{n}"]) for n in task.class_names] for r in rows])
        thr = np.array([float(r.get("threshold", 0.5)) for r in rows])  # 3class/4class files have no threshold column
        key = "roc_auc" if task.is_binary else "balanced_accuracy"
        return {"ids": ids, "y": y, "prob": prob, "thr": thr, "val": cv["validation_mean"][key], "wall_s": cv["wall_time_s"],
                "epochs": [f["best_epoch"] for f in cv["per_fold"]]}
    return slice_oof(folder, task)


def slice_oof(folder: Path, task) -> dict:
    """A slice-level 4-class CV read at the brain level under ``task``: mean of slice probabilities per brain."""
    from alzmri.data import get_task
    from alzmri.evaluation import aggregate_by_group
    from alzmri import evaluate as evaluate_run
    from alzmri.training.selection import choose_threshold, roc_auc_demented
    from alzmri.evaluation.bootstrap import balanced_accuracy

    four = get_task("4class")
    ids_all, y_all, p_all, t_all, vals = [], [], [], [], []
    for fold in sorted(folder.glob("fold-*")):
        per = {}
        for split in ("val", "test"):
            name = "predictions.csv" if split == "test" else "predictions_val.csv"
            if not (fold / name).is_file():
                evaluate_run(fold, split=split, n_boot=10)
            import csv

            rows = list(csv.DictReader(open(fold / name)))
            y = np.array([four.label_of(r["class"]) for r in rows])
            p4 = np.array([[float(r[f"p_{n}"]) for n in four.class_names] for r in rows])
            g = np.array([int(r["group"]) for r in rows])
            ids, yb, pb = aggregate_by_group(y, p4, g)
            yb = task.map_labels(yb)
            pb = np.stack([pb[:, [k for k in range(4) if task.mapping[k] == j]].sum(1) for j in range(task.num_classes)], 1)
            per[split] = (ids, yb, pb)
        thr = choose_threshold(per["val"][1], per["val"][2])
        vals.append(roc_auc_demented(per["val"][1], per["val"][2]) if task.is_binary else balanced_accuracy(per["val"][1], per["val"][2]))
        ids, yb, pb = per["test"]
        ids_all.append(ids), y_all.append(yb), p_all.append(pb), t_all.append(np.full(len(ids), thr))
    runs = [json.loads((f / "run.json").read_text()) for f in sorted(folder.glob("fold-*"))]
    return {"ids": np.concatenate(ids_all), "y": np.concatenate(y_all), "prob": np.concatenate(p_all), "thr": np.concatenate(t_all),
            "val": float(np.mean(vals)), "wall_s": round(sum(r.get("train_time_s") or 0 for r in runs), 1), "epochs": [r.get("best_epoch") for r in runs]}


def fmt(m: dict, key: str) -> str:
    v, ci = m.get(key), (m.get("ci") or {}).get(key)
    if v is None:
        return "-"
    return f"{v:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", default=None, help="configuration names to run (default all)")
    ap.add_argument("--seed", type=int, default=42, help="fold seed")
    ap.add_argument("--rerun-seed", type=int, default=7, help="fold seed of the chosen configurations' second cross-validation")
    args = ap.parse_args()
    from alzmri.evaluation.bootstrap import balanced_accuracy, quadratic_weighted_kappa
    from alzmri.evaluation.task_metrics import brain_metrics, paired_bootstrap_difference
    from alzmri.training.selection import roc_auc_demented

    args.out.mkdir(parents=True, exist_ok=True)
    info = {"machine": machine(), "command": " ".join(sys.argv), "fold_seed": args.seed}
    configs = [c for c in CONFIGS if args.only is None or c["name"] in args.only]
    rows, oof = [], {}
    for c in configs:
        t0 = time.perf_counter()
        log(f"{c['name']}: cross-validating (load {load_average()})")
        folder = run_config(c, args.out / c["name"], args.seed)
        for task in c.get("read_as", [c["task"]]):
            o = brain_oof(c, folder, task)
            order = np.argsort(o["ids"])
            o = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in o.items()}
            name = c["name"] if "read_as" not in c else f"{task}-{c['name']}"
            oof[name] = o
            m = brain_metrics(o["y"], o["prob"], task, threshold=o["thr"])
            rows.append({"name": name, "task": task, "kind": c["kind"], "settings": {k: c[k] for k in SETTING_KEYS if k in c}, "validation": o["val"],
                         "metrics": m, "wall_time_s": o["wall_s"], "best_epochs": o["epochs"]})
            log(f"  {name}: validation {o['val']:.3f}, test ROC-AUC {m['roc_auc']:.3f} ({time.perf_counter() - t0:.0f} s)")
    results = {**info, "rows": rows, "comparisons": []}
    for task in ("binary", "4class"):
        cand = [r for r in rows if r["task"] == task]
        brains = [r for r in cand if r["kind"] == "brain"]
        bases = [r for r in cand if r["kind"] == "baseline"]
        if not brains or not bases:
            continue
        chosen = max(brains, key=lambda r: r["validation"])
        best_base = max(bases, key=lambda r: r["validation"])
        a, b = oof[best_base["name"]], oof[chosen["name"]]
        assert np.array_equal(a["ids"], b["ids"]), "the two rows must score the same brains"
        fns = {"roc_auc": roc_auc_demented} if task == "binary" else {"balanced_accuracy": balanced_accuracy, "quadratic_weighted_kappa": quadratic_weighted_kappa}
        comp = {"task": task, "chosen": chosen["name"], "best_baseline": best_base["name"], "chosen_by": "mean validation score over the 5 folds",
                "differences": {k: paired_bootstrap_difference(fn, a["y"], a["prob"], b["prob"], n_boot=2000, seed=0) for k, fn in fns.items()}}
        if args.rerun_seed is not None and chosen["kind"] == "brain":
            c = next(c for c in CONFIGS if c["name"] == chosen["name"])
            folder = run_config(c, args.out / f"{c['name']}-seed{args.rerun_seed}", args.rerun_seed)
            o = brain_oof(c, folder, task)
            comp["rerun"] = {"fold_seed": args.rerun_seed, "metrics": brain_metrics(o["y"], o["prob"], task, threshold=o["thr"]), "validation": o["val"]}
        results["comparisons"].append(comp)
    results["load_average_end"] = load_average()
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    lines = [f"CPU: {info['machine']['cpu']}, {info['machine']['cores']} cores; fold seed {args.seed}; `{info['command']}`", ""]
    for task in ("binary", "4class"):
        keys = ["roc_auc", "balanced_accuracy", "sensitivity", "specificity", "pr_auc"] if task == "binary" else ["balanced_accuracy", "quadratic_weighted_kappa", "mae_classes", "roc_auc"]
        lines += [f"### {task}", "", "| configuration | kind | validation | " + " | ".join(keys) + " | CV wall time (s) |", "|" + "---|" * (len(keys) + 4)]
        for r in rows:
            if r["task"] == task:
                lines.append(f"| {r['name']} | {r['kind']} | {r['validation']:.3f} | " + " | ".join(fmt(r["metrics"], k) for k in keys) + f" | {r['wall_time_s'] or '-'} |")
        lines.append("")
    for comp in results["comparisons"]:
        lines.append(f"**{comp['task']}**: chosen on validation: {comp['chosen']}; best baseline on validation: {comp['best_baseline']}.")
        for k, d in comp["differences"].items():
            lines.append(f"- paired difference in {k} (chosen - baseline): {d['difference']:+.3f}, 95 % interval [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
                         f" ({'excludes' if d['excludes_zero'] else 'includes'} 0)")
        if "rerun" in comp:
            m = comp["rerun"]["metrics"]
            lines.append(f"- rerun with fold seed {comp['rerun']['fold_seed']}: ROC-AUC {fmt(m, 'roc_auc')}, balanced accuracy {fmt(m, 'balanced_accuracy')}")
        lines.append("")
    (args.out / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
