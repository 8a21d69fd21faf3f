"""``train(config) -> TrainedRun``: data -> split -> model -> Lightning fit -> the run's model files (evaluation: :mod:`alzmri.pipeline`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar

from alzmri import __version__
from alzmri.config import TrainConfig, dump_config
from alzmri.data.augment import balanced_copies, notebook_augmentation
from alzmri.data.cache import CachedImages, load_checked_images as _load_checked, write_skipped_report
from alzmri.data.classes import CLASS_NAMES
from alzmri.data.datamodule import SliceDataModule
from alzmri.data.discovery import DatasetIndex, discover
from alzmri.data.locations import default_cache_dir, resolve_data_dir
from alzmri.data.manifest import load_manifest, write_manifest
from alzmri.data.subjects import resolve_subjects
from alzmri.data.tasks import get_task
from alzmri.errors import AlzmriError
from alzmri.models import create_model, get_spec
from alzmri.models.ordinal import check_loss, head_classes, make_ordinal
from alzmri.runs import RunInfo, count_parameters, environment, model_size_mb, save_weights
from alzmri.utils.distributed import ProcessLayout, node_cache_lock, rank_failures, resolve_ranks
from alzmri.training.lightning_setup import NonFiniteLossStop, quiet_lightning, resolve_deterministic
from alzmri.training.frozen import describe_features, feature_record, frozen_features, image_path_reason
from alzmri.training.module import SliceClassifier, balanced_class_weights
from alzmri.training.checkpointing import AtomicCheckpointIO, RunCheckpoint, check_checkpoint, describe_last_checkpoint, sha256_hex, write_history
from alzmri.training.resume import ResumePlan, RunState, check_manifest, manifest_bytes, plan_resume, remove_stray_temp_files
from alzmri.training.signals import interruptions
from alzmri.training.splitting import prepare_split
from alzmri.utils.console import print_note, print_warning
from alzmri.utils.io import atomic_write_json, atomic_write_text
from alzmri.training.precision import peak_memory_mb, resolve_precision


def load_checked_images(cfg: TrainConfig, index: DatasetIndex, image_size: int) -> CachedImages:
    """:func:`alzmri.data.cache.load_checked_images` with the run's ``skip_unreadable``."""
    return _load_checked(index, image_size, skip_unreadable=cfg.skip_unreadable)


def _check_split(splits: np.ndarray, labels: np.ndarray, where: str, class_names=CLASS_NAMES) -> dict[str, int]:
    counts = {s: int(np.sum(splits == s)) for s in ("train", "val", "test")}
    if counts["train"] == 0 or counts["val"] == 0:
        raise AlzmriError(
            f"{where}: the split has {counts['train']} training and {counts['val']} validation images; both need at least one: "
            "a split by brain needs enough brains (subjects) for every split, so add data, change fractions in a --config file, or pass --split "
            "with a manifest of your own"
        )
    train_classes = np.unique(labels[splits == "train"])
    if len(train_classes) < 2:
        raise AlzmriError(f"{where}: the training split holds a single class ({class_names[train_classes[0]]}); a classifier needs at least two: add a class folder with images of another class")
    return counts


