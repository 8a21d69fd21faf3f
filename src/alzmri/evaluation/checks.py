"""The one validator of labels and class probabilities, in NumPy only (light enough for the prediction path)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_targets_and_probabilities"]

#: Tolerance on ``y_prob`` rows summing to 1 (float32 softmax outputs drift by ~1e-7).
_PROB_SUM_ATOL = 1e-3


def check_targets_and_probabilities(
    y_true: Any, y_prob: Any, n_classes: int | None = None, *, probabilities: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert integer labels and class probabilities (or scores).

    The one validator of ``(y_true, y_prob)`` pairs: metrics, calibration and the ROC
    plots use it.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class labels in ``[0, n_classes)``. Floats are accepted only when they
        are whole numbers.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities; each row must sum to 1 (within 1e-3).
    n_classes : int, optional
        Number of classes (columns expected in ``y_prob``); default: ``y_prob``'s columns.
    probabilities : bool, default=True
        False for unnormalised scores such as logits: finite values, rows need not sum to 1.

    Returns
    -------
    y_true : ndarray of shape (n_samples,), dtype int64
    y_prob : ndarray of shape (n_samples, n_classes), dtype float64

    Raises
    ------
    ValueError
        If a shape does not match (the message states the expected and the actual
        shape), there are no samples, a label is out of range, or ``y_prob`` holds
        non-finite values or rows that do not sum to 1.
    """
    y_true_arr = np.asarray(y_true)
    y_prob_arr = np.asarray(y_prob, dtype=np.float64)
    if n_classes is None:
        n_classes = y_prob_arr.shape[1] if y_prob_arr.ndim == 2 else -1

    if y_true_arr.ndim != 1:
        raise ValueError(
            f"y_true must have shape (n_samples,), got shape {y_true_arr.shape}"
        )
    n_samples = y_true_arr.shape[0]
    expected_prob_shape = (n_samples, n_classes)
    if y_prob_arr.shape != expected_prob_shape:
        raise ValueError(
            f"y_prob must have shape (n_samples, n_classes) = {expected_prob_shape} "
            f"to match y_true and {n_classes} classes, got shape {y_prob_arr.shape}"
        )
    if n_samples == 0:
        raise ValueError("y_true and y_prob are empty; need at least one sample")

    if not np.issubdtype(y_true_arr.dtype, np.integer):
        if y_true_arr.dtype == bool:
            y_true_arr = y_true_arr.astype(np.int64)
        else:
            try:
                as_float = y_true_arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"y_true must hold integer class labels, got dtype {y_true_arr.dtype}"
                ) from None
            if not np.all(np.isfinite(as_float)) or not np.all(as_float == np.round(as_float)):
                raise ValueError(
                    f"y_true must hold integer class labels, got non-integer values "
                    f"of dtype {y_true_arr.dtype}"
                )
            y_true_arr = as_float
    y_true_arr = y_true_arr.astype(np.int64)

    out_of_range = np.unique(y_true_arr[(y_true_arr < 0) | (y_true_arr >= n_classes)])
    if out_of_range.size:
        raise ValueError(
            f"y_true labels must lie in [0, {n_classes - 1}] for {n_classes} classes, "
            f"got {out_of_range.tolist()}"
        )

    if not np.all(np.isfinite(y_prob_arr)):
        raise ValueError("y_prob contains NaN or infinite values")
    if not probabilities:
        return y_true_arr, y_prob_arr
    row_sums = y_prob_arr.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(row_sums - 1.0) > _PROB_SUM_ATOL)
    if bad_rows.size:
        i = int(bad_rows[0])
        raise ValueError(
            f"y_prob rows must be class probabilities summing to 1 (e.g. softmax of "
            f"logits); {bad_rows.size} row(s) do not, first is row {i} summing to "
            f"{row_sums[i]:.6g}"
        )
    return y_true_arr, y_prob_arr
