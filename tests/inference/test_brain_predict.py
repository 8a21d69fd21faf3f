"""One prediction per brain (`alzmri predict --brain`, alzmri.inference.brain) on real brains of the 6,400 set.

The brains are recovered from the pixels (200 brains x 32 slices); 16 of them train tiny
brain-level runs (MIL and baseline, binary, 32 x 32) and a held-out MildDemented brain
is predicted as a folder of its 32 slices, as its slice files and as a NIfTI volume
built from them. The slice-level run is the shared ``tiny_run`` (AltzCNN, 4 classes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from alzmri.cli import main  # noqa: E402
from alzmri.data.bags import make_bags, relative_positions  # noqa: E402
from alzmri.data.images import decode_image  # noqa: E402
from alzmri.errors import AlzmriError  # noqa: E402
from alzmri.inference.brain import load_brain_run, predict_brain  # noqa: E402
from alzmri.inference.predict import predict_files  # noqa: E402

#: Per session: the brains and runs built once, shared with tests/serve/test_brain_api.py.
_BUILT: dict = {}


def held_out_brain(groups_6400, root: Path) -> dict:
    """Write 16 training brains (class folders) and one held-out brain (``slice_0.jpg`` .. ``slice_31.jpg`` in position order).

    Returns
    -------
    dict
        ``train`` (data folder), ``folder`` (the held-out brain), ``files`` (its slices in
        order), ``nifti`` (a NIfTI volume of the same slices).
    """
    key = ("brain", str(root))
    if key in _BUILT:
        return _BUILT[key]
    index, groups = groups_6400
    bags = make_bags(index.labels, groups.group, position=groups.position, copy_of=groups.copy_of)
    rng = np.random.default_rng(0)
    picked = [int(b) for c, n in ((0, 8), (1, 4), (2, 3), (3, 1)) for b in rng.choice(np.flatnonzero(bags.labels == c), n, replace=False)]
    held = int(next(b for b in np.flatnonzero(bags.labels == 2) if b not in picked))
    train = root / "train"
    for b in picked:
        for m in bags.members[b]:
            dst = train / index.records[m].path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(index.root / index.records[m].path, dst)
    folder = root / "brain"
    folder.mkdir(parents=True)
    files = []
    for k, m in enumerate(bags.members[held]):  # unpadded numbers: the folder's order is the natural one
        files.append(folder / f"slice_{k}.jpg")
        shutil.copy2(index.root / index.records[m].path, files[-1])
    # the loader reorients to RAS and shows slice[x, y] as rows anterior..posterior, columns
    # patient right..left (data/volumes.py): the inverse turns each image back into a voxel plane
    planes = [decode_image(f, None)[::-1, ::-1].T for f in files]
    nifti = root / "brain.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(planes, axis=-1).astype(np.uint8), np.eye(4)), nifti)
    _BUILT[key] = {"train": train, "folder": folder, "files": files, "nifti": nifti}
    return _BUILT[key]


def brain_run(train: Path, out: Path, **settings) -> Path:
    """A tiny brain-level run on ``train`` (32 x 32, binary unless ``task`` is given), built once per session."""
    key = ("run", str(out))
    if key not in _BUILT:
        from alzmri.config import load_train_config
        from alzmri.pipeline.brains import train_brain

        opts = {"level": "brain", "model": "altzcnn", "image_size": 32, "task": "binary", "epochs": 3, "frozen_encoder": True, **settings}
        _BUILT[key] = train_brain(load_train_config(None, data=train, out=out, **opts), progress=False)
    return _BUILT[key]


@pytest.fixture(scope="module")
def brain(groups_6400, tmp_path_factory):
    return held_out_brain(groups_6400, tmp_path_factory.getbasetemp() / "brain-predict")


@pytest.fixture(scope="module")
def mil_run(brain, tmp_path_factory):
    return brain_run(brain["train"], tmp_path_factory.getbasetemp() / "brain-runs" / "mil")


@pytest.fixture(scope="module")
def baseline_run(brain, tmp_path_factory):
    return brain_run(brain["train"], tmp_path_factory.getbasetemp() / "brain-runs" / "baseline", model="baseline:atrophy")


def probs(answer: dict) -> np.ndarray:
    return np.array(list(answer["probabilities"].values()))


def check_answer(a: dict, *, n: int, source: str) -> None:
    """What every brain answer holds: one prediction, probabilities summing to 1, slices in order."""
    assert a["kind"] == "brain" and a["source"] == source and a["n_slices"] == len(a["slices"]) == n
    assert probs(a).sum() == pytest.approx(1.0) and a["predicted_class"] in a["probabilities"]
    assert a["confidence"] == a["probabilities"][a["predicted_class"]]
    assert a["p_demented"] == pytest.approx(1 - a["probabilities"]["NonDemented"])
    assert [s["position"] for s in a["slices"]] == sorted(s["position"] for s in a["slices"])
    if a["threshold"] is not None:
        assert a["predicted_class"] == ("Demented" if a["p_demented"] >= a["threshold"] else "NonDemented")


def test_mil_run_predicts_a_folder_as_the_training_code_does(mil_run, brain):
    from alzmri.training.brain import predict_bags

    a = predict_brain(mil_run, [brain["folder"]])
    check_answer(a, n=32, source="folder")
    assert [s["name"] for s in a["slices"]] == [f"slice_{k}.jpg" for k in range(32)]  # slice_2 before slice_10
    assert a["level"] == "brain" and a["task"] == "binary" and a["notes"] == [] and a["skipped"] == []
    assert a["threshold"] == json.loads((mil_run / "brain.json").read_text())["threshold"]
    assert sum(s["weight"] for s in a["slices"]) == pytest.approx(1.0, abs=1e-5) and "attention" in a["slice_weights"]
    # the same bag through the training code's predict_bags: same probabilities and attention weights
    images = np.stack([decode_image(f, 32) for f in brain["files"]])
    bag = SimpleNamespace(images=images, bags=SimpleNamespace(members=[np.arange(32)], positions=[relative_positions(32)]))
    ref, w = predict_bags(load_brain_run(mil_run)._model, bag, np.array([0]))
    np.testing.assert_allclose(probs(a), ref[0], atol=1e-6)
    np.testing.assert_allclose([s["weight"] for s in a["slices"]], w[0], atol=1e-6)
    # the slice files given one by one are the same brain
    b = predict_brain(mil_run, brain["files"])
    assert b["source"] == "files" and b["probabilities"] == a["probabilities"]


def test_ordinal_mean_pooling_run(brain, tmp_path_factory):
    """CORN head (K-1 logits through corn_log_probs) with mean pooling and slice positions, 4 classes."""
    from alzmri.training.brain import predict_bags

    run = brain_run(brain["train"], tmp_path_factory.getbasetemp() / "brain-runs" / "ordinal", task="4class", loss="ordinal",
                    pooling="mean", slice_position=True)
    a = predict_brain(run, [brain["folder"]])
    check_answer(a, n=32, source="folder")
    assert a["threshold"] is None and a["predicted_class"] == max(a["probabilities"], key=a["probabilities"].get)
    assert all(s["weight"] == pytest.approx(1 / 32) for s in a["slices"])
    images = np.stack([decode_image(f, 32) for f in brain["files"]])
    bag = SimpleNamespace(images=images, bags=SimpleNamespace(members=[np.arange(32)], positions=[relative_positions(32)]))
    ref, _ = predict_bags(load_brain_run(run)._model, bag, np.array([0]))
    np.testing.assert_allclose(probs(a), ref[0], atol=1e-6)


def test_baseline_run_predicts_a_folder(baseline_run, brain):
    from alzmri.models.baselines import load_baseline

    a = predict_brain(baseline_run, [brain["folder"]])
    check_answer(a, n=32, source="folder")
    base = load_baseline(baseline_run / "baseline")
    images = np.stack([decode_image(f, 32) for f in brain["files"]])
    np.testing.assert_allclose(probs(a), base.predict_proba([images])[0], atol=1e-12)
    np.testing.assert_allclose([s["weight"] for s in a["slices"]], base.slice_contributions(images), atol=1e-12)
    assert "contribution" in a["slice_weights"]


def test_slice_level_run_answers_the_mean_of_its_slices(tiny_run, brain):
    a = predict_brain(tiny_run, [brain["folder"]])
    check_answer(a, n=32, source="folder")
    assert a["level"] == "slice" and a["threshold"] is None and "mean of the slices" in a["aggregation"]
    per_file = predict_files(tiny_run, brain["files"])
    slice_p = np.array([probs(r) for r in per_file])
    np.testing.assert_allclose(probs(a), slice_p.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose([probs(s) for s in a["slices"]], slice_p, atol=1e-12)
    assert all(s["weight"] == pytest.approx(1 / 32) for s in a["slices"])


def test_a_nifti_volume_is_one_brain(mil_run, baseline_run, tiny_run, brain):
    answers = {r: predict_brain(r, [brain["nifti"]]) for r in (mil_run, baseline_run, tiny_run)}
    a = answers[mil_run]
    first, stop = a["volume"]["central_slices"]
    assert a["volume"]["n_slices"] == 32 and 20 <= stop - first <= 32
    for ans in answers.values():
        check_answer(ans, n=stop - first, source="volume")
        assert [s["name"] for s in ans["slices"]] == [f"slice {k}" for k in range(first, stop)]
        assert any("central axial slices" in n for n in ans["notes"])
    assert sum(s["weight"] for s in a["slices"]) == pytest.approx(1.0, abs=1e-5)
    # a slice-level run: the mean of the central slices, as predict_files answers for a volume
    (vol,) = predict_files(tiny_run, [brain["nifti"]])
    assert vol["central_slices"] == [first, stop]
    np.testing.assert_allclose(probs(answers[tiny_run]), probs(vol), atol=1e-12)


def test_cli_brain_flag_prints_one_answer(mil_run, tiny_run, brain, capsys):
    capsys.readouterr()
    assert main(["predict", str(tiny_run), *map(str, brain["files"]), "--brain", "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert isinstance(a, dict) and a["n_slices"] == 32 and a["source"] == "files"
    assert main(["predict", str(mil_run), str(brain["folder"]), "--brain"]) == 0
    text = capsys.readouterr().out
    assert "brain of 32 slices" in text and "decision: Demented when P(demented) >=" in text


def test_brain_level_run_takes_each_folder_or_volume_as_a_brain(mil_run, brain, capsys):
    capsys.readouterr()
    assert main(["predict", str(mil_run), str(brain["folder"]), str(brain["nifti"]), str(brain["files"][5]), "--json"]) == 0
    folder, volume, one = json.loads(capsys.readouterr().out)
    assert (folder["source"], volume["source"], one["source"]) == ("folder", "volume", "file")
    assert folder["n_slices"] == 32 and one["n_slices"] == 1 and one["slices"][0]["weight"] == pytest.approx(1.0)
    assert "brain of one slice" in one["notes"][0] and folder["notes"] == []


def test_unreadable_slices_are_left_out(mil_run, brain, tmp_path):
    folder = shutil.copytree(brain["folder"], tmp_path / "brain")
    (folder / "slice_32.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image file")
    a = predict_brain(mil_run, [folder])
    assert a["n_slices"] == 32 and len(a["skipped"]) == 1 and a["skipped"][0].startswith("slice_32.jpg: ")
    assert a["probabilities"] == predict_brain(mil_run, [brain["folder"]])["probabilities"]
    assert any("unreadable" in n for n in a["notes"])


@pytest.mark.parametrize("case", ["no readable image", "empty folder", "missing path", "folder among files", "text file alone"])
@pytest.mark.parametrize("which", ["mil", "slice"])
def test_bad_brain_input_is_one_line_and_exit_2(case, which, mil_run, tiny_run, brain, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    if case in ("no readable image", "text file alone"):
        (bad / "slice_0.jpg").write_text("a text file renamed .jpg")
    paths = {"no readable image": [bad], "empty folder": [bad], "missing path": [tmp_path / "nowhere"],
             "folder among files": [brain["files"][0], brain["folder"]], "text file alone": [bad / "slice_0.jpg"]}[case]
    run = mil_run if which == "mil" else tiny_run
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, paths), "--brain"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    named = {"missing path": "nowhere", "folder among files": str(brain["folder"])}.get(case, str(bad))
    assert named in err
    with pytest.raises(AlzmriError):
        predict_brain(run, paths)


def test_brain_run_refuses_cam_and_onnx(mil_run, baseline_run, brain):
    with pytest.raises(AlzmriError, match="Grad-CAM"):
        predict_files(mil_run, [brain["folder"]], cam_dir=brain["folder"].parent / "cam")
    with pytest.raises(AlzmriError, match="PyTorch only"):
        predict_brain(mil_run, [brain["folder"]], backend="onnx")
    with pytest.raises(AlzmriError, match="scikit-learn"):
        predict_brain(baseline_run, [brain["folder"]], backend="torch")


def test_loading_reads_no_pretrained_weights(mil_run, brain, tmp_path):
    """A run trained from a weights file (config.yaml model_kwargs.weights) loads without that file: model.safetensors holds all."""
    import yaml

    run = shutil.copytree(mil_run, tmp_path / "run")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model_kwargs"]["weights"] = str(tmp_path / "gone" / "imagenet.safetensors")  # building with it would read it and fail
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    a, b = predict_brain(run, [brain["folder"]]), predict_brain(mil_run, [brain["folder"]])
    assert a["probabilities"] == b["probabilities"]


@pytest.mark.parametrize("damage", ["weights", "brain.json", "baseline"])
def test_damaged_run_is_one_line(damage, mil_run, baseline_run, brain, tmp_path, capsys):
    run = shutil.copytree(baseline_run if damage == "baseline" else mil_run, tmp_path / "run")
    target = {"weights": run / "model.safetensors", "brain.json": run / "brain.json", "baseline": run / "baseline" / "baseline.safetensors"}[damage]
    target.write_bytes(b"\x80\x04 not safetensors, maybe a pickle")
    capsys.readouterr()
    assert main(["predict", str(run), str(brain["folder"]), "--brain"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and str(run) in err
