"""Reading weight files (a missing file, a file that is no checkpoint) and converting a
packaged file of another implementation by position (EfficientNet-Lite0 onto timm)."""

import pytest
import timm
import torch

from alzmri.errors import AlzmriError
from alzmri.models import create_model, get_spec
from alzmri.models.weight_files import imagenet_state_dict, map_by_position
import test_weights

# the fixtures of test_weights.py, found by pytest here too: one thread; empty caches, no downloads
_one_thread, caches = test_weights._one_thread, test_weights.caches


def test_lite0_maps_by_position_onto_timm():
    state = imagenet_state_dict(get_spec("efficientnet_lite0").weights)
    ref = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert list(state) == list(ref)
    assert all(state[k].shape == ref[k].shape for k in ref)
    with pytest.raises(AlzmriError, match=r"tensor 0 .* does not map onto"):
        map_by_position({"a.weight": torch.zeros(3)}, {"b.weight": torch.zeros(4)}, origin="x")


def test_unreadable_weight_paths(tmp_path):
    with pytest.raises(AlzmriError, match="weights file not found"):
        create_model("altzcnn", weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(AlzmriError, match="not a readable weights file"):
        create_model("altzcnn", weights=junk)
