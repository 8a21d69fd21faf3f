"""Brain-level runs end to end: fit, score, write (run folders, cross-validation, the CLI, bad input)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

from _helpers import write_brain_subset
from alzmri.config import load_train_config
from alzmri.pipeline.brains import train_brain, train_brain_cv

PER_CLASS_BRAINS = {0: 6, 1: 5, 2: 4, 3: 1}


@pytest.fixture(scope="module")
def brain_subset(groups_6400, tmp_path_factory):
    """16 real brains (6 / 5 / 4 / 1 per class), every 2nd slice, some brains shortened: unequal bags.

    Returns (data folder, groups CSV with the true brains and positions).
    """
    return write_brain_subset(groups_6400, tmp_path_factory.mktemp("brains") / "data", PER_CLASS_BRAINS, stride=2, shorten_every_other=4)


@pytest.mark.slow
def test_brain_level_model_trains_on_real_brains(brain_subset, tmp_path):
    data, groups = brain_subset
    cfg = load_train_config(None, data=data, groups=groups, out=tmp_path / "run", model="altzcnn", image_size=32, task="binary", level="brain",
                            frozen_encoder=False, epochs=8, patience=8, lr=1e-3, batch_size=4, seed=0, fractions=(0.6, 0.2, 0.2))
    out = train_brain(cfg, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["level"] == "brain" and info["task"] == "binary" and info["class_names"] == ["NonDemented", "Demented"]
    hist = list(csv.DictReader(open(out / "history.csv")))
    losses = [float(r["train_loss"]) for r in hist if r["train_loss"]]
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]  # the loss falls
    brain = json.loads((out / "brain.json").read_text())
    assert brain["kind"] == "mil" and 0.0 <= brain["threshold"] <= 1.0
    m = json.loads((out / "metrics.json").read_text())["brain_level"]
    assert m["task"] == "binary" and m["n_brains"] >= 2 and set(m["ci"]) >= {"roc_auc", "sensitivity", "specificity"}
    assert m["threshold"] == brain["threshold"]  # test brains judged at the threshold chosen on validation brains
    assert (out / "metrics.json").stat().st_mtime_ns >= (out / "run.json").stat().st_mtime_ns  # run.json first: a run without metrics is unfinished
    preds = list(csv.DictReader(open(out / "predictions.csv")))
    sizes = {int(r["n_slices"]) for r in preds}
    assert sizes <= {16, 12}  # one row per brain, bags of unequal size
    for r in preds:
        assert float(r["p_NonDemented"]) + float(r["p_Demented"]) == pytest.approx(1.0, abs=1e-5)


def test_frozen_encoder_cv_and_ordinal_loss(brain_subset, tmp_path):
    data, groups = brain_subset
    cfg = load_train_config(None, data=data, groups=groups, out=tmp_path / "cv", model="altzcnn", image_size=32, task="4class", loss="ordinal",
                            level="brain", frozen_encoder=True, epochs=20, patience=20, folds=2, seed=0)
    out = train_brain_cv(cfg, progress=False)
    cv = json.loads((out / "cv.json").read_text())
    assert cv["n_brains"] == 16 and len(cv["per_fold"]) == 2  # every brain tested once
    assert {"quadratic_weighted_kappa", "mae_classes", "balanced_accuracy"} <= set(cv["pooled"])
    rows = list(csv.DictReader(open(out / "oof_predictions.csv")))
    assert len(rows) == len({r["brain"] for r in rows}) == len({r["group"] for r in csv.DictReader(open(groups))})
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")) == pytest.approx(1, abs=1e-5)
    assert any("computed" in n for n in cv["notes"])  # features computed once for both folds


@pytest.mark.slow
def test_baseline_cv_through_train_brain_scores_each_fold_before_the_next(brain_subset, tmp_path):
    from alzmri.errors import AlzmriError

    data, groups = brain_subset
    cfg = load_train_config(None, data=data, groups=groups, out=tmp_path / "cv", model="baseline:atrophy", task="binary", folds=2, seed=0)
    with pytest.raises(AlzmriError, match="--resume continues slice-level runs"):
        train_brain(cfg.model_copy(update={"resume": True}), progress=False)
    out = train_brain(cfg, progress=False)  # folds given: the cross-validation
    cv = json.loads((out / "cv.json").read_text())
    assert cv["folds"] == 2 and cv["n_brains"] == 16 and cv["pooling"] is None and cv["pooled"]["n_brains"] == 16
    oof = list(csv.DictReader(open(out / "oof_predictions.csv")))
    for i, f in enumerate(cv["per_fold"]):
        fold = out / f"fold-{i}"
        assert f["threshold"] == json.loads((fold / "brain.json").read_text())["threshold"]
        assert json.loads((fold / "metrics.json").read_text())["brain_level"]["threshold"] == f["threshold"]
        assert {float(r["threshold"]) for r in oof if r["fold"] == str(i)} == {round(f["threshold"], 6)}
        assert sum(r["fold"] == str(i) for r in oof) == f["n_brains"]
    # fold 0 is scored (metrics.json) before fold 1 trains
    assert (out / "fold-0" / "metrics.json").stat().st_mtime_ns <= (out / "fold-1" / "run.json").stat().st_mtime_ns
    assert yaml.safe_load((out / "config.yaml").read_text())["folds"] == 2


@pytest.mark.slow
def test_baseline_run_via_cli(brain_subset, tmp_path):
    data, groups = brain_subset
    out = tmp_path / "atrophy"
    r = subprocess.run([sys.executable, "-m", "alzmri", "train", "--model", "baseline:atrophy", "--data", str(data), "--groups", str(groups),
                        "--task", "binary", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "baseline" / "baseline.json").is_file() and not list(out.rglob("*.pkl"))
    assert json.loads((out / "run.json").read_text())["level"] == "brain"
    assert "roc_auc" in json.loads((out / "metrics.json").read_text())["brain_level"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "task: **binary**" in card and "no slice-level metrics" in card and "Brain-level metrics" in card


@pytest.mark.slow
def test_bad_brain_input_is_one_line(brain_subset, tmp_path):
    data, groups = brain_subset
    # a groups file that puts two brains of different classes into one bag
    rows = list(csv.DictReader(open(groups)))
    first_mild = next(r for r in rows if r["class"] == "Mild_Demented")
    for r in rows:
        if r["group"] == first_mild["group"]:
            r["group"] = rows[0]["group"]
    bad = tmp_path / "mixed.csv"
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = subprocess.run([sys.executable, "-m", "alzmri", "train", "--level", "brain", "--model", "altzcnn", "--image-size", "32", "--data", str(data),
                        "--finetune-encoder", "--groups", str(bad), "--out", str(tmp_path / "x"), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "classes" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert str(bad) in lines[0] and "NonDemented" in lines[0] and "MildDemented" in lines[0]  # names the groups file and the classes
    r = subprocess.run([sys.executable, "-m", "alzmri", "train", "--level", "brain", "--task", "5class", "--data", str(data), "--out", str(tmp_path / "y")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "task" in r.stderr
