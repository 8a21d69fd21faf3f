"""compare --folds K: two rows on real brains, same folds, pooled and per-fold metrics, paired statistics, resume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from _helpers import write_brain_subset
from alzmri.comparison import compare, load_compare_config
from alzmri.errors import AlzmriError

PER_CLASS_BRAINS = {0: 5, 1: 4, 2: 4, 3: 2}


@pytest.fixture(scope="module")
def brains(groups_6400, tmp_path_factory):
    """15 real brains (5 / 4 / 4 / 2 per class), every 4th slice (8 per brain), with their true groups CSV."""
    return write_brain_subset(groups_6400, tmp_path_factory.mktemp("cvbrains") / "data", PER_CLASS_BRAINS, stride=4)


def _config(tmp_path: Path, data: Path, groups: Path, **top) -> Path:
    cfg = {
        "data": str(data), "groups": str(groups), "out": str(tmp_path / "cmp"), "seed": 0, "task": "binary",
        "split_strategy": "subject", "folds": 2, "title": "two rows, two folds",
        "defaults": {"image_size": 32, "batch_size": 16, "precision": "32", "epochs": 4, "patience": 1, "augment": False},
        "models": [
            {"name": "altzcnn", "model": "altzcnn", "lr": 1.0e-3, "model_kwargs": {"init": "he"}},
            {"name": "atrophy", "model": "baseline:atrophy"},
        ],
        **top,
    }
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.slow
def test_two_rows_two_folds_pooled_paired_report_and_resume(brains, tmp_path):
    data, groups = brains
    path = _config(tmp_path, data, groups)
    lines: list[str] = []
    out = compare(path, progress=False, isolate=False, echo=lines.append)
    summary = json.loads((out / "comparison.json").read_text())
    rows = {r["name"]: r for r in summary["rows"]}
    assert list(rows) == ["altzcnn", "atrophy"]
    n_brains = sum(PER_CLASS_BRAINS.values())

    # same folds for both rows; every brain tested once per row
    for name in rows:
        with open(out / "runs" / name / "oof_brains.csv") as f:
            oof = list(csv.DictReader(f))
        assert len(oof) == n_brains and len({r["brain"] for r in oof}) == n_brains
        assert sorted({r["fold"] for r in oof}) == ["0", "1"]
        for i in range(2):
            fold_manifest = (out / "runs" / name / f"fold-{i}" / "manifest.csv").read_text()
            assert fold_manifest.splitlines()[1:] == (out / "folds" / f"fold-{i}.csv").read_text().splitlines()[1:]
        assert len(rows[name]["per_fold"]) == 2
        assert sum(f["n_test_brains"] for f in rows[name]["per_fold"]) == n_brains
        assert rows[name]["pooled"]["n_brains"] == n_brains
        assert rows[name]["pooled"]["ci"]["roc_auc"] is not None

    # the pooled ROC-AUC is the one of the out-of-fold brains, recomputed here
    from sklearn.metrics import roc_auc_score

    for name in rows:
        with open(out / "runs" / name / "oof_brains.csv") as f:
            oof = list(csv.DictReader(f))
        y = [r["class"] == "Demented" for r in oof]
        p = [1 - float(r["p_NonDemented"]) for r in oof]  # P(demented), as alzmri scores it
        assert rows[name]["pooled"]["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)

    # paired statistics against the reference (the first row), a verdict and P(best) per row
    res = summary["result"]
    assert res["reference"] == "altzcnn" and res["metrics"] == ["roc_auc"]
    paired = res["paired"]["roc_auc"]["rows"]
    assert paired["altzcnn"]["verdict"] == "reference" and paired["altzcnn"]["difference"] == 0.0
    assert paired["atrophy"]["verdict"] in ("better", "worse", "not distinguishable")
    lo, hi = paired["atrophy"]["difference_ci"]
    assert lo <= paired["atrophy"]["difference"] <= hi
    assert (paired["atrophy"]["verdict"] == "not distinguishable") == (lo <= 0 <= hi)
    assert paired["altzcnn"]["p_best"] + paired["atrophy"]["p_best"] == pytest.approx(1.0)

    # the report: the sentence computed from those numbers, the forest plot, per-fold table, early-stopping epochs
    report = (out / "report.md").read_text()
    assert res["sentence"] in report and "reference row altzcnn" in res["sentence"]
    verdict_words = "no row is distinguishable" if paired["atrophy"]["verdict"] == "not distinguishable" else f"atrophy is {paired['atrophy']['verdict']}"
    assert verdict_words in res["sentence"]
    assert (out / "figures" / "forest_roc_auc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "figures" / "pareto.png").is_file() and "## Per fold" in report
    assert "data:image/png;base64," in (out / "report.html").read_text()
    for f in rows["altzcnn"]["per_fold"]:  # early stopping: history.csv has the epochs run, stopping patience epochs after the best
        hist = list(csv.DictReader(open(out / "runs" / "altzcnn" / f"fold-{f['fold']}" / "history.csv")))
        assert len(hist) == f["epochs_run"]
        assert f["epochs_run"] == 4 or f["epochs_run"] == f["best_epoch"] + 1
        scores = [float(h["val_balanced_accuracy"]) for h in hist]
        assert max(scores) == scores[f["best_epoch"] - 1]
    assert f"{rows['altzcnn']['per_fold'][0]['epochs_run']} ({rows['altzcnn']['per_fold'][0]['best_epoch']})" in report

    # a resumed comparison retrains nothing; a deleted fold is trained again, the other kept
    stamp = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    shutil.rmtree(out / "runs" / "altzcnn" / "fold-1")
    lines.clear()
    compare(path, progress=False, isolate=False, echo=lines.append)
    assert any("atrophy" in line and "not retrained" in line for line in lines)
    assert any("altzcnn" in line and "training 1 of 2 folds" in line for line in lines)
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    assert all(after[p] == t for p, t in stamp.items() if "fold-1" not in str(p) or "atrophy" in str(p))
    assert json.loads((out / "comparison.json").read_text())["result"]["reference"] == "altzcnn"


def test_cv_config_errors(brains, tmp_path):
    data, groups = brains
    with pytest.raises(AlzmriError, match="reference 'nope' is not a row"):
        load_compare_config(_config(tmp_path, data, groups, reference="nope"))
    with pytest.raises(AlzmriError, match="split_strategy: subject"):
        compare(load_compare_config(_config(tmp_path, data, groups, split_strategy="stratified")), progress=False, isolate=False, echo=None)
    cfg = load_compare_config(_config(tmp_path, data, groups), folds=3)
    assert cfg.folds == 3


def test_brain_rows_on_a_fold_manifest_keep_slice_positions(brains, tmp_path, capfd):
    """A manifest stores groups, not positions: brain-level rows must not fall back to file order.

    The Kaggle release numbers its files differently per class, so file order inside a brain
    carries the class (the atrophy baseline scored ROC-AUC 0.99 on file-order bins, 0.76 on
    the slices' true positions).
    """
    from alzmri.config import TrainConfig
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import load_manifest, write_manifest
    from alzmri.data.subjects import resolve_subjects
    from alzmri.training.brain import load_brain_data

    data, groups = brains
    index = discover(data)
    subj = resolve_subjects(index, groups_file=groups)
    splits = np.array(["train", "val", "test"])[subj.group % 3]
    path = tmp_path / "fold.csv"
    write_manifest(path, index, splits, groups=subj.group, strategy="subject-cv (fold 1 of 3)")
    cfg = TrainConfig(model="baseline:atrophy", data=data, groups=groups, split_strategy="subject")
    truth = load_brain_data(cfg, image_size=32)
    got = load_brain_data(cfg.model_copy(update={"split": path}), image_size=32, manifest=load_manifest(path, index))
    assert all(np.array_equal(a, b) for a, b in zip(truth.bags.members, got.bags.members))  # the groups CSV's positions
    # without a groups CSV, positions come from the brains recovered from the pixels when they are the manifest's;
    # on this subset (every 4th slice) recovery finds other groups: the fallback to file order is said, not silent
    load_brain_data(cfg.model_copy(update={"split": path, "groups": None}), image_size=32, manifest=load_manifest(path, index))
    assert "ordered by file name" in capfd.readouterr().err
    assert any(not np.array_equal(m, np.sort(m)) for m in truth.bags.members)  # file order differs from position order here


def test_shared_slice_defaults_skip_baselines_and_brain_rows(brains, tmp_path):
    data, groups = brains
    cfg = load_compare_config(_config(tmp_path, data, groups, defaults={"augment": True, "image_size": 32}))
    aug = {e.name: c.augment for e, c in cfg.train_configs()}
    assert aug == {"altzcnn": True, "atrophy": False}


@pytest.mark.slow
def test_cli_folds_option_with_baselines(brains, tmp_path, capsys):
    """alzmri compare --folds K from the command line: the file's one split becomes K brain folds; rows in worker processes."""
    from alzmri.cli import main

    data, groups = brains
    path = _config(tmp_path, data, groups, folds=None, task="4class", reference="pixels",
                   models=[{"name": "atrophy", "model": "baseline:atrophy"}, {"name": "pixels", "model": "baseline:pixels"}])
    assert main(["compare", "--config", str(path), "--folds", "3", "--no-progress"]) == 0
    out = tmp_path / "cmp"
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["folds"] == 3 and sorted(p.name for p in (out / "folds").iterdir()) == ["fold-0.csv", "fold-1.csv", "fold-2.csv"]
    res = summary["result"]
    assert res["reference"] == "pixels" and res["metrics"] == ["balanced_accuracy", "quadratic_weighted_kappa"]
    assert res["paired"]["balanced_accuracy"]["rows"]["pixels"]["verdict"] == "reference"
    printed = capsys.readouterr().out
    assert "atrophy" in printed and "P(best)" in printed
    assert main(["compare", "--config", str(path), "--folds", "2", "--no-progress"]) == 2  # same folder, other folds: one line, nothing moved
    assert "split with other settings" in capsys.readouterr().err
    assert main(["compare", "--config", str(path), "--no-progress"]) == 2  # a one-split run into the cross-validated folder
    assert "folds: 3" in capsys.readouterr().err
    assert len(list((out / "runs" / "atrophy").glob("fold-*"))) == 3 and not (out / "manifest.csv").exists()


@pytest.mark.slow
def test_one_split_comparison_takes_brain_level_and_baseline_rows(brains, tmp_path):
    """Without folds, a brain-level row and a baseline sit in the one-split table with their brain-level metrics."""
    data, groups = brains
    path = _config(tmp_path, data, groups, folds=None, task="binary", fractions=[0.5, 0.2, 0.3],
                   models=[{"name": "atrophy", "model": "baseline:atrophy"},
                           {"name": "brain-mean", "model": "efficientnet_lite0", "level": "brain", "frozen_encoder": True, "pooling": "mean",
                            "epochs": 3, "model_kwargs": {"weights": "imagenet"}}])
    out = compare(path, progress=False, isolate=False, echo=None)
    rows = {r["name"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    assert rows["atrophy"]["level"] == "baseline" and rows["brain-mean"]["level"] == "brain"
    for r in rows.values():
        assert r["brain_level"]["roc_auc"] is not None and r["flops_per_image"] is None
    assert "brain ROC-AUC" in (out / "report.md").read_text()


def test_convergence_settings_checked_before_anything_trains(brains, tmp_path):
    data, groups = brains
    bad = _config(tmp_path, data, groups, models=[{"name": "altz", "model": "altzcnn", "loss": "ordinal", "class_weight": "balanced"}])
    with pytest.raises(AlzmriError, match="models\\[0\\] 'altz'.*CORN"):
        load_compare_config(bad)
    with pytest.raises(AlzmriError, match="min_epochs \\(9\\) is more than epochs \\(4\\)"):
        load_compare_config(_config(tmp_path, data, groups, models=[{"name": "altz", "model": "altzcnn", "min_epochs": 9}]))
    assert not (tmp_path / "cmp").exists()
