"""Every registry model (and one ``timm:`` name) builds, runs forward and backward on
one-channel input and exposes pooled features, its head and its CAM layer."""

import pytest
import torch
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.models import BackboneClassifier, create_model, get_spec, list_models

ZOO = list_models() + ["timm:resnet18"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these small batches run faster so on a 2-core machine that is
    busy with a training job (oversubscribed threads stall); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
CNN_SIZE = 64  # the notebook's size; ViT-B/16 runs at its 224


def _size(name: str) -> int:
    return get_spec(name).image_size if name == "vit_b_16" else min(CNN_SIZE, get_spec(name).image_size)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "vit_b_16" else n for n in ZOO])  # ViT-B/16 at 224: over 4 s
def test_builds_runs_forward_and_backward(name):
    torch.manual_seed(0)
    spec = get_spec(name)
    size = _size(name)
    model = create_model(name, image_size=size)
    x = torch.randn(2, 1, size, size)
    logits = model(x)
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    feats = model.forward_features(x)
    assert feats.ndim == 2 and feats.shape[0] == 2 and feats.shape[1] == model.head.in_features
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 4
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the spec names modules that exist
    assert spec.cam_layer and isinstance(model.get_submodule(spec.cam_layer), nn.Module)
    if spec.first_conv:
        assert model.get_submodule(spec.first_conv).in_channels == 1
    assert spec.description


def test_defaults_of_the_specs():
    assert {"altzcnn", "resnet50", "efficientnet_b0", "vit_b_16", "mobilenet_v2", "efficientnet_lite0", "vit_tiny_scratch"} <= set(list_models())
    assert list_models(pretrained=True) == ["efficientnet_b0", "efficientnet_lite0", "mobilenet_v2", "resnet50", "vit_b_16"]
    for name in ("resnet50", "efficientnet_b0", "mobilenet_v2"):
        s = get_spec(name)
        assert (s.image_size, s.mean, s.std) == (64, 0.449, 0.226)
        assert s.rgb_mean == (0.485, 0.456, 0.406)
    vit = get_spec("vit_b_16")
    assert vit.image_size == 224 and vit.cam_layer.endswith("encoder_layer_11.ln_1")
    lite = get_spec("efficientnet_lite0")
    assert (lite.image_size, lite.mean, lite.std) == (64, 0.5, 0.5)
    tiny = get_spec("vit_tiny_scratch")
    assert tiny.weights is None and "scratch" in tiny.description and tiny.image_size == 64


def test_timm_names_resolve():
    s = get_spec("timm:resnet18")
    assert s.name == "timm:resnet18" and s.image_size == 224 and s.cam_layer == "backbone.layer4"
    assert s.first_conv == "backbone.conv1" and s.weights is not None and s.weights.hf_hub_id
    assert "timm:resnet18" not in list_models()
    with pytest.raises(AlzmriError, match=r"unknown timm model 'resnet181'.*did you mean timm:resnet18"):
        get_spec("timm:resnet181")
    with pytest.raises(AlzmriError, match=r"unknown model 'mobilenetv2'.*did you mean mobilenet_v2"):
        create_model("mobilenetv2")


def test_three_channels_keep_the_rgb_conv_and_wrap_the_network():
    m = create_model("mobilenet_v2", in_chans=3, num_classes=2)
    assert isinstance(m, BackboneClassifier) and m.backbone.features[0][0].in_channels == 3
    assert isinstance(m.backbone.classifier, nn.Identity)
    assert m.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_image_size_is_checked_for_vits():
    with pytest.raises(AlzmriError, match="multiple of 16"):
        create_model("vit_b_16", image_size=100)
    with pytest.raises(AlzmriError, match="multiple of 8"):
        create_model("vit_tiny_scratch", image_size=60)


def test_option_errors():
    with pytest.raises(AlzmriError, match=r"The 'finetune' parameter of create_model must be one of 'full', 'linear', 'adapter'. Got 'lora' instead."):
        create_model("altzcnn", finetune="lora")
    with pytest.raises(AlzmriError, match="only with finetune='adapter'"):
        create_model("altzcnn", adapter_targets=["head"])
    with pytest.raises(AlzmriError, match="no ImageNet weights"):
        create_model("vit_tiny_scratch", weights="imagenet")
    with pytest.raises(TypeError):
        create_model("altzcnn", no_such_option=1)
