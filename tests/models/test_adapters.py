"""Fine-tuning modes: what trains in each, DoRA where asked and nowhere else, and the
save/reload round trip of an adapter run through ``alzmri.runs``."""

import huggingface_hub.constants
import pytest
import torch

from alzmri.errors import AlzmriError
from alzmri.models import create_model, get_spec, trainable_parameters
from alzmri.models import weight_files, weight_lookup
from alzmri.runs import RunInfo, load_model, save_weights

DORA = ("lora_A.default.weight", "lora_B.default.weight", "lora_magnitude_vector.default.weight")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread (faster on a busy 2-core machine); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ALZMRI_OFFLINE", "1")


def _perturb_adapters(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_" in n:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_default_adapter_is_dora_on_the_head_only():
    m = create_model("mobilenet_v2", finetune="adapter")
    t = trainable_parameters(m)
    assert set(t) == {f"head.{k}" for k in DORA}
    # r=4 on Linear(1280, 4): A 4x1280, B 4x4, magnitude 4
    assert sum(t.values()) == 4 * 1280 + 4 * 4 + 4
    assert not any(p.requires_grad for n, p in m.named_parameters() if n.startswith("backbone."))


def test_adapters_on_chosen_layers_plus_trainable_head():
    m = create_model("mobilenet_v2", finetune="adapter", adapter_targets=["features.18.0"], adapter_rank=2, adapter_alpha=4)
    t = trainable_parameters(m)
    assert set(t) == {f"backbone.features.18.0.{k}" for k in DORA} | {"head.weight", "head.bias"}
    # 1x1 conv 320 -> 1280, rank 2: A 2x320, B 1280x2, magnitude 1280; head 1280x4 + 4
    assert sum(t.values()) == 2 * 320 + 1280 * 2 + 1280 + 1280 * 4 + 4
    x = torch.randn(2, 1, 64, 64)
    m(x).sum().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if p.requires_grad)
    assert all(p.grad is None for n, p in m.named_parameters() if not p.requires_grad)


def test_dora_starts_as_the_identity():
    torch.manual_seed(0)
    full = create_model("efficientnet_lite0").eval()
    torch.manual_seed(0)
    ada = create_model("efficientnet_lite0", finetune="adapter", adapter_targets=["head", "conv_head"]).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(full(x), ada(x), atol=1e-5)
        _perturb_adapters(ada)
        assert not torch.allclose(full(x), ada(x), atol=1e-3)


def test_linear_probe_trains_only_the_head_and_keeps_bn_statistics():
    m = create_model("mobilenet_v2", finetune="linear")
    assert set(trainable_parameters(m)) == {"head.weight", "head.bias"}
    before = m.backbone.features[0][1].running_mean.clone()
    m.train()
    assert m.training and m.head.training and not m.backbone.training
    m(torch.randn(4, 1, 64, 64))
    assert torch.equal(before, m.backbone.features[0][1].running_mean)
    full = create_model("mobilenet_v2")
    assert all(p.requires_grad for p in full.parameters())


def test_altzcnn_takes_the_modes_too():
    m = create_model("altzcnn", finetune="adapter")
    assert set(trainable_parameters(m)) == {f"head.{k}" for k in DORA}
    assert m(torch.randn(2, 1, 64, 64)).shape == (2, 4)
    assert set(trainable_parameters(create_model("altzcnn", finetune="linear"))) == {"head.weight", "head.bias"}


def test_vit_b_16_dora_on_attention_output_projections():
    torch.manual_seed(0)
    full = create_model("vit_b_16", image_size=32).eval()
    torch.manual_seed(0)
    ada = create_model("vit_b_16", image_size=32, finetune="adapter", adapter_targets=["out_proj"]).eval()
    t = trainable_parameters(ada)
    expected = {f"backbone.encoder.layers.encoder_layer_{i}.self_attention.out_proj.{k}" for i in range(12) for k in DORA}
    assert set(t) == expected | {"head.weight", "head.bias"}
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(full(x), ada(x), atol=1e-4)
        _perturb_adapters(ada)
        assert not torch.allclose(full(x), ada(x), atol=1e-3)  # the adapters are in the path
    ada.train()
    ada(x).sum().backward()
    assert all(p.grad is not None for n, p in ada.named_parameters() if p.requires_grad)
    with pytest.raises(AlzmriError, match="MultiheadAttention"):
        create_model("vit_b_16", image_size=32, finetune="adapter", adapter_targets=["self_attention"])


def test_timm_vit_dora_on_qkv():
    m = create_model("vit_tiny_scratch", finetune="adapter", adapter_targets=["attn.qkv"])
    names = set(trainable_parameters(m))
    assert names == {f"backbone.blocks.{i}.attn.qkv.{k}" for i in range(12) for k in DORA} | {"head.weight", "head.bias"}


def test_bad_targets():
    with pytest.raises(AlzmriError, match=r"adapter target 'nope' matches no Linear or Conv2d module"):
        create_model("mobilenet_v2", finetune="adapter", adapter_targets=["nope"])
    with pytest.raises(AlzmriError, match="adapter_rank"):
        create_model("mobilenet_v2", finetune="adapter", adapter_rank=0)


def test_adapter_run_reloads_with_identical_predictions(tmp_path, monkeypatch):
    kwargs = dict(weights="imagenet", finetune="adapter", adapter_targets=["head", "features.18.0"])
    model = create_model("mobilenet_v2", **kwargs)
    _perturb_adapters(model)
    with torch.no_grad():
        model.backbone.features[0][1].running_mean.add_(0.05)  # buffers travel too
    model.eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        expected = model(x)
    spec = get_spec("mobilenet_v2")
    save_weights(model, tmp_path)
    RunInfo(model="mobilenet_v2", image_size=64, in_chans=1, mean=spec.mean, std=spec.std, class_names=["a", "b", "c", "d"], model_kwargs=kwargs).save(tmp_path)

    def no_lookup(*a, **k):
        raise AssertionError("weights re-resolved on reload")

    monkeypatch.setattr(weight_files, "find_imagenet_file", no_lookup)
    monkeypatch.setattr(weight_lookup, "find_imagenet_file", no_lookup)
    again, info = load_model(tmp_path)
    assert info.model_kwargs == kwargs and not again.training
    with torch.no_grad():
        assert torch.equal(again(x), expected)
    assert set(trainable_parameters(again)) == set(trainable_parameters(model))
