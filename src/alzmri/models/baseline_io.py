"""Saving and loading the bag baselines without pickle: ``baseline.json`` + ``baseline.safetensors``.

A saved baseline is one folder:

* ``baseline.json``: ``format`` (``"alzmri-baseline"``), ``format_version``, the baseline
  ``name``, ``num_classes``, ``seed``, its ``params`` (plain JSON values), the name, dtype
  and shape of every array, and the SHA-256 of the safetensors file;
* ``baseline.safetensors``: the fitted parameters as plain arrays (coefficients,
  intercepts, classes, scaler mean/scale, PCA components/mean, the 1-NN training pixels
  as uint8, the position bins, ...).

Loading rebuilds the scikit-learn estimators by setting those attributes, so predictions
are identical to the fitted model's. Nothing is ever unpickled: a pickle, another JSON or
arrays that do not match their JSON are refused with one :class:`AlzmriError` line.
Both files are written atomically (temporary file, then rename), the arrays first, so a
half-written folder never passes the hash check. The small scikit-learn helpers that the
baselines share (fitted arrays of an estimator, the two-class check, the log-odds
direction of :func:`not_zero_direction`) live here too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_bytes, atomic_write_json

__all__ = ["ARRAYS_FILE", "FORMAT", "FORMAT_VERSION", "JSON_FILE", "read_baseline", "rebuild", "save_baseline", "state_of"]

FORMAT = "alzmri-baseline"
FORMAT_VERSION = 1
JSON_FILE = "baseline.json"
ARRAYS_FILE = "baseline.safetensors"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".sav")
_FIX = "pass a folder written by BrainBaseline.save() (alzmri never loads pickles)"


# ---- scikit-learn estimators as arrays, and shared checks ----------------------------------
def require_two_classes(name: str, y: np.ndarray) -> None:
    """AlzmriError unless the training labels hold at least two classes."""
    present = np.unique(y)
    if len(present) < 2:
        raise AlzmriError(f"{name}: the training brains hold only class {present.tolist()}; fit needs brains of at least two classes")


_FITTED = {  # scikit-learn class -> its fitted attributes that predictions read
    "LogisticRegression": ("classes_", "coef_", "intercept_"),
    "StandardScaler": ("mean_", "scale_", "var_"),
    "PCA": ("components_", "mean_", "explained_variance_"),
}


def estimator_state(prefix: str, est) -> dict[str, np.ndarray]:
    """The fitted arrays of a LogisticRegression, StandardScaler or PCA as ``{"<prefix>.<attr>": array}``."""
    names = _FITTED[type(est).__name__]
    return {f"{prefix}.{a}": np.asarray(getattr(est, a), dtype=np.int64 if a == "classes_" else np.float64) for a in names}


def estimator_from_state(kind: str, prefix: str, arrays: dict[str, np.ndarray], *, seed: int = 0, C: float = 1.0):
    """A fitted ``kind`` (a key of ``_FITTED``) rebuilt by setting the arrays of :func:`estimator_state`.

    LogisticRegression is rebuilt with ``class_weight="balanced", C=C, max_iter=1000``
    and PCA with ``random_state=seed``, as the baselines fit them; both settings only
    matter for fitting, not for predicting.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    est = {"LogisticRegression": lambda: LogisticRegression(class_weight="balanced", C=C, max_iter=1000),
           "StandardScaler": StandardScaler,
           "PCA": lambda: PCA(n_components=arrays[f"{prefix}.components_"].shape[0], random_state=seed)}[kind]()
    for a in _FITTED[kind]:
        setattr(est, a, arrays[f"{prefix}.{a}"])
    ref = est.coef_ if kind == "LogisticRegression" else est.components_ if kind == "PCA" else est.mean_[None]
    est.n_features_in_ = ref.shape[1]
    if kind == "PCA":
        est.n_components_ = ref.shape[0]
    if kind == "StandardScaler":
        est.n_samples_seen_ = 0
    return est


