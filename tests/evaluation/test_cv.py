"""The cross-validation summary (cv.json) of fold folders built here: per-fold metrics, mean and spread, pooled out-of-fold."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from alzmri.data.classes import CLASS_NAMES
from alzmri.evaluation.aggregation import subject_level_metrics
from alzmri.evaluation.cv import SUMMARY_METRICS, summarize_cv
from alzmri.evaluation.metrics import classification_metrics


def _fold(out, i, y, p, groups, *, warnings=(), run_warnings=(), with_metrics=True):
    """A fold folder as an evaluated run leaves it: run.json, metrics.json, predictions.csv (as write_scores writes)."""
    run = out / f"fold-{i}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"model": "altzcnn", "split_counts": {"train": 20, "val": 4, "test": len(y)},
                                              "warnings": list(run_warnings)}))
    if not with_metrics:
        return run
    m = classification_metrics(y, p, class_names=CLASS_NAMES)
    m["subject_level"] = subject_level_metrics(y, p, groups, class_names=CLASS_NAMES, n_boot=20) if groups is not None else None
    m["warnings"] = list(warnings)
    (run / "metrics.json").write_text(json.dumps(m))
    with (run / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "class", *(["group"] if groups is not None else []), "predicted", *(f"p_{c}" for c in CLASS_NAMES)])
        for j, (yy, pp) in enumerate(zip(y, p)):
            g = [groups[j]] if groups is not None else []
            w.writerow([f"{CLASS_NAMES[yy]}/fold{i}_{j}.jpg", CLASS_NAMES[yy], *g, CLASS_NAMES[int(np.argmax(pp))], *(f"{v:.6f}" for v in pp)])
    return run


def _predictions(seed, n=12):
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(4), n // 4)
    z = rng.normal(size=(n, 4))
    z[np.arange(n), y] += 1.5
    p = np.round(np.exp(z) / np.exp(z).sum(1, keepdims=True), 6)
    p[:, -1] = 1 - p[:, :-1].sum(1)  # exact sums after rounding, as the file holds them
    groups = np.array([f"s{seed}-{y[j]}-{j // 8}" for j in range(n)])  # 8 subjects of one class each: 2 slices, or 1
    return y, p, groups


@pytest.fixture
def two_folds(tmp_path):
    folds = [_predictions(0), _predictions(1)]
    _fold(tmp_path, 0, *folds[0], warnings=["a fold warning"], run_warnings=["a run warning"])
    _fold(tmp_path, 1, *folds[1], warnings=["a fold warning", "another"])
    return tmp_path, folds


def test_summary_of_two_folds(two_folds):
    out, folds = two_folds
    cv = summarize_cv(out, k=2, seed=7, groups_source="manifest", n_boot=50, warnings=["unreliable groups"], task="4class")
    assert (cv["strategy"], cv["task"], cv["folds"], cv["seed"], cv["groups_source"]) == ("subject-cv", "4class", 2, 7, "manifest")
    assert [f["fold"] for f in cv["per_fold"]] == [0, 1] and cv["per_fold"][1]["run"] == str(out / "fold-1")
    assert cv["per_fold"][0]["split_counts"] == {"train": 20, "val": 4, "test": 12}
    per_fold = [classification_metrics(y, p, class_names=CLASS_NAMES) for y, p, _ in folds]
    for entry, ref in zip(cv["per_fold"], per_fold):
        assert entry["slice_level"] == {k: ref[k] for k in SUMMARY_METRICS}
        assert entry["subject_level"]["balanced_accuracy"] is not None
    ba = [ref["balanced_accuracy"] for ref in per_fold]
    ms = cv["mean_std"]["slice_level"]["balanced_accuracy"]
    assert ms == {"mean": pytest.approx(np.mean(ba)), "std": pytest.approx(np.std(ba, ddof=1)), "n": 2}
    assert cv["mean_std"]["subject_level"]["accuracy"]["n"] == 2
    # pooled: every test prediction of every fold scored together (as read back from the files)
    y = np.concatenate([f[0] for f in folds])
    p = np.concatenate([f[1] for f in folds])
    pooled = cv["pooled"]
    ref = classification_metrics(y, p, class_names=CLASS_NAMES)
    assert pooled["n_samples"] == pooled["n_unique_images"] == 24
    assert pooled["balanced_accuracy"] == pytest.approx(ref["balanced_accuracy"]) and pooled["confusion_matrix"] == ref["confusion_matrix"]
    assert pooled["subject_level"]["n_subjects"] == 16 and pooled["confidence_intervals"]["n_groups"] == 16
    lo, hi = pooled["confidence_intervals"]["balanced_accuracy"]
    assert lo <= pooled["balanced_accuracy"] <= hi
    # the whole cross-validation's warnings first, then each fold's, each once
    assert cv["warnings"] == ["unreliable groups", "a fold warning", "a run warning", "another"]


def test_a_fold_without_metrics_gives_no_pooled_summary(tmp_path):
    _fold(tmp_path, 0, *_predictions(0))
    _fold(tmp_path, 1, *_predictions(1), with_metrics=False, run_warnings=["stopped"])
    cv = summarize_cv(tmp_path, k=2, seed=0)
    assert "mean_std" not in cv and "pooled" not in cv
    assert "slice_level" in cv["per_fold"][0] and "slice_level" not in cv["per_fold"][1]
    assert cv["warnings"] == ["stopped"] and cv["groups_source"] == ""


def test_folds_without_subjects_have_no_intervals(tmp_path):
    for i in range(2):
        y, p, _ = _predictions(i)
        _fold(tmp_path, i, y, p, None)
    cv = summarize_cv(tmp_path, k=2, seed=0)
    assert cv["mean_std"]["subject_level"] is None and cv["mean_std"]["slice_level"]["accuracy"]["n"] == 2
    assert cv["pooled"]["n_samples"] == 24
    assert "confidence_intervals" not in cv["pooled"] and "subject_level" not in cv["pooled"]
