"""alzmri: train, honestly evaluate, compare, explain and serve brain-MRI classifiers
of Alzheimer's severity (NonDemented < VeryMildDemented < MildDemented < ModerateDemented).

The verbs a Python user reaches for are here, imported on first use (PEP 562), so that
``import alzmri`` and ``alzmri --help`` stay fast::

    import alzmri

    cfg = alzmri.load_train_config(data="path/to/dataset", model="altzcnn", epochs=5)
    run = alzmri.train(cfg)                       # run folder: weights, history, metrics.json
    metrics = alzmri.evaluate(run)                # scored again (slice, subject and brain level)
    alzmri.calibrate(run)                         # temperature scaling on the validation split
    answers = alzmri.predict(run, ["slice.jpg"])  # one dict per file
    model, info = alzmri.load_model(run)
"""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> (module, attribute): imported on first access.
_LAZY: dict[str, tuple[str, str]] = {
    "AlzmriError": ("alzmri.errors", "AlzmriError"),
    "TrainConfig": ("alzmri.config", "TrainConfig"),
    "load_train_config": ("alzmri.config", "load_train_config"),
    "create_model": ("alzmri.models", "create_model"),
    "list_models": ("alzmri.models", "list_models"),
    "train": ("alzmri.pipeline", "train"),
    "train_cv": ("alzmri.pipeline", "train_cv"),
    "evaluate": ("alzmri.pipeline", "evaluate"),
    "calibrate": ("alzmri.pipeline", "calibrate"),
    "load_model": ("alzmri.runs", "load_model"),
    "predict": ("alzmri.inference.predict", "predict_files"),
    "predict_brain": ("alzmri.inference.brain", "predict_brain"),
    "CompareConfig": ("alzmri.comparison.config", "CompareConfig"),
    "load_compare_config": ("alzmri.comparison.config", "load_compare_config"),
    "compare": ("alzmri.comparison.compare", "compare"),
    "recover_groups": ("alzmri.data.groups", "recover_groups"),
}

__all__ = ["__version__", *sorted(_LAZY)]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
