"""AltzCNN and a 1-NN baseline on the 6,400 set under three split protocols: the leakage gap.

Run from the repository root::

    ALZMRI_CACHE_DIR=/tmp/alzmri-cache .venv/bin/python benchmarks/split_protocols.py

Protocols (all seeded with ``--seed``, 42 by default):

(a) ``random``: the notebook's protocol, a random 70/15/15 split of *slices* stratified by
    class (``--split-strategy stratified``);
(b) ``subject``: a 70/15/15 split by subject (recovered scan groups), stratified by class
    (``--split-strategy subject``, the default);
(c) ``subject-cv``: 5-fold cross-validation by subject (``--folds 5``); metrics are those
    of the pooled out-of-fold predictions (every slice scored once, by the model whose
    training never saw its brain), plus the mean and standard deviation over folds.

Models: AltzCNN trained with :func:`alzmri.pipeline.train` (affordable settings,
see ``--epochs``/``--image-size``; every run folder is kept under ``--out``), and a
1-nearest-neighbour classifier on 32 x 32 raw pixels fitted on each protocol's training
split (its "probabilities" are one-hot; at subject level they become vote shares).

Metrics: balanced accuracy, macro-F1 and macro one-vs-rest ROC-AUC at slice level and at
subject level (mean of slice probabilities per subject), with 95 % percentile bootstrap
intervals resampling subjects (:mod:`alzmri.evaluation.aggregation`).

Runs whose folder already holds results are reused, and a started cross-validation keeps its
finished folds (``--resume``), so an interrupted benchmark resumes.
Progress goes to stderr; the last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
METRICS = ("balanced_accuracy", "macro_f1", "roc_auc_ovr_macro")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def triple(block: dict, ci: dict | None, key: str) -> list:
    """[value, ci_low, ci_high] rounded (None where undefined)."""
    v = block.get(key)
    lohi = (ci or {}).get(key) or [None, None]
    return [None if v is None else round(v, 4), *(None if x is None else round(x, 4) for x in lohi)]


def summary_of(metrics: dict) -> dict:
    """Slice- and subject-level [value, low, high] of :data:`METRICS` from a metrics dict."""
    sub = metrics.get("subject_level") or {}
    return {
        "slice": {k: triple(metrics, metrics.get("confidence_intervals"), k) for k in METRICS},
        "subject": {k: triple(sub, sub.get("confidence_intervals"), k) for k in METRICS},
        "n_slices": metrics.get("n_samples"),
        "n_subjects": sub.get("n_subjects"),
    }


def knn_predict(images: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-NN on raw pixels: (test indices, one-hot probabilities of shape (n_test, 4))."""
    from sklearn.neighbors import KNeighborsClassifier

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    tr, te = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    clf = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(x[tr], labels[tr])
    pred = clf.predict(x[te])
    return te, np.eye(4)[pred]


