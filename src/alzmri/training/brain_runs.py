"""Run folders of brain-level models and baselines, and their cross-validation by brain.

``fit_brain_run(cfg)`` (``alzmri train --level brain`` or ``--model baseline:...``) writes::

    OUT/config.yaml, manifest.csv, run.json   as every run (run.json: level "brain")
    OUT/brain.json        what rebuilds the model: encoder, pooling, slice position, frozen,
                          the decision threshold chosen on validation brains
    OUT/model.safetensors the BrainClassifier, encoder included (or OUT/baseline/ for a baseline)
    OUT/history.csv       one row per epoch (neural models)
    OUT/predictions.csv   one row per validation and test brain

and returns a :class:`BrainRun`: the validation and test brains' labels and probabilities
and the threshold, which :mod:`alzmri.evaluation.brain_runs` scores (``metrics.json``).

``fit_brain_cv(cfg)`` (``--folds K``) writes ``OUT/fold-<i>/`` (one such run per fold,
folds of :func:`alzmri.data.folds.subject_folds`, the folds of the slice-level ``--folds``)
and returns a :class:`BrainCV`, from which evaluation pools the out-of-fold metrics (every
brain scored once, by the model that did not see it; binary decisions at each fold's own
validation threshold) and :func:`write_oof_predictions` writes ``OUT/oof_predictions.csv``.
:mod:`alzmri.pipeline.brains` chains training, evaluation and the written results.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alzmri import __version__
from alzmri.config import TrainConfig, dump_config
from alzmri.data.manifest import write_manifest
from alzmri.data.tasks import Task
from alzmri.errors import AlzmriError
from alzmri.runs import RunInfo, count_parameters, environment, model_size_mb, save_weights
from alzmri.training.precision import peak_memory_mb
from alzmri.training.brain import BrainData, attach_features, brain_settings, build_brain_model, fit_baseline, fit_brain, load_brain_data, predict_baseline, predict_bags
from alzmri.training.brain_tables import write_brain_history, write_brain_predictions
from alzmri.training.selection import THRESHOLD_RULE, choose_threshold
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["BRAIN_FILE", "BrainCV", "BrainRun", "fit_brain_cv", "fit_brain_run", "write_oof_predictions"]

BRAIN_FILE = "brain.json"


@dataclass(frozen=True)
class BrainRun:
    """One fitted brain-level run: its folder and what evaluation scores.

    Attributes
    ----------
    out : Path
        The run folder (model files, run.json, brain.json, predictions.csv written).
    cfg : TrainConfig
        The resolved settings (``evaluate``: whether the test brains are to be scored).
    info : RunInfo
        The contents of ``run.json``.
    task : Task
    split_strategy : str
    groups_source : str
        Where the brains (subject groups) came from.
    warnings : list of str
        Split warnings, recorded with the metrics.
    val_brains, test_brains : ndarray of shape (n_val,), (n_test,)
        Brain (group) ids of the validation and test brains.
    y_val, y_test : ndarray of int64, shape (n_val,), (n_test,)
        Their task labels.
    val_prob, test_prob : ndarray of shape (n_val, n_classes), (n_test, n_classes)
        Their predicted class probabilities.
    threshold : float
        Decision threshold on P(demented) chosen on the validation brains
        (:func:`alzmri.training.selection.choose_threshold`; 0.5 without validation brains).
    seconds : float
        Training time, s.
    best_epoch : int or None
        The kept epoch (None for a baseline).
    epochs_run : int
    """

    out: Path
    cfg: TrainConfig
    info: RunInfo
    task: Task
    split_strategy: str
    groups_source: str
    warnings: list[str]
    val_brains: np.ndarray
    y_val: np.ndarray
    val_prob: np.ndarray
    test_brains: np.ndarray
    y_test: np.ndarray
    test_prob: np.ndarray
    threshold: float
    seconds: float
    best_epoch: int | None
    epochs_run: int


@dataclass(frozen=True)
class BrainCV:
    """K fitted folds of a brain-level cross-validation.

    Attributes
    ----------
    out : Path
        The cross-validation folder holding ``fold-<i>/``.
    cfg : TrainConfig
        The resolved settings.
    task : Task
    data_root : Path
        The data folder (written into ``OUT/config.yaml``).
    folds : list of BrainRun
        Fold ``i`` at index ``i``; its test brains are fold ``i``.
    feature_seconds : float
        Time spent computing frozen-encoder features (once for all folds; 0 on a cache hit), s.
    wall_seconds : float
        Wall time of the folds (training, prediction and ``on_fold``), s.
    notes : list of str
        Notes on the data (features computed or read from the cache).
    """

    out: Path
    cfg: TrainConfig
    task: Task
    data_root: Path
    folds: list[BrainRun]
    feature_seconds: float
    wall_seconds: float
    notes: list[str]


def _image_size(cfg: TrainConfig) -> int:
    if cfg.model.startswith("baseline:"):
        return cfg.image_size or 128
    from alzmri.models import get_spec

    return cfg.image_size or get_spec(cfg.model).image_size


def _prepare(cfg: TrainConfig) -> TrainConfig:
    """Check the settings and resolve the frozen encoder's weights (printing the note once)."""
    from alzmri.training.brain import resolve_encoder_weights
    from alzmri.utils.console import print_note, print_warning

    _check(cfg)
    if not cfg.model.startswith("baseline:") and cfg.level != "brain":  # called directly (Python): record what it is
        cfg = cfg.model_copy(update={"level": "brain"})
    cfg, note = resolve_encoder_weights(cfg)
    if note:
        (print_warning if "no pretrained weights" in note else print_note)(note)
    return cfg


