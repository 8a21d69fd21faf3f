"""K-fold cross-validation by subject, end to end: K ordinary runs and one summary, ``cv.json``.

``train_cv(cfg)`` writes::

    OUT/config.yaml              the settings (read back by --resume)
    OUT/cv-splits/fold-<i>.csv   the split of fold i (a manifest with group and strategy columns)
    OUT/fold-<i>/                an ordinary run folder trained on that manifest (alzmri.runs)
    OUT/cv.json                  per-fold metrics, their mean and standard deviation, and the
                                 pooled out-of-fold metrics (every image scored once, by the
                                 model that did not see its subject)

The folds come from :func:`alzmri.training.cv.make_fold_splits`; the summary from
:func:`alzmri.evaluation.cv.summarize_cv`.
"""

from __future__ import annotations

import time
from pathlib import Path

from alzmri.config import TrainConfig, dump_config
from alzmri.data.discovery import discover
from alzmri.data.locations import resolve_data_dir
from alzmri.data.manifest import write_manifest
from alzmri.data.folds import cv_strategy_name
from alzmri.data.tasks import get_task
from alzmri.errors import AlzmriError, RunInterrupted
from alzmri.evaluation.cv import CV_FILE, summarize_cv
from alzmri.models import get_spec
from alzmri.models.ordinal import check_loss
from alzmri.pipeline.runs import train
from alzmri.training.cv import make_fold_splits
from alzmri.training.resume import check_manifest, manifest_bytes, run_finished, saved_settings
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["train_cv"]


def train_cv(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Cross-validate ``cfg.model`` by subject with ``cfg.folds`` folds.

    A thin loop over :func:`alzmri.pipeline.train`: the fold splits are written as
    manifests first, then each fold is an ordinary run reusing its manifest. With
    ``cfg.resume`` the folder ``cfg.out`` is continued with its saved settings
    (``OUT/config.yaml``): the recomputed folds must equal ``cv-splits/``, finished folds
    are kept, a started fold is resumed from its last checkpoint, the others are trained.

    Parameters
    ----------
    cfg : TrainConfig
        ``folds`` >= 2; ``split_strategy`` must be ``"subject"`` and ``split`` unset.
        ``fractions[1]`` is the share of all images held out for validation in each fold.
    progress : bool, default=True

    Returns
    -------
    Path
        The output folder holding ``fold-<i>/`` and ``cv.json``.

    Raises
    ------
    AlzmriError
        ``folds`` missing; a strategy other than ``subject`` or a reused manifest; an
        existing non-empty output folder; more folds than subjects; bad data (as
        :func:`~alzmri.training.train.train`); with ``resume``: nothing started or
        already finished there, a setting or fold that differs from the saved one.
    RunInterrupted
        Ctrl-C or SIGTERM while a fold trains (names the command that resumes the whole
        cross-validation).
    """
    if cfg.level == "brain" or cfg.model.startswith("baseline:"):  # one prediction per brain
        from alzmri.pipeline.brains import train_brain_cv

        return train_brain_cv(cfg, progress=progress)

    if cfg.resume:
        cfg = _resume_settings(cfg)
    task = get_task(cfg.task)
    check_loss(task, cfg.loss)
    k = cfg.folds
    if k is None:
        raise AlzmriError("train_cv needs folds (alzmri train --folds K)")
    if cfg.split is not None:
        raise AlzmriError("--folds makes its own splits by subject; drop --split (or drop --folds to reuse the manifest)")
    if cfg.devices * cfg.num_nodes > 1:
        raise AlzmriError("--folds trains its folds one after another in one process and does not run under DDP; "
                          "drop --devices/--num-nodes (docs/scaling.md)")
    if cfg.split_strategy != "subject":
        raise AlzmriError(f"--folds K is cross-validation by subject; it needs --split-strategy subject, got {cfg.split_strategy!r}")
    data_dir = resolve_data_dir(cfg.data)
    spec = get_spec(cfg.model)
    image_size = cfg.image_size or spec.image_size
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / f"{cfg.model}-cv{k}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not cfg.resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlzmriError(f"{out}: output folder already exists and is not empty; choose another --out (earlier runs are never overwritten)")

    index = discover(data_dir)
    folds = make_fold_splits(cfg, index, image_size)
    fold_splits, groups, groups_source, copy_of, unreliable = folds.splits, folds.groups, folds.groups_source, folds.copy_of, folds.warnings

    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:  # the settings, for --resume
        atomic_write_text(out / "config.yaml", dump_config(cfg.model_copy(update={"data": index.root, "out": out.resolve(), "resume": False})))
    runs = []
    for i, s in enumerate(fold_splits):
        manifest = out / "cv-splits" / f"fold-{i}.csv"
        if cfg.resume and manifest.is_file():  # resuming: the same folds, or one clear error
            check_manifest(manifest, manifest_bytes(index, s, groups=groups, strategy=cv_strategy_name(i, k), copy_of=copy_of), index.root)
        else:
            write_manifest(manifest, index, s, groups=groups, strategy=cv_strategy_name(i, k), copy_of=copy_of)
        fold_out = out / f"fold-{i}"
        if cfg.resume and run_finished(fold_out, cfg.evaluate):
            runs.append(fold_out)
            continue
        update = {"out": fold_out, "split": manifest, "folds": None, "groups": None, "data": index.root,
                  "resume": cfg.resume and (fold_out / "config.yaml").is_file()}
        try:
            runs.append(train(cfg.model_copy(update=update), progress=progress))
        except RunInterrupted as exc:
            raise RunInterrupted(exc.what, f"alzmri train --folds {k} --out {out} --resume", exit_code=exc.exit_code) from None
    atomic_write_json(out / CV_FILE, summarize_cv(out, k=k, seed=cfg.seed, groups_source=groups_source, warnings=unreliable, task=task.name))
    return out


def _resume_settings(cfg: TrainConfig) -> TrainConfig:
    """The saved settings of the cross-validation folder ``cfg.out``, checked against ``cfg`` (``--resume``).

    Raises
    ------
    AlzmriError
        No ``out``; no cross-validation started there (no ``config.yaml`` and
        ``cv-splits/``); already finished (``cv.json``); an option differs from the saved one.
    """
    if cfg.out is None:
        raise AlzmriError("--resume needs --out DIR, the cross-validation folder to continue")
    out = Path(cfg.out)
    if not (out / "config.yaml").is_file() or not (out / "cv-splits").is_dir():
        raise AlzmriError(f"{out}: no cross-validation was started here (no config.yaml and cv-splits/), nothing to resume; "
                          "start it without --resume")
    if (out / CV_FILE).is_file():
        raise AlzmriError(f"{out}: this cross-validation already finished ({CV_FILE} is there), nothing to resume; "
                          "start a new one with another --out")
    return saved_settings(cfg, out / "config.yaml")
