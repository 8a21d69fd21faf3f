"""Scikit-learn baselines that classify a whole brain from its bag of slices.

A *bag* is the slices of one brain, ordered by position (:mod:`alzmri.data.bags`); the
baselines are the floor a deep model must clear when brains, not slices, are scored:

* ``baseline:atrophy``: the share of dark, CSF-like pixels in each slice's brain
  (ventricles and sulci widen as the brain shrinks), averaged per brain in bins of
  relative slice position, then ``StandardScaler`` + ``LogisticRegression``.
* ``baseline:knn``: the leakage audit's 1-nearest-neighbour on 32 x 32 raw pixels; P(class)
  of a brain is the share of its slices whose nearest training slice has that class.
* ``baseline:pixels``: 32 x 32 pixels, ``PCA`` + ``LogisticRegression`` per slice (each
  labelled with its brain's class); a brain's probabilities are the mean of its slices'.

Slices: uint8 (0..255) or float in [0, 1], any size. Saved without pickle (:mod:`.baseline_io`).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import ndimage

from alzmri.data.bags import relative_positions
from alzmri.errors import AlzmriError
from alzmri.models import baseline_io as io

__all__ = ["BASELINES", "AtrophyBaseline", "BrainBaseline", "KnnBaseline", "PixelsBaseline", "create_baseline", "dark_shares", "is_baseline", "load_baseline", "pool_slices"]

CSF_FRACTION = 0.5  #: a mask pixel is CSF-like below this fraction of its slice's median brain intensity


def _to_unit(slices: np.ndarray, where: str) -> np.ndarray:
    """uint8 (0..255) or float [0, 1] slices as float64 in [0, 1]."""
    if slices.dtype != np.uint8 and not np.issubdtype(slices.dtype, np.floating):
        raise AlzmriError(f"{where}: slices must be uint8 (0..255) or float in [0, 1]; got dtype {slices.dtype}")
    x = slices.astype(np.float64) / (255.0 if slices.dtype == np.uint8 else 1.0)
    if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
        raise AlzmriError(f"{where}: float slices must lie in [0, 1] (got {np.nanmin(x):.3g}..{np.nanmax(x):.3g}); divide 0..255 values by 255")
    return x


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area pooling: each output cell averages the input it covers."""
    step = n_in / n_out
    edges = np.arange(n_out + 1) * step
    lo = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], lo[None] + 1) - np.maximum(edges[:-1, None], lo[None])
    return np.clip(overlap, 0.0, None) / step


def pool_slices(slices: np.ndarray, size: int = 32) -> np.ndarray:
    """Area-pool slices to ``size`` x ``size`` and flatten them.

    Parameters
    ----------
    slices : ndarray of shape (n, H, W), dtype uint8 or float in [0, 1]
    size : int, default=32

    Returns
    -------
    ndarray of shape (n, size * size), dtype float64
        In [0, 1]; each pixel averages the input it covers, weighted by area.
    """
    x = _to_unit(np.asarray(slices), "pool_slices")
    rows, cols = _area_matrix(x.shape[1], size), _area_matrix(x.shape[2], size)
    return (rows @ x @ cols.T).reshape(len(x), size * size)


def _otsu_level(q: np.ndarray) -> int:
    """Otsu's threshold of an integer image (0..255): the level maximising between-class variance
    (the rule of ``skimage.filters.threshold_otsu``; the foreground is ``q > level``)."""
    lo = int(q.min())
    hist = np.bincount(q.ravel().astype(np.intp) - lo).astype(np.float64)
    levels = np.arange(lo, lo + len(hist), dtype=np.float64)
    w1, w2 = np.cumsum(hist), np.cumsum(hist[::-1])[::-1]
    m1 = np.cumsum(hist * levels) / w1
    m2 = (np.cumsum((hist * levels)[::-1]) / w2[::-1])[::-1]
    return lo + int(np.argmax(w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2))


