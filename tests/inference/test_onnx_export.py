"""ONNX export of a real trained run: onnxruntime matches PyTorch; the runtime side needs no torch."""

import json
import subprocess
import sys

import numpy as np
import pytest

from alzmri.cli import main
from alzmri.errors import AlzmriError
from alzmri.inference.onnx_export import OnnxPredictor, export_onnx, preprocess
from alzmri.inference.inputs import load_image_files
from alzmri.inference.predict import predict_files
from alzmri.runs import predict_proba
from alzmri.runs import RunInfo, load_model


@pytest.fixture(scope="module")
def onnx_file(tiny_run, tmp_path_factory):
    return export_onnx(tiny_run, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _real_slices(small_data, n):
    files = sorted(small_data.rglob("*.jpg"))[:: max(1, 120 // n)][:n]
    return files


def test_onnxruntime_matches_pytorch_at_batch_1_and_5(tiny_run, onnx_file, small_data):
    model, info = load_model(tiny_run)
    files = _real_slices(small_data, 5)
    images = load_image_files(files, info.image_size)
    pred = OnnxPredictor(onnx_file, threads=1)
    for batch in (images[:1], images):
        ref = predict_proba(model, info, batch)
        got = pred.predict_proba(batch)
        assert got.shape == ref.shape == (len(batch), 4)
        np.testing.assert_allclose(got, ref, atol=1e-4)
        import torch
        from alzmri.data.preprocess import prepare_batch

        x = prepare_batch(torch.from_numpy(batch), mean=info.mean, std=info.std, in_chans=info.in_chans)
        np.testing.assert_allclose(preprocess(batch, mean=info.mean, std=info.std, in_chans=info.in_chans), x.numpy(), atol=1e-7)
        with torch.no_grad():
            np.testing.assert_allclose(pred.logits(batch), model(x).numpy(), atol=1e-4)


def test_metadata_describes_preprocessing(tiny_run, onnx_file):
    import onnx

    info = RunInfo.load(tiny_run)
    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}["alzmri"])
    assert meta["image_size"] == 32 and meta["in_chans"] == info.in_chans
    assert meta["mean"] == info.mean and meta["std"] == info.std
    assert meta["class_names"] == info.class_names and meta["temperature"] == 1.0
    assert not list(onnx_file.parent.glob(".*"))  # no temporary files left


def test_predictor_runs_without_torch(onnx_file, small_data):
    img = _real_slices(small_data, 1)[0]
    code = f"""
import sys
sys.modules['torch'] = None  # any import of torch now fails
from alzmri.inference.onnx_export import OnnxPredictor
from alzmri.data.images import decode_image
p = OnnxPredictor({str(onnx_file)!r}, threads=1)
prob = p.predict_proba(decode_image({str(img)!r}, p.image_size)[None])
assert abs(prob.sum() - 1) < 1e-6
assert not any(m == 'torch' or m.startswith(('torch.', 'alzmri.models', 'lightning')) for m in sys.modules if sys.modules[m] is not None)
print('ok', prob.shape)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ok (1, 4)" in res.stdout


def test_cli_export_and_predict_with_onnx(tiny_run, small_data, tmp_path, capsys):
    path = tmp_path / "sub" / "m.onnx"
    assert main(["export", str(tiny_run), "--onnx", str(path)]) == 0
    files = _real_slices(small_data, 2)
    capsys.readouterr()
    assert main(["predict", str(path), *map(str, files), "--json"]) == 0
    via_onnx = json.loads(capsys.readouterr().out)
    via_torch = predict_files(tiny_run, files)
    for a, b in zip(via_onnx, via_torch):
        assert a["predicted_class"] == b["predicted_class"]
        for c in a["probabilities"]:
            assert a["probabilities"][c] == pytest.approx(b["probabilities"][c], abs=1e-4)


def test_bad_onnx_inputs(tmp_path, tiny_run):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AlzmriError, match="not a readable ONNX model"):
        OnnxPredictor(bad)
    with pytest.raises(AlzmriError, match="not found"):
        OnnxPredictor(tmp_path / "missing.onnx")
    with pytest.raises(AlzmriError, match=r"must end in \.onnx"):
        export_onnx(tiny_run, tmp_path / "model.bin")


def test_mobilenet_v2_run_exports_with_dynamic_batch(tmp_path):
    import torch

    from alzmri.models import create_model
    from alzmri.runs import save_weights

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=4, in_chans=3, image_size=32, weights="none").eval()
    run = tmp_path / "mnv2"
    run.mkdir()
    RunInfo(model="mobilenet_v2", image_size=32, in_chans=3, mean=0.449, std=0.226, class_names=["a", "b", "c", "d"]).save(run)
    save_weights(model, run)
    pred = OnnxPredictor(export_onnx(run, tmp_path / "mnv2.onnx"), threads=1)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    model, info = load_model(run)
    for batch in (images[:1], images):
        np.testing.assert_allclose(pred.predict_proba(batch), predict_proba(model, info, batch), atol=1e-4)


def test_predict_runs_the_onnx_export_by_default_and_matches_torch(tiny_run, small_data, tmp_path, _isolated_cache):
    """`alzmri predict RUN` uses ONNX Runtime (the faster path, docs/performance.md) on an export cached once."""
    from alzmri.inference.backends import DEFAULT_BACKEND

    assert DEFAULT_BACKEND == "onnx"
    files = _real_slices(small_data, 6)
    cached = list((_isolated_cache / "onnx").glob("*.onnx")) if (_isolated_cache / "onnx").is_dir() else []
    default = predict_files(tiny_run, files)
    exports = sorted((_isolated_cache / "onnx").glob("*.onnx"))
    assert len(exports) == len(cached) + (0 if cached else 1) and exports  # exported once into the cache
    torch_rows = predict_files(tiny_run, files, backend="torch")
    for a, b in zip(default, torch_rows):
        assert a["predicted_class"] == b["predicted_class"]
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-4)
    # Grad-CAM needs PyTorch: with --cam the default is torch, and onnx is refused in one line
    with_cam = predict_files(tiny_run, files[:2], cam_dir=tmp_path / "cam")
    for a, b in zip(with_cam, torch_rows[:2]):  # the same PyTorch model (batch 2 vs 6: rounding only)
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6)
    with pytest.raises(AlzmriError, match="Grad-CAM needs the PyTorch model"):
        predict_files(tiny_run, files[:1], cam_dir=tmp_path / "cam2", backend="onnx")
    with pytest.raises(AlzmriError, match="unknown backend 'tensorrt'"):
        predict_files(tiny_run, files[:1], backend="tensorrt")


def test_onnx_backend_uses_an_export_of_the_run_weights_only(tiny_run, small_data, tmp_path, monkeypatch):
    """A stray .onnx in the run folder is ignored; a damaged cached export is made again; an
    unwritable cache is one clear error."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    files = _real_slices(small_data, 3)
    want = predict_files(run, files, backend="torch")
    (run / "model.onnx").write_bytes(b"a stray file that is not this run's model")
    got = predict_files(run, files)
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in got], [list(r["probabilities"].values()) for r in want], atol=1e-4)

    cache = tmp_path / "cache"
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(cache))
    predict_files(run, files[:1])
    (export,) = (cache / "onnx").glob("*.onnx")
    export.write_bytes(export.read_bytes()[:100])  # truncated
    again = predict_files(run, files)
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in again], [list(r["probabilities"].values()) for r in want], atol=1e-4)
    assert export.stat().st_size > 1000

    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(not_a_dir))
    with pytest.raises(AlzmriError, match=r"cache-file/onnx: cannot write the ONNX export there .*ALZMRI_CACHE_DIR.*--backend torch"):
        predict_files(run, files[:1])
    assert predict_files(run, files[:1], backend="torch")[0]["predicted_class"] == want[0]["predicted_class"]
