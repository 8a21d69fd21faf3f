"""Catalogue of bad input driven through the real CLI (issue 9 and issue 5's bad input).

Every case builds its bad file in the test from real slices of alzheimer-mri-6400 (no
binary fixtures) and runs ``alzmri`` through :func:`alzmri.cli.main`, the console
script's entry point. A refused input must give exit code 2 and exactly one line on
stderr, ``error: ...``, naming the offending file and a fix, with no traceback and no
run folder left behind. docs/reliability.md lists the same catalogue.

Inputs that can be read after conversion (16-bit, alpha, CMYK, palette, other sizes)
are converted and counted; unreadable files left out with ``--skip-unreadable`` are
listed in ``skipped.csv`` and said in one console line.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from alzmri.cli import main
from _helpers import DATA_176, copy_subset, require

REPO = Path(__file__).resolve().parents[1]
TRAIN = ("--epochs", "1", "--image-size", "32", "--batch-size", "8", "--split-strategy", "stratified", "--no-progress")


def run_cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def real_slice(data_6400: Path, cls: str = "Mild_Demented", k: int = 0) -> Path:
    return sorted((data_6400 / cls).iterdir())[k]


def gray(data_6400: Path, k: int = 0) -> np.ndarray:
    """A real 128 x 128 slice as uint8 (H, W)."""
    return np.asarray(Image.open(real_slice(data_6400, k=k)).convert("L"))


def real_volume(data_6400: Path, n: int = 24) -> np.ndarray:
    """(128, 128, n) float32 stack of real consecutive-by-name slices (RAS: x, y, slice)."""
    files = sorted((data_6400 / "Moderate_Demented").iterdir())[:n]
    return np.stack([np.asarray(Image.open(f).convert("L"), np.float32).T[:, ::-1] for f in files], axis=2)


def save_nifti(arr: np.ndarray, path: Path) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.0, 1.0, 1.0])), str(path))
    return path


class EvilPickle:
    """Unpickling this object runs ``os.system(command)``: what a hostile checkpoint carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_evil_checkpoint(path: Path, marker: Path, real_tensor: torch.Tensor) -> Path:
    """A torch.save file that looks like a state dict but creates ``marker`` when unpickled."""
    torch.save({"state_dict": {"features.0.weight": real_tensor}, "hook": EvilPickle(f"touch '{marker}'")}, path)
    return path


# --------------------------------------------------------------------------- the catalogue


@dataclass
class Case:
    """One bad input: ``build(ctx)`` makes the files and returns the CLI arguments."""

    id: str
    build: Callable[["Ctx"], list]
    pattern: str  # regex the single error line must match: the offending file and the fix


@dataclass
class Ctx:
    tmp: Path
    data: Path  # 6 real slices per class, copied
    data_6400: Path
    run: Path | None = None  # a copy of the tiny real run, only for predict cases

    def train(self, *extra) -> list:
        return ["train", "--data", self.data, "--out", self.tmp / "runs" / "new", *TRAIN, *extra]

    def config(self, text: str) -> Path:
        p = self.tmp / "bad.yaml"
        p.write_text(text)
        return p

    def slice_file(self, cls="Mild_Demented", k=0) -> Path:
        return sorted((self.data / cls).iterdir())[k]


def _truncated(c: Ctx):
    f = c.slice_file(k=1)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return c.train()


def _zero_bytes(c: Ctx):
    c.slice_file(k=1).write_bytes(b"")
    return c.train()


def _text_as_jpg(c: Ctx):
    (c.data / "Mild_Demented" / "notes.jpg").write_text("scan notes, not an image\n")
    return c.train()


def _bomb(c: Ctx):
    # a real slice in the corner of an 8000 x 8000 canvas: 64 million pixels, ~100 kB of PNG
    canvas = Image.new("L", (8000, 8000))
    canvas.paste(Image.open(c.slice_file(k=0)).convert("L"), (0, 0))
    canvas.save(c.data / "Mild_Demented" / "bomb.png", compress_level=1)
    return c.train()


