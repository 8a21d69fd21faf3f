"""Brain-level learning: bags of a brain's slices in, one prediction per brain out.

:func:`load_brain_data` gathers what every brain-level model needs (decoded slices,
brains as bags ordered by position, task labels); :func:`fit_brain` trains a
:class:`~alzmri.models.mil.BrainClassifier` (frozen encoder on cached features, or
fine-tuned end to end) with early stopping on the validation brains;
:func:`fit_baseline` fits a scikit-learn baseline (:mod:`alzmri.models.baselines`).
:mod:`alzmri.training.brain_runs` turns them into run folders and cross-validation.

Every choice (epoch, decision threshold) is made on validation brains; test brains are
only scored.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from alzmri.config import TrainConfig
from alzmri.data.bags import Bags, make_bags
from alzmri.data.tasks import Task, get_task
from alzmri.errors import AlzmriError
from alzmri.models.mil import BrainClassifier

__all__ = ["BrainData", "FitResult", "brain_settings", "build_brain_model", "fit_baseline", "fit_brain", "load_brain_data", "predict_bags"]

#: Defaults of brain-level training where the config leaves them (epochs and patience).
FROZEN_EPOCHS, FROZEN_PATIENCE = 100, 20
FINETUNE_PATIENCE = 5


@dataclass
class BrainData:
    """A dataset seen as brains.

    Attributes
    ----------
    index : DatasetIndex
    images : ndarray of shape (n_images, S, S), dtype uint8
    bags : Bags
        One bag per brain (originals only, ordered by position).
    y : ndarray of shape (n_brains,), dtype int64
        Task labels of the brains.
    task : Task
    subjects : Subjects
    image_size : int
    features : ndarray of shape (n_images, D), float32, or None
        Cached features of the frozen encoder.
    feature_seconds : float
        Time spent computing features (0 on a cache hit).
    """

    index: Any
    images: np.ndarray
    bags: Bags
    y: np.ndarray
    task: Task
    subjects: Any
    image_size: int
    readable: np.ndarray
    unreadable: list = field(default_factory=list)
    features: np.ndarray | None = None
    feature_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class FitResult:
    """A fitted brain-level model and how it got there (``history``: one row per epoch)."""

    model: Any
    best_epoch: int | None
    epochs_run: int
    history: list[dict]
    seconds: float
    val_prob: np.ndarray | None = None


def brain_settings(cfg: TrainConfig) -> dict:
    """Epochs, patience, batch size and learning rate of brain-level training (config or defaults)."""
    frozen = cfg.frozen_encoder
    fields = cfg.model_fields_set
    return {
        "epochs": cfg.epochs if "epochs" in fields else (FROZEN_EPOCHS if frozen else 20),
        "patience": cfg.patience if cfg.patience is not None else (FROZEN_PATIENCE if frozen else FINETUNE_PATIENCE),
        "batch_size": cfg.batch_size if "batch_size" in fields else (32 if frozen else 4),
        "lr": cfg.lr if "lr" in fields else (1e-3 if frozen else 3e-4),
    }


def _encoder(cfg: TrainConfig, task: Task, image_size: int):
    from alzmri.models import create_model

    kwargs = dict(cfg.model_kwargs)
    kwargs.pop("finetune", None)  # the brain level decides what trains: frozen_encoder
    torch.manual_seed(cfg.seed)  # a randomly initialised encoder is the same in every build of this run
    try:
        enc = create_model(cfg.model, num_classes=task.num_classes, in_chans=cfg.in_chans, image_size=image_size, **kwargs)
    except TypeError as exc:
        raise AlzmriError(f"model_kwargs {cfg.model_kwargs} do not fit model {cfg.model!r} ({exc})") from None
    if not hasattr(enc, "forward_features"):
        raise AlzmriError(f"model {cfg.model!r} has no forward_features and cannot encode slices for --level brain")
    with torch.no_grad():
        d = enc.eval().forward_features(torch.zeros(1, cfg.in_chans, image_size, image_size)).reshape(1, -1).shape[1]
    if cfg.frozen_encoder:
        enc.requires_grad_(False)
    return enc, int(d)


def resolve_encoder_weights(cfg: TrainConfig) -> tuple[TrainConfig, str | None]:
    """A frozen encoder with ImageNet weights where the model has them and the config names none.

    A frozen encoder with random weights gives features without learned knowledge; for a
    registry model with ImageNet weights and no ``model_kwargs.weights``, the weights
    become ``imagenet`` (recorded in the run's config.yaml). Returns the config and a
    one-line note (None when nothing changed).
    """
    if cfg.model.startswith("baseline:") or cfg.level != "brain" or not cfg.frozen_encoder or "weights" in cfg.model_kwargs:
        return cfg, None
    from alzmri.models import get_spec

    if get_spec(cfg.model).pretrained:
        cfg = cfg.model_copy(update={"model_kwargs": {**cfg.model_kwargs, "weights": "imagenet"}})
        return cfg, f"frozen encoder {cfg.model}: ImageNet weights (model_kwargs weights: imagenet; set weights: none for a random frozen encoder)"
    return cfg, (f"frozen encoder {cfg.model} has no pretrained weights: its features come from a random (seeded) network; "
                 "use --finetune-encoder or an encoder with ImageNet weights (alzmri models)")


def build_brain_model(cfg: TrainConfig, task: Task, image_size: int, *, with_encoder: bool = True) -> tuple[BrainClassifier, Any]:
    """The :class:`BrainClassifier` of a config, and its slice encoder.

    Returns
    -------
    model : BrainClassifier
        With the encoder inside when ``with_encoder`` (else it takes features).
    encoder : nn.Module
    """
    from alzmri.models.ordinal import head_classes, make_ordinal

    enc, d = _encoder(cfg, task, image_size)
    from alzmri.models import get_spec

    spec = get_spec(cfg.model)
    model = BrainClassifier(enc if with_encoder else None, d, head_classes(task.num_classes, cfg.loss), pooling=cfg.pooling, slice_position=cfg.slice_position)
    model.preprocessing = {"mean": spec.mean, "std": spec.std, "in_chans": cfg.in_chans, "image_size": image_size}
    if cfg.loss == "ordinal":
        make_ordinal(model)
    return model, enc


def _slice_positions(index, subjects, cfg: TrainConfig, manifest) -> np.ndarray:
    """Each slice's position in its brain (-1 unknown).

    A manifest (``--split``, the folds of ``alzmri compare --folds``) stores groups but not
    positions: when its groups are the brains recovered from the pixels, their recovered
    positions are used. Without positions the slices would be ordered by file name, and the
    Kaggle release numbers its files differently per class: position-binned features (the
    atrophy baseline, ``--slice-position``) could then read the class from the file order.
    """
    from alzmri.data.subjects import resolve_subjects
    from alzmri.utils.console import print_warning

    position = np.asarray(subjects.result.position)
    if manifest is None or (position >= 0).any():
        return position
    known = resolve_subjects(index, groups_file=cfg.groups)  # the groups CSV's positions, else the recovered ones
    a, b = subjects.group, known.group
    pairs = set(zip(a.tolist(), b.tolist()))
    if len(pairs) == len(set(a.tolist())) == len(set(b.tolist())) and (np.asarray(known.result.position) >= 0).any():
        return np.asarray(known.result.position)  # the same partition into brains
    print_warning(f"{cfg.split}: stores no slice positions and its groups are not brains with known positions ({known.source}): "
                  "brains' slices are ordered by file name (give positions in a groups CSV, --groups)")
    return position


def load_brain_data(cfg: TrainConfig, *, image_size: int, manifest=None) -> BrainData:
    """Decode the slices, find the brains and order their slices.

    Raises
    ------
    AlzmriError
        Bad data (as ``alzmri train``), a brain holding two classes.
    """
    from alzmri.data.discovery import discover
    from alzmri.data.locations import resolve_data_dir
    from alzmri.data.subjects import resolve_subjects
    from alzmri.data.cache import load_checked_images

    task = get_task(cfg.task)
    index = discover(resolve_data_dir(cfg.data))
    cached = load_checked_images(index, image_size, skip_unreadable=cfg.skip_unreadable)
    subjects = resolve_subjects(index, groups_file=cfg.groups, manifest=manifest)
    position = _slice_positions(index, subjects, cfg, manifest)
    bags = make_bags(index.labels, subjects.group, position=position, copy_of=subjects.copy_of, readable=cached.readable,
                     where=str(cfg.groups) if cfg.groups is not None else str(index.root), paths=[r.path for r in index.records])
    if len(bags) == 0:
        raise AlzmriError(f"{index.root}: no readable slices; a brain needs at least one readable slice")
    return BrainData(index, cached.images, bags, task.map_labels(bags.labels), task, subjects, image_size, np.asarray(cached.readable, dtype=bool),
                     unreadable=list(cached.unreadable))


def attach_features(cfg: TrainConfig, data: BrainData, encoder, precision: str) -> None:
    """Fill ``data.features`` from the feature cache (computed once per encoder, weights and preprocessing)."""
    from alzmri.models import get_spec
    from alzmri.training.features import slice_features

    spec = get_spec(cfg.model)
    fc = slice_features(encoder, data.images, content_hash=data.index.content_hash(), encoder_name=cfg.model, mean=spec.mean, std=spec.std,
                        in_chans=cfg.in_chans, precision=precision, options={k: v for k, v in cfg.model_kwargs.items() if k != "finetune"},
                        skip=tuple(dict.fromkeys(("head.", f"{spec.head}."))))
    data.features, data.feature_seconds = fc.features, fc.seconds
    data.notes.append(f"slice features {'read from the cache' if fc.hit else f'computed in {fc.seconds:.1f} s and cached'} ({fc.path})")


def _dataset(data: BrainData, which: np.ndarray, *, images: bool, labels: np.ndarray | None = None):
    from alzmri.training.brain_module import BagDataset

    source = torch.from_numpy(data.images) if images else torch.from_numpy(data.features)
    b = data.bags
    return BagDataset(source, [b.members[i] for i in which], [b.positions[i] for i in which], data.y[which] if labels is None else labels)


def _class_weights(y: np.ndarray, k: int) -> torch.Tensor:
    from alzmri.training.module import balanced_class_weights

    return balanced_class_weights(y, k)


def _quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # a frozen encoder stays in eval mode


def fit_brain(cfg: TrainConfig, data: BrainData, train_b: np.ndarray, val_b: np.ndarray, *, precision: str = "32-true", progress: bool = False) -> FitResult:
    """Train a brain-level model on the bags ``train_b``, choosing the epoch on ``val_b``.

    Parameters
    ----------
    cfg : TrainConfig
        ``model`` is the slice encoder; ``pooling``, ``slice_position``,
        ``frozen_encoder``, ``loss``, ``epochs``, ``patience``, ``lr``, ``batch_size``
        (brain-level defaults in :func:`brain_settings`).
    data : BrainData
        With ``features`` when the encoder is frozen (:func:`attach_features`).
    train_b, val_b : int arrays
        Bag indices of the training and validation brains.

    Returns
    -------
    FitResult
        ``model``: the :class:`BrainClassifier` of the best validation epoch with its
        encoder inside (ready to save and to predict from slices); ``val_prob``
        (len(val_b), n_classes) its validation probabilities.

    Raises
    ------
    AlzmriError
        No validation brains; a training set of one class.
    """
    from lightning.pytorch.callbacks import EarlyStopping, RichProgressBar

    from alzmri.models.mil import BrainClassifier
    from alzmri.training.brain_module import BestState, BrainModule, bag_loader

    if len(val_b) == 0:
        raise AlzmriError("no validation brains: brain-level training chooses its epoch on validation brains; add brains or change fractions")
    if len(np.unique(data.y[train_b])) < 2:
        raise AlzmriError("the training brains hold a single class; a classifier needs at least two: add brains of another class")
    _quiet()
    s = brain_settings(cfg)
    frozen = cfg.frozen_encoder
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    full, enc = build_brain_model(cfg, data.task, data.image_size)
    model = full
    if frozen:
        from alzmri.models.ordinal import head_classes, make_ordinal

        model = BrainClassifier(None, full.feature_dim, head_classes(data.task.num_classes, cfg.loss), pooling=cfg.pooling, slice_position=cfg.slice_position)
        model.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("encoder.")})
        if cfg.loss == "ordinal":
            make_ordinal(model)
    from alzmri.models import get_spec

    spec = get_spec(cfg.model)
    module = BrainModule(model, lr=s["lr"], weight_decay=1e-4, class_weights=_class_weights(data.y[train_b], data.task.num_classes),
                         binary=data.task.is_binary, loss=cfg.loss, images=not frozen, mean=spec.mean, std=spec.std, in_chans=cfg.in_chans)
    best = BestState()
    callbacks = [best, EarlyStopping("val_score", mode="max", patience=s["patience"], check_finite=False)]
    if progress:
        callbacks.append(RichProgressBar(leave=False))
    trainer = L.Trainer(max_epochs=s["epochs"], accelerator=cfg.accelerator if cfg.accelerator != "auto" else "auto", devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=callbacks, deterministic=True, log_every_n_steps=1)
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=bag_loader(_dataset(data, train_b, images=not frozen), s["batch_size"], shuffle=True, seed=cfg.seed),
                val_dataloaders=bag_loader(_dataset(data, val_b, images=not frozen), s["batch_size"], shuffle=False))
    seconds = time.perf_counter() - t0
    best.restore(model)
    if frozen:  # the trained head over the frozen encoder: one model that takes slices
        full.load_state_dict({**{k: v for k, v in full.state_dict().items() if k.startswith("encoder.")}, **model.state_dict()})
    full = full.float().cpu().eval()
    val_prob = predict_bags(full, data, val_b, features=data.features if frozen else None)[0]
    return FitResult(full, best.best_epoch or None, trainer.current_epoch, best.history, seconds, val_prob)


@torch.inference_mode()
def predict_bags(model: BrainClassifier, data: BrainData, which: np.ndarray, *, features: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities and pooling weights of the bags ``which``.

    With ``features`` (the cached features of ``model.encoder``), the encoder is skipped.

    Returns
    -------
    prob : ndarray of shape (len(which), n_classes), float64
    weights : list of ndarray of shape (n_slices,)
        Each bag's pooling weights (attention, or 1/n for mean pooling), in position order.
    """
    from alzmri.models.ordinal import corn_log_probs, is_ordinal
    from alzmri.data.preprocess import prepare_batch

    model = model.eval()
    pre = model.preprocessing
    probs, weights = [], []
    b = data.bags
    for i in which:  # one bag at a time: bags differ in size, and a bag of 32 slices is a batch already
        m = b.members[i]
        pos = torch.from_numpy(b.positions[i]).unsqueeze(0)
        if features is not None:
            logits, w = _without_encoder(model, torch.from_numpy(features[m]).unsqueeze(0), pos)
        else:
            x = prepare_batch(torch.from_numpy(data.images[m]), mean=pre["mean"], std=pre["std"], in_chans=pre["in_chans"]).unsqueeze(0)
            logits, w = model.forward_with_weights(x, None, pos)
        if is_ordinal(model):
            logits = corn_log_probs(logits)
        probs.append(torch.softmax(logits.float(), dim=1)[0].double().numpy())
        weights.append(w[0].float().numpy())
    return np.array(probs).reshape(len(which), -1), weights


def _without_encoder(model: BrainClassifier, x: torch.Tensor, pos: torch.Tensor):
    enc = model.encoder
    model.encoder = None
    try:
        return model.forward_with_weights(x, None, pos)
    finally:
        model.encoder = enc


def fit_baseline(cfg: TrainConfig, data: BrainData, train_b: np.ndarray):
    """Fit the scikit-learn baseline ``cfg.model`` on the training brains; returns (baseline, seconds)."""
    from alzmri.models.baselines import create_baseline

    base = create_baseline(cfg.model, num_classes=data.task.num_classes, seed=cfg.seed, **cfg.model_kwargs)
    t0 = time.perf_counter()
    b = data.bags
    base.fit([data.images[b.members[i]] for i in train_b], data.y[train_b], [b.positions[i] for i in train_b])
    return base, time.perf_counter() - t0


def predict_baseline(base, data: BrainData, which: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """A baseline's probabilities (len(which), n_classes) and per-slice contributions of the bags ``which``."""
    b = data.bags
    bags = [data.images[b.members[i]] for i in which]
    pos = [b.positions[i] for i in which]
    prob = base.predict_proba(bags, pos) if len(which) else np.zeros((0, data.task.num_classes))
    return np.asarray(prob, dtype=np.float64), [np.asarray(base.slice_contributions(x, p), dtype=np.float64) for x, p in zip(bags, pos)]