def dark_shares(slices: np.ndarray, *, csf_fraction: float = CSF_FRACTION) -> np.ndarray:
    """Share of dark, CSF-like pixels inside the brain of each slice.

    The brain mask is the pixels above Otsu's threshold of the slice (256 grey levels),
    holes filled (as ``scipy.ndimage.binary_fill_holes``, 2x faster) so ventricles count.

    Parameters
    ----------
    slices : ndarray of shape (n, H, W), dtype uint8 or float in [0, 1]
    csf_fraction : float, default=0.5
        A mask pixel is CSF-like when darker than ``csf_fraction`` times the mask's median:
        CSF is far darker than grey and white matter on T1, so half the typical tissue
        intensity separates them without tuning (none was done).

    Returns
    -------
    ndarray of shape (n,), dtype float64
        In [0, 1]; NaN for a slice without a brain mask (a constant image).
    """
    slices = np.asarray(slices)
    q = slices if slices.dtype == np.uint8 else np.rint(_to_unit(slices, "dark_shares") * 255.0).astype(np.uint8)
    out = np.full(len(q), np.nan)
    for i, s in enumerate(q):
        if s.max() > s.min():
            lab, n = ndimage.label(s <= _otsu_level(s))  # background parts not touching the border are holes
            inside = np.ones(n + 1, dtype=bool)
            inside[lab[0]] = inside[lab[-1]] = inside[lab[:, 0]] = inside[lab[:, -1]] = False
            inside[0] = True
            vals = s[inside[lab]]
            out[i] = np.mean(vals < csf_fraction * np.median(vals))
    return out


