"""One run, end to end: train -> evaluate -> figures and model card; evaluate or calibrate an existing run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alzmri.config import TrainConfig
from alzmri.evaluation.evaluate import score_run, write_scores

__all__ = ["calibrate", "evaluate", "train"]


def train(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Train ``cfg.model`` and write a complete run folder (``alzmri train``).

    Slice-level models: :func:`alzmri.training.train.train` (or its ``--resume``), then
    ``training_curves.png`` and, when ``cfg.evaluate`` and the split has test images,
    :func:`evaluate` on the test split. Brain-level models and baselines (``level: brain``,
    ``baseline:*``): :func:`alzmri.pipeline.brains.train_brain`. With ``cfg.folds``, use
    :func:`alzmri.pipeline.train_cv`.

    ``cfg`` is a :class:`~alzmri.config.TrainConfig`; ``progress`` shows a progress bar.
    Returns the run folder (see :mod:`alzmri.runs`), with ``metrics.json`` when evaluated.

    Raises
    ------
    AlzmriError
        As :func:`alzmri.training.train.train`: bad data, config or split, an existing
        non-empty output folder, a non-finite loss, a run that cannot be resumed.
    RunInterrupted
        Ctrl-C or SIGTERM while training or evaluating (names the resume command).
    """
    from alzmri.training.train import is_brain_level
    from alzmri.training.train import train as fit

    if is_brain_level(cfg):
        from alzmri.pipeline.brains import train_brain

        return train_brain(cfg, progress=progress)
    trained = fit(cfg, progress=progress)
    if not trained.is_global_zero:
        return trained.run_dir  # the other processes of a multi-process run write nothing
    from alzmri.reporting.plots import plot_training_curves
    from alzmri.training.signals import interruptions

    with interruptions(trained.run_dir, trained.epochs):
        if trained.history:
            plot_training_curves(trained.history, trained.run_dir / "training_curves.png")
        if trained.evaluate:
            evaluate(trained.run_dir, index=trained.index, images=trained.images)
    return trained.run_dir


def evaluate(run_dir: str | Path, *, split: str = "test", **options) -> dict | None:
    """Score a run on one split of its manifest and write the results (``alzmri evaluate``).

    :func:`alzmri.evaluation.evaluate.score_run` computes; then ``predictions.csv``,
    ``confusion_matrix.png`` (row-normalised), ``roc_curves.png``, the model card (test
    split) and ``metrics.json`` are written into the run folder (``*_<split>`` names for
    the other splits).

    Parameters
    ----------
    run_dir : path-like
    split : {"test", "val", "train"}, default="test"
    **options
        Keyword arguments of :func:`~alzmri.evaluation.evaluate.score_run`: ``data``,
        ``index``, ``images``, ``n_boot``, ``seed``, ``recover_groups``, ``layout``.

    Returns
    -------
    dict or None
        What ``metrics.json`` holds; None on the ranks other than 0 of a multi-process
        ``layout``.

    Raises
    ------
    AlzmriError
        Not a run; the data no longer matches the run's manifest; the split is empty.
    """
    from alzmri.reporting.model_card import write_model_card
    from alzmri.reporting.plots import plot_confusion_matrix, plot_roc_curves

    run_dir = Path(run_dir)
    scores = score_run(run_dir, split=split, **options)
    if scores is None:
        return None
    info, m = scores.info, scores.metrics
    plot_confusion_matrix(np.array(m["confusion_matrix"]), info.class_names, run_dir / f"confusion_matrix{scores.suffix}.png",
                          title=f"{info.model} - {split} split ({info.split_strategy})")
    plot_roc_curves(scores.y_true, scores.probs, info.class_names, run_dir / f"roc_curves{scores.suffix}.png")
    if split == "test":
        write_model_card(run_dir, info, m)
    write_scores(run_dir, scores)  # metrics.json last: it marks a finished evaluation
    return m


def calibrate(run_dir: str | Path, *, data: str | Path | None = None, n_bins: int = 15, plot: bool = True) -> dict:
    """Fit a temperature on the run's validation split; write ``calibration.json`` and ``reliability_diagram.png`` (``alzmri calibrate``).

    :func:`alzmri.evaluation.calibration.calibrate_run` computes (Guo et al. 2017,
    temperature scaling); the diagram shows the validation bins before and after.

    ``data`` and ``n_bins`` are :func:`~alzmri.evaluation.calibration.calibrate_run`'s
    (``n_bins`` also bins the diagram); ``plot=False`` skips the diagram. Returns what
    ``calibration.json`` holds; raises :class:`~alzmri.errors.AlzmriError` as
    ``calibrate_run`` does.
    """
    from alzmri.evaluation.calibration import CALIBRATION_FILE, calibrate_run
    from alzmri.utils.io import atomic_write_json

    run_dir = Path(run_dir)
    result, val = calibrate_run(run_dir, data=data, n_bins=n_bins)
    if plot:
        from alzmri.reporting.plots import plot_reliability_diagram

        path = plot_reliability_diagram(val.y_true, val.prob_before, val.prob_after, run_dir / "reliability_diagram.png",
                                        n_bins=n_bins, temperature=result["temperature"])
        result["figure"] = path.name
    atomic_write_json(run_dir / CALIBRATION_FILE, result)
    return result
