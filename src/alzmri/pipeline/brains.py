"""Brain-level runs and baselines, end to end: fit -> score -> write metrics and the model card.

:mod:`alzmri.training.brain_runs` fits and writes the model files and predictions;
:mod:`alzmri.evaluation.brain_runs` scores them; this module writes the scores
(``metrics.json``, ``cv.json``), ``oof_predictions.csv`` and the model card. A run's
``metrics.json`` is written after its ``run.json``, so a folder with ``run.json`` and no
``metrics.json`` is an interrupted run, as for slice-level runs.
"""

from __future__ import annotations

from pathlib import Path

from alzmri.config import TrainConfig, dump_config
from alzmri.evaluation.brain_runs import brain_cv_summary, brain_run_metrics
from alzmri.reporting.model_card import write_model_card
from alzmri.training.brain_runs import BrainRun, fit_brain_cv, fit_brain_run, write_oof_predictions
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["train_brain", "train_brain_cv"]


def _write_scores(run: BrainRun) -> None:
    """``metrics.json`` and ``MODEL_CARD.md`` of a run that evaluates and has test brains."""
    if not (run.cfg.evaluate and len(run.test_brains)):
        return
    metrics = brain_run_metrics(run)
    atomic_write_json(run.out / "metrics.json", metrics)
    write_model_card(run.out, run.info, metrics)


def train_brain(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Train one brain-level model (or baseline) on one split by brain and write its run folder.

    ``alzmri train --level brain`` or ``--model baseline:...``; with ``cfg.folds``,
    :func:`train_brain_cv`. The folder holds what :func:`alzmri.training.brain_runs.fit_brain_run`
    writes, then, when ``cfg.evaluate`` and there are test brains, ``metrics.json``
    (:func:`alzmri.evaluation.brain_runs.brain_run_metrics`) and ``MODEL_CARD.md``.

    Parameters
    ----------
    cfg : TrainConfig
    progress : bool, default=True
        Show the progress bar of neural training.

    Returns
    -------
    Path
        The run folder.

    Raises
    ------
    AlzmriError
        Bad data or settings (a loss the task cannot take, a brain holding two classes, no
        validation brains, ``--resume``); an existing non-empty output folder.
    """
    if cfg.folds is not None and not cfg.resume:  # with --resume, fit_brain_run refuses it (one message for both)
        return train_brain_cv(cfg, progress=progress)
    run = fit_brain_run(cfg, progress=progress)
    _write_scores(run)
    return run.out


def train_brain_cv(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """K-fold cross-validation by brain of a brain-level model or baseline (``--folds K``).

    Writes ``OUT/fold-<i>/`` (a run folder of :func:`train_brain` per fold, its
    ``metrics.json`` written before the next fold trains), then ``OUT/cv.json``
    (:func:`alzmri.evaluation.brain_runs.brain_cv_summary`), ``OUT/oof_predictions.csv``
    and ``OUT/config.yaml``. The folds are those of the slice-level ``--folds K`` with the
    same seed (:func:`alzmri.data.folds.subject_folds`).

    Parameters
    ----------
    cfg : TrainConfig
        ``folds``: K (default 5).
    progress : bool, default=True

    Returns
    -------
    Path
        The cross-validation folder.

    Raises
    ------
    AlzmriError
        As :func:`train_brain`; more folds than brains.
    """
    cv = fit_brain_cv(cfg, progress=progress, on_fold=_write_scores)
    atomic_write_json(cv.out / "cv.json", brain_cv_summary(cv))
    write_oof_predictions(cv.out / "oof_predictions.csv", cv)
    atomic_write_text(cv.out / "config.yaml", dump_config(cv.cfg.model_copy(update={"data": cv.data_root, "out": cv.out.resolve()})))
    return cv.out
