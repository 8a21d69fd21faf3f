"""Evaluation stage: metric functions, subject-level aggregation and bootstrap intervals over
brains, brain-level (task) metrics, paired comparisons, calibration, profiling (FLOPs,
inference time, features, t-SNE), and the scoring of a run (:func:`score_run`) or of a
cross-validation (:func:`summarize_cv`). It computes and returns; it draws nothing
(:mod:`alzmri.reporting`) and writes only ``metrics.json``/``predictions.csv``
(:func:`write_scores`)."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_submodules

#: Submodule -> the public names it defines, each imported on first use (:mod:`alzmri.utils.lazy`).
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "aggregation": "MixedLabelGroupWarning aggregate_by_group subject_level_metrics",
    "bootstrap": "bootstrap_ci metrics_with_ci",
    "calibration": "calibrate_run expected_calibration_error fit_temperature load_temperature softmax",
    "checks": "check_targets_and_probabilities",
    "cv": "summarize_cv",
    "evaluate": "RunScores score_run write_scores",
    "metrics": "classification_metrics specificity_score",
    "paired": "paired_comparison",
    "profiling": "flops_per_image inference_ms_per_image tsne_embedding",
    "task_metrics": "brain_metrics",
}, globals())
