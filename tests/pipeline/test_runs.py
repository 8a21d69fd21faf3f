"""One run end to end: train -> evaluate -> figures and model card, evaluate another split, calibrate; and the layering.

The training step (alzmri.training.train.train) writes the model files only; the pipeline
(alzmri.pipeline) adds the evaluation, the figures and the model card.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from alzmri.pipeline import calibrate, evaluate
from alzmri.runs import RunInfo

EVALUATION_FILES = ("metrics.json", "predictions.csv", "confusion_matrix.png", "roc_curves.png", "MODEL_CARD.md")


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))


def test_train_writes_a_complete_run_folder(tiny_run):
    for name in ("config.yaml", "manifest.csv", "environment.json", "run.json", "model.safetensors", "history.csv",
                 "training_curves.png", *EVALUATION_FILES):
        assert (tiny_run / name).is_file(), name
    for name in ("training_curves.png", "confusion_matrix.png", "roc_curves.png"):
        assert (tiny_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tiny_run / name).stat().st_size > 5000, name
    info = RunInfo.load(tiny_run)
    assert len(list(csv.DictReader((tiny_run / "history.csv").open()))) == info.epochs_run == 4
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert m["split"] == "test" and m["n_samples"] == info.split_counts["test"]
    assert (tiny_run / "MODEL_CARD.md").read_text().startswith("# Model card: altzcnn")


def test_evaluate_another_split_writes_its_own_files(run_copy):
    card = (run_copy / "MODEL_CARD.md").read_bytes()
    test_metrics = (run_copy / "metrics.json").read_bytes()
    m = evaluate(run_copy, split="val", n_boot=100)
    for name in ("metrics_val.json", "predictions_val.csv", "confusion_matrix_val.png", "roc_curves_val.png"):
        assert (run_copy / name).is_file(), name
    saved = json.loads((run_copy / "metrics_val.json").read_text())
    assert saved["split"] == m["split"] == "val" and saved["n_samples"] == m["n_samples"] == RunInfo.load(run_copy).split_counts["val"]
    assert saved["balanced_accuracy"] == m["balanced_accuracy"] and saved["confusion_matrix"] == m["confusion_matrix"]
    assert len(list(csv.DictReader((run_copy / "predictions_val.csv").open()))) == m["n_samples"]
    # the test split's files and the model card (test metrics) are left as they were
    assert (run_copy / "MODEL_CARD.md").read_bytes() == card and (run_copy / "metrics.json").read_bytes() == test_metrics
    assert not (run_copy / "MODEL_CARD_val.md").exists()


def test_calibrate_writes_the_temperature_and_the_diagram(run_copy):
    plain = calibrate(run_copy, plot=False)
    assert "figure" not in plain and not (run_copy / "reliability_diagram.png").exists()
    assert json.loads((run_copy / "calibration.json").read_text()) == plain
    res = calibrate(run_copy, n_bins=10)
    assert res["figure"] == "reliability_diagram.png" and (run_copy / "reliability_diagram.png").stat().st_size > 5000
    assert res["temperature"] == plain["temperature"] > 0 and res["fitted_on"] == "val"
    assert json.loads((run_copy / "calibration.json").read_text()) == res


def test_the_training_step_alone_writes_no_evaluation(small_data, tmp_path):
    """alzmri.training.train.train fits and writes the model files; metrics, figures and the card are the pipeline's."""
    from alzmri.config import load_train_config
    from alzmri.training.train import train as fit

    cfg = load_train_config(data=small_data, out=tmp_path / "run", epochs=1, batch_size=32, image_size=32, augment=False, seed=0,
                            split_strategy="stratified")
    trained = fit(cfg, progress=False)
    run = trained.run_dir
    for name in ("config.yaml", "manifest.csv", "run.json", "model.safetensors", "history.csv"):
        assert (run / name).is_file(), name
    assert trained.evaluate and len(trained.history) == 1 and trained.images is not None
    for name in (*EVALUATION_FILES, "training_curves.png"):
        assert not (run / name).exists(), name
    assert not list(run.glob("*.png")) and not list(run.glob("metrics*.json"))


def test_ctrl_c_while_evaluating_a_resumed_run_names_its_saved_epochs(small_data, tmp_path, monkeypatch):
    """The interruption message of the evaluation step counts the run's own epochs, also under --resume."""
    import alzmri.pipeline.runs as runs_module
    from alzmri import load_train_config, train
    from alzmri.errors import RunInterrupted

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "score_run", interrupted)
    out = tmp_path / "run"
    cfg = load_train_config(data=small_data, out=out, model="altzcnn", epochs=1, batch_size=32, image_size=32, augment=False,
                            split_strategy="stratified", seed=0)
    with pytest.raises(RunInterrupted, match=r"epoch 1 of 1\).*") as first:
        train(cfg, progress=False)
    assert first.value.exit_code == 130 and not (out / "metrics.json").exists()
    resumed = load_train_config(data=small_data, out=out, resume=True)  # epochs not given: the saved 1, not the default
    assert resumed.epochs != 1
    with pytest.raises(RunInterrupted, match=r"epoch 1 of 1\)"):
        train(resumed, progress=False)
