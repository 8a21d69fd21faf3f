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


# --------------------------------------------------------------------------------------
# subject groups and the leakage audit


def test_data_groups_writes_csv_and_prints_summary(capsys, brains_176, tmp_path):
    import csv

    code, out, _ = run_cli(capsys, "data", "groups", brains_176, "-o", tmp_path / "g.csv")
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert list(rows[0]) == ["path", "class", "group", "position", "kind", "copy_of"] and len(rows) == 113
    assert len({r["group"] for r in rows}) == 17
    assert "17 groups" in out and "mixed-class groups: none" in out
    assert "NonDemented 7, VeryMildDemented 4, MildDemented 4, ModerateDemented 2" in " ".join(out.split())
    code, out, _ = run_cli(capsys, "data", "groups", brains_176, "-o", tmp_path / "g2.csv", "--json")
    s = json.loads(out)
    assert s["n_groups"] == 17 and s["classes_per_group"] == {"1": 17} and s["groups_per_class"]["ModerateDemented"] == 2
    assert (tmp_path / "g2.csv").read_text() == (tmp_path / "g.csv").read_text()


def test_data_groups_flags_a_mixed_class_group(capsys, brains_176, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(brains_176, data)
    shutil.copy2(data / "NonDemented" / "28 (62).jpg", data / "MildDemented" / "misfiled.jpg")
    code, out, _ = run_cli(capsys, "data", "groups", data, "-o", tmp_path / "g.csv")
    assert code == 0
    assert "FLAGGED: 1 mixed-class group(s)" in out and "MildDemented/misfiled.jpg" in out


def test_data_audit_warns_on_a_slice_split_but_exits_0(capsys, brains_176):
    code, out, err = run_cli(capsys, "data", "audit", brains_176, "--split-strategy", "image")
    assert code == 0
    assert "split audited: strategy image" in " ".join(out.split())
    assert "WARNING: possible leakage" in out
    assert err.startswith("warning: possible leakage") and "scan group(s) have slices in more than one split" in err
    code, out, err = run_cli(capsys, "data", "audit", brains_176, "--json")
    assert code == 0 and err == ""
    rep = json.loads(out)
    assert rep["split_audited"].startswith("strategy subject")
    assert rep["shared_groups"]["n_groups_shared"] == 0 and rep["exact_duplicates"]["n_pairs"] == 0


def test_data_audit_of_a_manifest_with_a_groups_file(capsys, brains_176, tmp_path):
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import write_manifest
    from alzmri.data.splits import make_split

    assert run_cli(capsys, "data", "groups", brains_176, "-o", tmp_path / "g.csv")[0] == 0
    index = discover(brains_176)
    write_manifest(tmp_path / "m.csv", index, make_split("stratified", index.labels, seed=0), strategy="stratified")
    code, out, err = run_cli(capsys, "data", "audit", brains_176, "--split", tmp_path / "m.csv", "--groups", tmp_path / "g.csv", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["split_audited"] == f"manifest {tmp_path / 'm.csv'} (strategy stratified)"
    assert rep["groups_source"] == f"file:{tmp_path / 'g.csv'}"
    assert rep["shared_groups"]["n_groups_shared"] > 0 and rep["leakage_warning"] and "warning: " in err


def test_groups_audit_and_split_options_bad_input(capsys, data, tmp_path):
    code, _, err = run_cli(capsys, "data", "groups", tmp_path / "nope", "-o", tmp_path / "g.csv")
    assert_one_line_error(code, err, r"nope: data folder does not exist")
    code, _, err = run_cli(capsys, "data", "audit", data, "--split", tmp_path / "missing.csv")
    assert_one_line_error(code, err, r"missing.csv: manifest not found")
    (tmp_path / "bad.csv").write_text("path,klass\na,b\n")
    code, _, err = run_cli(capsys, "data", "audit", data, "--groups", tmp_path / "bad.csv")
    assert_one_line_error(code, err, r"bad.csv: missing column\(s\) group")
    code, _, err = run_cli(capsys, "data", "audit", data, "--split-strategy", "random")
    assert_one_line_error(code, err, r"--split-strategy must be one of subject, stratified, image; got 'random'")
    code, _, err = _train(capsys, data, tmp_path / "r", "--split-strategy", "random")
    assert_one_line_error(code, err, r"'split_strategy' value error, must be one of subject, stratified, image; got 'random'")
    code, _, err = _train(capsys, data, tmp_path / "r", "--folds", "1")
    assert_one_line_error(code, err, r"'folds' input should be greater than or equal to 2")
    code, _, err = _train(capsys, data, tmp_path / "r", "--folds", "3", "--split-strategy", "image")
    assert_one_line_error(code, err, r"--folds K is cross-validation by subject; it needs --split-strategy subject, got 'image'")
    code, _, err = _train(capsys, data, tmp_path / "r", "--groups", tmp_path / "missing.csv")
    assert_one_line_error(code, err, r"missing.csv: groups file not found")
    assert not (tmp_path / "r").exists()


def test_inspect_lists_non_image_files_instead_of_stopping(capsys, data):
    (data / "Mild_Demented" / "notes.txt").write_text("hi")
    code, out, _ = run_cli(capsys, "data", "inspect", data, "--json")
    assert code == 0
    assert {"path": "Mild_Demented/notes.txt", "reason": "not an image file (by its extension)"} in json.loads(out)["unreadable"]


@pytest.mark.parametrize("args", [["predict", "somewhere"], ["train", "--bogus", "1"], ["fly"], ["train", "--epochs", "two"]])
def test_usage_errors_exit_2_without_traceback(capsys, args):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert "Traceback" not in out + err and "Usage" in out + err


# --------------------------------------------------------------------------------------
# augmented copies (17 known brains + 40 planted copies; recovery stands in as the truth)


def _truth_recovery(monkeypatch, ab, gap):
    """Image recovery replaced by the known brains and copies, with separation gap ``gap``; results cached as usual."""
    import functools

    import alzmri.data.groups.cache as cache
    from conftest import truth_result

    @functools.wraps(cache.recover_groups)
    def fake(index, images=None, **kw):
        return truth_result(index, ab["brain"], ab["copy_of"], gap=gap)

    monkeypatch.setattr(cache, "recover_groups", fake)


def test_data_groups_names_the_copies_in_the_csv_and_the_summary(capsys, augmented_brains, tmp_path, monkeypatch):
    import csv

    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(tmp_path / "cache"))
    _truth_recovery(monkeypatch, augmented_brains, gap=0.2)
    code, out, err = run_cli(capsys, "data", "groups", augmented_brains["root"], "-o", tmp_path / "g.csv")
    assert code == 0 and err == ""
    n_orig = len(set(augmented_brains["copy_of"].values()))
    assert f"augmented copies: 40 images look like augmented copies of {n_orig} originals" in " ".join(out.split())
    rows = {r["path"]: r for r in csv.DictReader((tmp_path / "g.csv").open())}
    assert {p: r["copy_of"] for p, r in rows.items() if r["kind"] == "copy"} == augmented_brains["copy_of"]
    code, out, _ = run_cli(capsys, "data", "groups", augmented_brains["root"], "-o", tmp_path / "g2.csv", "--json")
    s = json.loads(out)
    assert (s["n_copies"], s["n_originals_copied"], s["warnings"]) == (40, n_orig, [])


def test_unreliable_groups_are_one_warning_line_in_groups_and_audit(capsys, augmented_brains, tmp_path, monkeypatch):
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(tmp_path / "cache"))
    _truth_recovery(monkeypatch, augmented_brains, gap=0.01)
    for args in (["groups", augmented_brains["root"], "-o", tmp_path / "g.csv"], ["groups", augmented_brains["root"], "-o", tmp_path / "g.csv", "--json"],
                 ["audit", augmented_brains["root"]], ["audit", augmented_brains["root"], "--json"]):
        code, out, err = run_cli(capsys, "data", *args)
        assert code == 0 and "Traceback" not in err
        lines = [line for line in err.splitlines() if "unreliable" in line]
        assert len(lines) == 1 and lines[0].startswith("warning: the recovered groups are unreliable (gap 0.010"), err
        assert "pass --groups FILE" in lines[0]
    assert json.loads(out)["groups_warning"].startswith("the recovered groups are unreliable")


