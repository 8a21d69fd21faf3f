"""A short real training run on a subset of alzheimer-mri-6400, then evaluate and predict."""

import csv
import json

import numpy as np
import pytest

from alzmri.config import load_train_config
from alzmri.data.classes import CLASS_NAMES
from alzmri.pipeline import evaluate as evaluate_run
from alzmri.inference.predict import predict_files
from alzmri.runs import RunInfo, load_model
from alzmri.pipeline import train


@pytest.fixture(scope="module")
def run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "altz"
    # dropout off so that 84 training slices show learning within a few epochs
    cfg = load_train_config(data=small_data, out=out, epochs=10, batch_size=8, lr=1e-4, image_size=32, augment=False, seed=0,
                            model_kwargs={"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"})
    return train(cfg, progress=False)


@pytest.mark.slow
def test_run_folder_holds_every_artifact(run):
    for name in ("config.yaml", "manifest.csv", "environment.json", "run.json", "model.safetensors", "history.csv",
                 "metrics.json", "predictions.csv", "confusion_matrix.png", "training_curves.png", "roc_curves.png", "checkpoints/best.ckpt"):
        assert (run / name).is_file(), name
    info = RunInfo.load(run)
    assert info.parameters == sum(p.numel() for p in load_model(run)[0].parameters())
    assert info.size_mb == pytest.approx(info.parameters * 4 / 1e6, rel=1e-3)
    assert info.train_time_s > 0 and info.peak_memory_mb > 50
    # split by subject (the default): whole recovered brains, about 70/15/15
    assert info.split_strategy == "subject" and info.split_seed == 0
    assert info.groups_source.startswith("recovered (images")
    assert sum(info.split_counts.values()) == 120 and min(info.split_counts.values()) > 0
    assert info.split_counts["train"] > info.split_counts["val"]
    assert isinstance(info.warnings, list) and info.augmented_train_images == 0
    env = json.loads((run / "environment.json").read_text())
    assert env["packages"]["torch"]


@pytest.mark.slow
def test_training_loss_falls(run):
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 10
    losses = [float(r["train_loss"]) for r in rows]
    assert min(losses[-2:]) < 0.8 * losses[0], losses


@pytest.mark.slow
def test_manifest_records_groups_and_no_brain_crosses_splits(run):
    rows = list(csv.DictReader((run / "manifest.csv").open()))
    # kind and copy_of follow only when recovery took some images for augmented copies
    assert list(rows[0]) in (["path", "class", "split", "sha256", "group", "strategy"],
                             ["path", "class", "split", "sha256", "group", "strategy", "kind", "copy_of"])
    assert {r["strategy"] for r in rows} == {"subject"}
    split_of: dict[str, set] = {}
    for r in rows:
        if r["split"]:  # an empty split: an augmented copy left out of validation/test
            split_of.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())


@pytest.mark.slow
def test_metrics_match_the_saved_predictions(run):
    m = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    assert m["n_samples"] == len(rows) == RunInfo.load(run).split_counts["test"]
    assert m["split_strategy"] == "subject"
    y = np.array([CLASS_NAMES.index(r["class"]) for r in rows])
    p = np.array([CLASS_NAMES.index(r["predicted"]) for r in rows])
    cm = np.zeros((4, 4), int)
    for t, q in zip(y, p):
        cm[t, q] += 1
    assert m["confusion_matrix"] == cm.tolist()
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    recalls = [cm[i, i] / cm[i].sum() for i in range(4) if cm[i].sum()]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    # evaluating again from the run folder gives the same numbers
    again = evaluate_run(run)
    assert again["confusion_matrix"] == m["confusion_matrix"]
    assert again["roc_auc_ovr_macro"] == pytest.approx(m["roc_auc_ovr_macro"])
    assert again["confidence_intervals"] == m["confidence_intervals"]


@pytest.mark.slow
def test_subject_level_metrics_and_intervals(run):
    from alzmri.evaluation.aggregation import aggregate_by_group
    from alzmri.evaluation.metrics import classification_metrics

    m = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    y = np.array([CLASS_NAMES.index(r["class"]) for r in rows])
    p = np.array([[float(r[f"p_{c}"]) for c in CLASS_NAMES] for r in rows])
    g = np.array([int(r["group"]) for r in rows])
    ci = m["confidence_intervals"]
    assert ci["n_groups"] == m["n_subjects"] == len(set(g)) and ci["n_boot"] == 1000
    lo, hi = ci["balanced_accuracy"]
    assert lo <= m["balanced_accuracy"] <= hi
    sub = m["subject_level"]
    _, yg, pg = aggregate_by_group(y, p, g)
    assert sub["n_subjects"] == len(yg)
    assert sub["balanced_accuracy"] == pytest.approx(classification_metrics(yg, pg)["balanced_accuracy"])
    assert sub["confidence_intervals"]["n_groups"] == len(yg)
    assert isinstance(m["warnings"], list)