def state_of(model) -> tuple[dict, dict[str, np.ndarray]]:
    """``(params, arrays)`` of a fitted baseline: its ``_params`` options, its ``_arrays`` and
    the fitted arrays of its ``_estimators`` (contiguous, as they are saved)."""
    arrays = {k: getattr(model, k) for k in model._arrays}
    for attr in model._estimators:
        arrays.update(estimator_state(attr, getattr(model, attr)))
    return {k: getattr(model, k) for k in model._params}, {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def rebuild(cls, num_classes: int, seed: int, params: dict, arrays: dict[str, np.ndarray]):
    """A fitted ``cls`` from :func:`state_of`'s output (the fitted model itself predicts from this rebuild)."""
    model = cls(num_classes=num_classes, seed=seed, **params)
    for k in cls._arrays:
        setattr(model, k, arrays[k])
    for attr, kind in cls._estimators.items():
        setattr(model, attr, estimator_from_state(kind, attr, arrays, seed=seed, C=getattr(model, "C", 1.0)))
    model._rebuild()
    model._fitted = True
    return model


def not_zero_direction(lr, z: np.ndarray) -> np.ndarray:
    """Gradient of log P(not 0) / P(0) with respect to the (scaled) features of one sample.

    Parameters
    ----------
    lr : fitted LogisticRegression
    z : ndarray of shape (1, n_features)
        The sample (only used with three or more classes, to weigh them).

    Returns
    -------
    ndarray of shape (n_features,), dtype float64
        ``coef_[0]`` for two classes (0 and another); with more, the coefficients of the
        classes > 0 weighted by their probability among them, minus class 0's; zeros when
        class 0 was not trained.
    """
    classes, coef = np.asarray(lr.classes_), np.asarray(lr.coef_, dtype=np.float64)
    if classes[0] != 0:
        return np.zeros(coef.shape[1])
    if len(classes) == 2:
        return coef[0]
    p = lr.predict_proba(z)[0]
    q = p[1:] / max(p[1:].sum(), np.finfo(np.float64).tiny)
    return q @ coef[1:] - coef[0]


# ---- the folder ------------------------------------------------------------------------------
def save_baseline(folder, name: str, num_classes: int, seed: int, params: dict, arrays: dict[str, np.ndarray], *, overwrite: bool = False) -> Path:
    """Write ``baseline.safetensors`` then ``baseline.json`` into ``folder``, each atomically.

    Parameters
    ----------
    folder : path-like
        Created if missing.
    name : str
        The baseline's registry name.
    num_classes, seed : int
    params : dict
        JSON values: the keyword options of the baseline's class.
    arrays : dict of str to ndarray
        Fitted parameters (uint8, int64 or float64).
    overwrite : bool, default=False
        False refuses a folder that already holds ``baseline.json``.

    Returns
    -------
    Path
        ``folder``.
    """
    from safetensors.numpy import save

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AlzmriError(f"{folder}: exists and is not a folder; pass a folder path to save the baseline in")
    if (folder / JSON_FILE).exists() and not overwrite:
        raise AlzmriError(f"{folder / JSON_FILE}: a baseline is already saved here; choose a new folder or pass overwrite=True")
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    data = save(arrays, metadata={"format": FORMAT, "name": name})
    atomic_write_bytes(folder / ARRAYS_FILE, data)
    atomic_write_json(folder / JSON_FILE, {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "num_classes": int(num_classes),
        "seed": int(seed),
        "params": params,
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
        "arrays_file": ARRAYS_FILE,
        "arrays_sha256": hashlib.sha256(data).hexdigest(),
    })
    return folder


def _refuse(path: Path, why: str) -> AlzmriError:
    return AlzmriError(f"{path}: not an alzmri baseline folder ({why}); {_FIX}")


def read_baseline(path, known) -> tuple[str, int, int, dict, dict[str, np.ndarray]]:
    """Read and check a folder written by :func:`save_baseline`, never unpickling anything.

    Parameters
    ----------
    path : path-like
        The folder.
    known : collection of str
        Baseline names that may be loaded.

    Returns
    -------
    name : str
    num_classes, seed : int
    params : dict
    arrays : dict of str to ndarray

    Raises
    ------
    AlzmriError
        A path that is not a folder, no ``baseline.json``, a pickle or other non-JSON
        content, a JSON of another format or version, an unknown name, or arrays missing
        or different from those the JSON names.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_dir():
        kind = "a pickle file" if path.suffix.lower() in _PICKLE_SUFFIXES else ("a file" if path.exists() else "it does not exist")
        raise _refuse(path, kind)
    jpath = path / JSON_FILE
    if not jpath.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        raise _refuse(path, f"no {JSON_FILE}" + (f"; {', '.join(pickles)} ignored" if pickles else ""))
    raw = jpath.read_bytes()
    if raw[:1] == b"\x80":
        raise _refuse(jpath, "it is a pickle, not JSON")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _refuse(jpath, "not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _refuse(jpath, f"format is not {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise AlzmriError(f"{jpath}: format_version {version!r} is not one this alzmri reads (1..{FORMAT_VERSION}); upgrade alzmri or save the baseline again")
    name, spec = meta.get("name"), meta.get("arrays")
    if name not in known:
        raise AlzmriError(f"{jpath}: unknown baseline {name!r}; this alzmri knows {', '.join(known)}")
    if not (isinstance(meta.get("num_classes"), int) and isinstance(meta.get("seed"), int) and isinstance(meta.get("params"), dict) and isinstance(spec, dict)):
        raise _refuse(jpath, "num_classes, seed, params or arrays missing")
    apath = path / ARRAYS_FILE
    try:
        data = apath.read_bytes()
    except OSError:
        raise AlzmriError(f"{apath}: missing or unreadable; save the baseline again") from None
    if hashlib.sha256(data).hexdigest() != meta.get("arrays_sha256"):
        raise AlzmriError(f"{apath}: does not match {JSON_FILE} (altered or half written); save the baseline again")
    try:
        arrays = load(data)
    except (SafetensorError, ValueError) as exc:
        raise AlzmriError(f"{apath}: unreadable safetensors ({exc}); save the baseline again") from None
    got = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}
    if got != spec:
        raise AlzmriError(f"{apath}: arrays differ from those {JSON_FILE} names; save the baseline again")
    return name, meta["num_classes"], meta["seed"], meta["params"], arrays

