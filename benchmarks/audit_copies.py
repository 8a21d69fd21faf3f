"""The leakage audit on an augmented set: thresholds of the pose-invariant checks, and whether a shift fools them.

Run from the repository root::

    .venv/bin/python benchmarks/audit_copies.py --copies 3000                     # builds the set (about 2 min)
    .venv/bin/python benchmarks/audit_copies.py --data DIR --truth DIR/truth.json  # an existing set
    .venv/bin/python benchmarks/audit_copies.py ... --no-thresholds                # skip the all-pairs step (about 2 min)

Steps
-----
1. The set: the 6,400 originals plus ``--copies`` augmented copies
   (:func:`alzmri.data.augmented_sets.write_augmented_set`, seeded, every kind with
   probability 1/2), or an existing one with its truth file (copy path -> ``source``).
   Brains of the originals: :func:`load_or_recover_groups` on the 6,400 originals alone
   (200 brains x 32 slices); a copy's brain is its source's.
2. Thresholds (unless ``--no-thresholds``): the pose similarity of every pair of originals
   of different brains (exhaustive, 20.4 million pairs), of adjacent slices of one brain,
   and of every copy with its source.
3. Audits (:func:`alzmri.data.audit.audit_split`), each timed: on the originals, a random
   stratified split and a brain split (scikit-learn ``StratifiedGroupKFold``, as
   benchmarks/leakage_baseline.py) for ``--seeds`` seeds; on the augmented set, a brain
   split whose copies each carry their own group (so copies of val/test brains land in
   train: the leak of issue 14) and the honest split of the same brains (copies of
   val/test brains left out; copies of train brains in train).

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA_6400 = REPO.parent / "shared" / "datasets" / "alzheimer-mri-6400"
sys.path.insert(0, str(Path(__file__).parent))
from leakage_baseline import group_split


def _pairs_max(spectrum: np.ndarray, q: np.ndarray, r: np.ndarray, exclude) -> np.ndarray:
    """Exhaustive pose similarity (no refinement) of queries against references: (len(q),) maxima, pairs masked by ``exclude(qs, r)``."""
    from alzmri.data.groups.pose import N_ANGLES

    b = spectrum[r]
    out = np.empty(len(q), dtype=np.float32)
    for s in range(0, len(q), 64):
        a = np.conj(spectrum[q[s : s + 64]])
        d = np.fft.irfft(np.einsum("qkf,rkf->qrf", a, b, optimize=True), n=N_ANGLES, axis=-1).max(-1)
        m = np.fft.irfft(np.einsum("qkf,rkf->qrf", a, np.conj(b), optimize=True), n=N_ANGLES, axis=-1).max(-1)
        x = np.maximum(d, m)
        x[exclude(q[s : s + 64], r)] = -1.0
        out[s : s + 64] = x.max(axis=1)
    return out


def _dist(x: np.ndarray) -> dict:
    return {k: round(float(v), 4) for k, v in (("min", x.min()), ("p1", np.quantile(x, 0.01)), ("p5", np.quantile(x, 0.05)),
                                                ("median", np.median(x)), ("p99", np.quantile(x, 0.99)), ("max", x.max()))}


def thresholds(images, readable, brain, position, is_copy, source) -> dict:
    from alzmri.data.groups.pose import pose_features, pose_similarity

    t = time.perf_counter()
    feats = pose_features(images, valid=readable)
    out: dict = {"pose_features_s": round(time.perf_counter() - t, 2)}
    orig = np.flatnonzero(~is_copy)
    cross = _pairs_max(feats.spectrum, orig, orig, lambda qs, r: brain[qs][:, None] == brain[r][None, :])
    out["different_brains_max_per_original"] = _dist(cross)
    for t_ in (0.92, 0.93, 0.94, 0.95, 0.96):
        out.setdefault("originals_with_other_brain_at_or_above", {})[str(t_)] = int((cross >= t_).sum())
    for d in (1, 2):
        a, b = np.nonzero((brain[orig][:, None] == brain[orig][None, :]) & (position[orig][None, :] - position[orig][:, None] == d))
        out[f"same_brain_position_diff_{d}"] = _dist(pose_similarity(feats, orig[a], orig[b]))
    cp = np.flatnonzero(is_copy)
    if len(cp):
        s = pose_similarity(feats, source[cp], cp)
        out["copy_vs_source"] = _dist(s)
        out["copies_at_or_above"] = {str(t_): round(float((s >= t_).mean()), 4) for t_ in (0.93, 0.94, 0.95, 0.96)}
        other = _pairs_max(feats.spectrum, cp, orig, lambda qs, r: brain[qs][:, None] == brain[r][None, :])
        out["copy_vs_other_brains_max"] = _dist(other)
    out["total_s"] = round(time.perf_counter() - t, 1)
    return out


def _summary(rep: dict, seconds: float) -> dict:
    pb, b, cc = rep["pose_baseline"], rep["baseline"], rep["cross_split_copies"]
    return {
        "n": rep["n_images"],
        "audit_s": round(seconds, 1),
        "pixel_1nn_balanced_accuracy": b["balanced_accuracy"],
        "pose_1nn_balanced_accuracy": pb["balanced_accuracy"],
        "pose_1nn_accuracy": pb["accuracy"],
        "chance_balanced_accuracy": pb["chance_balanced_accuracy"],
        "cross_split_copies": cc["n_images"],
        "cross_split_copies_by_splits": cc["by_splits"],
        "near_duplicate_pairs": rep["near_duplicates"]["n_pairs"],
        "shared_groups": None if rep["shared_groups"] is None else rep["shared_groups"]["n_groups_shared"],
        "leakage_warning": rep["leakage_warning"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="augmented set (class folders); default: build one in --work")
    p.add_argument("--truth", type=Path, help="truth JSON of --data (copy path -> {'source': ...})")
    p.add_argument("--copies", type=int, default=3000)
    p.add_argument("--work", type=Path, default=Path("runs/bench-audit-copies"))
    p.add_argument("--originals", type=Path, default=DATA_6400)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--no-thresholds", action="store_true")
    args = p.parse_args(argv)

    from alzmri.data import audit_split
    from alzmri.data.augmented_sets import write_augmented_set
    from alzmri.data import load_images
    from alzmri.data import discover
    from alzmri.data import load_or_recover_groups
    from alzmri.data.slice_splits import stratified_split

    out: dict = {}
    if args.data is None:
        args.data, args.truth = args.work / "data", args.work / "truth.json"
        if not args.truth.is_file():
            t = time.perf_counter()
            truth = write_augmented_set(args.originals, args.data, args.copies, seed=0)
            args.truth.write_text(json.dumps(truth))
            out["build_s"] = round(time.perf_counter() - t, 1)
    truth = json.loads(args.truth.read_text())
    index0 = discover(args.originals)
    g0 = load_or_recover_groups(index0)
    brain_of = dict(zip(index0.paths, g0.group.tolist()))
    pos_of = dict(zip(index0.paths, g0.position.tolist()))
    index = discover(args.data)
    paths = index.paths
    row = {p: i for i, p in enumerate(paths)}
    is_copy = np.array([p in truth for p in paths])
    source = np.array([row[truth[p]["source"]] if p in truth else -1 for p in paths])
    brain = np.array([brain_of[truth[p]["source"] if p in truth else p] for p in paths])
    position = np.array([-1 if p in truth else pos_of[p] for p in paths])
    cached = load_images(index, 64)
    out.update(data=str(args.data), n_images=len(index), n_copies=int(is_copy.sum()), n_brains=len(np.unique(brain)))
    print(f"set: {len(index)} images, {int(is_copy.sum())} copies, {out['n_brains']} brains", file=sys.stderr)

    if not args.no_thresholds:
        out["thresholds"] = thresholds(cached.images, np.asarray(cached.readable), brain, position, is_copy, source)
        print(f"thresholds: {out['thresholds']}", file=sys.stderr)

    labels = index.labels
    orig = np.flatnonzero(~is_copy)
    sub0 = load_images(index0, 64)
    runs: dict[str, list] = {"originals_random_stratified": [], "originals_brain_split": [], "augmented_own_groups_leak": [], "augmented_honest": []}
    for seed in range(args.seeds):
        for name, splits in (("originals_random_stratified", stratified_split(index0.labels, seed=seed)),
                             ("originals_brain_split", group_split(index0.labels, g0.group, seed))):
            t = time.perf_counter()
            rep = audit_split(index0, splits, images=sub0, groups=g0)
            runs[name].append({"seed": seed, **_summary(rep, time.perf_counter() - t)})
            print(f"seed {seed} {name}: {runs[name][-1]}", file=sys.stderr)
        # the brains' split of the originals, then the copies placed two ways
        split_o = group_split(labels[orig], brain[orig], seed)
        brain_split = dict(zip(brain[orig].tolist(), split_o.tolist()))
        own = np.where(is_copy, brain.max() + 1 + np.arange(len(paths)), brain)
        leak = np.array([brain_split[b] for b in brain], dtype=object)
        leak[is_copy] = "train"  # each copy its own group: a group split sends it anywhere; put it where it leaks most
        honest = leak.copy()
        honest[is_copy] = [brain_split[b] if brain_split[b] == "train" else "" for b in brain[is_copy]]
        for name, splits, groups in (("augmented_own_groups_leak", leak, own), ("augmented_honest", honest, brain)):
            t = time.perf_counter()
            rep = audit_split(index, splits.astype(str), images=cached, groups=groups)
            runs[name].append({"seed": seed, **_summary(rep, time.perf_counter() - t)})
            print(f"seed {seed} {name}: {runs[name][-1]}", file=sys.stderr)
    out["audits"] = runs
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
