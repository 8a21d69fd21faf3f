"""Probability calibration: temperature scaling, expected calibration error, Brier score.

Temperature scaling (Guo et al. 2017) divides a trained network's logits by one scalar
``T > 0`` fitted on the validation split by minimising the negative log-likelihood; the
argmax (and so accuracy) is unchanged, only the confidence moves. ``calibrate_run``
fits it; :func:`alzmri.pipeline.calibrate` writes ``calibration.json`` into the run folder; prediction (``alzmri predict``, the ONNX
export) applies the temperature whenever that file exists.

References
----------
C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On Calibration of Modern Neural Networks",
ICML 2017.
M. P. Naeini, G. Cooper, M. Hauskrecht, "Obtaining Well Calibrated Probabilities Using
Bayesian Binning", AAAI 2015 (expected calibration error).
G. W. Brier, "Verification of forecasts expressed in terms of probability", Monthly
Weather Review 78(1), 1950.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alzmri.errors import AlzmriError
from alzmri.evaluation.checks import check_targets_and_probabilities

CALIBRATION_FILE = "calibration.json"


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence (lower is better).

    Confidences ``max_k p_k`` are put in ``n_bins`` equal-width bins over (0, 1]
    (bin ``b`` holds ``b/n_bins < conf <= (b+1)/n_bins``); ECE is the sample-weighted
    mean over non-empty bins of ``|accuracy(bin) - mean confidence(bin)|``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Probabilities.
    n_bins : int, default=15

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        Shapes disagree, no samples, or labels out of range.
    """
    y_true, y_prob = check_targets_and_probabilities(y_true, y_prob)
    conf = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def brier_score_multiclass(y_true, y_prob) -> float:
    """Multiclass Brier score: mean over samples of ``sum_k (p_k - onehot_k)^2`` (lower is better).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_prob : array-like of shape (n_samples, n_classes)

    Returns
    -------
    float in [0, 2]
    """
    y_true, y_prob = check_targets_and_probabilities(y_true, y_prob)
    onehot = np.eye(y_prob.shape[1])[y_true]
    return float(((y_prob - onehot) ** 2).sum(axis=1).mean())


def reliability_bins(y_true, y_prob, *, n_bins: int = 15) -> dict:
    """Per-bin counts, accuracy and mean confidence (the data of a reliability diagram).

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), ``count``, ``accuracy``, ``confidence`` (n_bins,) lists;
        accuracy and confidence are None for empty bins.
    """
    y_true, y_prob = check_targets_and_probabilities(y_true, y_prob)
    conf = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    out = {"edges": np.linspace(0, 1, n_bins + 1).tolist(), "count": [], "accuracy": [], "confidence": []}
    for b in range(n_bins):
        m = bins == b
        out["count"].append(int(m.sum()))
        out["accuracy"].append(float(correct[m].mean()) if m.any() else None)
        out["confidence"].append(float(conf[m].mean()) if m.any() else None)
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, in float64.

    Parameters
    ----------
    logits : ndarray of shape (n, n_classes)
    temperature : float, default=1.0
        Positive; > 1 softens the probabilities (temperature scaling).

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64; rows sum to 1.
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits, y_true, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(z)), np.asarray(y_true, dtype=np.int64)].mean())