def _one_pixel(c: Ctx):
    Image.open(c.slice_file(k=0)).convert("L").resize((1, 1)).save(c.data / "Mild_Demented" / "tiny.png")
    return c.train()


def _dir_symlink_loop(c: Ctx):
    os.symlink(c.data, c.data / "Mild_Demented" / "loop")  # the class folder reaches the whole dataset again
    return c.train()


def _file_symlink_loop(c: Ctx):
    a, b = c.data / "Mild_Demented" / "loop_a.jpg", c.data / "Mild_Demented" / "loop_b.jpg"
    os.symlink(b, a)
    os.symlink(a, b)
    return c.train()


def _empty_class(c: Ctx):
    for f in (c.data / "Moderate_Demented").iterdir():
        f.unlink()
    return c.train()


def _single_class(c: Ctx):
    for d in ("Mild_Demented", "Moderate_Demented", "Very_Mild_Demented"):
        shutil.rmtree(c.data / d)
    return c.train()


def _unknown_key(c: Ctx):
    return ["train", "--config", c.config("epochs: 1\nlearning_rate: 0.01\n"), "--data", c.data, "--out", c.tmp / "runs" / "new"]


def _wrong_type(c: Ctx):
    return ["train", "--config", c.config("epochs: ten\n"), "--data", c.data, "--out", c.tmp / "runs" / "new"]


def _negative_lr_config(c: Ctx):
    return ["train", "--config", c.config("lr: -0.001\n"), "--data", c.data, "--out", c.tmp / "runs" / "new"]


def _negative_lr_option(c: Ctx):
    return c.train("--lr", "-1")


def _gpu_accelerator_without_gpu(c: Ctx):
    return c.train("--accelerator", "gpu")


def _tpu_accelerator_without_torch_xla(c: Ctx):
    return c.train("--accelerator", "tpu")


def _predict_cam_into_a_file(c: Ctx):
    (c.tmp / "afile").write_text("not a folder")
    return ["predict", c.run, c.slice_file(), "--cam", c.tmp / "afile"]


def _manifest_other_dataset(c: Ctx):
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import write_manifest
    from alzmri.data.splits import make_split

    other = copy_subset(require(DATA_176) / "test", c.tmp / "other", 6)
    idx = discover(other)
    write_manifest(c.tmp / "other_manifest.csv", idx, make_split("stratified", idx.labels, seed=0))
    return c.train("--split", c.tmp / "other_manifest.csv")


def _other_arch_weights_for_training(c: Ctx):
    from safetensors.torch import save_file

    from alzmri.models import create_model

    m = create_model("mobilenet_v2", num_classes=4, in_chans=1, image_size=32)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(c.tmp / "mobilenet.safetensors"))
    return ["train", "--config", c.config(f"model_kwargs: {{weights: {c.tmp / 'mobilenet.safetensors'}}}\n"), "--data", c.data, "--out", c.tmp / "runs" / "new", *TRAIN]


def _other_arch_run_weights(c: Ctx):
    from safetensors.torch import save_file

    from alzmri.models import create_model

    m = create_model("mobilenet_v2", num_classes=4, in_chans=1, image_size=32)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(c.run / "model.safetensors"))
    return ["predict", c.run, c.slice_file()]


def _text_as_weights_for_training(c: Ctx):
    (c.tmp / "weights.pt").write_text("these are not weights\n")
    return ["train", "--config", c.config(f"model_kwargs: {{weights: {c.tmp / 'weights.pt'}}}\n"), "--data", c.data, "--out", c.tmp / "runs" / "new", *TRAIN]


def _jpeg_as_run_weights(c: Ctx):
    shutil.copy(c.slice_file(), c.run / "model.safetensors")
    return ["predict", c.run, c.slice_file()]


