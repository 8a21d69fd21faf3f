"""Grad-CAM: maps of the right shape and range, overlays from the CLI, and evidence inside the brain for a model trained on real slices."""

import json
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from alzmri.cli import main
from alzmri.errors import AlzmriError
from alzmri.explain.gradcam import gradcam_maps, overlay_heatmap, vit_reshape_transform
from alzmri.inference.inputs import load_image_files
from alzmri.runs import load_model
from alzmri.utils.io import current_umask


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cam_run(small_data, tmp_path_factory):
    """AltzCNN at 64 x 64 (an 8 x 8 CAM grid) trained 15 epochs on 84 real slices (about 70 s).

    Higher learning rates collapse this small run to a constant output, whose CAM says nothing;
    so can 10 epochs, depending on the shuffle order (seed 0 gave a near-constant output).
    """
    from alzmri.config import load_train_config
    from alzmri.pipeline import train

    out = tmp_path_factory.mktemp("cam-runs") / "altz64"
    cfg = load_train_config(data=small_data, out=out, epochs=15, batch_size=8, lr=3e-4, image_size=64, augment=False, seed=0,
                            split_strategy="stratified", model_kwargs={"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"})
    return train(cfg, progress=False)


def _brain_mask(img: np.ndarray) -> np.ndarray:
    """Foreground of a slice: 5 x 5 mean above 20 (of 255)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(img.astype(np.float64), 5) > 20


@pytest.mark.slow
def test_maps_are_finite_in_range_and_of_the_image_size(cam_run, small_data):
    model, info = load_model(cam_run)
    images = load_image_files(sorted(small_data.rglob("*.jpg"))[:3], info.image_size)
    maps, classes = gradcam_maps(model, info, images)
    assert maps.shape == images.shape and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    with torch.no_grad():
        from alzmri.runs import predict_proba

        assert classes.tolist() == predict_proba(model, info, images).argmax(1).tolist()
    maps2, classes2 = gradcam_maps(model, info, images, target_classes=[3, 3, 3])
    assert classes2.tolist() == [3, 3, 3] and maps2.shape == maps.shape
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(AlzmriError, match="target_classes"):
        gradcam_maps(model, info, images, target_classes=[0])


@pytest.mark.slow
def test_evidence_lies_mostly_inside_the_brain(cam_run, small_data):
    """Mean CAM inside the brain mask is well above the mean over the black background."""
    model, info = load_model(cam_run)
    images = load_image_files(sorted(small_data.rglob("*.jpg"))[::6], info.image_size)
    from alzmri.runs import predict_proba

    probs = predict_proba(model, info, images)
    assert probs.std(axis=0).max() > 0.05 and len(set(probs.argmax(1))) > 1  # the model learned: outputs depend on the slice
    maps, _ = gradcam_maps(model, info, images)
    inside = np.array([m[_brain_mask(x)].mean() for m, x in zip(maps, images)])
    outside = np.array([m[~_brain_mask(x)].mean() for m, x in zip(maps, images)])
    assert inside.mean() > 1.5 * outside.mean(), (inside.round(2), outside.round(2))
    assert (inside > outside).mean() >= 0.6, (inside.round(2), outside.round(2))


@pytest.mark.slow
def test_cli_writes_overlays(cam_run, small_data, tmp_path, capsys):
    files = sorted(small_data.rglob("*.jpg"))[:2]
    capsys.readouterr()
    assert main(["predict", str(cam_run), *map(str, files), "--cam", str(tmp_path / "cams"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for f, r in zip(files, res):
        png = tmp_path / "cams" / f"{f.name}_cam.png"
        assert r["cam"] == str(png) and r["explained_class"] == r["predicted_class"]
        with Image.open(png) as im:
            assert im.mode == "RGB" and im.size == Image.open(f).size  # drawn on the full-resolution slice
        assert stat.S_IMODE(png.stat().st_mode) == 0o666 & ~current_umask()  # written as plain open() would
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == sorted(f"{f.name}_cam.png" for f in files)  # no temporary file left
    assert main(["predict", str(cam_run), str(files[0]), "--cam", str(tmp_path / "c2")]) == 0
    assert "Grad-CAM overlays written" in capsys.readouterr().out


def test_overlay_and_vit_reshape():
    img = np.zeros((20, 30), np.uint8)
    cam = np.zeros((5, 5), np.float32)
    cam[2, 2] = 1.0
    rgb = overlay_heatmap(img, cam)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)  # class token + 4 x 4 grid
    grid = vit_reshape_transform(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[:, :, 0, 0], tokens[:, 1]) and torch.equal(grid[:, :, 3, 3], tokens[:, 16])
    assert vit_reshape_transform(tokens[:, 1:]).shape == (2, 3, 4, 4)


@pytest.mark.parametrize("name", __import__("alzmri.models", fromlist=["list_models"]).list_models())
def test_every_registered_model_gives_a_map(name):
    """Untrained, 32 x 32: the CAM layer exists, ViT tokens reshape, maps are finite in [0, 1]."""
    from alzmri.models import create_model
    from alzmri.runs import RunInfo

    torch.manual_seed(0)
    model = create_model(name, num_classes=4, in_chans=1, image_size=32, weights="none").eval()
    info = RunInfo(model=name, image_size=32, in_chans=1, mean=0.5, std=0.25, class_names=["a", "b", "c", "d"])
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    maps, classes = gradcam_maps(model, info, images)
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1
    assert len(classes) == 2
