"""K-fold cross-validation by subject on 17 known brains: K runs and a pooled summary."""

import csv
import json

import numpy as np
import pytest

from alzmri.cli import main
from alzmri.runs import RunInfo


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


def test_every_brain_is_tested_exactly_once(cv_run):
    tested: dict[str, int] = {}
    group_of: dict[str, str] = {}
    for i in range(3):
        for r in csv.DictReader((cv_run / "cv-splits" / f"fold-{i}.csv").open()):
            group_of[r["path"]] = r["group"]
            if r["split"] == "test":
                tested[r["path"]] = tested.get(r["path"], 0) + 1
        # no brain in two splits of a fold
        splits_of: dict[str, set] = {}
        for r in csv.DictReader((cv_run / "cv-splits" / f"fold-{i}.csv").open()):
            splits_of.setdefault(r["group"], set()).add(r["split"])
        assert all(len(s) == 1 for s in splits_of.values())
    assert len(tested) == len(group_of) == 113 and set(tested.values()) == {1}


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
