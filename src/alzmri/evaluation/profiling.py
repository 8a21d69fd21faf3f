"""Cost and representation measurements of a trained model: FLOPs, latency, features.

Units
-----
- FLOPs: floating-point operations of one forward pass of one image, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-accumulate counts as 2
  FLOPs; convolutions, matrix products and attention are counted, element-wise work such
  as activations, normalisation and bias additions is not).
- Latency: milliseconds per image, wall clock.
- Throughput: images per second.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from alzmri.errors import AlzmriError

if TYPE_CHECKING:
    from alzmri.runs import RunInfo

__all__ = ["extract_features", "flops_per_image", "inference_ms_per_image", "training_images_per_s", "tsne_embedding"]


def _input(shape: Sequence[int], batch_size: int, device: torch.device | str, seed: int = 0) -> torch.Tensor:
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (in_chans, height, width), got {tuple(shape)}")
    g = torch.Generator().manual_seed(seed)
    return torch.rand((batch_size, *shape), generator=g).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_flop_formulas() -> dict:
    """Formulas torch's counter lacks: the CPU flash-attention kernel of
    ``F.scaled_dot_product_attention`` (used by timm's ViTs and nn.MultiheadAttention)."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {op: _cpu_sdpa_flops} if op is not None else {}


def flops_per_image(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward-pass FLOPs of ``model`` for one image.

    The model runs once in eval mode on a batch of one random image (with autograd on,
    so that attention layers take their plain, countable path; nothing is updated).

    Parameters
    ----------
    model : nn.Module
        Maps float (batch, in_chans, H, W) to logits.
    input_shape : tuple of int (in_chans, H, W)

    Returns
    -------
    int
        FLOPs per image (2 per multiply-accumulate; see the module notes for what is
        counted).

    Examples
    --------
    A 3x3 convolution from 1 to 4 channels on an 8x8 image (padding 1) does
    ``4 * 8 * 8 * 1 * 9`` multiply-accumulates, i.e. 4,608 FLOPs:

    >>> flops_per_image(nn.Conv2d(1, 4, 3, padding=1), (1, 8, 8))
    4608
    """
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    # an input that requires grad keeps nn.MultiheadAttention and nn.TransformerEncoderLayer
    # off their fused inference kernels, which the counter cannot see into
    x = _input(input_shape, 1, device).requires_grad_(True)
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_custom_flop_formulas())
        with torch.enable_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def inference_ms_per_image(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_size: int = 32,
    repeats: int = 5,
    warmup: int = 2,
    device: torch.device | str | None = None,
) -> float:
    """Median wall-clock inference time per image, in milliseconds.

    The model runs in eval mode under :func:`torch.inference_mode` on batches of
    ``batch_size`` random images: ``warmup`` untimed batches, then ``repeats`` timed
    ones; the result is the median batch time divided by ``batch_size``. On a CUDA device
    the clock waits for the GPU (``torch.cuda.synchronize``). The time depends on the
    machine and its load; compare models measured on the same machine.

    Parameters
    ----------
    model : nn.Module
    input_shape : tuple of int (in_chans, H, W)
    batch_size : int, default=32
    repeats : int, default=5
    warmup : int, default=2
    device : str or torch.device, optional
        Where to run; default: where the model's parameters are. The model is moved
        there.

    Returns
    -------
    float
        Milliseconds per image.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"batch_size and repeats must be positive and warmup non-negative; got {batch_size}, {repeats}, {warmup}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    x = _input(input_shape, batch_size, device)
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                _sync(device)
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(times) / batch_size * 1000.0


def training_images_per_s(n_train_images: int, epochs: int, train_time_s: float) -> float | None:
    """Training throughput in images per second: ``n_train_images * epochs / train_time_s``.

    ``train_time_s`` is the wall-clock time of the whole fit loop, validation included,
    so this is the rate at which a run gets through its training set, not the speed of
    a bare training step. ``None`` when the time is not positive.
    """
    if train_time_s <= 0:
        return None
    return n_train_images * epochs / train_time_s


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    info: "RunInfo",
    images: np.ndarray,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Penultimate-layer features (``model.forward_features``) of preprocessed slices.

    Parameters
    ----------
    model : nn.Module
        In eval mode, with a ``forward_features(x) -> (batch, D)`` method (every
        registered alzmri model has one).
    info : RunInfo
        Gives the normalisation and channels, as in
        :func:`alzmri.runs.predict_proba`.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    batch_size : int, default=256
    device : str or torch.device, default="cpu"

    Returns
    -------
    ndarray of shape (n, D), dtype float32

    Raises
    ------
    AlzmriError
        The model has no ``forward_features`` or it does not return (batch, D).
    """
    from alzmri.data.preprocess import prepare_batch

    fn = getattr(model, "forward_features", None)
    if not callable(fn):
        raise AlzmriError(f"model {info.model!r} has no forward_features(x) method; its penultimate features cannot be extracted")
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        x = prepare_batch(x, mean=info.mean, std=info.std, in_chans=info.in_chans)
        f = fn(x)
        if f.ndim != 2:
            raise AlzmriError(f"model {info.model!r}: forward_features returned shape {tuple(f.shape)}; expected (batch, D)")
        out.append(f.float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def tsne_embedding(features: np.ndarray, *, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """Two-dimensional t-SNE embedding of feature vectors (scikit-learn).

    Features are standardised (zero mean, unit variance per dimension; constant
    dimensions are left at 0) and embedded (Barnes-Hut, PCA initialisation, one thread)
    with a fixed seed, so the same features give the same picture.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    seed : int, default=0
    perplexity : float, optional
        Default ``min(30, (n_samples - 1) / 3)``, at least 1: scikit-learn's 30 for
        large sets, smaller for the few test slices of a small subset (perplexity must be
        below ``n_samples``).

    Returns
    -------
    ndarray of shape (n_samples, 2), dtype float64

    Raises
    ------
    ValueError
        ``features`` is not 2-D or has fewer than 4 samples.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n_samples, n_features), got shape {x.shape}")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {n}")
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if perplexity is None:
        perplexity = max(1.0, min(30.0, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    # one thread: Barnes-Hut's short parallel loops spin-wait and crawl when the CPU is
    # shared (8 s for 960 points on one core, several times that with contended threads)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(x).astype(np.float64)
