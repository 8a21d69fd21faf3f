"""Loading weights into a model: a cached ImageNet file adapted to one channel and a new
head, weight files from a path (torchvision, timm and alzmri keys), ViT position
embeddings resampled, and clear errors for weights of another architecture.

Caches point to tmp folders and ``ALZMRI_OFFLINE=1``: nothing depends on the user's
caches or the network.
"""

import dataclasses
import hashlib

import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from alzmri.errors import AlzmriError
from alzmri.models import create_model, get_spec
from alzmri.models.weight_lookup import find_imagenet_file
from alzmri.models.weights import load_weights, state_mismatch


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
    assert find_imagenet_file(source).origin.startswith("torch hub cache")
    model = create_model("mobilenet_v2")  # 1 channel, 4 classes
    skipped = load_weights(model, "imagenet", source=source, first_conv="backbone.features.0.0")
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
    load_weights(model, "imagenet", source=source, first_conv="backbone.conv1")
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


def test_weights_of_another_architecture(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(AlzmriError, match=r"weights do not fit model 'mobilenet_v2': .*missing"):
        create_model("mobilenet_v2", weights=other)




@pytest.mark.slow
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


def test_state_mismatch_names_counts_and_first_keys():
    own = {"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "b.weight": torch.zeros(2)}
    assert state_mismatch(dict(own), own) == ""
    state = {"a.weight": torch.zeros(5, 3), "c.weight": torch.zeros(1)}
    assert state_mismatch(state, own) == (
        "2 missing (first 'a.bias'), 1 unexpected (first 'c.weight'), 1 of another shape (first 'a.weight': (5, 3) vs (4, 3))"
    )
    assert state_mismatch({"a.weight": torch.zeros(4, 3)}, own, skipped=["a.bias", "b.weight"]) == ""
