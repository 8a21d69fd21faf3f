"""Training stage: the LightningModule (:class:`SliceClassifier`), ``train(config)`` (the
model files of one run), the folds of a cross-validation, frozen-feature caching,
checkpoints, resuming and interruption handling, and brain-level (MIL) training.
:func:`alzmri.pipeline.train` chains training with evaluation and reporting."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

#: Public name -> the module defining it; imported on first use (:mod:`alzmri.utils.lazy`).
_WHERE = {
    "SliceClassifier": "alzmri.training.module",
    "TrainedRun": "alzmri.training.train",
    "balanced_class_weights": "alzmri.training.module",
    "build_brain_model": "alzmri.training.brain",
    "fit_brain": "alzmri.training.brain",
    "is_brain_level": "alzmri.training.train",
    "make_fold_splits": "alzmri.training.cv",
    "prepare_split": "alzmri.training.splitting",
    "resolve_precision": "alzmri.training.precision",
    "train": "alzmri.training.train",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
