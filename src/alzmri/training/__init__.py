"""Training stage: the LightningModule (:class:`SliceClassifier`), ``alzmri.training.train.train(config)``
(the model files of one run), the folds of a cross-validation, frozen-feature caching,
checkpoints, resuming and interruption handling, and brain-level (MIL) training.
:func:`alzmri.pipeline.train` chains training with evaluation and reporting."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_submodules

#: Submodule -> the public names it defines, each imported on first use (:mod:`alzmri.utils.lazy`).
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "brain": "build_brain_model fit_brain",
    "cv": "make_fold_splits",
    "module": "SliceClassifier balanced_class_weights",
    "precision": "resolve_precision",
    "splitting": "prepare_split",
    "train": "TrainedRun is_brain_level",  # train() itself: alzmri.training.train.train (the name is its module's)
}, globals())
