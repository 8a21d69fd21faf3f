import pytest
import torch

from alzmri.errors import AlzmriError
from alzmri.models import create_model, get_spec, list_models


def _expected_parameters(in_chans: int, image_size: int, num_classes: int = 4) -> int:
    chans = [in_chans, 32, 64, 128, 128, 256, 256]
    conv = sum(chans[i] * chans[i + 1] * 9 + chans[i + 1] for i in range(6))
    norm = sum(2 * c for i, c in enumerate(chans[1:]) if i != 4)  # GroupNorm weight + bias; none after conv5
    flat = 256 * (image_size // 16) ** 2
    fcs = [flat, 1024, 512, 256, 128, num_classes]
    fc = sum(fcs[i] * fcs[i + 1] + fcs[i + 1] for i in range(5))
    return conv + norm + fc


@pytest.mark.parametrize("in_chans,image_size", [(1, 64), (3, 64), (1, 128), (1, 32)])
def test_altzcnn_shapes_and_parameter_count(in_chans, image_size):
    m = create_model("altzcnn", in_chans=in_chans, image_size=image_size)
    x = torch.randn(2, in_chans, image_size, image_size)
    assert m(x).shape == (2, 4)
    assert m.forward_features(x).shape == (2, 128)
    assert sum(p.numel() for p in m.parameters()) == _expected_parameters(in_chans, image_size)


def test_matches_the_notebooks_printed_size():
    # the notebook printed "num trainable weights: 6012164" for its 3-channel AltzCNN and
    # reported 22.93 MB, which is MiB of fp32 parameters
    m = create_model("altzcnn", in_chans=3)
    n = sum(p.numel() for p in m.parameters())
    assert n == 6_012_164 == _expected_parameters(3, 64)
    assert round(n * 4 / 2**20, 2) == 22.93
    assert m.flat_features == 4096


def test_registry_errors_and_listing():
    assert "altzcnn" in list_models() and list_models("alt*") == ["altzcnn"]
    assert get_spec("altzcnn").image_size == 64
    with pytest.raises(AlzmriError, match="unknown model 'altzcnnn'.*did you mean altzcnn"):
        create_model("altzcnnn")
    with pytest.raises(AlzmriError, match="multiple of 16"):
        create_model("altzcnn", image_size=72)


def test_backward_reaches_every_parameter():
    m = create_model("altzcnn")
    m(torch.randn(3, 1, 64, 64)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
