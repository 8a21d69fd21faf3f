"""`alzmri data`: inspect, download, groups and audit on real data; bad input as one line with exit code 2."""

import json
import shutil

from _helpers import assert_one_line_error, run_cli


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


def test_groups_and_audit_bad_input(capsys, data, tmp_path):
    code, _, err = run_cli(capsys, "data", "groups", tmp_path / "nope", "-o", tmp_path / "g.csv")
    assert_one_line_error(code, err, r"nope: data folder does not exist")
    code, _, err = run_cli(capsys, "data", "audit", data, "--split", tmp_path / "missing.csv")
    assert_one_line_error(code, err, r"missing.csv: manifest not found")
    (tmp_path / "bad.csv").write_text("path,klass\na,b\n")
    code, _, err = run_cli(capsys, "data", "audit", data, "--groups", tmp_path / "bad.csv")
    assert_one_line_error(code, err, r"bad.csv: missing column\(s\) group")
    code, _, err = run_cli(capsys, "data", "audit", data, "--split-strategy", "random")
    assert_one_line_error(code, err, r"--split-strategy must be one of subject, stratified, image; got 'random'")


def test_inspect_lists_non_image_files_instead_of_stopping(capsys, data):
    (data / "Mild_Demented" / "notes.txt").write_text("hi")
    code, out, _ = run_cli(capsys, "data", "inspect", data, "--json")
    assert code == 0
    assert {"path": "Mild_Demented/notes.txt", "reason": "not an image file (by its extension)"} in json.loads(out)["unreadable"]


# --------------------------------------------------------------------------------------
# augmented copies (17 known brains + 40 planted copies; recovery stands in as the truth)


def _truth_recovery(monkeypatch, ab, gap):
    """Image recovery replaced by the known brains and copies, with separation gap ``gap``; results cached as usual."""
    import functools

    import alzmri.data.groups.cache as cache
    from _helpers import truth_result

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