def _pickle_as_run_weights(c: Ctx):
    state = torch.load(c.run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    write_evil_checkpoint(c.run / "model.safetensors", c.tmp / "PWNED", next(iter(state.values())))
    return ["predict", c.run, c.slice_file()]


def _predict_truncated_jpeg(c: Ctx):
    f = c.slice_file()
    f.write_bytes(f.read_bytes()[:400])
    return ["predict", c.run, f]


def _predict_one_pixel(c: Ctx):
    Image.open(c.slice_file()).convert("L").resize((1, 1)).save(c.tmp / "tiny.png")
    return ["predict", c.run, c.tmp / "tiny.png"]


def _predict_4d(c: Ctx):
    vol = real_volume(c.data_6400)
    return ["predict", c.run, save_nifti(np.stack([vol, vol * 0.9, vol * 1.1], axis=3), c.tmp / "bold.nii.gz")]


def _predict_truncated_nifti(c: Ctx):
    p = save_nifti(real_volume(c.data_6400), c.tmp / "scan.nii.gz")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return ["predict", c.run, p]


def _predict_dicom_without_pixels(c: Ctx):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    rows, cols = gray(c.data_6400).shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = MRImageStorage, generate_uid(), ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns, ds.SeriesInstanceUID = rows, cols, generate_uid()  # the header of a real slice, no PixelData
    ds.save_as(str(c.tmp / "header_only.dcm"), enforce_file_format=True)
    return ["predict", c.run, c.tmp / "header_only.dcm"]


def _predict_not_onnx(c: Ctx):
    shutil.copy(c.slice_file(), c.tmp / "model.onnx")
    return ["predict", c.tmp / "model.onnx", c.slice_file()]


CATALOGUE = [
    Case("truncated-jpeg", _truncated, r"Mild_Demented/\S+\.jpg: corrupt or truncated image .*remove or replace the file, or pass --skip-unreadable"),
    Case("zero-byte-jpeg", _zero_bytes, r"Mild_Demented/\S+\.jpg: empty file \(0 bytes\); remove or replace the file, or pass --skip-unreadable"),
    Case("text-file-named-jpg", _text_as_jpg, r"notes\.jpg: not an image file .*; remove or replace the file, or pass --skip-unreadable"),
    Case("decompression-bomb", _bomb, r"bomb\.png: 8000x8000 pixels is over the 50,000,000-pixel limit.*; remove or replace the file"),
    Case("1x1-image", _one_pixel, r"tiny\.png: 1x1 pixels is too small to be an MRI slice.*; remove or replace the file"),
    Case("symlink-loop-folder", _dir_symlink_loop, r"Mild_Demented/loop: symbolic link to .*data, which holds the class folder itself \(a loop that would count other classes' images as MildDemented\); remove the link"),
    Case("symlink-loop-file", _file_symlink_loop, r"Mild_Demented/loop_a\.jpg: broken or looping symbolic link.*; remove or replace the file, or pass --skip-unreadable"),
    Case("class-folder-without-images", _empty_class, r"Moderate_Demented: class folder holds no images; add images or remove the empty folder"),
    Case("single-class-dataset", _single_class, r"data: the training split holds a single class \(NonDemented\); a classifier needs at least two: add a class folder with images of another class"),
    Case("config-unknown-key", _unknown_key, r"bad\.yaml: unknown key 'learning_rate' \(did you mean 'lr'\?\)"),
    Case("config-wrong-type", _wrong_type, r"bad\.yaml: 'epochs' input should be a valid integer.*; got 'ten'"),
    Case("negative-lr-config", _negative_lr_config, r"bad\.yaml: 'lr' input should be greater than 0; got -0\.001"),
    Case("negative-lr-option", _negative_lr_option, r"command line: 'lr' input should be greater than 0; got -1"),
    Case("manifest-of-another-dataset", _manifest_other_dataset, r"other_manifest\.csv: 24 file\(s\) named in the manifest are not in .*; point --data at the dataset the manifest was made from"),
    Case("weights-of-another-architecture", _other_arch_weights_for_training, r"mobilenet\.safetensors: weights do not fit model 'altzcnn'.*the file belongs to another architecture"),
    Case("run-weights-of-another-architecture", _other_arch_run_weights, r"model\.safetensors: weights do not fit model 'altzcnn'.*the file belongs to another architecture"),
    Case("weights-file-not-a-checkpoint", _text_as_weights_for_training, r"weights\.pt: not a readable weights file.*; save a state dict"),
    Case("run-weights-not-safetensors", _jpeg_as_run_weights, r"model\.safetensors: not a readable safetensors weights file.*; retrain the run"),
    Case("run-weights-crafted-pickle", _pickle_as_run_weights, r"model\.safetensors: not a readable safetensors weights file.*; retrain the run"),
    Case("predict-truncated-jpeg", _predict_truncated_jpeg, r"Mild_Demented/\S+\.jpg: corrupt or truncated image.*; replace it with a readable JPEG or PNG slice"),
    Case("predict-1x1-image", _predict_one_pixel, r"tiny\.png: 1x1 pixels is too small to be an MRI slice; replace it with a readable JPEG or PNG slice"),
    Case("predict-4d-fmri-nifti", _predict_4d, r"bold\.nii\.gz: a 4D image of shape \(128, 128, 24, 3\).*extract one 3D volume first.*; pass a 3D structural T1 volume"),
    Case("predict-truncated-nii-gz", _predict_truncated_nifti, r"scan\.nii\.gz: unreadable or truncated NIfTI file.*; pass a complete"),
    Case("predict-dicom-without-pixel-data", _predict_dicom_without_pixels, r"header_only\.dcm: DICOM file without pixel data.*; pass a DICOM image file"),
    Case("predict-onnx-not-onnx", _predict_not_onnx, r"model\.onnx: not a readable ONNX model.*; export it again"),
    Case("predict-cam-into-a-file", _predict_cam_into_a_file, r"afile: exists and is not a folder; pass a folder for --cam"),
]
if __import__("importlib").util.find_spec("torch_xla") is None:
    CATALOGUE.append(Case("accelerator-tpu-without-torch-xla", _tpu_accelerator_without_torch_xla,
                          r"cannot run accelerator='tpu' devices=1 .*torch_xla.*; change --accelerator"))
if not __import__("torch").cuda.is_available():  # on a machine with a GPU this is not an error
    CATALOGUE.append(Case("accelerator-gpu-without-gpu", _gpu_accelerator_without_gpu,
                          r"cannot run accelerator='gpu' devices=1 .*No supported gpu backend found.*; change --accelerator"))


@pytest.fixture
def data(tmp_path, data_6400):
    return copy_subset(data_6400, tmp_path / "data", 6)


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_is_one_line_exit_2(case, capsys, tmp_path, data, data_6400, request):
    ctx = Ctx(tmp=tmp_path, data=data, data_6400=data_6400)
    if case.id.startswith(("predict", "run-")):
        ctx.run = Path(shutil.copytree(request.getfixturevalue("tiny_run"), tmp_path / "run"))
    args = case.build(ctx)
    code, out, err = run_cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert re.search(case.pattern, lines[0]), lines[0]
    assert not (tmp_path / "runs" / "new").exists(), "a refused input must not leave a run folder"
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- untrusted checkpoints


@pytest.mark.slow
def test_crafted_pickle_checkpoint_is_refused_and_runs_no_code(tmp_path, data_6400):
    """A torch.save file whose unpickling calls os.system: refused by the real console script; the command never runs."""
    data = copy_subset(data_6400, tmp_path / "data", 6)
    marker = tmp_path / "PWNED"
    evil = write_evil_checkpoint(tmp_path / "evil.pt", marker, torch.zeros(32, 1, 3, 3))
    # the file is really hostile: an unrestricted unpickler runs the command
    probe = tmp_path / "probe.pt"
    write_evil_checkpoint(probe, tmp_path / "PROBE", torch.zeros(1))
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(probe)!r}, weights_only=False)"], check=True, cwd=REPO / "tests")
    assert (tmp_path / "PROBE").exists()

    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"model_kwargs: {{weights: {evil}}}\n")
    exe = REPO / ".venv" / "bin" / "alzmri"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "alzmri"]
    proc = subprocess.run([*cmd, "train", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "run"), *TRAIN], capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert re.search(r"evil\.pt: refused: the file holds pickled Python objects other than tensors", lines[0]), lines[0]
    assert not marker.exists(), "unpickling ran the command"
    assert not (tmp_path / "run").exists()