class BrainBaseline:
    """Common interface of the bag baselines: ``fit``, ``predict_proba``, ``slice_contributions``, ``save``.

    Parameters
    ----------
    num_classes : int
        Classes of the task (labels 0..num_classes-1; class 0 is NonDemented).
    seed : int, default=0
        Seed of any randomised step (PCA's solver).
    """

    name = ""
    _params: tuple[str, ...] = ()  # constructor options, saved in baseline.json
    _arrays: tuple[str, ...] = ()  # fitted arrays, saved as they are
    _estimators: ClassVar[dict[str, str]] = {}  # attribute -> scikit-learn class, saved as its fitted arrays

    def __init__(self, *, num_classes: int, seed: int = 0):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise AlzmriError(f"{self.name}: the 'num_classes' parameter must be an int >= 2. Got {num_classes!r} instead.")
        self.num_classes, self.seed, self._fitted = int(num_classes), int(seed), False

    def _check_bags(self, bags, positions):
        bags = [] if isinstance(bags, np.ndarray) and bags.ndim == 3 else [np.asarray(b) for b in bags]
        for i, b in enumerate(bags or [np.zeros(0)]):
            if b.ndim != 3 or len(b) == 0:
                raise AlzmriError(f"{self.name}: bag {i} has shape {b.shape}; pass a non-empty list of (n_slices >= 1, H, W) arrays, one per brain")
        positions = [relative_positions(len(b)) for b in bags] if positions is None else [np.asarray(p, dtype=np.float64) for p in positions]
        if len(positions) != len(bags):
            raise AlzmriError(f"{self.name}: {len(positions)} position arrays for {len(bags)} bags; pass one per bag")
        for i, (b, p) in enumerate(zip(bags, positions)):
            if p.shape != (len(b),) or not (np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1):
                raise AlzmriError(f"{self.name}: positions[{i}] must be {len(b)} relative positions in [0, 1]; got shape {p.shape}")
        return bags, positions

    def _check_labels(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and (y.min() < 0 or y.max() >= self.num_classes)):
            raise AlzmriError(f"{self.name}: y must be {n} int task labels in 0..{self.num_classes - 1}, one per bag; got shape {y.shape}, dtype {y.dtype}")
        return y.astype(np.int64)

    def _expand(self, proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Probabilities over ``classes`` as (n, num_classes) float64; absent classes get 0."""
        out = np.zeros((len(proba), self.num_classes), dtype=np.float64)
        out[:, classes] = proba
        return out

    def _rebuild(self) -> None:
        """Build what derives from the saved state (the 1-NN index); see :func:`.baseline_io.rebuild`."""

    def _need_fitted(self) -> None:
        if not self._fitted:
            raise AlzmriError(f"{self.name}: not fitted yet; call fit(bags, y) or load_baseline(folder) first")

    def fit(self, bags, y, positions=None) -> BrainBaseline:
        """Fit on training brains.

        Parameters
        ----------
        bags : list of ndarray of shape (n_slices_b, H, W), dtype uint8 or float in [0, 1]
            One array per brain, slices ordered by position; sizes may differ.
        y : array-like of int of shape (n_bags,)
            Task labels 0..num_classes-1.
        positions : list of ndarray of shape (n_slices_b,), dtype float32, optional
            Relative position 0..1 of each slice; default evenly spaced.

        Returns
        -------
        self : BrainBaseline
            Predicting from the state that a save and load rebuilds.
        """
        bags, positions = self._check_bags(bags, positions)
        self._fit(bags, self._check_labels(y, len(bags)), positions)
        params, arrays = io.state_of(self)
        self.__dict__.update(io.rebuild(type(self), self.num_classes, self.seed, params, arrays).__dict__)
        return self

    def predict_proba(self, bags, positions=None) -> np.ndarray:
        """Class probabilities of each brain (``bags``, ``positions`` as in :meth:`fit`).

        Returns
        -------
        ndarray of shape (n_bags, num_classes), dtype float64
            Rows sum to 1; a class absent from training gets probability 0.
        """
        self._need_fitted()
        bags, positions = self._check_bags(bags, positions)
        return self._predict_proba(bags, positions)

    def slice_contributions(self, bag, position=None) -> np.ndarray:
        """How much each slice of one brain adds to P(not class 0); each baseline documents its unit.

        ``bag``: ndarray of shape (n_slices, H, W); ``position``: (n_slices,), default evenly
        spaced. Returns an ndarray of shape (n_slices,), dtype float64.
        """
        self._need_fitted()
        bags, positions = self._check_bags([bag], None if position is None else [position])
        return self._contributions(bags[0], positions[0])

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``baseline.json`` + ``baseline.safetensors`` into ``folder`` (created if missing), atomically, no pickle.

        ``overwrite=False`` refuses a folder that already holds a baseline. Returns
        ``folder``, which :func:`load_baseline` reads back with identical predictions.
        """
        self._need_fitted()
        params, arrays = io.state_of(self)
        return io.save_baseline(folder, self.name, self.num_classes, self.seed, params, arrays, overwrite=overwrite)


class AtrophyBaseline(BrainBaseline):
    """``baseline:atrophy``: share of CSF-like pixels per slice (:func:`dark_shares`) in position bins.

    Per brain: the mean dark share in ``n_bins`` equal bins of relative position and over
    all slices (slices without a brain mask left out; a bin with no slice takes the
    training mean), then ``StandardScaler`` + ``LogisticRegression(class_weight="balanced",
    C=C, max_iter=1000)``. ``slice_contributions``: each slice's additive share of the
    log-odds of "not class 0" (its dark share, centred and scaled like its bin and the
    overall mean, times the coefficients; in the binary task they sum to the log-odds
    minus the intercept; with more classes, the gradient of log P(not 0) / P(0)).
    """

    name = "baseline:atrophy"
    _params, _arrays, _estimators = ("n_bins", "csf_fraction", "C"), ("bin_edges", "fill"), {"scaler": "StandardScaler", "lr": "LogisticRegression"}

    def __init__(self, *, num_classes: int, seed: int = 0, n_bins: int = 8, csf_fraction: float = CSF_FRACTION, C: float = 1.0):
        super().__init__(num_classes=num_classes, seed=seed)
        self.n_bins, self.csf_fraction, self.C = int(n_bins), float(csf_fraction), float(C)
        self.bin_edges = np.linspace(0.0, 1.0, self.n_bins + 1)

    def _bins(self, position: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.bin_edges, position, side="right") - 1, 0, self.n_bins - 1)

    def _raw_features(self, bags, positions) -> np.ndarray:
        """(n_bags, n_bins + 1): mean dark share per position bin and overall; NaN where no slice."""
        f = np.full((len(bags), self.n_bins + 1), np.nan)
        for i, (bag, pos) in enumerate(zip(bags, positions)):
            shares, bins = dark_shares(bag, csf_fraction=self.csf_fraction), self._bins(pos)
            ok = ~np.isnan(shares)
            n = np.bincount(bins[ok], minlength=self.n_bins)
            f[i, :-1] = np.where(n > 0, np.bincount(bins[ok], shares[ok], minlength=self.n_bins) / np.maximum(n, 1), np.nan)
            f[i, -1] = shares[ok].mean() if ok.any() else np.nan
        return f

    def _features(self, bags, positions) -> np.ndarray:
        f = self._raw_features(bags, positions)
        return np.where(np.isnan(f), self.fill, f)

    def _fit(self, bags, y, positions) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        io.require_two_classes(self.name, y)
        raw = self._raw_features(bags, positions)
        seen = ~np.isnan(raw)
        count, total = seen.sum(axis=0), np.where(seen, raw, 0.0).sum(axis=0)
        if count[-1] == 0:
            raise AlzmriError(f"{self.name}: no training slice shows a brain above the background; pass brain MRI slices")
        # training mean of each feature; a bin no training brain reached takes the overall mean
        self.fill = np.where(count > 0, total / np.maximum(count, 1), total[-1] / count[-1])
        x = np.where(seen, raw, self.fill)
        self.scaler = StandardScaler().fit(x)
        self.lr = LogisticRegression(class_weight="balanced", C=self.C, max_iter=1000).fit(self.scaler.transform(x), y)

    def _predict_proba(self, bags, positions) -> np.ndarray:
        return self._expand(self.lr.predict_proba(self.scaler.transform(self._features(bags, positions))), self.lr.classes_)

    def _contributions(self, bag, position) -> np.ndarray:
        w = io.not_zero_direction(self.lr, self.scaler.transform(self._features([bag], [position]))) / self.scaler.scale_
        shares, bins = dark_shares(bag, csf_fraction=self.csf_fraction), self._bins(position)
        ok, mu, out = ~np.isnan(shares), self.scaler.mean_, np.zeros(len(bag))
        s, b = shares[ok], bins[ok]
        out[ok] = w[b] * (s - mu[b]) / np.bincount(b, minlength=self.n_bins)[b] + w[-1] * (s - mu[-1]) / max(len(s), 1)
        return out


