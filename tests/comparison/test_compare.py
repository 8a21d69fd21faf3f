"""A two-model comparison on a small real subset: table, plots, report, shared split, resume."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from _train_hooks import SCRIPT as HOOKS_SCRIPT
from alzmri.cli import main
from alzmri.comparison import TABLE_KEYS, compare, load_compare_config, row_state
from alzmri.errors import AlzmriError
from alzmri.reporting.report import COLUMNS, format_table

ROWS = ("altz-a", "altz-b")
ROW_FIGURES = ("training_curves", "confusion_matrix", "roc_curves", "tsne")


def write_config(path: Path, data: Path, out: Path, **extra) -> Path:
    cfg = {
        "data": str(data),
        "out": str(out),
        "seed": 0,
        "split_strategy": "stratified",
        "title": "Two AltzCNNs",
        "notes": ["a test comparison"],
        # dropout off and He init so that one epoch on 84 slices moves the weights
        "defaults": {"epochs": 1, "batch_size": 16, "image_size": 32, "model_kwargs": {"fc_dropout": 0.0, "init": "he"}},
        "models": [
            {"name": "altz-a", "model": "altzcnn", "lr": 3e-4},
            {"name": "altz-b", "model": "altzcnn", "lr": 1e-3, "note": "higher learning rate"},
        ],
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def comparison(small_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    config = write_config(base / "compare.yaml", small_data, base / "out")
    lines: list[str] = []
    out = compare(config, progress=False, isolate=False, echo=lines.append)
    return out, config, lines


def png_ok(path: Path) -> None:
    assert path.is_file(), path
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()


@pytest.mark.slow
def test_every_table_column_and_plot(comparison):
    out, _, _ = comparison
    data = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in data["rows"]] == list(ROWS)
    for r in data["rows"]:
        for key in TABLE_KEYS:
            assert r[key] is not None, (r["name"], key)
        assert r["flops_per_image"] > 1e6 and r["inference_ms_per_image"] > 0 and r["train_images_per_s"] > 0
        assert r["trainable_parameters"] == r["parameters"] > 0
        assert r["train_images_per_s"] == pytest.approx(r["split_counts"]["train"] * r["epochs_run"] / r["train_time_s"], rel=0.01)
        summary = json.loads((out / "runs" / r["name"] / "summary.json").read_text())
        assert summary == r
        for kind in ROW_FIGURES:
            png_ok(out / r["figures"][kind])
            png_ok(out / "figures" / f"{r['name']}-{kind}.png")
    png_ok(out / "figures" / "pareto.png")
    png_ok(out / "figures" / "roc_comparison.png")
    md = (out / "report.md").read_text()
    for _, header, _ in COLUMNS:
        assert header in md, header
    headers, _ = format_table(data["rows"])
    table = [line for line in md.splitlines() if line.startswith("| altz-")]
    assert len(table) == 2 and all(line.count("|") == len(headers) + 1 for line in table)
    # the evaluation scores subjects too, so the subject-level columns are there
    assert all(isinstance(r.get("subject_level"), dict) for r in data["rows"])
    assert "subject balanced accuracy" in headers
    assert "Leakage warning" in md  # a stratified split of slices
    assert "higher learning rate" in md and "a test comparison" in md
    with (out / "table.csv").open() as f:
        lines = list(csv.reader(f))
    assert all(len(line) == len(lines[0]) for line in lines)  # every row as wide as the header
    table_rows = [dict(zip(lines[0], line)) for line in lines[1:]]
    assert [r["name"] for r in table_rows] == list(ROWS)
    for r, row in zip(table_rows, data["rows"]):
        assert r["split_strategy"] == "stratified"
        assert float(r["balanced_accuracy"]) == pytest.approx(row["balanced_accuracy"])
        low, high = row["confidence_intervals"]["balanced_accuracy"]
        assert (float(r["balanced_accuracy_ci_low"]), float(r["balanced_accuracy_ci_high"])) == pytest.approx((low, high))
        assert float(r["subject_balanced_accuracy"]) == pytest.approx(row["subject_level"]["balanced_accuracy"])
        assert float(r["subject_balanced_accuracy_ci_low"]) <= float(r["subject_balanced_accuracy"]) <= float(r["subject_balanced_accuracy_ci_high"])


@pytest.mark.slow
def test_report_html_is_self_contained(comparison):
    out, _, _ = comparison
    html = (out / "report.html").read_text()
    assert not re.search(r"https?://|<link|<script|src=\"(?!data:)", html)
    assert html.count('src="data:image/png;base64,') == 2 + len(ROWS) * len(ROW_FIGURES)
    assert "<table>" in html and "Leakage warning" in html


@pytest.mark.slow
def test_rows_share_one_manifest(comparison):
    out, _, _ = comparison

    def splits(path: Path) -> dict[str, str]:
        with path.open() as f:
            return {r["path"]: r["split"] for r in csv.DictReader(f)}

    shared = splits(out / "manifest.csv")
    assert len(shared) == 120 and set(shared.values()) == {"train", "val", "test"}
    for name in ROWS:
        assert splits(out / "runs" / name / "manifest.csv") == shared


@pytest.mark.slow
def test_second_run_resumes_without_retraining(comparison):
    out, config, _ = comparison
    stamps = {n: (out / "runs" / n / "model.safetensors").stat().st_mtime_ns for n in ROWS}
    summaries = {n: (out / "runs" / n / "summary.json").stat().st_mtime_ns for n in ROWS}
    lines: list[str] = []
    assert compare(config, progress=False, isolate=False, echo=lines.append) == out
    assert sum("not retrained" in line for line in lines) == 2
    assert not any(line.endswith(": training") for line in lines)
    for n in ROWS:
        assert (out / "runs" / n / "model.safetensors").stat().st_mtime_ns == stamps[n]
        assert (out / "runs" / n / "summary.json").stat().st_mtime_ns == summaries[n]
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_interrupted_row_resumes_from_its_last_checkpoint(comparison, tmp_path):
    src, config, _ = comparison
    out = tmp_path / "out"
    shutil.copytree(src, out)
    row = out / "runs" / "altz-b"
    want = json.loads((row / "metrics.json").read_text())
    history = (row / "history.csv").read_text()
    for name in ("metrics.json", "run.json", "history.csv", "summary.json"):  # as if killed before evaluation
        (row / name).unlink()
    cfg = load_compare_config(config, out=out)
    lines: list[str] = []
    compare(cfg, progress=False, isolate=True, echo=lines.append)
    assert any("altz-b" in line and "resuming from" in line for line in lines)
    assert not list((out / "runs").glob("altz-b.*"))  # nothing moved aside
    got = json.loads((row / "metrics.json").read_text())
    # the last checkpoint is the final epoch: the same weights give the same test metrics
    assert got["balanced_accuracy"] == pytest.approx(want["balanced_accuracy"], abs=1e-9)
    assert got["train_time_s"] >= 0.5 * want["train_time_s"]  # the fit time before the stop is kept
    assert (row / "history.csv").read_text() == history  # continued, not duplicated
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["name"] for r in rows] == list(ROWS)


@pytest.mark.slow
def test_unfinished_row_is_moved_aside_and_retrained(comparison, tmp_path):
    src, config, _ = comparison
    out = tmp_path / "out"
    shutil.copytree(src, out)
    (out / "runs" / "altz-b" / "metrics.json").unlink()  # as if stopped before evaluation
    # and its last checkpoint cannot be resumed (as one written by an alzmri without run state)
    last = out / "runs" / "altz-b" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    del ckpt["callbacks"]
    torch.save(ckpt, last)
    kept = (out / "runs" / "altz-a" / "model.safetensors").stat().st_mtime_ns
    cfg = load_compare_config(config, out=out)
    lines: list[str] = []
    # isolate=True: the row trains in its own process, as `alzmri compare` does
    compare(cfg, progress=False, isolate=True, echo=lines.append)
    aside = sorted((out / "runs").glob("altz-b.incomplete-*"))
    assert len(aside) == 1 and (aside[0] / "model.safetensors").is_file() and not (aside[0] / "metrics.json").exists()
    assert any("altz-b" in line and "moved aside" in line for line in lines)
    assert (out / "runs" / "altz-b" / "metrics.json").is_file()
    assert (out / "runs" / "altz-a" / "model.safetensors").stat().st_mtime_ns == kept
    assert any("moved aside" in line for line in lines)
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["name"] for r in rows] == list(ROWS)


@pytest.mark.slow
def test_row_state_sees_changed_settings(comparison):
    out, config, _ = comparison
    cfg = load_compare_config(config)
    (_, a), _ = cfg.train_configs()
    assert row_state(out / "runs" / "altz-a", a) == "finished"
    assert row_state(out / "runs" / "altz-a", a.model_copy(update={"lr": 0.1})) == "changed"
    assert row_state(out / "runs" / "nothing", a) == "new"


@pytest.mark.slow
def test_other_split_settings_on_resume_are_refused(comparison, small_data, tmp_path):
    out, _, _ = comparison
    config = write_config(tmp_path / "c.yaml", small_data, out)
    text = yaml.safe_load(config.read_text())
    text["seed"] = 1
    config.write_text(yaml.safe_dump(text))
    with pytest.raises(AlzmriError, match="split with other settings"):
        compare(config, progress=False, isolate=False, echo=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["models"][1].update(lrr=0.1), r"models\[1\] 'altz-b': unknown key 'lrr' \(did you mean 'lr'\?\)"),
        (lambda c: c["models"][0].update(split_strategy="image"), r"'split_strategy' belongs at the top level"),
        (lambda c: c["models"][1].update(name="altz-a"), r"'altz-a' is used twice"),
        (lambda c: c["models"][0].update(name="a/b"), r"models.0.name"),
        (lambda c: c["models"][0].update(model="altzcn"), r"models\[0\] 'altz-a': unknown model 'altzcn'"),
        (lambda c: c["defaults"].update(epochs=0), r"defaults: 'epochs'"),
        (lambda c: c.update(modles=[]), r"unknown key 'modles' \(did you mean 'models'\?\)"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_row(tmp_path, capsys, change, message):
    config = write_config(tmp_path / "bad.yaml", tmp_path, tmp_path / "out")
    values = yaml.safe_load(config.read_text())
    change(values)
    config.write_text(yaml.safe_dump(values))
    with pytest.raises(AlzmriError, match=message) as info:
        load_compare_config(config)
    assert str(config) in str(info.value) and "\n" not in str(info.value)
    assert main(["compare", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_foreign_folder_is_never_used(small_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(AlzmriError, match="holds no comparison"):
        compare(write_config(tmp_path / "c.yaml", small_data, out), progress=False, isolate=False, echo=None)
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, how", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_signal_to_compare_stops_the_row_worker_with_one_line_and_rerun_resumes(small_data, tmp_path, sig, code, how):
    """SIGTERM / Ctrl-C to `alzmri compare` reach the row's worker process once: it saves its
    checkpoint and exits, the comparison ends with one line (no worker left training), and the
    same command resumes the row. The hook launcher (tests/_train_hooks.py) slows the worker's
    steps down and gives both processes Python's Ctrl-C handler (SIGINT may come ignored from
    a background test run)."""
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", small_data, out, defaults={"epochs": 3, "batch_size": 16, "image_size": 32})
    args = ["compare", "--config", str(config), "--no-progress"]
    cmd = [sys.executable, "-m", "alzmri", *args]
    err_file = tmp_path / "err.txt"
    with err_file.open("w") as err:
        proc = subprocess.Popen([sys.executable, HOOKS_SCRIPT, "--step-delay", "0.3", *args], stdout=subprocess.DEVNULL, stderr=err)
    try:
        end = time.monotonic() + 240
        while "epoch 2 step 1" not in err_file.read_text():  # the first row's worker is in its second epoch
            assert proc.poll() is None and time.monotonic() < end, err_file.read_text()
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=120) == code
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln for ln in err_file.read_text().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err_file.read_text(), err_file.read_text()
    assert lines[0].startswith(f"error: comparison interrupted ({how}) while training {out / 'runs' / 'altz-a'}")
    assert lines[0].endswith("continue with: the same alzmri compare command")
    row = out / "runs" / "altz-a"
    ckpt = row / "checkpoints" / "last.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    time.sleep(2)
    assert ckpt.stat().st_mtime_ns == stamp and not (row / "metrics.json").exists()  # nothing trains on
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "altz-a (altzcnn): interrupted earlier, resuming from" in res.stdout + res.stderr
    assert [r["name"] for r in json.loads((out / "comparison.json").read_text())["rows"]] == list(ROWS)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"model": "mobilenet_v2", "model_kwargs": {"finetune": "adaptr"}}, r"models\[1\] 'altz-b': The 'finetune' parameter .* Got 'adaptr'"),
        ({"model": "altzcnn", "image_size": 30}, r"models\[1\] 'altz-b': AltzCNN needs an image size that is a multiple of 16; got 30"),
        ({"model": "altzcnn", "model_kwargs": {"weights": "missing.pt"}}, r"models\[1\] 'altz-b': .*missing\.pt: weights file not found"),
        ({"model": "altzcnn", "model_kwargs": {"colour": 3}}, r"models\[1\] 'altz-b': model_kwargs \{'colour': 3\} do not fit model 'altzcnn'"),
    ],
)
def test_a_bad_row_is_refused_before_any_row_trains(small_data, tmp_path, capsys, row, message):
    """A value only the model can judge is still one line before the first row trains (no folder, no run)."""
    out = tmp_path / "out"
    config = write_config(tmp_path / "bad.yaml", small_data, out)
    values = yaml.safe_load(config.read_text())
    values["models"][1].update(row)
    config.write_text(yaml.safe_dump(values))
    assert main(["compare", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert re.search(message, err) and str(config) in err and err.endswith("(nothing was trained)"), err
    assert not out.exists()
