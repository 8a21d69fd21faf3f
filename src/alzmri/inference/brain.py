"""One prediction per brain: a run applied to the bag of one brain's slices.

A brain is given as (:func:`alzmri.inference.inputs.read_brain_input`)

* one folder of slice images: its image files **sorted by file name** are the slice
  order (digit runs compared as numbers: ``slice_2`` before ``slice_10``); hidden files,
  other files and sub-folders are left out;
* several slice image files, in the order given;
* one NIfTI file or DICOM series: its central axial slices, inferior to superior
  (:func:`alzmri.data.volumes.load_volume_slices`; the training brains hold about 32
  mid-brain slices);
* one slice image: a brain of one slice (the answer notes it for brain-level runs).

How a run answers (``run.json`` ``level``, ``brain.json`` ``kind``):

* **brain-level MIL** (``kind: mil``): the :class:`~alzmri.models.mil.BrainClassifier`
  scores the bag; a slice's ``weight`` is its attention weight (summing to 1), or
  ``1 / n`` for mean pooling;
* **brain-level baseline** (``kind: baseline``): the scikit-learn baseline scores the bag;
  a slice's ``weight`` is its signed contribution to P(demented)
  (:meth:`~alzmri.models.baselines.BrainBaseline.slice_contributions`, not summing to 1);
* **slice-level run**: each slice is scored alone and the brain's probabilities are the
  **mean of its slices' probabilities** (the subject-level rule of ``alzmri evaluate``);
  a slice's ``weight`` is ``1 / n`` and it gets its own ``probabilities``.

Binary runs answer Demented when P(demented) >= the run's threshold: ``brain.json``
``threshold`` (chosen on validation brains), else the ``brain_level.threshold`` of a
slice-level run's ``metrics.json``, else 0.5; other tasks take the argmax. Loading a
run reads no ImageNet weights (``weights: none``; ``model.safetensors`` holds them all)
and unpickles nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alzmri.errors import AlzmriError
from alzmri.inference.inputs import BrainInput, read_brain_input

__all__ = ["BrainInput", "BrainPredictor", "load_brain_run", "predict_brain", "predict_brains", "read_brain_input", "with_input"]

BRAIN_FILE = "brain.json"
#: Note added to the answer for a brain-level run given a single slice.
ONE_SLICE_NOTE = ("a single slice was scored as a brain of one slice; the brain-level model was trained on whole brains "
                  "(about 32 slices each), so this answer rests on far less than it expects: pass the brain's slices (a folder or a volume)")


class BrainPredictor:
    """A run loaded to predict brains; made by :func:`load_brain_run`.

    Attributes
    ----------
    info : RunInfo
    kind : str
        ``"mil"``, ``"baseline"`` (brain-level runs) or ``"slice"`` (slice-level runs).
    backend : str
        What computes the scores: ``torch``, ``scikit-learn``, or the slice-level run's
        backend (``torch``, ``onnx``).
    threshold : float or None
        Binary decision threshold on P(demented); None for other tasks.
    threshold_source : str or None
        Where the threshold comes from.
    weights_file : Path
        The file holding the model's parameters (its SHA-256 identifies the model).
    """

    def __init__(self, run_dir: Path, info, kind: str, *, backend: str, threshold: float | None, threshold_source: str | None,
                 weights_file: Path, model=None, baseline=None, proba: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.run_dir, self.info, self.kind, self.backend = Path(run_dir), info, kind, backend
        self.threshold, self.threshold_source, self.weights_file = threshold, threshold_source, Path(weights_file)
        self._model, self._baseline, self._proba = model, baseline, proba

    @property
    def image_size(self) -> int:
        return int(self.info.image_size)

    def weights_sha256(self) -> str:
        """Hex SHA-256 of :attr:`weights_file`."""
        h = hashlib.sha256()
        with open(self.weights_file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def _check(self, slices: np.ndarray, positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from alzmri.data.bags import relative_positions

        slices = np.asarray(slices)
        s = self.image_size
        if slices.ndim != 3 or len(slices) == 0 or slices.shape[1:] != (s, s) or slices.dtype != np.uint8:
            raise AlzmriError(f"a brain must be uint8 slices of shape (n_slices >= 1, {s}, {s}) for this run; got {slices.dtype} {slices.shape}")
        pos = relative_positions(len(slices)) if positions is None else np.asarray(positions, dtype=np.float32)
        if pos.shape != (len(slices),) or not (np.isfinite(pos).all() and pos.min() >= 0 and pos.max() <= 1):
            raise AlzmriError(f"positions must be {len(slices)} relative slice positions in [0, 1]; got shape {pos.shape}")
        order = np.argsort(pos, kind="stable")
        return np.ascontiguousarray(slices[order]), pos[order], order

    def _mil(self, slices: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from alzmri.models.ordinal import corn_log_probs, is_ordinal
        from alzmri.data.preprocess import prepare_batch

        pre = self._model.preprocessing
        with torch.inference_mode():
            x = prepare_batch(torch.from_numpy(slices), mean=pre["mean"], std=pre["std"], in_chans=pre["in_chans"]).unsqueeze(0)
            logits, w = self._model.forward_with_weights(x, None, torch.from_numpy(pos).unsqueeze(0))
            if is_ordinal(self._model):
                logits = corn_log_probs(logits)
            prob = torch.softmax(logits.float(), dim=1)[0].double().numpy()
        return prob, w[0].double().numpy()

    def predict(self, slices: np.ndarray, positions=None, *, names: list[str] | None = None) -> dict:
        """One prediction for a brain given as its slices.

        Parameters
        ----------
        slices : ndarray of shape (n_slices, image_size, image_size), dtype uint8
            As :func:`alzmri.data.images.decode_image` makes them, at the run's
            ``image_size``.
        positions : array-like of shape (n_slices,), optional
            Relative slice positions in [0, 1]; slices are put in position order. Default:
            evenly spaced in the order given (0.5 for one slice).
        names : list of str, optional
            Per slice (file names); default ``slice 0``, ``slice 1``, ...

        Returns
        -------
        dict
            ``task``, ``level`` (the run's), ``kind`` ("brain"), ``predicted_class``,
            ``confidence`` (its probability), ``probabilities`` (class -> float, sum 1),
            ``p_demented`` (1 - P(NonDemented)), ``threshold`` (binary, else None),
            ``decision``, ``aggregation``, ``slice_weights`` (sentences), ``n_slices``,
            ``slices`` (position order: ``index`` in the input, ``name``, ``position``,
            ``weight``, and for slice-level runs ``p_demented`` and ``probabilities``,
            else None) and ``notes``.

        Raises
        ------
        AlzmriError
            Slices of the wrong shape or dtype; bad positions.
        """
        slices, pos, order = self._check(slices, positions)
        names = [f"slice {i}" for i in range(len(order))] if names is None else list(names)
        if len(names) != len(order):
            raise AlzmriError(f"{len(names)} names for {len(order)} slices; pass one name per slice")
        names = [names[i] for i in order]
        if self.kind == "slice":
            return self.aggregate(self._proba(slices), positions=pos, names=names, index=order)
        if self.kind == "mil":
            prob, weights = self._mil(slices, pos)
        else:
            prob = np.asarray(self._baseline.predict_proba([slices], [pos])[0], dtype=np.float64)
            weights = np.asarray(self._baseline.slice_contributions(slices, pos), dtype=np.float64)
        return self._answer(prob, weights, None, names, pos, order)

    def aggregate(self, slice_probs: np.ndarray, *, positions=None, names: list[str] | None = None, index=None) -> dict:
        """The brain answer of a slice-level run from its slices' probabilities (their mean).

        Parameters
        ----------
        slice_probs : ndarray of shape (n_slices, n_classes), float
            Each slice's class probabilities, in slice order.
        positions, names, index : optional
            Per slice; default evenly spaced, ``slice i`` and ``i``.

        Returns
        -------
        dict
            As :meth:`predict`.
        """
        from alzmri.data.bags import relative_positions

        p = np.asarray(slice_probs, dtype=np.float64)
        n = len(p)
        if self.kind != "slice" or n == 0:
            raise AlzmriError("aggregate takes the slice probabilities of a slice-level run, one row per slice (at least one)")
        pos = relative_positions(n) if positions is None else np.asarray(positions)
        names = [f"slice {i}" for i in range(n)] if names is None else list(names)
        return self._answer(p.mean(axis=0), np.full(n, 1.0 / n), p, names, pos, np.arange(n) if index is None else np.asarray(index))

    def _answer(self, prob, weights, per_slice, names, pos, order) -> dict:
        info = self.info
        classes = list(info.class_names)
        prob = np.asarray(prob, dtype=np.float64)
        p_dem = float(1.0 - prob[0])
        if len(classes) == 2:
            k = int(p_dem >= self.threshold)
            decision = f"{classes[1]} when P(demented) >= {self.threshold:.4f} ({self.threshold_source})"
        else:
            k = int(np.argmax(prob))
            decision = "the class of highest probability"
        slices = []
        for j, (name, i) in enumerate(zip(names, order)):
            own = per_slice is not None  # a slice-level run scores each slice; a brain-level one only the bag
            slices.append({"index": int(i), "name": name, "position": round(float(pos[j]), 6), "weight": float(weights[j]),
                           "p_demented": float(1.0 - per_slice[j][0]) if own else None,
                           "probabilities": {c: float(v) for c, v in zip(classes, per_slice[j])} if own else None})
        notes = [ONE_SLICE_NOTE] if info.level == "brain" and len(slices) == 1 else []
        return {
            "task": info.task, "level": info.level, "kind": "brain", "predicted_class": classes[k], "confidence": float(prob[k]),
            "probabilities": {c: float(v) for c, v in zip(classes, prob)}, "p_demented": p_dem,
            "threshold": None if self.threshold is None else float(self.threshold), "decision": decision,
            "aggregation": self._aggregation(), "slice_weights": self._weights_meaning(), "n_slices": len(slices), "slices": slices, "notes": notes,
        }

    def _aggregation(self) -> str:
        if self.kind == "slice":
            return "mean of the slices' class probabilities (a slice-level model scores each slice alone)"
        if self.kind == "baseline":
            return f"{self.info.model} on the bag of slices"
        return f"{self._model.pooling} pooling of the slices' features by the brain-level model ({self.info.model} encoder)"

    def _weights_meaning(self) -> str:
        if self.kind == "baseline":
            return "each slice's signed contribution to P(demented), in the baseline's own unit (alzmri.models.baselines); they do not sum to 1"
        if self.kind == "mil" and self._model.pooling == "attention":
            return "attention weight of each slice (they sum to 1)"
        return "1 / n_slices: every slice counts the same"


def _threshold(run_dir: Path, info, brain: dict | None) -> tuple[float | None, str | None]:
    if len(info.class_names) != 2:
        return None, None
    if brain is not None and brain.get("threshold") is not None:
        return float(brain["threshold"]), "brain.json: chosen on the validation brains"
    try:
        t = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("brain_level", {}).get("threshold")
    except (OSError, ValueError, AttributeError):
        t = None
    if isinstance(t, (int, float)):
        return float(t), "metrics.json brain_level: chosen on the validation brains"
    return 0.5, "0.5: the run records no validation threshold"


def _load_mil(run_dir: Path, info):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from alzmri.config import load_train_config
    from alzmri.data.tasks import get_task
    from alzmri.runs import WEIGHTS_FILE
    from alzmri.training.brain import build_brain_model

    cfg_path, path = run_dir / "config.yaml", run_dir / WEIGHTS_FILE
    if not cfg_path.is_file() or not path.is_file():
        raise AlzmriError(f"{run_dir}: brain-level run without {'config.yaml' if not cfg_path.is_file() else WEIGHTS_FILE}; the run did not finish - retrain it")
    cfg = load_train_config(cfg_path)
    # the saved state dict holds every weight, the encoder's too: no pretrained file is read
    cfg = cfg.model_copy(update={"model_kwargs": {**cfg.model_kwargs, "weights": "none"}})
    model, _ = build_brain_model(cfg, get_task(info.task), info.image_size)
    try:
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:  # unreadable file, or a state dict of another architecture
        msg = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise AlzmriError(f"{path}: weights do not load into the brain-level model of config.yaml ({msg}); retrain the run") from None
    return model.float().eval(), path


def load_brain_run(run_dir: str | Path, *, backend: str | None = None, proba: Callable[[np.ndarray], np.ndarray] | None = None) -> BrainPredictor:
    """Load a run folder to predict whole brains.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder, brain-level (MIL or baseline) or slice-level.
    backend : {"torch", "onnx"}, optional
        Slice-level runs: how the model runs (default
        :data:`alzmri.inference.backends.DEFAULT_BACKEND`, as ``alzmri predict``).
        Brain-level MIL runs run with PyTorch (``torch`` or None), baselines with
        scikit-learn (None).
    proba : callable, optional
        Slice-level runs: an already loaded backend's ``proba`` (uint8 (n, S, S) -> (n, K)).

    Returns
    -------
    BrainPredictor

    Raises
    ------
    AlzmriError
        Not a run folder; missing or unreadable brain.json, config, weights or baseline;
        a backend the run cannot use.
    """
    from alzmri.runs import WEIGHTS_FILE, RunInfo

    run_dir = Path(run_dir)
    if str(run_dir).lower().endswith(".onnx"):
        raise AlzmriError(f"{run_dir}: a brain prediction needs the run folder, not its .onnx export; pass the run folder")
    info = RunInfo.load(run_dir)
    if info.level != "brain":
        from alzmri.inference.backends import load_backend

        t, src = _threshold(run_dir, info, None)
        if proba is None:
            be = load_backend(run_dir, backend)
            proba, backend = be.proba, be.name
        return BrainPredictor(run_dir, info, "slice", backend=backend or "torch", threshold=t, threshold_source=src, weights_file=run_dir / WEIGHTS_FILE, proba=proba)
    try:
        brain = json.loads((run_dir / BRAIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AlzmriError(f"{run_dir / BRAIN_FILE}: missing or unreadable ({type(exc).__name__}); the brain-level run did not finish - retrain it") from None
    t, src = _threshold(run_dir, info, brain)
    if brain.get("kind") == "baseline":
        if backend is not None:
            raise AlzmriError(f"{run_dir}: a baseline runs with scikit-learn; drop --backend {backend}")
        from alzmri.models.baselines import load_baseline

        base = load_baseline(run_dir / "baseline")
        return BrainPredictor(run_dir, info, "baseline", backend="scikit-learn", threshold=t, threshold_source=src,
                              weights_file=run_dir / "baseline" / "baseline.safetensors", baseline=base)
    if backend not in (None, "torch"):
        raise AlzmriError(f"{run_dir}: a brain-level model runs with PyTorch only; drop --backend {backend} (or pass torch)")
    model, path = _load_mil(run_dir, info)
    return BrainPredictor(run_dir, info, "mil", backend="torch", threshold=t, threshold_source=src, weights_file=path, model=model)


def predict_brains(run_dir: str | Path | BrainPredictor, brains: list[list[str | Path]], *, n_central: int | None = None, backend: str | None = None) -> list[dict]:
    """One answer per brain, each given as the paths of :func:`read_brain_input`; the run is loaded once.

    Returns
    -------
    list of dict
        Per brain: the answer of :meth:`BrainPredictor.predict` with its input
        (:func:`with_input`).
    """
    pred = run_dir if isinstance(run_dir, BrainPredictor) else load_brain_run(run_dir, backend=backend)
    out = []
    for paths in brains:
        b = read_brain_input(paths, pred.image_size, n_central=n_central)
        out.append(with_input(pred.predict(b.images, names=b.names), b))
    return out


def with_input(answer: dict, b: BrainInput) -> dict:
    """An answer of :meth:`BrainPredictor.predict` plus its input.

    Adds ``path`` (the input, or the first file and a count), ``inputs``, ``source``
    (``folder``, ``files``, ``file`` or ``volume``), ``skipped`` (``"name: why"`` of
    unreadable files left out), ``volume`` (``n_slices``, ``central_slices``; None for
    images) and notes on both.
    """
    path = b.inputs[0] if len(b.inputs) == 1 else f"{b.inputs[0]} and {len(b.inputs) - 1} more files"
    res = {"path": path, **answer, "inputs": b.inputs, "source": b.source, "skipped": b.skipped, "volume": b.volume, "notes": list(answer["notes"])}
    if b.volume is not None:
        first, stop = b.volume["central_slices"]
        res["notes"].append(f"volume: the brain is its {stop - first} central axial slices ({first}-{stop - 1} of {b.volume['n_slices']}, inferior to superior)")
    if b.skipped:
        res["notes"].append(f"{len(b.skipped)} unreadable file(s) left out: {'; '.join(b.skipped[:3])}{' ...' if len(b.skipped) > 3 else ''}")
    return res


def predict_brain(run_dir: str | Path | BrainPredictor, paths: list[str | Path], *, n_central: int | None = None, backend: str | None = None) -> dict:
    """One prediction for one brain: a folder of its slices, its slice files, or one volume.

    Parameters
    ----------
    run_dir : path-like or BrainPredictor
        A run folder (brain-level or slice-level), or a run loaded by :func:`load_brain_run`.
    paths : list of path-like
        One folder of slice images (sorted by file name = slice order), several slice
        image files of one brain (in the order given), or one NIfTI/DICOM volume (its
        central slices).
    n_central : int, optional
        Central slices of a volume (default 32).
    backend : {"torch", "onnx"}, optional
        As :func:`load_brain_run`.

    Returns
    -------
    dict
        See :func:`predict_brains` and :meth:`BrainPredictor.predict`.

    Raises
    ------
    AlzmriError
        A missing path, a folder without images, a brain with no readable slice, a bad
        run folder (one line naming the path and the fix).
    """
    return predict_brains(run_dir, [list(paths)], n_central=n_central, backend=backend)[0]