class KnnBaseline(BrainBaseline):
    """``baseline:knn``: 1-nearest-neighbour (Euclidean) on ``size`` x ``size`` area-pooled pixels in [0, 1].

    Training slices are kept as uint8 (pooled values rounded to 1/255). Each slice votes the
    class of its nearest training slice; P(class c) of a brain is the share voting c.
    ``slice_contributions``: 1 / n_slices for a slice voting a class other than 0, else 0
    (they sum to P(not class 0)).
    """

    name = "baseline:knn"
    _params, _arrays = ("size",), ("train_pixels", "train_labels")

    def __init__(self, *, num_classes: int, seed: int = 0, size: int = 32):
        super().__init__(num_classes=num_classes, seed=seed)
        self.size = int(size)

    def _rebuild(self) -> None:
        from sklearn.neighbors import KNeighborsClassifier

        self.knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(self.train_pixels / 255.0, self.train_labels.astype(np.int64))

    def _fit(self, bags, y, positions) -> None:
        self.train_pixels = np.rint(np.concatenate([pool_slices(b, self.size) for b in bags]) * 255.0).astype(np.uint8)
        self.train_labels = np.repeat(y, [len(b) for b in bags])

    def _votes(self, bags) -> list[np.ndarray]:
        votes = self.knn.predict(np.concatenate([pool_slices(b, self.size) for b in bags])).astype(np.int64)
        return np.split(votes, np.cumsum([len(b) for b in bags])[:-1])

    def _predict_proba(self, bags, positions) -> np.ndarray:
        return np.stack([np.bincount(v, minlength=self.num_classes) / len(v) for v in self._votes(bags)]).astype(np.float64)

    def _contributions(self, bag, position) -> np.ndarray:
        return (self._votes([bag])[0] != 0) / len(bag)


