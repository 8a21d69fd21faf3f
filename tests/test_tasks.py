"""Task framings end to end: class spellings to task labels, `alzmri train --task`, and bad task options."""

import json

import numpy as np
import pytest

from alzmri.cli import main
from alzmri.data.classes import class_index
from alzmri.data.tasks import get_task, task_label
from alzmri.runs import RunInfo

# spelling -> (4class, 3class, binary)
SPELLINGS = {
    "Non_Demented": (0, 0, 0), "NonDemented": (0, 0, 0), "Non Demented": (0, 0, 0), "No Impairment": (0, 0, 0),
    "Very_Mild_Demented": (1, 1, 1), "VeryMildDemented": (1, 1, 1), "Very mild Dementia": (1, 1, 1), "Very Mild Impairment": (1, 1, 1),
    "Mild_Demented": (2, 2, 1), "MildDemented": (2, 2, 1), "Mild Dementia": (2, 2, 1), "Mild Impairment": (2, 2, 1),
    "Moderate_Demented": (3, 2, 1), "ModerateDemented": (3, 2, 1), "Moderate Dementia": (3, 2, 1), "Moderate Impairment": (3, 2, 1),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_every_class_spelling_maps_to_each_task(name):
    for task, expected in zip(("4class", "3class", "binary"), SPELLINGS[name]):
        assert task_label(name, task) == expected, (name, task)
        # the same through the canonical label, as training maps the dataset's labels
        assert get_task(task).map_labels([class_index(name)]).tolist() == [expected]


def test_task_own_class_names_and_unknown_names():
    assert task_label("MildModerateDemented", "3class") == 2
    assert task_label("Demented", "binary") == 1
    assert task_label("Severe_Demented", "binary") is None
    assert [get_task(t).num_classes for t in ("4class", "3class", "binary")] == [4, 3, 2]


def test_old_run_json_without_task_reads_as_4class(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"model": "altzcnn", "image_size": 32, "in_chans": 1, "mean": 0.5, "std": 0.5,
                                                   "class_names": ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]}))
    info = RunInfo.load(tmp_path)
    assert (info.task, info.loss, info.level) == ("4class", "cross_entropy", "slice")


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line_error(code, err, text):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert text in lines[0], lines[0]


def test_unknown_task_or_loss_is_one_line_and_exit_2(capsys, small_data, tmp_path):
    code, _, err = _cli(capsys, "train", "--data", small_data, "--out", tmp_path / "a", "--task", "nonsense")
    _one_line_error(code, err, "'task'")
    assert "binary" in err and "nonsense" in err
    code, _, err = _cli(capsys, "train", "--data", small_data, "--out", tmp_path / "b", "--loss", "hinge")
    _one_line_error(code, err, "'loss'")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ordinal_loss_with_binary_task_is_one_line_and_exit_2(capsys, small_data, tmp_path):
    code, _, err = _cli(capsys, "train", "--data", small_data, "--out", tmp_path / "r", "--loss", "ordinal", "--task", "binary")
    _one_line_error(code, err, "ordinal loss needs an ordered task: 4class or 3class")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def binary_run(small_data, tmp_path_factory):
    """`alzmri train --task binary` on the real subset (2 epochs, 32 x 32)."""
    run = tmp_path_factory.mktemp("tasks") / "bin"
    code = main(["train", "--data", str(small_data), "--out", str(run), "--task", "binary", "--epochs", "2", "--image-size", "32",
                 "--batch-size", "16", "--seed", "0", "--no-progress"])
    assert code == 0
    return run