def fit_temperature(logits, y_true, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Optimises ``log T`` with a bounded scalar search (``scipy.optimize.minimize_scalar``,
    the NLL is convex in ``1/T``), so no gradient code or torch is needed.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Uncalibrated logits (not probabilities) of held-out data.
    y_true : array-like of shape (n_samples,)
    bounds : (float, float), default=(0.05, 20)
        Search interval of T.

    Returns
    -------
    float
        T > 0. T > 1: the model was over-confident.

    Raises
    ------
    ValueError
        Shapes disagree or no samples.
    """
    from scipy.optimize import minimize_scalar

    y_true, logits = check_targets_and_probabilities(y_true, logits, probabilities=False)
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(lambda s: nll(logits, y_true, float(np.exp(s))), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def calibration_summary(logits, y_true, temperature: float, *, n_bins: int = 15) -> dict:
    """NLL, ECE and Brier score before (T = 1) and after temperature scaling."""
    out = {}
    for name, t in (("before", 1.0), ("after", temperature)):
        p = softmax(logits, t)
        out[name] = {
            "nll": nll(logits, y_true, t),
            "ece": expected_calibration_error(y_true, p, n_bins=n_bins),
            "brier": brier_score_multiclass(y_true, p),
            "accuracy": float((p.argmax(1) == np.asarray(y_true)).mean()),
        }
    return out


def load_temperature(run_dir: str | Path) -> float:
    """The run's fitted temperature from ``calibration.json``, or 1.0 when it has none.

    Raises
    ------
    AlzmriError
        The file exists but is unreadable or holds a non-positive temperature.
    """
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        t = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise AlzmriError(f"{path}: unreadable calibration file ({type(exc).__name__}); run `alzmri calibrate` again or delete it") from None
    if not np.isfinite(t) or t <= 0:
        raise AlzmriError(f"{path}: temperature must be a positive number; got {t}")
    return t


def run_logits(run_dir: str | Path, *, split: str = "val", data: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits and labels of one split of a run's manifest.

    Returns
    -------
    logits : ndarray of shape (n, n_classes), dtype float64
    y_true : ndarray of shape (n,), dtype int64

    Raises
    ------
    AlzmriError
        Not a run; the data no longer matches the manifest; the split is empty.
    """
    import torch

    from alzmri.data.cache import load_images
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import load_manifest
    from alzmri.runs import load_model
    from alzmri.data.preprocess import prepare_batch

    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    index = discover(data if data is not None else info.data)
    manifest = load_manifest(run_dir / "manifest.csv", index)
    sel = np.flatnonzero(manifest.splits == split)
    if len(sel) == 0:
        raise AlzmriError(f"{run_dir}: the {split} split of this run is empty; nothing to calibrate on")
    images = load_images(index, info.image_size).images[sel]
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), 256):
            x = prepare_batch(torch.from_numpy(np.ascontiguousarray(images[s : s + 256])), mean=info.mean, std=info.std, in_chans=info.in_chans)
            out.append(model(x).float().numpy())
    from alzmri.data.tasks import get_task

    return np.concatenate(out).astype(np.float64), get_task(info.task).map_labels(index.labels[sel])


@dataclass
class ReliabilityData:
    """What a reliability diagram of the validation split needs (:func:`calibrate_run`).

    Attributes
    ----------
    y_true : ndarray of shape (n,), dtype int64
    prob_before, prob_after : ndarray of shape (n, n_classes), dtype float64
        Softmax probabilities before and after temperature scaling.
    """

    y_true: np.ndarray
    prob_before: np.ndarray
    prob_after: np.ndarray


def calibrate_run(run_dir: str | Path, *, data: str | Path | None = None, n_bins: int = 15) -> tuple[dict, ReliabilityData]:
    """Fit a temperature on the run's validation split; writes nothing.

    The result is what ``calibration.json`` holds (:func:`alzmri.pipeline.calibrate`
    writes it with the reliability diagram): ``temperature``, ``fitted_on`` ("val"),
    ``n_samples``, ``n_bins`` and ``val``: NLL, ECE, Brier score and accuracy before and
    after scaling; when the run has a test split, ``test`` holds the same on the test
    split (not used in fitting).

    Parameters
    ----------
    run_dir : path-like
    data : path-like, optional
        Dataset folder; default: the run's.
    n_bins : int, default=15
        Bins of the ECE.

    Returns
    -------
    result : dict
    reliability : ReliabilityData
        The validation labels and probabilities before and after, for the diagram.

    Raises
    ------
    AlzmriError
        Not a run, empty validation split, or data that no longer matches the manifest.
    """
    run_dir = Path(run_dir)
    logits, y = run_logits(run_dir, split="val", data=data)
    t = fit_temperature(logits, y)
    result = {
        "method": "temperature scaling (Guo et al. 2017): probabilities = softmax(logits / temperature)",
        "temperature": t,
        "fitted_on": "val",
        "n_samples": int(len(y)),
        "n_bins": n_bins,
        "val": calibration_summary(logits, y, t, n_bins=n_bins),
    }
    try:
        tl, ty = run_logits(run_dir, split="test", data=data)
        result["test"] = calibration_summary(tl, ty, t, n_bins=n_bins)
    except AlzmriError:
        result["test"] = None
    return result, ReliabilityData(y, softmax(logits, 1.0), softmax(logits, t))