def _check(cfg: TrainConfig) -> None:
    from alzmri.data.tasks import get_task
    from alzmri.models.ordinal import check_loss

    check_loss(get_task(cfg.task), cfg.loss)
    if cfg.model.startswith("baseline:"):
        from alzmri.models.baselines import BASELINES

        if cfg.model not in BASELINES:
            raise AlzmriError(f"unknown baseline {cfg.model!r}; use one of {', '.join(BASELINES)}")
        if cfg.loss != "cross_entropy":
            raise AlzmriError(f"{cfg.model} is a scikit-learn baseline (logistic regression or nearest neighbour); drop --loss ordinal")
    if cfg.devices * cfg.num_nodes > 1:
        raise AlzmriError("brain-level training runs in one process; drop --devices/--num-nodes")
    if cfg.balance_augment or cfg.augment:
        raise AlzmriError("--augment and --balance-augment apply to slice-level training; drop them with --level brain or a baseline")


def _bag_split(data: BrainData, splits: np.ndarray) -> np.ndarray:
    """Each brain's split from its slices' (one split per brain, checked)."""
    out = []
    for b, m in enumerate(data.bags.members):
        s = {str(x) for x in splits[m]}
        if len(s) > 1:
            raise AlzmriError(f"brain (group) {int(data.bags.brain_ids[b])} has slices in several splits ({', '.join(sorted(s))}); brain-level runs need a split by brain")
        out.append(s.pop())
    return np.array(out, dtype=object)


def _precision(cfg: TrainConfig) -> str:
    from alzmri.training.precision import resolve_precision

    return resolve_precision(cfg.precision, cfg.accelerator)


def _fit_and_predict(cfg: TrainConfig, data: BrainData, bag_split: np.ndarray, out: Path, *, progress: bool) -> dict:
    """Fit on the training brains, choose the threshold on validation, predict test; write model files into ``out``."""
    train_b, val_b, test_b = (np.flatnonzero(bag_split == s) for s in ("train", "val", "test"))
    precision = _precision(cfg)
    if cfg.model.startswith("baseline:"):
        base, seconds = fit_baseline(cfg, data, train_b)
        val_prob, _ = predict_baseline(base, data, val_b)
        test_prob, _ = predict_baseline(base, data, test_b)
        base.save(out / "baseline")
        fit = {"best_epoch": None, "epochs_run": 0, "history": [], "seconds": seconds, "parameters": 0, "size_mb": 0.0}
    else:
        if cfg.frozen_encoder and data.features is None:
            _, enc = build_brain_model(cfg, data.task, data.image_size, with_encoder=False)
            attach_features(cfg, data, enc, precision)
        res = fit_brain(cfg, data, train_b, val_b, precision=precision, progress=progress)
        val_prob = res.val_prob
        test_prob = predict_bags(res.model, data, test_b, features=data.features if cfg.frozen_encoder else None)[0]
        save_weights(res.model, out)
        total, trainable = count_parameters(res.model)
        head = sum(p.numel() for n, p in res.model.named_parameters() if not n.startswith("encoder."))
        fit = {"best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "history": res.history, "seconds": res.seconds, "parameters": total,
               "trainable_parameters": head if cfg.frozen_encoder else total, "size_mb": round(model_size_mb(res.model), 3)}
        if res.history:
            write_brain_history(out / "history.csv", res.history)
    threshold = choose_threshold(data.y[val_b], val_prob) if len(val_b) else 0.5
    return {"train_b": train_b, "val_b": val_b, "test_b": test_b, "val_prob": val_prob, "test_prob": test_prob, "threshold": threshold, **fit}