def scored(y: np.ndarray, p: np.ndarray, g: np.ndarray, n_boot: int) -> dict:
    from alzmri.evaluation import subject_level_metrics
    from alzmri.evaluation import metrics_with_ci
    from alzmri.evaluation import classification_metrics

    m = classification_metrics(y, p)
    m["confidence_intervals"] = metrics_with_ci(y, p, g, n_boot=n_boot, seed=0)
    m["subject_level"] = subject_level_metrics(y, p, g, n_boot=n_boot, seed=0)
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATASETS / "alzheimer-mri-6400")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-split-protocols")
    p.add_argument("--protocols", default="random,subject,subject-cv", help="comma-separated subset of random,subject,subject-cv")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--no-cnn", action="store_true", help="1-NN baseline only")
    p.add_argument("--no-train", action="store_true", help="use AltzCNN results already under --out; mark the others pending")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); 1 avoids thrashing on a shared machine")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from alzmri import load_train_config, train, train_cv
    from alzmri.data import discover, load_images, load_manifest, load_or_recover_groups
    from alzmri.training.lightning_setup import quiet_lightning

    quiet_lightning()
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    settings = {
        "model": "altzcnn",
        "epochs": args.epochs,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "augment": False,
        "model_kwargs": {},
        "checkpoint": "best validation balanced accuracy",
        "torch_threads": args.threads or "default",
    }
    out: dict = {"data": str(args.data), "settings": settings, "n_boot": args.n_boot, "protocols": {}}
    index = discover(args.data)
    labels = index.labels
    t0 = time.perf_counter()
    res = load_or_recover_groups(index)
    groups = res.group
    out["groups"] = {"n_groups": res.n_groups, "source": f"recovered ({res.method}, threshold {res.threshold}); cache {res.params.get('cache')}"}
    log(f"groups: {res.n_groups} in {time.perf_counter() - t0:.1f} s")
    images32 = load_images(index, 32).images
    base = dict(
        model="altzcnn", data=args.data, epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, augment=False,
    )

    for name in protocols:
        t = time.perf_counter()
        entry: dict = {}
        if name in ("random", "subject"):
            strategy = "stratified" if name == "random" else "subject"
            run = args.out / name
            if not args.no_cnn and not (args.no_train and not (run / "metrics.json").is_file()):
                if not (run / "metrics.json").is_file():
                    log(f"({name}) training AltzCNN, split strategy {strategy}")
                    train(load_train_config(out=run, split_strategy=strategy, **base), progress=False)
                m = json.loads((run / "metrics.json").read_text())
                info = json.loads((run / "run.json").read_text())
                entry["altzcnn"] = summary_of(m) | {"train_time_s": info["train_time_s"], "best_epoch": info["best_epoch"]}
                entry["warnings"] = m.get("warnings", [])
                splits = load_manifest(run / "manifest.csv", index).splits
            else:
                from alzmri.data import make_split

                if not args.no_cnn:
                    entry["altzcnn"] = "pending"
                splits = make_split(strategy, labels, seed=args.seed, groups=groups)
            entry["split_strategy"] = strategy
            entry["split_counts"] = {s: int((splits == s).sum()) for s in ("train", "val", "test")}
            te, probs = knn_predict(images32, labels, splits)
            entry["knn"] = summary_of(scored(labels[te], probs, groups[te], args.n_boot))
        elif name == "subject-cv":
            cv_dir = args.out / f"subject-cv{args.folds}"
            if not args.no_cnn and not (args.no_train and not (cv_dir / "cv.json").is_file()):
                if not (cv_dir / "cv.json").is_file():
                    resume = (cv_dir / "config.yaml").is_file()  # a started cross-validation: keep its finished folds
                    log(f"(subject-cv) training AltzCNN, {args.folds} folds" + (" (resuming)" if resume else ""))
                    train_cv(load_train_config(out=cv_dir, folds=args.folds, split_strategy="subject", resume=resume, **base), progress=False)
                cv = json.loads((cv_dir / "cv.json").read_text())
                pooled = cv["pooled"]
                entry["altzcnn"] = summary_of(pooled) | {
                    "fold_mean_sd": {
                        lvl: {k: [round(cv["mean_std"][lvl][k]["mean"], 4), round(cv["mean_std"][lvl][k]["std"], 4)] for k in METRICS}
                        for lvl in ("slice_level", "subject_level")
                    },
                    "train_time_s": round(sum(json.loads((cv_dir / f"fold-{i}" / "run.json").read_text())["train_time_s"] for i in range(args.folds)), 1),
                }
                entry["warnings"] = cv.get("warnings", [])
                fold_splits = [load_manifest(cv_dir / "cv-splits" / f"fold-{i}.csv", index).splits for i in range(args.folds)]
            else:
                from alzmri.data import subject_folds

                if not args.no_cnn:
                    entry["altzcnn"] = "pending"
                fold_splits = subject_folds(labels, groups, args.folds, seed=args.seed, val_fraction=0.15)
            entry["split_strategy"] = "subject-cv"
            tes, ps = [], []
            for s in fold_splits:
                te, probs = knn_predict(images32, labels, s)
                tes.append(te)
                ps.append(probs)
            te, probs = np.concatenate(tes), np.concatenate(ps)
            entry["knn"] = summary_of(scored(labels[te], probs, groups[te], args.n_boot))
        else:
            raise SystemExit(f"unknown protocol {name!r}")
        entry["wall_s"] = round(time.perf_counter() - t, 1)
        out["protocols"][name] = entry
        log(f"({name}) done in {entry['wall_s']} s: " + json.dumps({k: entry[k] for k in ("altzcnn", "knn") if k in entry}))

    # the leakage gap: random slice split minus subject split, same model, same metric
    gap: dict = {}
    pr = out["protocols"]
    for honest in ("subject", "subject-cv"):
        if "random" in pr and honest in pr:
            for model in ("altzcnn", "knn"):
                if isinstance(pr["random"].get(model), dict) and isinstance(pr[honest].get(model), dict):
                    gap[f"{model}: random - {honest}"] = {
                        lvl: {k: None if pr["random"][model][lvl][k][0] is None or pr[honest][model][lvl][k][0] is None
                              else round(pr["random"][model][lvl][k][0] - pr[honest][model][lvl][k][0], 4) for k in METRICS}
                        for lvl in ("slice", "subject")
                    }
    out["leakage_gap"] = gap
    out["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
