"""Scores of brain-level runs: metrics.json of one run and cv.json of a cross-validation, from in-memory results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alzmri.config import load_train_config
from alzmri.data.tasks import get_task
from alzmri.evaluation.brain_runs import brain_cv_summary, brain_run_metrics
from alzmri.evaluation.task_metrics import brain_metrics
from alzmri.training.brain_runs import BrainCV, BrainRun


def _run(rng, out: Path, task, cfg, *, n_val: int, n_test: int, threshold: float, first_brain: int) -> BrainRun:
    k = task.num_classes
    y_val, y_test = np.arange(n_val) % k, rng.permutation(np.arange(n_test) % k)
    prob = lambda y: (rng.dirichlet(np.ones(k), len(y)) + np.eye(k)[y]) / 2  # noqa: E731 - informative, not perfect
    return BrainRun(out=out, cfg=cfg, info=None, task=task, split_strategy="subject", groups_source="groups.csv", warnings=["a warning"],
                    val_brains=np.arange(n_val) + 1000 + first_brain, y_val=y_val.astype(np.int64), val_prob=prob(y_val),
                    test_brains=np.arange(n_test) + first_brain, y_test=y_test.astype(np.int64), test_prob=prob(y_test),
                    threshold=threshold, seconds=12.345, best_epoch=7, epochs_run=9)


def test_metrics_json_of_one_run(tmp_path):
    task = get_task("binary")
    cfg = load_train_config(None, model="altzcnn", level="brain", task="binary")
    run = _run(np.random.default_rng(0), tmp_path / "run", task, cfg, n_val=6, n_test=10, threshold=0.4, first_brain=0)
    m = brain_run_metrics(run)
    assert list(m) == ["run", "model", "level", "task", "split", "split_strategy", "train_time_s", "best_epoch", "n_subjects", "groups_source",
                       "brain_level", "warnings"]
    assert (m["run"], m["model"], m["level"], m["task"], m["split"]) == (str(tmp_path / "run"), "altzcnn", "brain", "binary", "test")
    assert (m["train_time_s"], m["best_epoch"], m["n_subjects"], m["warnings"]) == (12.35, 7, 10, ["a warning"])
    assert m["brain_level"] == brain_metrics(run.y_test, run.test_prob, task, threshold=0.4)  # the test brains at the validation threshold
    assert m["brain_level"]["threshold"] == 0.4 and m["brain_level"]["ci_method"].startswith("percentile bootstrap over brains, stratified by class, 1000")


def test_cv_json_pools_the_folds_at_their_own_thresholds(tmp_path):
    task = get_task("binary")
    cfg = load_train_config(None, model="baseline:atrophy", task="binary", folds=2, seed=3)
    rng = np.random.default_rng(1)
    folds = [_run(rng, tmp_path / f"fold-{i}", task, cfg, n_val=6, n_test=8 + i, threshold=t, first_brain=100 * i) for i, t in enumerate((0.3, 0.6))]
    cv = BrainCV(out=tmp_path, cfg=cfg, task=task, data_root=tmp_path, folds=folds, feature_seconds=0.0, wall_seconds=41.236, notes=["a note"])
    s = brain_cv_summary(cv)
    assert list(s) == ["model", "level", "task", "folds", "seed", "pooling", "slice_position", "frozen_encoder", "loss", "n_brains", "validation_mean",
                       "feature_seconds", "wall_time_s", "pooled", "per_fold", "notes"]
    assert (s["model"], s["task"], s["folds"], s["seed"], s["pooling"], s["n_brains"], s["wall_time_s"], s["notes"]) == (
        "baseline:atrophy", "binary", 2, 3, None, 17, 41.24, ["a note"])
    y = np.concatenate([f.y_test for f in folds])
    p = np.concatenate([f.test_prob for f in folds])
    assert s["pooled"] == brain_metrics(y, p, task, threshold=np.repeat([0.3, 0.6], [8, 9]))
    assert s["pooled"]["threshold"] == {"min": 0.3, "max": 0.6, "per": "fold"}
    row = s["per_fold"][1]
    fm = brain_metrics(folds[1].y_test, folds[1].test_prob, task, threshold=0.6, n_boot=200)
    vm = brain_metrics(folds[1].y_val, folds[1].val_prob, task, threshold=0.6, n_boot=1)
    assert (row["fold"], row["n_brains"], row["n_val_brains"], row["threshold"], row["train_time_s"]) == (1, 9, 6, 0.6, 12.35)
    assert row["roc_auc"] == fm["roc_auc"] and row["sensitivity"] == fm["sensitivity"] and "ci" not in row and "class_counts" not in row
    assert row["validation"] == {"roc_auc": vm["roc_auc"], "balanced_accuracy": vm["balanced_accuracy"]}  # a binary task has no kappa
    v = [f["validation"]["roc_auc"] for f in s["per_fold"]]
    assert s["validation_mean"]["roc_auc"] == pytest.approx(np.mean(v), abs=1e-6)
    assert s["validation_mean"]["quadratic_weighted_kappa"] is None