class PixelsBaseline(BrainBaseline):
    """``baseline:pixels``: ``size`` x ``size`` pixels, PCA + balanced logistic regression per slice.

    ``PCA(n_components=min(n_components, n_train_slices - 1), random_state=seed)`` and
    ``LogisticRegression(class_weight="balanced", C=C, max_iter=1000)`` are fitted on all
    training slices, each labelled with its brain's class; a brain's probabilities are
    the mean of its slices'. ``slice_contributions``: (1 - P_slice(class 0)) / n_slices
    (they sum to the brain's P(not class 0)).
    """

    name = "baseline:pixels"
    _params, _estimators = ("size", "n_components", "C"), {"pca": "PCA", "lr": "LogisticRegression"}

    def __init__(self, *, num_classes: int, seed: int = 0, size: int = 32, n_components: int = 50, C: float = 1.0):
        super().__init__(num_classes=num_classes, seed=seed)
        self.size, self.n_components, self.C = int(size), int(n_components), float(C)

    def _fit(self, bags, y, positions) -> None:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([pool_slices(b, self.size) for b in bags])
        labels = np.repeat(y, [len(b) for b in bags])
        io.require_two_classes(self.name, labels)
        self.pca = PCA(n_components=min(self.n_components, len(x) - 1, x.shape[1]), random_state=self.seed).fit(x)
        self.lr = LogisticRegression(class_weight="balanced", C=self.C, max_iter=1000).fit(self.pca.transform(x), labels)

    def _slice_proba(self, bag) -> np.ndarray:
        return self._expand(self.lr.predict_proba(self.pca.transform(pool_slices(bag, self.size))), self.lr.classes_)

    def _predict_proba(self, bags, positions) -> np.ndarray:
        return np.stack([self._slice_proba(b).mean(axis=0) for b in bags])

    def _contributions(self, bag, position) -> np.ndarray:
        return (1.0 - self._slice_proba(bag)[:, 0]) / len(bag)


BASELINES: dict[str, type] = {cls.name: cls for cls in (AtrophyBaseline, KnnBaseline, PixelsBaseline)}


def is_baseline(name: str) -> bool:
    """Whether ``name`` names a bag baseline (``"baseline:..."``)."""
    return isinstance(name, str) and name.startswith("baseline:")


def create_baseline(name: str, *, num_classes: int, seed: int = 0, **kwargs) -> BrainBaseline:
    """An unfitted baseline by registry name (a key of :data:`BASELINES`).

    ``**kwargs`` are options of the baseline's class (``n_bins``, ``csf_fraction``,
    ``size``, ``n_components``, ``C``). Raises AlzmriError for an unknown name (listing
    the known ones) or option.
    """
    if name not in BASELINES:
        raise AlzmriError(f"unknown baseline {name!r}; use one of {', '.join(BASELINES)}")
    cls = BASELINES[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "num_classes", "seed")]
    if bad := sorted(set(kwargs) - set(allowed)):
        raise AlzmriError(f"{name}: unknown option(s) {', '.join(bad)}; allowed: {', '.join(allowed) or 'none'}")
    return cls(num_classes=num_classes, seed=seed, **kwargs)


def load_baseline(path: str | os.PathLike) -> BrainBaseline:
    """The fitted baseline in folder ``path`` written by :meth:`BrainBaseline.save`, predicting exactly as saved.

    Never unpickles anything; raises AlzmriError for anything else (a pickle, another
    JSON, missing or altered arrays).
    """
    name, num_classes, seed, params, arrays = io.read_baseline(path, BASELINES)
    try:
        return io.rebuild(BASELINES[name], num_classes, seed, params, arrays)
    except (TypeError, ValueError, KeyError) as exc:
        raise AlzmriError(f"{Path(path) / io.JSON_FILE}: params or arrays do not fit {name} ({exc}); save the baseline again") from None