def test_data_audit_splits_as_training_would(capsys, augmented_brains, tmp_path):
    from alzmri.data.discovery import discover
    from alzmri.data.splits import make_split

    ab = augmented_brains
    index = discover(ab["root"])
    g = {p: ab["brain"][p] for p in index.paths}
    subject = make_split("subject", index.labels, seed=42, groups=[g[p] for p in index.paths])
    split_of = dict(zip(index.paths, subject))
    n_eval = sum(split_of[o] in ("val", "test") for o in ab["copy_of"].values())
    assert n_eval > 0
    code, out, err = run_cli(capsys, "data", "audit", ab["root"], "--groups", ab["groups_csv"], "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["eval_copies"]["left_out"] == n_eval and rep["eval_copies"]["val"] == rep["eval_copies"]["test"] == 0
    assert rep["shared_groups"]["n_groups_shared"] == 0 and rep["groups_warning"] is None
    code, out, _ = run_cli(capsys, "data", "audit", ab["root"], "--groups", ab["groups_csv"], "--keep-eval-copies", "--json")
    kept = json.loads(out)["eval_copies"]
    assert kept["left_out"] == 0 and kept["val"] + kept["test"] == n_eval
    code, out, _ = run_cli(capsys, "data", "audit", ab["root"], "--groups", ab["groups_csv"])
    assert "augmented copies: 40 images look like augmented copies" in " ".join(out.split())
    assert f"{n_eval} left out" in " ".join(out.split())


def test_data_inspect_reports_copies_from_the_cache_or_on_request(capsys, augmented_brains, tmp_path, monkeypatch):
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(tmp_path / "cache"))
    _truth_recovery(monkeypatch, augmented_brains, gap=0.2)
    root = augmented_brains["root"]
    code, out, _ = run_cli(capsys, "data", "inspect", root)
    assert code == 0 and "augmented copies: not looked for" in " ".join(out.split())
    assert json.loads(run_cli(capsys, "data", "inspect", root, "--json")[1])["copies"] is None
    n_orig = len(set(augmented_brains["copy_of"].values()))
    code, out, _ = run_cli(capsys, "data", "inspect", root, "--copies", "--json")
    assert json.loads(out)["copies"] == {"n_copies": 40, "n_originals_copied": n_orig, "source": "recovered groups (now cached)"}
    code, out, _ = run_cli(capsys, "data", "inspect", root)  # now cached: reported without recovering
    text = " ".join(out.split())
    assert f"augmented copies: 40 images look like augmented copies of {n_orig} originals" in text and "from the groups cache" in text
