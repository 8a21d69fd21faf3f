"""Pure, seeded splitters: labels (and subject groups) in, one split name per image out.

Each strategy is a function ``(labels, *, fractions, seed, source_split, groups=None) ->
ndarray of str`` registered in :data:`SPLITTERS`, so that a new strategy plugs in without
touching training.

``subject`` (default in training)
    Group-aware split stratified by class: every subject (scan group, see
    :mod:`alzmri.data.groups`) lies in exactly one split. Built on scikit-learn's
    ``StratifiedGroupKFold``; fractions are honoured approximately (whole subjects).
``stratified``
    Random 70/15/15 split of *slices*, stratified by class (scikit-learn
    ``train_test_split``).
``image``
    The notebook's plain random split of slices, not stratified.

The splitters live in :mod:`alzmri.data.slice_splits` and
:mod:`alzmri.data.subject_splits`; :func:`alzmri.data.folds.subject_folds` gives k-fold
cross-validation by subject, and :func:`alzmri.data.split_checks.split_warnings` the
warnings a split deserves (a class with fewer subjects than splits, subjects shared
between splits, a release split that leaks).

When the release ships its own ``test/`` folder (``split_folders`` layout), ``stratified``
and ``image`` keep those images as the test split and carve validation from the rest.
``subject`` keeps the release's test folder only when it shares no subject with the
release's training folder; the public 176x208 release does share all of them (it splits
each brain by slice level, see ``docs/honest-evaluation.md``), so there the release folders
are ignored and all images are split by subject.

Warning: ``stratified`` and ``image`` split slices, not brains. Neighbouring slices of one
scan are nearly identical, so slice-level splits inflate test accuracy (Yagis et al. 2021).

References
----------
Yagis, E., Atnafu, S. W., Garcia Seco de Herrera, A., et al. (2021). Effect of data
leakage in brain MRI classification using 2D convolutional neural networks. *Scientific
Reports* 11, 22544.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alzmri.data.slice_splits import image_split, stratified_split
from alzmri.data.subject_splits import subject_split
from alzmri.errors import AlzmriError

Splitter = Callable[..., np.ndarray]
SPLITTERS: dict[str, Splitter] = {
    "subject": subject_split,
    "stratified": stratified_split,
    "image": image_split,
}


def make_split(strategy: str, labels, *, fractions=(0.7, 0.15, 0.15), seed: int = 42, source_split=None, groups=None) -> np.ndarray:
    """Split with the named strategy (see :data:`SPLITTERS`).

    Parameters
    ----------
    strategy : {"subject", "stratified", "image"}
    labels : array-like of shape (n_images,)
        Integer class labels.
    fractions : (float, float, float), default=(0.7, 0.15, 0.15)
    seed : int, default=42
    source_split : sequence of str or None, optional
        The release's own split per image.
    groups : array-like of shape (n_images,), optional
        Subject (scan group) per image; required by ``"subject"``, ignored by the others.

    Returns
    -------
    ndarray of shape (n_images,), dtype str

    Raises
    ------
    AlzmriError
        Unknown strategy; ``"subject"`` without groups; bad fractions.
    """
    fn = SPLITTERS.get(strategy)
    if fn is None:
        raise AlzmriError(f"unknown split strategy {strategy!r}; choose one of {', '.join(SPLITTERS)}")
    return fn(labels, fractions=fractions, seed=seed, source_split=source_split, groups=groups)

