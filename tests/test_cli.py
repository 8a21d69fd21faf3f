"""The command line on real data: results, and bad input as one line with exit code 2."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from alzmri.cli import main
from conftest import copy_subset


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def data(tmp_path, data_6400):
    return copy_subset(data_6400, tmp_path / "data", 6)


def _tree_digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def earlier_run(tmp_path):
    run = tmp_path / "runs" / "earlier"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"accuracy": 0.9}')
    (run / "model.safetensors").write_bytes(b"weights")
    return run


def test_inspect_prints_counts_layout_and_unreadable(capsys, data):
    bad = sorted((data / "Mild_Demented").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:300])
    code, out, _ = run_cli(capsys, "data", "inspect", data, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["layout"] == "class_folders"
    assert info["counts"] == {"NonDemented": 6, "VeryMildDemented": 6, "MildDemented": 6, "ModerateDemented": 6}
    assert info["sizes"] == {"128x128": 23} and info["modes"] == {"L": 23}
    assert info["unreadable"] == [{"path": f"Mild_Demented/{bad.name}", "reason": info["unreadable"][0]["reason"]}]
    assert "truncated" in info["unreadable"][0]["reason"]


def test_missing_path(capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "inspect", tmp_path / "nope")
    assert_one_line_error(code, err, r"nope: data folder does not exist")


def _train(capsys, data, out, *extra):
    return run_cli(capsys, "train", "--data", data, "--out", out, "--epochs", "1", "--image-size", "32", "--no-progress", *extra)


def test_empty_class_folder(capsys, data, tmp_path, earlier_run):
    before = _tree_digest(earlier_run.parent)
    for f in (data / "Moderate_Demented").iterdir():
        f.unlink()
    code, _, err = _train(capsys, data, tmp_path / "runs" / "new")
    assert_one_line_error(code, err, r"Moderate_Demented: class folder holds no images")
    assert _tree_digest(earlier_run.parent) == before and not (tmp_path / "runs" / "new").exists()


def test_corrupt_jpeg_names_the_file_and_the_fix(capsys, data, tmp_path, earlier_run):
    before = _tree_digest(earlier_run.parent)
    bad = sorted((data / "Non_Demented").iterdir())[2]
    bad.write_bytes(bad.read_bytes()[:500])
    code, _, err = _train(capsys, data, tmp_path / "runs" / "new")
    assert_one_line_error(code, err, rf"{bad.name}: corrupt or truncated image.*--skip-unreadable")
    assert _tree_digest(earlier_run.parent) == before and not (tmp_path / "runs" / "new").exists()


def test_non_image_file(capsys, data, tmp_path):
    (data / "Mild_Demented" / "readme.txt").write_text("hi")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"non-image file\(s\) in class folder 'Mild_Demented'")


def test_text_file_named_jpg(capsys, data, tmp_path):
    (data / "Mild_Demented" / "fake.jpg").write_text("I am not a JPEG")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"fake.jpg: not an image file")


def test_unknown_class_folder(capsys, data, tmp_path):
    shutil.copytree(data / "Mild_Demented", data / "Severe_Demented")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"unknown class folder\(s\) 'Severe_Demented'")


def test_manifest_naming_files_that_are_gone(capsys, data, tmp_path, data_6400):
    other = copy_subset(data_6400, tmp_path / "other", 6, stride=3)
    manifest = tmp_path / "m.csv"
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import write_manifest
    from alzmri.data.splits import make_split

    idx = discover(other)
    write_manifest(manifest, idx, make_split("stratified", idx.labels))
    code, _, err = _train(capsys, data, tmp_path / "new", "--split", manifest)
    assert_one_line_error(code, err, r"file\(s\) named in the manifest are not in")
    assert not (tmp_path / "new").exists()


def test_existing_run_folder_is_never_overwritten(capsys, data, earlier_run):
    before = _tree_digest(earlier_run)
    code, _, err = _train(capsys, data, earlier_run)
    assert_one_line_error(code, err, r"run folder already exists and is not empty")
    assert _tree_digest(earlier_run) == before


def test_bad_config_and_options(capsys, data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--data", data)
    assert_one_line_error(code, err, r"c.yaml: unknown key 'learning_rate'")
    code, _, err = run_cli(capsys, "train", "--data", data, "--lr", "-1")
    assert_one_line_error(code, err, r"'lr' input should be greater than 0")
    code, _, err = run_cli(capsys, "train", "--data", data, "--model", "resnet5")
    assert_one_line_error(code, err, r"unknown model 'resnet5'")


def test_evaluate_and_predict_bad_input(capsys, tmp_path, earlier_run):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "no-run")
    assert_one_line_error(code, err, r"run folder not found")
    code, _, err = run_cli(capsys, "evaluate", earlier_run)
    assert_one_line_error(code, err, r"not a finished run folder \(no run.json\)")
    code, _, err = run_cli(capsys, "predict", earlier_run, tmp_path / "x.jpg")
    assert_one_line_error(code, err, r"not a finished run folder")


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alzmri", "data", "inspect", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


def test_train_without_data_and_nothing_downloaded(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "r", "--epochs", "1")
    assert_one_line_error(code, err, r"no --data given and no downloaded dataset.*alzmri data download")


def test_download_offline_is_one_line(capsys, monkeypatch, tmp_path):
    import alzmri.data.download as dl
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*a, **k):
        raise LocalEntryNotFoundError("Cannot reach https://huggingface.co: connection refused")

    monkeypatch.setattr(dl, "snapshot_download", offline)
    code, _, err = run_cli(capsys, "data", "download", "--dest", tmp_path / "ds")
    assert_one_line_error(code, err, r"cannot download Falah/Alzheimer_MRI .*offline")
    assert not (tmp_path / "ds").exists()
