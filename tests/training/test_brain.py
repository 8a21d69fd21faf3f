"""Brain-level learning: bags, the MIL model, the feature cache, brain-level runs and CV, bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alzmri.config import load_train_config
from alzmri.data.bags import make_bags
from alzmri.errors import AlzmriError
from alzmri.models.mil import BrainClassifier

PER_CLASS_BRAINS = {0: 6, 1: 5, 2: 4, 3: 1}


@pytest.fixture(scope="module")
def brain_subset(groups_6400, tmp_path_factory):
    """16 real brains (6 / 5 / 4 / 1 per class), every 2nd slice, some brains shortened: unequal bags.

    Returns (data folder, groups CSV with the true brains and positions).
    """
    index, res = groups_6400
    root = tmp_path_factory.mktemp("brains") / "data"
    rows = []
    for label, n in PER_CLASS_BRAINS.items():
        gids = sorted({int(g) for g, y in zip(res.group, index.labels) if y == label})[:n]
        for j, g in enumerate(gids):
            members = np.flatnonzero(res.group == g)
            members = members[np.argsort(res.position[members])][::2]
            if j % 2:  # every other brain loses its last 4 slices
                members = members[:-4]
            for pos, i in enumerate(members):
                rec = index.records[i]
                dest = root / Path(rec.path).parent.name / Path(rec.path).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(index.root / rec.path, dest)
                rows.append((f"{dest.parent.name}/{dest.name}", dest.parent.name, g, pos, "original", ""))
    groups = root.parent / "groups.csv"
    with open(groups, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "class", "group", "position", "kind", "copy_of"])  # kind given: no copies searched
        w.writerows(rows)
    return root, groups


def test_make_bags_orders_by_position_and_refuses_mixed_classes():
    labels = np.array([1, 1, 1, 0, 0])
    groups = np.array([7, 7, 7, 3, 3])
    position = np.array([2, 0, 1, 1, 0])
    bags = make_bags(labels, groups, position=position, copy_of=np.array([-1, -1, -1, -1, 3]))
    assert bags.brain_ids.tolist() == [3, 7]
    assert [m.tolist() for m in bags.members] == [[3], [1, 2, 0]]  # copy 4 left out; brain 7 in position order
    assert bags.labels.tolist() == [0, 1]
    np.testing.assert_allclose(bags.positions[1], [0, 0.5, 1])
    with pytest.raises(AlzmriError, match="holds slices of 2 classes: VeryMildDemented, MildDemented"):
        make_bags(np.array([1, 2, 1]), np.array([7, 7, 7]))


def test_padding_does_not_change_a_bag_prediction():
    torch.manual_seed(0)
    for pooling in ("mean", "attention"):
        model = BrainClassifier(None, 16, 3, pooling=pooling, slice_position=True).eval()
        short = torch.randn(1, 5, 16)
        padded = torch.cat([short, torch.randn(1, 3, 16) * 100], dim=1)
        mask = torch.tensor([[True] * 5 + [False] * 3])
        pos_short = torch.linspace(0, 1, 5).unsqueeze(0)
        pos = torch.cat([pos_short, torch.zeros(1, 3)], dim=1)
        a, wa = model.forward_with_weights(short, None, pos_short)
        b, wb = model.forward_with_weights(padded, mask, pos)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(wb[0, 5:], torch.zeros(3))
        assert float(wb.sum().detach()) == pytest.approx(1.0, abs=1e-6)


def test_feature_cache_hits_and_invalidates(tmp_path):
    from alzmri.models import create_model
    from alzmri.training.features import slice_features

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 32, 32), dtype=np.uint8)
    enc = create_model("altzcnn", image_size=32)
    kw = dict(content_hash="abc", encoder_name="altzcnn", mean=0.5, std=0.5, cache_dir=tmp_path)
    first = slice_features(enc, images, **kw)
    assert not first.hit and first.features.shape[0] == 6 and first.path.is_file()
    again = slice_features(enc, images, **kw)
    assert again.hit and again.key == first.key
    np.testing.assert_array_equal(again.features, first.features)
    other_data = slice_features(enc, images, **{**kw, "content_hash": "abd"})
    assert not other_data.hit and other_data.key != first.key
    with torch.no_grad():
        next(enc.parameters()).add_(0.01)  # changed weights: a miss, never stale features
    changed = slice_features(enc, images, **kw)
    assert not changed.hit and changed.key != first.key
    assert not np.allclose(changed.features, first.features)
    # the cache file is a plain array: a pickle there is refused and recomputed, not run
    import pickle

    changed.path.write_bytes(pickle.dumps({"x": 1}))
    redo = slice_features(enc, images, **kw)
    assert not redo.hit
    np.testing.assert_allclose(redo.features, changed.features, rtol=1e-5, atol=1e-5)


def test_brain_level_model_trains_on_real_brains(brain_subset, tmp_path):
    from alzmri.training.brain_runs import train_brain

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
    preds = list(csv.DictReader(open(out / "predictions.csv")))
    sizes = {int(r["n_slices"]) for r in preds}
    assert sizes <= {16, 12}  # one row per brain, bags of unequal size
    for r in preds:
        assert float(r["p_NonDemented"]) + float(r["p_Demented"]) == pytest.approx(1.0, abs=1e-5)


def test_frozen_encoder_cv_and_ordinal_loss(brain_subset, tmp_path):
    from alzmri.training.brain_runs import train_brain_cv

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


def test_feature_cache_key_ignores_the_unused_head_and_encoders_are_seeded():
    from alzmri.models import create_model
    from alzmri.training.brain import _encoder, resolve_encoder_weights
    from alzmri.data.tasks import get_task
    from alzmri.training.features import encoder_fingerprint

    a = create_model("efficientnet_lite0", image_size=64, weights="imagenet")
    b = create_model("efficientnet_lite0", image_size=64, weights="imagenet")
    assert not torch.equal(a.head.weight, b.head.weight)  # a fresh random head in every build ...
    assert encoder_fingerprint(a) == encoder_fingerprint(b)  # ... which features never pass through
    cfg = load_train_config(None, level="brain", model="efficientnet_lite0", image_size=64)
    resolved, note = resolve_encoder_weights(cfg)
    assert resolved.model_kwargs["weights"] == "imagenet" and "ImageNet" in note  # a frozen encoder is not left random
    scratch, note = resolve_encoder_weights(load_train_config(None, level="brain", model="altzcnn", image_size=32))
    assert "weights" not in scratch.model_kwargs and "random" in note
    e1, _ = _encoder(scratch, get_task("binary"), 32)
    e2, _ = _encoder(scratch, get_task("binary"), 32)
    assert encoder_fingerprint(e1) == encoder_fingerprint(e2)  # a random encoder is seeded: the same in every build


def test_brain_settings_on_a_slice_run_are_refused():
    with pytest.raises(AlzmriError, match="pooling, slice_position: brain-level settings"):
        load_train_config(None, pooling="mean", slice_position=True)