@dataclass
class TrainedRun:
    """A slice-level run folder :func:`train` wrote, with what evaluating it can reuse.

    Attributes
    ----------
    run_dir : Path
    index : DatasetIndex or None
        The discovered dataset (None on the ranks other than 0 of a multi-process run).
    images : ndarray of shape (n_images, H, W), dtype uint8, or None
        Its decoded images.
    history : list of dict
        The rows of ``history.csv`` (one per epoch).
    evaluate : bool
        ``cfg.evaluate`` and the split has test images.
    epochs : int or None
        The run's epochs (the saved ones when resumed), for interruption messages.
    is_global_zero : bool, default=True
        False in the other processes of a multi-process run (they write nothing).
    """

    run_dir: Path
    index: DatasetIndex | None
    images: np.ndarray | None
    history: list
    evaluate: bool
    epochs: int | None = None
    is_global_zero: bool = True


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainedRun:
    """Train ``cfg.model`` on ``cfg.data`` and write a run folder, or continue one (``cfg.resume``).

    This is the training step only (model files, ``run.json``, ``history.csv``,
    ``manifest.csv``); :func:`alzmri.pipeline.train` (``alzmri train``) chains it with the
    evaluation, the figures and the model card, and runs brain-level models.

    Every file of the run folder is written atomically; ``checkpoints/last.ckpt`` holds
    the state after the last complete epoch. With ``cfg.resume`` the run folder
    ``cfg.out`` is continued from that checkpoint with its saved settings and split
    (:func:`alzmri.training.resume.plan_resume`); on CPU the result equals an
    uninterrupted run's (docs/reliability.md).

    A frozen backbone (``finetune: linear``, or adapters on the head only) without
    augmentation and in one process trains its head on the backbone's pooled features,
    computed once per image and cached on disk (:mod:`alzmri.training.frozen`); the saved
    model is the same as from images. ``run.json``'s ``feature_cache`` says which path ran;
    ``train_time_s`` includes the feature extraction only when it was computed, not read
    from the cache.

    Parameters
    ----------
    cfg : TrainConfig
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    TrainedRun
        The run folder (see :mod:`alzmri.runs`) and the data it was trained on.

    Raises
    ------
    AlzmriError
        Bad data, manifest or config; an existing non-empty output folder; a non-finite
        loss (naming the epoch and step; the last complete checkpoint is kept); with
        ``resume``: a folder never started or already finished, a setting that differs
        from the saved one, a split that no longer matches ``manifest.csv``. Every input
        is checked before the run folder is created, so a failed start leaves earlier
        runs untouched.
    RunInterrupted
        Ctrl-C (SIGINT) or SIGTERM: the message names the kept checkpoint and the resume
        command (an :class:`AlzmriError` with exit code 130 or 143).
    """
    if is_brain_level(cfg):
        raise AlzmriError(f"{cfg.model} (level {cfg.level}) predicts once per brain: train it with alzmri.pipeline.train (alzmri train)")
    check_loss(cfg.task, cfg.loss)
    plan = None
    if cfg.resume:
        plan = plan_resume(cfg)
        cfg = plan.cfg
    elif cfg.out is None:
        cfg = cfg.model_copy(update={"out": Path("runs") / f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"})
    with interruptions(cfg.out, cfg.epochs):
        return _train(cfg, progress=progress, resume=plan)


def is_brain_level(cfg: TrainConfig) -> bool:
    """True for a run of :mod:`alzmri.training.brain_runs`: ``level: brain`` or a ``baseline:`` model, also
    when ``cfg`` only names a run folder to resume (its saved ``config.yaml`` says)."""
    level, model = cfg.level, cfg.model
    if cfg.resume and cfg.out is not None and (Path(cfg.out) / "config.yaml").is_file():
        import yaml

        try:
            saved = yaml.safe_load((Path(cfg.out) / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            saved = {}  # plan_resume reports the unreadable file
        if isinstance(saved, dict):
            level, model = saved.get("level", level), saved.get("model", model)
    return level == "brain" or str(model).startswith("baseline:")


def _train(cfg: TrainConfig, *, progress: bool, resume: ResumePlan | None) -> TrainedRun:
    """The body of :func:`train`; ``resume`` is the checked plan of a resumed run."""
    quiet_lightning()
    task = get_task(cfg.task)
    check_loss(task, cfg.loss)
    data_dir = resolve_data_dir(cfg.data)
    spec = get_spec(cfg.model)
    image_size = cfg.image_size or spec.image_size
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    # under DDP every process runs this function; only global rank 0 writes (utils/distributed.py)
    layout = ProcessLayout.from_config(cfg)
    ranks = resolve_ranks(layout)
    if resume is None and ranks.is_global_zero and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlzmriError(f"{out}: run folder already exists and is not empty; choose another --out (earlier runs are never overwritten)")

    if cfg.folds is not None:
        raise AlzmriError("folds is set: run cross-validation with alzmri.train_cv (alzmri train --folds K)")

    index = discover(data_dir)
    manifest = load_manifest(cfg.split, index) if cfg.split is not None else None
    with node_cache_lock(default_cache_dir()):  # several processes on a node: one decodes, the others read its cache
        cached = load_checked_images(cfg, index, image_size)
        subjects = resolve_subjects(index, groups_file=cfg.groups, manifest=manifest)
    skipped = cached.unreadable
    prep = prepare_split(cfg, index, manifest, subjects, readable=np.asarray(cached.readable, dtype=bool))
    splits, strategy, groups, copy_of = prep.splits, prep.strategy, subjects.group, subjects.copy_of
    # splits are made on the four canonical labels (same brains whatever the task); the model learns the task's
    task_labels = task.map_labels(index.labels)
    counts = _check_split(splits, task_labels, str(index.root), task.class_names)
    warns = prep.warnings
    if ranks.is_global_zero:
        for w in warns:
            print_warning(w)
        if prep.left_out_note():
            print_note(prep.left_out_note())
    images, labels, fit_splits = cached.images, task_labels, splits
    augmented: dict[str, int] = {}
    if cfg.balance_augment:
        copies, copy_labels, _ = balanced_copies(cached.images, task_labels, splits, seed=cfg.seed)
        images = np.concatenate([cached.images, copies])
        labels = np.concatenate([task_labels, copy_labels])
        fit_splits = np.concatenate([splits, np.full(len(copies), "train")])
        augmented = {task.class_names[c]: int(n) for c, n in enumerate(np.bincount(copy_labels, minlength=task.num_classes)) if n}
    # the model is built before the folder exists, so a bad image size fails cleanly
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    try:
        # ordinal: K-1 CORN conditional logits, turned into K log class probabilities by a forward hook
        model = create_model(cfg.model, num_classes=head_classes(task.num_classes, cfg.loss), in_chans=cfg.in_chans, image_size=image_size,
                             **cfg.model_kwargs)
    except TypeError as exc:
        raise AlzmriError(f"model_kwargs {cfg.model_kwargs} do not fit model {cfg.model!r} ({exc})") from None
    if cfg.loss == "ordinal":
        make_ordinal(model)
    precision = resolve_precision(cfg.precision, cfg.accelerator)
    # a frozen backbone: its features once per image (disk cache), the head trains on them
    feats = frozen_features(cfg, model, cached.images, content_hash=index.content_hash(), precision=precision)

    expected_manifest = manifest_bytes(index, splits, groups=groups, strategy=strategy, copy_of=copy_of)
    if resume is not None:  # the same split, or one clear error
        check_manifest(out / "manifest.csv", expected_manifest, index.root)
        if resume.checkpoint is not None:
            check_checkpoint(resume.checkpoint, sha256_hex(expected_manifest))
        if ranks.is_global_zero:
            remove_stray_temp_files(out)  # half-written files of the killed process
    elif ranks.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        # absolute paths, so that --resume from another working directory finds them
        paths = {k: Path(v).resolve() for k in ("split", "groups") if (v := getattr(cfg, k)) is not None}
        resolved = cfg.model_copy(update={"data": index.root, "out": out.resolve(), "image_size": image_size, "resume": False, **paths})
        atomic_write_text(out / "config.yaml", dump_config(resolved))
        write_manifest(out / "manifest.csv", index, splits, groups=groups, strategy=strategy, copy_of=copy_of)
        atomic_write_json(out / "environment.json", environment())
        if skipped:
            write_skipped_report(out / "skipped.csv", skipped, index.root, len(index))  # CSV + one console line

    if feats is not None and ranks.is_global_zero:
        print_note(describe_features(feats))
    module = SliceClassifier(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        mean=spec.mean,
        std=spec.std,
        in_chans=cfg.in_chans,
        augment=notebook_augmentation() if cfg.augment else None,
        loss=cfg.loss,
        features=feats is not None,
        class_weights=balanced_class_weights(labels[fit_splits == "train"], task.num_classes) if cfg.class_weight == "balanced" else None,
    )
    dm = SliceDataModule(feats.features if feats is not None else images, labels, fit_splits, batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
    ckpt = RunCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",
        monitor="val_balanced_accuracy",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    run_state = RunState(out, sha256_hex(expected_manifest))  # history, fit time, RNG: saved in every checkpoint
    callbacks: list[Callback] = [ckpt, run_state, NonFiniteLossStop()]
    if cfg.patience is not None:  # the best epoch's weights are kept by ckpt whatever stops training
        callbacks.append(EarlyStopping(monitor="val_balanced_accuracy", mode="max", patience=cfg.patience))
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        min_epochs=min(cfg.min_epochs, cfg.epochs) if cfg.min_epochs else None,
        **layout.trainer_kwargs(),
        precision=precision,
        logger=False,  # history.csv comes from RunState (continued, not duplicated, on resume)
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=resolve_deterministic(cfg.deterministic, cfg.accelerator),
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, math.ceil(int((fit_splits == "train").sum()) / (cfg.batch_size * ranks.world_size)))),
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with rank_failures(ranks, kept=lambda: _kept_checkpoint(out / "checkpoints")):
        trainer.fit(module, datamodule=dm, ckpt_path=resume.checkpoint if resume is not None else None, weights_only=True)
    if not trainer.is_global_zero:
        return TrainedRun(out, None, None, [], False, cfg.epochs, is_global_zero=False)  # the other ranks are done: rank 0 writes the run's files
    device = str(module.device)

    history = run_state.rows
    if history:
        write_history(out / "history.csv", history)

    # best validation epoch's weights -> safetensors (no pickle in what others load)
    best_epoch = None
    if ckpt.best_model_path and Path(ckpt.best_model_path).is_file():
        state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)
        best_epoch = int(state.get("epoch", -1)) + 1
        model.load_state_dict({k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")})
    model = model.float().cpu().eval()
    save_weights(model, out)
    total, trainable = count_parameters(model)
    info = RunInfo(
        model=cfg.model,
        image_size=image_size,
        in_chans=cfg.in_chans,
        mean=spec.mean,
        std=spec.std,
        class_names=list(task.class_names),
        task=task.name,
        loss=cfg.loss,
        level="slice",
        data=str(index.root),
        dataset_hash=index.content_hash(),
        layout=index.layout,
        split_strategy=strategy,
        split_counts=counts,
        split_seed=None if manifest is not None else cfg.seed,
        groups_source=subjects.source,
        copies=prep.copies_record(),
        n_groups=int(len(np.unique(groups[splits != ""]))),
        balance_augment=cfg.balance_augment,
        augmented_train_images=int(sum(augmented.values())),
        augmented_per_class=augmented,
        warnings=warns,
        parameters=total,
        trainable_parameters=trainable,
        size_mb=round(model_size_mb(model), 3),
        train_time_s=round(run_state.seconds + (feats.seconds if feats is not None else 0.0), 2),
        peak_memory_mb=round(peak_memory_mb(device), 1),
        best_epoch=best_epoch,
        epochs_run=trainer.current_epoch,
        precision=precision,
        device=device,
        alzmri_version=__version__,
        model_kwargs=dict(cfg.model_kwargs),
        feature_cache=feature_record(feats, "" if feats is not None else image_path_reason(cfg, model)),
    )
    info.save(out)
    return TrainedRun(out, index, cached.images, history, cfg.evaluate and counts["test"] > 0, cfg.epochs)


def _kept_checkpoint(checkpoint_dir: Path) -> str:
    """What is left to continue from after a failed multi-process run, for its message."""
    kept = describe_last_checkpoint(checkpoint_dir)
    if (checkpoint_dir / "last.ckpt").is_file():
        kept += f"; continue with: alzmri train --out {checkpoint_dir.parent} --resume"
    return kept