def test_train_binary_writes_the_task_classes_and_brain_level_metrics(binary_run, small_data, capsys):
    run = binary_run
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "binary" and info["loss"] == "cross_entropy" and info["level"] == "slice"
    assert info["class_names"] == ["NonDemented", "Demented"]
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "binary" and m["class_names"] == ["NonDemented", "Demented"]
    assert len(m["confusion_matrix"]) == 2 and m["subject_level"]["class_names"] == ["NonDemented", "Demented"]
    b = m["brain_level"]
    assert b["task"] == "binary" and b["n_brains"] == m["n_subjects"] > 0
    assert 0.0 <= b["threshold"] <= 1.0 and b["threshold_rule"].startswith("Youden's J")
    assert b["roc_auc"] is None or 0.0 <= b["roc_auc"] <= 1.0
    assert {"sensitivity", "specificity", "pr_auc"} <= set(b)
    # the threshold is the one chosen on the validation brains
    from alzmri.data.cache import load_images
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import load_manifest
    from alzmri.evaluation.aggregation import aggregate_by_group
    from alzmri.runs import predict_proba
    from alzmri.training.selection import choose_threshold
    from alzmri.runs import load_model

    index = discover(small_data)
    man = load_manifest(run / "manifest.csv", index)
    val = np.flatnonzero(man.splits == "val")
    model, rinfo = load_model(run)
    p = predict_proba(model, rinfo, load_images(index, 32).images[val])
    _, yv, pv = aggregate_by_group(get_task("binary").map_labels(index.labels[val]), p, man.groups[val])
    assert b["threshold"] == pytest.approx(choose_threshold(yv, pv))
    # predictions.csv: the task's true class and its two probabilities
    header = (run / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["p_NonDemented", "p_Demented"]
    assert {line.split(",")[1] for line in (run / "predictions.csv").read_text().splitlines()[1:]} <= {"NonDemented", "Demented"}
    card = (run / "MODEL_CARD.md").read_text()
    assert "task: **binary**" in card and "NonDemented, Demented" in card and "Brain-level metrics" in card
    from alzmri.cli.tables import print_metrics

    print_metrics(m)
    out = capsys.readouterr().out
    assert "task binary" in out and "brain level, task binary" in out and "specificity" in out


def test_predict_and_serve_answers_name_the_task(binary_run, small_data):
    from fastapi.testclient import TestClient

    from alzmri.inference.predict import predict_files
    from alzmri.serve import create_app

    run = binary_run
    img = sorted((small_data / "Mild_Demented").iterdir())[0]
    (r,) = predict_files(run, [img], backend="torch")
    assert r["task"] == "binary" and list(r["probabilities"]) == ["NonDemented", "Demented"]
    with TestClient(create_app(run, backend="torch")) as client:
        res = client.post("/predict", files={"file": (img.name, img.read_bytes(), "image/jpeg")})
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["task"] == "binary" and body["model"]["task"] == "binary"
        assert body["probabilities"] == pytest.approx(r["probabilities"], abs=1e-5)
        assert client.get("/health").json()["model"]["task"] == "binary"


def _compare_yaml(path, **top):
    import yaml

    cfg = {"data": str(path.parent), "out": str(path.parent / "out"), "title": "t",
           "models": [{"name": "a", "model": "altzcnn"}, {"name": "b", "model": "altzcnn", "loss": "ordinal"}], **top}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_comparison_task_is_applied_to_every_row(tmp_path):
    from alzmri.comparison import load_compare_config

    cfg = load_compare_config(_compare_yaml(tmp_path / "c.yaml", task="3class"))
    assert [(c.task, c.loss) for _, c in cfg.train_configs()] == [("3class", "cross_entropy"), ("3class", "ordinal")]
    cfg = load_compare_config(_compare_yaml(tmp_path / "d.yaml"))  # no task: the notebook's 4 classes
    assert {c.task for _, c in cfg.train_configs()} == {"4class"}


@pytest.mark.parametrize(
    ("top", "row", "message"),
    [
        ({"task": "binary"}, {"task": "3class"}, r"models\[0\] 'a': 'task' belongs at the top level"),
        ({"task": "binary", "defaults": {"task": "3class"}}, {}, r"defaults: 'task' belongs at the top level"),
        ({"task": "five"}, {}, r"'task'.*'4class', '3class' or 'binary'"),
        ({"task": "binary"}, {}, r"models\[1\] 'b': ordinal loss needs an ordered task: 4class or 3class"),
    ],
)
def test_comparison_task_errors_name_the_row(tmp_path, capsys, top, row, message):
    import re

    import yaml

    path = _compare_yaml(tmp_path / "c.yaml", **top)
    values = yaml.safe_load(path.read_text())
    values["models"][0].update(row)
    path.write_text(yaml.safe_dump(values))
    code, _, err = _cli(capsys, "compare", "--config", path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), err
    assert str(path) in lines[0] and not (tmp_path / "out").exists()


def test_report_states_the_task_and_its_classes(tmp_path):
    from alzmri.reporting.report import format_table, write_report

    rows = [{"name": "m", "model": "altzcnn", "balanced_accuracy": 0.5, "loss": "ordinal",
             "brain_level": {"roc_auc": 0.75, "mae_classes": 0.5, "ci": {"roc_auc": [0.6, 0.9]}}}]
    md, html = write_report(rows, tmp_path, task={"name": "3class", "class_names": ["NonDemented", "VeryMildDemented", "MildModerateDemented"],
                                                  "ordinal": True})
    line = "Task: 3class, 3 classes: NonDemented < VeryMildDemented < MildModerateDemented"
    from html import escape

    assert line in md.read_text() and escape(line) in html.read_text() and "loss ordinal" in md.read_text()
    headers, cells = format_table(rows)
    assert cells[0][headers.index("brain ROC-AUC (demented vs not)")] == "0.750"
    assert cells[0][headers.index("brain ROC-AUC 95% CI")] == "0.600-0.900"
    assert "brain sensitivity (demented)" not in headers