def _calls(attr: str, owner: str | None = None) -> list[tuple[str, ast.Call]]:
    """(file:line, call) of every call ``X.attr(...)`` in the code of src/ (``owner``: X must be that name)."""
    found = []
    for f in sorted((REPO / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr:
                if owner is None or (isinstance(node.func.value, ast.Name) and node.func.value.id == owner):
                    found.append((f"{f.relative_to(REPO).as_posix()}:{node.lineno}", node))
    return found


def _weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def test_every_torch_load_in_src_is_weights_only():
    """Static check of the code (ast): each torch.load call in src/ passes weights_only=True, and so does every
    Lightning resume (``fit(..., ckpt_path=...)``); nothing calls ``load_from_checkpoint`` (full unpickling)."""
    loads = _calls("load", owner="torch")
    assert loads, "expected at least one torch.load in src/"
    assert [where for where, c in loads if not _weights_only(c)] == []
    resumes = [(where, c) for where, c in _calls("fit") if any(k.arg == "ckpt_path" for k in c.keywords)]
    assert [where for where, c in resumes if not _weights_only(c)] == []
    assert _calls("load_from_checkpoint") == []
    from alzmri.runs import WEIGHTS_FILE

    assert WEIGHTS_FILE.endswith(".safetensors")


# --------------------------------------------------------------------------- 3D input given as a slice


def test_3d_nifti_given_where_a_slice_is_expected_is_predicted_as_a_volume(capsys, tmp_path, data_6400, tiny_run):
    """Decision (docs/reliability.md): a 3D file is accepted as a volume, not refused; the output says so."""
    vol = save_nifti(real_volume(data_6400, 24), tmp_path / "slices.nii.gz")
    code, out, err = run_cli(capsys, "predict", tiny_run, vol, "--json")
    assert code == 0, err
    (res,) = json.loads(out)
    assert res["kind"] == "volume" and res["n_slices"] == 24
    assert sum(res["probabilities"].values()) == pytest.approx(1.0)
    code, out, _ = run_cli(capsys, "predict", tiny_run, vol)
    assert code == 0 and "(volume,meanofslices0-23)" in re.sub(r"[\s│┃]", "", out)


# --------------------------------------------------------------------------- converted and counted, skipped and listed


def test_convertible_images_are_counted_and_unreadable_ones_listed(capsys, tmp_path, data_6400, data_176):
    data = copy_subset(data_6400, tmp_path / "data", 6)
    mild = data / "Mild_Demented"
    g = gray(data_6400, k=10)
    Image.fromarray(g.astype(np.uint16) * 257).save(mild / "sixteen_bit.png")  # mode I;16
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 200)])).save(mild / "alpha.png")  # RGBA
    Image.fromarray(g).convert("CMYK").save(mild / "cmyk.jpg", quality=95)
    Image.fromarray(g).convert("P").save(mild / "palette.png")
    big = sorted((data_176 / "test" / "MildDemented").iterdir())[0]
    shutil.copy(big, mild / "other_size.jpg")  # 176 x 208
    bad = sorted((data / "Non_Demented").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:300])

    code, out, err = run_cli(capsys, "data", "inspect", data, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["counts"] == {"NonDemented": 6, "VeryMildDemented": 6, "MildDemented": 11, "ModerateDemented": 6}
    assert info["modes"] == {"L": 24, "I;16": 1, "RGBA": 1, "CMYK": 1, "P": 1}
    assert info["sizes"] == {"128x128": 27, "176x208": 1}
    assert [u["path"] for u in info["unreadable"]] == [f"Non_Demented/{bad.name}"]

    from alzmri.data.cache import load_images
    from alzmri.data.discovery import discover

    cached = load_images(discover(data), 32)
    assert cached.images.shape == (29, 32, 32) and int(cached.readable.sum()) == 28
    converted = [i for i, r in enumerate(discover(data).records) if Path(r.path).stem in ("sixteen_bit", "alpha", "cmyk", "palette", "other_size")]
    assert len(converted) == 5 and all(cached.images[i].max() > 100 for i in converted)

    run = tmp_path / "runs" / "mixed"
    code, out, err = run_cli(capsys, "train", "--data", data, "--out", run, *TRAIN, "--skip-unreadable")
    assert code == 0, err
    assert "Traceback" not in err
    info = json.loads((run / "run.json").read_text())
    assert sum(info["split_counts"].values()) == 28
    with open(run / "skipped.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [f"Non_Demented/{bad.name}"] and "truncated" in rows[0]["reason"]
    summary = [line for line in err.splitlines() if "skipped" in line]
    assert len(summary) == 1, err
    assert re.search(rf"warning: skipped 1 unreadable image\(s\) of 29 in .*data \(first: Non_Demented/{re.escape(bad.name)}: corrupt or truncated", summary[0])
    assert str(run / "skipped.csv") in summary[0]
    manifest = (run / "manifest.csv").read_text()
    assert bad.name not in manifest and all(n in manifest for n in ("sixteen_bit.png", "alpha.png", "cmyk.jpg", "palette.png", "other_size.jpg"))


# --------------------------------------------------------------------------- out-of-distribution input (issue 5)


def test_photo_given_to_predict_is_flagged_not_crashed(capsys, tmp_path, tiny_run, small_data):
    """An RGB photo of a cat or of coffee: predicted without a crash, flagged in JSON and on the console."""
    skdata = pytest.importorskip("skimage.data")
    cat, coffee = tmp_path / "cat.jpg", tmp_path / "coffee.jpg"
    Image.fromarray(skdata.chelsea()).save(cat, quality=90)
    Image.fromarray(skdata.coffee()).save(coffee, quality=90)
    mri = sorted((small_data / "Mild_Demented").iterdir())[0]

    code, out, err = run_cli(capsys, "predict", tiny_run, cat, mri, coffee, "--json")
    assert code == 0, err
    res = {Path(r["path"]).name: r for r in json.loads(out)}
    for name in ("cat.jpg", "coffee.jpg"):
        r = res[name]
        assert r["looks_like_mri"] is False
        assert r["input_check"]["chroma"] > 0.1 and any("colour image" in why for why in r["input_check"]["reasons"])
        assert r["warning"].startswith(f"{tmp_path / name} does not look like a brain MRI slice (")
        assert sum(r["probabilities"].values()) == pytest.approx(1.0) and r["confidence"] == max(r["probabilities"].values())
    assert res[mri.name]["looks_like_mri"] is True and "warning" not in res[mri.name]
    assert res[mri.name]["input_check"]["reasons"] == []
    warn = [line for line in err.splitlines() if line.strip()]
    assert len(warn) == 2 and all(line.startswith("warning: ") and "does not look like a brain MRI slice" in line for line in warn)

    code, out, err = run_cli(capsys, "predict", tiny_run, cat, mri)
    assert code == 0 and "Traceback" not in out + err
    flat = re.sub(r"[\s│┃]", "", out)
    assert "MRI-like" in flat and flat.count("NO") >= 1 and "yes" in flat
    assert len([line for line in err.splitlines() if "does not look like a brain MRI slice" in line]) == 1
