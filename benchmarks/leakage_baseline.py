"""Measure scan-group recovery and the 1-NN leakage baseline on the real 6,400-image set.

Run from the repository root::

    ALZMRI_CACHE_DIR=/tmp/alzmri-cache .venv/bin/python benchmarks/leakage_baseline.py

Steps
-----
1. Decode the 6,400 set at 64 x 64 (decode-once cache) and time :func:`recover_groups`.
2. Validate against ground truth, when the 176x208 release is present: the 6,400 images
   are that release's 5,121 train + 1,279 test images resized to 128 x 128 (matched
   one-to-one here by pixel correlation), and its test file names ``S (k).jpg`` name slice
   ``S`` of brain ``k`` of the class. Purity / completeness of the recovered groups and the
   order of positions are measured on those 1,279 labelled images (200 brains).
3. For several seeds, audit (a) a random stratified 70/15/15 split and (b) a group split
   (scikit-learn ``StratifiedGroupKFold`` on the recovered groups: 1/7 test, 1/6 of the
   rest val, about 71/14/14) with :func:`audit_split`, and report the 1-NN baseline.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def _z(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    return x


def ground_truth(index, ref_root: Path, load_images) -> dict | None:
    """Brain and level of the 6,400 images whose twin sits in the 176x208 test folder."""
    from alzmri.data import discover

    if not ref_root.is_dir():
        return None
    ref = discover(ref_root)
    if len(ref) != len(index):
        return None
    a = _z(load_images(index, 32).images)
    b = _z(load_images(ref, 32).images)
    match = np.empty(len(a), dtype=np.int64)
    best = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), 1024):
        c = a[s : s + 1024] @ b.T
        match[s : s + 1024] = c.argmax(axis=1)
        best[s : s + 1024] = c.max(axis=1)
    bijective = len(np.unique(match)) == len(match)
    brain = np.full(len(index), -1, dtype=np.int64)
    level = np.full(len(index), -1, dtype=np.int64)
    keys: dict[tuple[str, int], int] = {}
    rx = re.compile(r"^test/([^/]+)/(\d+)(?: \((\d+)\))?\.jpg$")
    for i, j in enumerate(match):
        m = rx.match(ref.paths[j])
        if m:
            key = (m.group(1), int(m.group(3) or 1))
            brain[i] = keys.setdefault(key, len(keys))
            level[i] = int(m.group(2))
    return {
        "bijective": bool(bijective),
        "min_match_correlation": float(best.min()),
        "labels_agree": bool((index.labels == ref.labels[match]).all()),
        "brain": brain,
        "level": level,
    }


def purity_completeness(group: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Image-level purity (own group's majority truth is mine) and completeness (I am in my truth's majority group)."""
    m = truth >= 0
    g, t = group[m], truth[m]
    pur = comp = 0
    for k in np.unique(g):
        pur += np.bincount(t[g == k]).max()
    for k in np.unique(t):
        comp += np.bincount(g[t == k]).max()
    return pur / m.sum(), comp / m.sum()


