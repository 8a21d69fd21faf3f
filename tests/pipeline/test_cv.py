"""K-fold cross-validation by subject end to end (alzmri train --folds) on 17 known brains: K runs and a pooled summary.

How the folds are cut: tests/training/test_cv.py; how cv.json is computed: tests/evaluation/test_cv.py.
"""

import json

import numpy as np
import pytest

from alzmri.cli import main
from alzmri.runs import RunInfo

pytestmark = pytest.mark.slow  # every test reads a 3-fold cross-validation trained once in the module (over 4 s)


@pytest.fixture(scope="module")
def cv_run(brains_176, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "altz-cv"
    code = main(["train", "--data", str(brains_176), "--out", str(out), "--folds", "3", "--epochs", "1", "--image-size", "32",
                 "--batch-size", "32", "--seed", "0", "--no-progress"])
    assert code == 0
    return out


def test_folds_are_ordinary_runs_with_their_own_split(cv_run):
    for i in range(3):
        run = cv_run / f"fold-{i}"
        assert (run / "metrics.json").is_file() and (run / "model.safetensors").is_file()
        info = RunInfo.load(run)
        assert info.split_strategy == f"subject-cv (fold {i + 1} of 3)"
        assert (run / "manifest.csv").read_text() == (cv_run / "cv-splits" / f"fold-{i}.csv").read_text()
        m = json.loads((run / "metrics.json").read_text())
        assert m["split_strategy"] == info.split_strategy and m["subject_level"] is not None


def test_fold_manifests_are_the_folds_training_cuts(cv_run):
    from alzmri.config import load_train_config
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import load_manifest
    from alzmri.training.cv import make_fold_splits

    cfg = load_train_config(cv_run / "config.yaml")  # the settings the cross-validation saved
    assert cfg.folds == 3 and cfg.seed == 0
    index = discover(cfg.data)
    folds = make_fold_splits(cfg, index, 32)
    tested = np.zeros(len(index), int)
    for i, s in enumerate(folds.splits):
        m = load_manifest(cv_run / "cv-splits" / f"fold-{i}.csv", index)
        assert np.array_equal(m.splits, s) and m.strategy == f"subject-cv (fold {i + 1} of 3)"
        assert np.array_equal(m.groups, folds.groups)
        tested += s == "test"
    assert len(index) == 113 and (tested == 1).all()


def test_cv_summary(cv_run):
    cv = json.loads((cv_run / "cv.json").read_text())
    assert cv["strategy"] == "subject-cv" and cv["folds"] == 3 and len(cv["per_fold"]) == 3
    ba = [f["slice_level"]["balanced_accuracy"] for f in cv["per_fold"]]
    ms = cv["mean_std"]["slice_level"]["balanced_accuracy"]
    assert ms["mean"] == pytest.approx(np.mean(ba)) and ms["std"] == pytest.approx(np.std(ba, ddof=1)) and ms["n"] == 3
    pooled = cv["pooled"]
    assert pooled["n_samples"] == pooled["n_unique_images"] == 113
    assert pooled["subject_level"]["n_subjects"] == 17
    lo, hi = pooled["confidence_intervals"]["balanced_accuracy"]
    assert lo <= pooled["balanced_accuracy"] <= hi
    assert any("ModerateDemented has 2 subjects" in w for w in cv["warnings"])
