"""Scoring a run (score_run computes, write_scores writes) and reading predictions.csv back (read_predictions)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

import alzmri.evaluation.evaluate as evaluate_module
from alzmri.data.tasks import get_task
from alzmri.errors import AlzmriError
from alzmri.evaluation.aggregation import AGGREGATION_RULE
from alzmri.evaluation.evaluate import brain_level_metrics, read_predictions, score_run, write_scores
from alzmri.runs import RunInfo


@pytest.fixture(scope="module")
def scores(tiny_run):
    return score_run(tiny_run)


def test_score_run_recomputes_the_run_metrics_and_writes_nothing(tiny_run, scores):
    before = sorted(p.name for p in tiny_run.iterdir())
    saved = json.loads((tiny_run / "metrics.json").read_text())
    info = RunInfo.load(tiny_run)
    m = scores.metrics
    assert (m["model"], m["split"], m["split_strategy"], m["task"]) == ("altzcnn", "test", "stratified", "4class")
    assert m["n_samples"] == len(scores.paths) == len(scores.y_true) == info.split_counts["test"]
    assert scores.probs.shape == (len(scores.paths), 4) and scores.suffix == "" and scores.info == info
    for key in ("accuracy", "balanced_accuracy", "confusion_matrix", "roc_auc_ovr_macro", "per_class", "warnings", "n_subjects"):
        assert m[key] == saved[key], key
    assert sorted(p.name for p in tiny_run.iterdir()) == before


def test_write_scores_writes_what_the_pipeline_wrote(tiny_run, scores, tmp_path, monkeypatch):
    order = []
    for name in ("atomic_write_text", "atomic_write_json"):
        real = getattr(evaluate_module, name)
        monkeypatch.setattr(evaluate_module, name, lambda path, obj, _real=real: order.append(path.name) or _real(path, obj))
    written = write_scores(tmp_path, scores)
    assert [p.name for p in written] == order == ["predictions.csv", "metrics.json"]  # metrics.json last: a finished evaluation
    # byte for byte what `alzmri train` wrote for this run: score_run + write_scores is its evaluation
    assert (tmp_path / "metrics.json").read_text() == (tiny_run / "metrics.json").read_text()
    assert (tmp_path / "predictions.csv").read_text() == (tiny_run / "predictions.csv").read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == scores.metrics["accuracy"]


def test_predictions_columns(scores, tmp_path):
    names = scores.info.class_names
    write_scores(tmp_path, scores)
    rows = list(csv.reader((tmp_path / "predictions.csv").open()))
    group = ["group"] if scores.groups is not None else []
    assert rows[0] == ["path", "class", *group, "predicted", *(f"p_{c}" for c in names)]
    first = rows[1]
    assert first[0] == scores.paths[0] and first[1] == names[scores.y_true[0]]
    assert first[-5] == names[int(np.argmax(scores.probs[0]))]
    assert [float(v) for v in first[-4:]] == pytest.approx(scores.probs[0], abs=5e-7)
    # without subjects: no group column; another split: *_<split> file names
    val = dataclasses.replace(scores, groups=None, split="val")
    assert [p.name for p in write_scores(tmp_path, val)] == ["predictions_val.csv", "metrics_val.json"]
    header = (tmp_path / "predictions_val.csv").read_text().splitlines()[0]
    assert header == ",".join(["path", "class", "predicted", *(f"p_{c}" for c in names)])


def test_read_predictions_round_trips_write_scores(scores, tmp_path):
    write_scores(tmp_path, scores)
    t = read_predictions(tmp_path)  # no run.json here: read as a 4class run
    assert t.path == tmp_path / "predictions.csv" and t.class_names == list(scores.info.class_names)
    assert t.paths == scores.paths and t.y_true.dtype == np.int64
    np.testing.assert_array_equal(t.y_true, scores.y_true)
    np.testing.assert_allclose(t.probs, scores.probs, atol=5e-7)
    if scores.groups is None:
        assert t.groups is None
    else:
        assert t.groups.tolist() == [str(g) for g in scores.groups]
    assert t.brains is None and t.n_slices is None


def test_read_predictions_of_a_brain_level_run_keeps_the_test_rows(tmp_path):
    rows = [["brain", "split", "n_slices", "class", "predicted", "threshold", "p_NonDemented", "p_Demented"],
            [0, "val", 30, "NonDemented", "NonDemented", 0.4, 0.8, 0.2],
            [1, "test", 32, "Demented", "Demented", 0.4, 0.3, 0.7],
            [2, "val", 28, "Demented", "NonDemented", 0.4, 0.6, 0.4],
            [3, "test", 31, "NonDemented", "Demented", 0.4, 0.45, 0.55]]
    with (tmp_path / "predictions.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    (tmp_path / "run.json").write_text(json.dumps({"task": "binary", "level": "brain"}))
    t = read_predictions(tmp_path)  # the task from run.json
    assert t.class_names == ["NonDemented", "Demented"]
    assert t.brains.tolist() == [1, 3] and t.n_slices.tolist() == [32, 31] and t.y_true.tolist() == [1, 0]
    np.testing.assert_array_equal(t.probs, [[0.3, 0.7], [0.45, 0.55]])
    assert t.paths == ["", ""] and t.groups is None
    # a 4class reading of the same file fails: "Demented" is not one of its classes
    with pytest.raises(AlzmriError, match=r"predictions.csv: not a predictions file of this run's task"):
        read_predictions(tmp_path, get_task("4class"))


def test_missing_predictions_file(tmp_path):
    with pytest.raises(AlzmriError, match=r"predictions.csv: missing; the run did not finish its evaluation") as exc:
        read_predictions(tmp_path)
    assert str(tmp_path / "predictions.csv") in str(exc.value)


def test_score_run_errors(tmp_path, tiny_run):
    with pytest.raises(AlzmriError, match=r"nowhere: run folder not found"):
        score_run(tmp_path / "nowhere")
    with pytest.raises(AlzmriError, match=r"the dev split of this run is empty; nothing to evaluate"):
        score_run(tiny_run, split="dev")


def test_brain_level_metrics_score_one_prediction_per_subject():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.1, 0.9], [0.6, 0.4]])
    g = np.array([5, 5, 6, 6, 7, 8])
    b = brain_level_metrics(y, p, g, "binary", threshold=0.5, n_boot=50)
    assert b["aggregation"] == AGGREGATION_RULE and b["task"] == "binary" and b["n_brains"] == 4
    assert b["class_counts"] == {"NonDemented": 2, "Demented": 2}
    assert b["roc_auc"] == 1.0  # subject means: P(demented) 0.2, 0.4 (NonDemented) < 0.7, 0.9 (Demented)