def _write_run(cfg: TrainConfig, data: BrainData, splits: np.ndarray, strategy: str, out: Path, *, progress: bool, warns: list[str]) -> BrainRun:
    """One brain-level run into ``out`` (everything but its metrics); returns it with its probabilities."""
    bag_split = _bag_split(data, splits)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(cfg.model_copy(update={"data": data.index.root, "out": out.resolve(), "image_size": data.image_size})))
    write_manifest(out / "manifest.csv", data.index, splits, groups=data.subjects.group, strategy=strategy, copy_of=data.subjects.copy_of)
    atomic_write_json(out / "environment.json", environment())
    if data.unreadable:
        from alzmri.data.cache import write_skipped_report

        write_skipped_report(out / "skipped.csv", data.unreadable, data.index.root, len(data.index))  # CSV + one console line
    r = _fit_and_predict(cfg, data, bag_split, out, progress=progress)
    baseline = cfg.model.startswith("baseline:")
    if baseline:
        pre = {"mean": 0.0, "std": 1.0}  # baselines read raw [0, 1] pixels
    else:
        from alzmri.models import get_spec

        spec = get_spec(cfg.model)
        pre = {"mean": spec.mean, "std": spec.std}
    counts = {s: int(np.sum(bag_split == s)) for s in ("train", "val", "test")}
    info = RunInfo(
        model=cfg.model, image_size=data.image_size, in_chans=cfg.in_chans, mean=pre["mean"], std=pre["std"], class_names=list(data.task.class_names),
        task=data.task.name, loss=cfg.loss, level="brain", data=str(data.index.root), dataset_hash=data.index.content_hash(), layout=data.index.layout,
        split_strategy=strategy, split_counts=counts, split_seed=cfg.seed, groups_source=data.subjects.source, n_groups=len(data.bags), warnings=warns,
        parameters=r["parameters"], trainable_parameters=r.get("trainable_parameters", 0), size_mb=r["size_mb"], train_time_s=round(r["seconds"], 2),
        best_epoch=r["best_epoch"], epochs_run=r["epochs_run"], precision=_precision(cfg), device="cpu", peak_memory_mb=round(peak_memory_mb("cpu"), 1), alzmri_version=__version__, model_kwargs=dict(cfg.model_kwargs),
    )
    info.save(out)
    settings = {} if baseline else brain_settings(cfg)
    atomic_write_json(out / BRAIN_FILE, {
        "format": "alzmri-brain", "version": 1, "kind": "baseline" if baseline else "mil", "encoder": cfg.model, "pooling": None if baseline else cfg.pooling,
        "slice_position": None if baseline else cfg.slice_position, "frozen_encoder": None if baseline else cfg.frozen_encoder, "loss": cfg.loss, "threshold": r["threshold"],
        "threshold_rule": THRESHOLD_RULE, "feature_seconds": round(data.feature_seconds, 2), "settings": settings, "model_kwargs": dict(cfg.model_kwargs),
    })
    write_brain_predictions(out / "predictions.csv", data, r)
    return BrainRun(
        out=out, cfg=cfg, info=info, task=data.task, split_strategy=strategy, groups_source=data.subjects.source, warnings=warns,
        val_brains=data.bags.brain_ids[r["val_b"]], y_val=data.y[r["val_b"]], val_prob=r["val_prob"],
        test_brains=data.bags.brain_ids[r["test_b"]], y_test=data.y[r["test_b"]], test_prob=r["test_prob"],
        threshold=r["threshold"], seconds=r["seconds"], best_epoch=r["best_epoch"], epochs_run=r["epochs_run"],
    )


def _new_out(cfg: TrainConfig, suffix: str = "") -> Path:
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / f"{cfg.model.replace(':', '-')}-brain{suffix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlzmriError(f"{out}: run folder already exists and is not empty; choose another --out (earlier runs are never overwritten)")
    return out