def group_split(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.arange(len(labels))
    out = np.full(len(labels), "train", dtype=object)
    rest, test = next(StratifiedGroupKFold(n_splits=7, shuffle=True, random_state=seed).split(idx, labels, groups))
    out[test] = "test"
    _, val = next(StratifiedGroupKFold(n_splits=6, shuffle=True, random_state=seed + 1).split(rest, labels[rest], groups[rest]))
    out[rest[val]] = "val"
    return out.astype(str)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATASETS / "alzheimer-mri-6400")
    p.add_argument("--ref", type=Path, default=DATASETS / "alzheimers-dataset-176x208", help="176x208 release for ground truth")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)

    from scipy.stats import spearmanr

    from alzmri.data import audit_split
    from alzmri.data import load_images
    from alzmri.data import discover
    from alzmri.data import recover_groups
    from alzmri.data.slice_splits import stratified_split

    out: dict = {"data": str(args.data)}
    index = discover(args.data)
    labels = index.labels
    t = time.perf_counter()
    cached = load_images(index, 64)
    out["decode_s"] = round(time.perf_counter() - t, 2)
    out["decode_cache_hit"] = cached.hit

    t, cpu = time.perf_counter(), time.process_time()
    res = recover_groups(index, cached)
    out["recover_groups_s"] = round(time.perf_counter() - t, 2)
    out["recover_groups_cpu_s"] = round(time.process_time() - cpu, 2)
    summ = res.summary()
    out["groups"] = {k: summ[k] for k in ("method", "threshold", "n_groups", "n_singletons", "group_size", "size_histogram", "classes_per_group", "n_mixed_class_groups", "separation")}
    print(f"recover_groups: {summ['n_groups']} groups in {out['recover_groups_s']} s; sizes {summ['size_histogram']}; "
          f"mixed-class groups {summ['n_mixed_class_groups']}; separation {summ['separation']}", file=sys.stderr)

    gt = ground_truth(index, args.ref, load_images)
    if gt is not None:
        pur, comp = purity_completeness(res.group, gt["brain"])
        brains = gt["brain"]
        rhos = []
        for k in np.unique(brains[brains >= 0]):
            m = brains == k
            if m.sum() > 2 and len(np.unique(res.group[m])) == 1:
                rhos.append(float(spearmanr(res.position[m], gt["level"][m]).correlation))
        rhos = np.asarray(rhos)
        out["validation"] = {
            "truth": "176x208 test file names 'S (k).jpg' = slice S of brain k (1,279 images, 200 brains)",
            "twin_match_bijective": gt["bijective"],
            "twin_min_correlation": round(gt["min_match_correlation"], 5),
            "twin_labels_agree": gt["labels_agree"],
            "n_labelled_images": int((brains >= 0).sum()),
            "n_brains": int(len(np.unique(brains[brains >= 0]))),
            "purity": round(float(pur), 4),
            "completeness": round(float(comp), 4),
            "groups_with_one_brain": int(sum(len(np.unique(brains[(res.group == g) & (brains >= 0)])) == 1 for g in np.unique(res.group[brains >= 0]))),
            "position_spearman_min": round(float(rhos.min()), 4) if len(rhos) else None,
            "position_spearman_positive": int((rhos > 0).sum()),
            "position_brains_checked": int(len(rhos)),
        }
        print(f"validation: {out['validation']}", file=sys.stderr)

    runs: dict[str, list] = {"random_stratified": [], "group": []}
    for seed in range(args.seeds):
        for name, splits in (
            ("random_stratified", stratified_split(labels, seed=seed)),
            ("group", group_split(labels, res.group, seed)),
        ):
            rep = audit_split(index, splits, images=cached, groups=res)
            b = rep["baseline"]
            runs[name].append(
                {
                    "seed": seed,
                    "n": rep["n_images"],
                    "test_class_counts": rep["class_counts"]["test"],
                    "accuracy": b["accuracy"],
                    "balanced_accuracy": b["balanced_accuracy"],
                    "chance_accuracy": b["chance_accuracy"],
                    "chance_balanced_accuracy": b["chance_balanced_accuracy"],
                    "exact_duplicate_pairs": rep["exact_duplicates"]["n_pairs"],
                    "near_duplicate_pairs": rep["near_duplicates"]["n_pairs"],
                    "shared_groups": rep["shared_groups"]["n_groups_shared"],
                    "leakage_warning": rep["leakage_warning"],
                }
            )
            print(f"seed {seed} {name}: {runs[name][-1]}", file=sys.stderr)
    out["baseline"] = {}
    for name, rs in runs.items():
        ba = np.array([r["balanced_accuracy"] for r in rs])
        acc = np.array([r["accuracy"] for r in rs])
        out["baseline"][name] = {
            "balanced_accuracy_mean": round(float(ba.mean()), 4),
            "balanced_accuracy_sd": round(float(ba.std(ddof=1)), 4) if len(ba) > 1 else 0.0,
            "balanced_accuracy_min": round(float(ba.min()), 4),
            "balanced_accuracy_max": round(float(ba.max()), 4),
            "accuracy_mean": round(float(acc.mean()), 4),
            "chance_accuracy_mean": round(float(np.mean([r["chance_accuracy"] for r in rs])), 4),
            "chance_balanced_accuracy": sorted({r["chance_balanced_accuracy"] for r in rs}),
            "shared_groups_mean": float(np.mean([r["shared_groups"] for r in rs])),
            "near_duplicate_pairs_mean": float(np.mean([r["near_duplicate_pairs"] for r in rs])),
            "exact_duplicate_pairs_mean": float(np.mean([r["exact_duplicate_pairs"] for r in rs])),
            "leakage_warning": [r["leakage_warning"] for r in rs],
            "runs": rs,
        }
    print(json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
