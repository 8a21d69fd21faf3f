"""FLOPs, latency, throughput, features and t-SNE of small known models."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from alzmri.evaluation.profiling import (
    extract_features,
    flops_per_image,
    inference_ms_per_image,
    training_images_per_s,
    tsne_embedding,
)
from alzmri.models import create_model
from alzmri.runs import RunInfo


def test_flops_of_a_convolution_by_hand():
    # 8 output channels x 16 x 16 positions x (3 input channels x 3 x 3) MACs, 2 FLOPs each
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert flops_per_image(conv, (3, 16, 16)) == 2 * 8 * 16 * 16 * 3 * 9


def test_flops_of_a_linear_layer_and_a_stack():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 7))
    assert flops_per_image(lin, (2, 5, 5)) == 2 * 50 * 7
    stack = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    assert flops_per_image(stack, (1, 8, 8)) == 2 * (4 * 6 * 6 * 9) + 2 * (144 * 3)


def test_flops_restore_training_mode():
    m = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))
    m.train()
    flops_per_image(nn.Sequential(nn.Flatten(), m), (1, 2, 2))
    assert m.training


def test_inference_time_is_positive_and_checks_arguments():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    ms = inference_ms_per_image(m, (1, 16, 16), batch_size=4, repeats=2, warmup=1)
    assert 0 < ms < 1000
    with pytest.raises(ValueError, match="batch_size"):
        inference_ms_per_image(m, (1, 16, 16), batch_size=0)


def test_training_throughput():
    assert training_images_per_s(100, 3, 60.0) == pytest.approx(5.0)
    assert training_images_per_s(100, 3, 0.0) is None


def test_features_of_altzcnn_and_tsne():
    model = create_model("altzcnn", image_size=32).eval()
    info = RunInfo(model="altzcnn", image_size=32, in_chans=1, mean=0.0, std=1.0, class_names=["a", "b", "c", "d"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 32, 32), dtype=np.uint8)
    feats = extract_features(model, info, images, batch_size=5)
    assert feats.shape == (12, model.num_features) and feats.dtype == np.float32
    emb = tsne_embedding(feats, seed=3)
    assert emb.shape == (12, 2) and np.all(np.isfinite(emb))
    np.testing.assert_allclose(tsne_embedding(feats, seed=3), emb)
    with pytest.raises(ValueError, match="at least 4"):
        tsne_embedding(feats[:3])


def test_features_need_forward_features():
    info = RunInfo(model="plain", image_size=8, in_chans=1, mean=0.0, std=1.0, class_names=["a", "b"])
    from alzmri.errors import AlzmriError

    with pytest.raises(AlzmriError, match="forward_features"):
        extract_features(nn.Flatten(), info, np.zeros((2, 8, 8), np.uint8))


class _Attention(nn.Module):
    """Self-attention over the 4 rows of a (1, 1, 4, 8) input: 4 tokens of width 8."""

    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        t = x.view(x.shape[0], 4, 8)
        return self.mha(t, t, t, need_weights=False)[0]


def test_flops_count_attention_outside_its_fused_kernel():
    # in eval mode without autograd, nn.MultiheadAttention runs a fused kernel the
    # counter cannot see; flops_per_image must still count it:
    # in-projection 2*4*8*24 + scores 2*2*4*4*4 + weighted values 2*2*4*4*4 + out-projection 2*4*8*8
    assert flops_per_image(_Attention(), (1, 4, 8)) == 1536 + 256 + 256 + 512