def fit_brain_run(cfg: TrainConfig, *, progress: bool = True) -> BrainRun:
    """Train one brain-level model (or baseline) on one split by brain and write its run folder.

    Writes the model files, ``run.json``, ``brain.json``, ``history.csv`` and
    ``predictions.csv``; not ``metrics.json`` (:func:`alzmri.pipeline.brains.train_brain`
    scores the returned run and writes it).

    Parameters
    ----------
    cfg : TrainConfig
        ``level: brain`` or a ``baseline:`` model; ``folds`` unset.
    progress : bool, default=True
        Show the progress bar of neural training.

    Returns
    -------
    BrainRun

    Raises
    ------
    AlzmriError
        ``--resume`` or ``--folds`` given; bad data or settings (a loss the task cannot
        take, a brain holding two classes, no validation brains); an existing non-empty
        output folder.
    """
    from alzmri.data.manifest import load_manifest
    from alzmri.training.splitting import prepare_split

    if cfg.resume:
        raise AlzmriError(f"{cfg.out}: --resume continues slice-level runs; a brain-level run retrains in seconds to minutes: start it again with a new --out")
    if cfg.folds is not None:
        raise AlzmriError(f"folds={cfg.folds}: cross-validation is fit_brain_cv; fit_brain_run trains one split")
    cfg = _prepare(cfg)
    out = _new_out(cfg)
    image_size = _image_size(cfg)
    manifest = None
    if cfg.split is not None:
        from alzmri.data.discovery import discover
        from alzmri.data.locations import resolve_data_dir

        manifest = load_manifest(cfg.split, discover(resolve_data_dir(cfg.data)))
    data = load_brain_data(cfg, image_size=image_size, manifest=manifest)
    prep = prepare_split(cfg, data.index, manifest, data.subjects, readable=data.readable)
    if prep.strategy not in ("subject",) and not str(prep.strategy).startswith(("manifest", "subject")):
        raise AlzmriError(f"brain-level runs need a split by brain; got split_strategy {prep.strategy!r}: use --split-strategy subject")
    return _write_run(cfg, data, prep.splits, prep.strategy, out, progress=progress, warns=list(prep.warnings))


def fit_brain_cv(cfg: TrainConfig, *, progress: bool = True, on_fold: Callable[[BrainRun], None] | None = None) -> BrainCV:
    """K-fold cross-validation by brain of a brain-level model or baseline; writes ``OUT/fold-<i>/``.

    The folds are those of the slice-level ``alzmri train --folds K`` with the same seed
    (:func:`alzmri.data.folds.subject_folds`), so brain-level and slice-level rows are
    scored on the same brains. Frozen-encoder features are computed once for all folds.

    Parameters
    ----------
    cfg : TrainConfig
        ``folds``: K (default 5).
    progress : bool, default=True
    on_fold : callable ``(BrainRun) -> None``, optional
        Called with each fold as soon as its folder is written, before the next fold
        trains (the pipeline writes the fold's ``metrics.json`` there).

    Returns
    -------
    BrainCV

    Raises
    ------
    AlzmriError
        As :func:`fit_brain_run`; more folds than brains.
    """
    from alzmri.data.folds import subject_folds
    from alzmri.data.folds import cv_strategy_name

    if cfg.resume:
        raise AlzmriError(f"{cfg.out}: --resume continues slice-level cross-validation; start the brain-level one again with a new --out")
    cfg = _prepare(cfg)
    k = int(cfg.folds or 5)
    out = _new_out(cfg, suffix=f"-cv{k}")
    data = load_brain_data(cfg, image_size=_image_size(cfg))
    readable = np.flatnonzero(data.readable)
    t0 = time.perf_counter()
    folds = []
    for i, sub in enumerate(subject_folds(data.index.labels[readable], data.subjects.group[readable], k, seed=cfg.seed, val_fraction=cfg.fractions[1])):
        s = np.full(len(data.index), "", dtype=object)
        s[readable] = sub
        run = _write_run(cfg, data, s.astype(str), cv_strategy_name(i, k), out / f"fold-{i}", progress=progress, warns=[])
        if on_fold is not None:
            on_fold(run)
        folds.append(run)
    return BrainCV(out=out, cfg=cfg, task=data.task, data_root=data.index.root, folds=folds, feature_seconds=data.feature_seconds,
                   wall_seconds=time.perf_counter() - t0, notes=data.notes)


def write_oof_predictions(path: Path, cv: BrainCV) -> None:
    """``oof_predictions.csv``: every brain's out-of-fold prediction, by the fold model that did not see it.

    Columns: ``brain``, ``fold``, ``class``, ``predicted``, ``p_<class>`` of each class and,
    for a binary task, ``threshold`` (the fold's own validation threshold, which decides
    ``predicted``; other tasks take the argmax).
    """
    task = cv.task
    binary = task.is_binary
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["brain", "fold", "class", "predicted", *(f"p_{c}" for c in task.class_names), *(["threshold"] if binary else [])])
    for i, r in enumerate(cv.folds):
        tt = np.float64(r.threshold)
        for b, yy, pp in zip(r.test_brains, r.y_test, r.test_prob):
            pred = int(1 - pp[0] >= tt) if binary else int(np.argmax(pp))
            w.writerow([int(b), i, task.class_names[yy], task.class_names[pred], *(f"{v:.6f}" for v in pp), *([f"{tt:.6f}"] if binary else [])])
    atomic_write_text(path, buf.getvalue())
