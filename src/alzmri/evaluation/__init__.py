"""Evaluation stage: metric functions, subject-level aggregation and bootstrap intervals over
brains, brain-level (task) metrics, paired comparisons, calibration, profiling (FLOPs,
inference time, features, t-SNE), and the scoring of a run (:func:`score_run`) or of a
cross-validation (:func:`summarize_cv`). It computes and returns; it draws nothing
(:mod:`alzmri.reporting`) and writes only ``metrics.json``/``predictions.csv``
(:func:`write_scores`)."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

#: Public name -> the module defining it; imported on first use (:mod:`alzmri.utils.lazy`).
_WHERE = {
    "MixedLabelGroupWarning": "alzmri.evaluation.aggregation",
    "RunScores": "alzmri.evaluation.evaluate",
    "aggregate_by_group": "alzmri.evaluation.aggregation",
    "bootstrap_ci": "alzmri.evaluation.bootstrap",
    "brain_metrics": "alzmri.evaluation.task_metrics",
    "calibrate_run": "alzmri.evaluation.calibration",
    "check_targets_and_probabilities": "alzmri.evaluation.checks",
    "classification_metrics": "alzmri.evaluation.metrics",
    "expected_calibration_error": "alzmri.evaluation.calibration",
    "fit_temperature": "alzmri.evaluation.calibration",
    "softmax": "alzmri.evaluation.calibration",
    "flops_per_image": "alzmri.evaluation.profiling",
    "inference_ms_per_image": "alzmri.evaluation.profiling",
    "load_temperature": "alzmri.evaluation.calibration",
    "metrics_with_ci": "alzmri.evaluation.bootstrap",
    "paired_comparison": "alzmri.evaluation.paired",
    "score_run": "alzmri.evaluation.evaluate",
    "specificity_score": "alzmri.evaluation.metrics",
    "subject_level_metrics": "alzmri.evaluation.aggregation",
    "summarize_cv": "alzmri.evaluation.cv",
    "tsne_embedding": "alzmri.evaluation.profiling",
    "write_scores": "alzmri.evaluation.evaluate",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