@pytest.mark.slow
def test_predict_real_images_matches_evaluation(run, small_data):
    rows = list(csv.DictReader((run / "predictions.csv").open()))[:5]
    results = predict_files(run, [small_data / r["path"] for r in rows])
    for r, res in zip(rows, results):
        probs = np.array(list(res["probabilities"].values()))
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert res["predicted_class"] == r["predicted"]
        assert probs == pytest.approx([float(r[f"p_{c}"]) for c in CLASS_NAMES], abs=1e-5)


@pytest.mark.slow
def test_reloaded_model_is_deterministic(run, small_data):
    model, info = load_model(run)
    f = sorted((small_data / "Mild_Demented").iterdir())[0]
    a = predict_files(run, [f])[0]["probabilities"]
    b = predict_files(run, [f])[0]["probabilities"]
    assert a == b and info.image_size == 32


@pytest.mark.slow
def test_reused_manifest_gives_identical_split(run, small_data, tmp_path):
    cfg = load_train_config(data=small_data, out=tmp_path / "second", epochs=1, batch_size=16, image_size=32, augment=False,
                            split=run / "manifest.csv", seed=123, evaluate=False)
    second = train(cfg, progress=False)
    assert (second / "manifest.csv").read_text() == (run / "manifest.csv").read_text()


@pytest.mark.slow
def test_cli_evaluate_and_predict_on_the_run(run, small_data, capsys):
    from alzmri.cli import main

    assert main(["evaluate", str(run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "test" and m["n_samples"] == RunInfo.load(run).split_counts["test"] and 0 <= m["balanced_accuracy"] <= 1
    assert main(["evaluate", str(run)]) == 0
    text = capsys.readouterr().out
    assert "split strategy: subject" in text and "subject-level" in text and "95% CI" in text
    img = sorted((small_data / "Moderate_Demented").iterdir())[0]
    assert main(["predict", str(run), str(img), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["path"] == str(img) and res[0]["predicted_class"] in CLASS_NAMES
    assert main(["predict", str(run), str(img)]) == 0
    assert "predicted" in capsys.readouterr().out


def test_balance_augment_adds_train_copies_only(small_data, tmp_path):
    base = dict(data=small_data, epochs=1, batch_size=32, image_size=32, seed=1, evaluate=False, split_strategy="stratified")
    # unequal training classes: reuse a manifest that leaves most ModerateDemented training images out
    first = train(load_train_config(out=tmp_path / "plain", **base), progress=False)
    rows = list(csv.DictReader((first / "manifest.csv").open()))
    mod_train = [r for r in rows if r["class"] == "ModerateDemented" and r["split"] == "train"]
    dropped = {r["path"] for r in mod_train[5:]}
    keep = [r for r in rows if r["path"] not in dropped]
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(keep)
    run = train(load_train_config(out=tmp_path / "balanced", split=manifest, balance_augment=True, **base), progress=False)
    info = RunInfo.load(run)
    train_counts = {c: sum(1 for r in keep if r["class"] == c and r["split"] == "train") for c in CLASS_NAMES}
    target = max(train_counts.values())
    assert info.balance_augment
    assert info.augmented_per_class == {c: target - n for c, n in train_counts.items() if n < target}
    assert info.augmented_train_images == sum(target - n for n in train_counts.values())
    # val/test (and the manifest) are exactly the reused ones; the copies live in memory only
    assert info.split_counts == {s: sum(1 for r in keep if r["split"] == s) for s in ("train", "val", "test")}
    assert (run / "manifest.csv").read_text().splitlines()[1:] == [",".join(r.values()) for r in keep]


@pytest.mark.slow
def test_old_manifest_without_groups_is_evaluated_with_recovered_groups(run, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    rows = list(csv.DictReader((run / "manifest.csv").open()))
    with (old / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "class", "split", "sha256"])
        w.writerows([r["path"], r["class"], r["split"], r["sha256"]] for r in rows)
    m = evaluate_run(old)
    new = json.loads((run / "metrics.json").read_text())
    assert m["groups_source"] == "recovered at evaluation (the manifest records none)"
    assert m["subject_level"]["n_subjects"] == new["subject_level"]["n_subjects"]
    assert m["confidence_intervals"] == new["confidence_intervals"]
    slim = evaluate_run(old, recover_groups=False)
    assert slim["subject_level"] is None and slim["confidence_intervals"] is None
    assert "no subject groups" in slim["warnings"][-1]

