"""Comparison stage: train and evaluate several models on one shared split (or the same K brain folds), then report.

``compare(config) -> report folder`` (:mod:`alzmri.comparison.compare`) runs the rows of
a :class:`~alzmri.comparison.config.CompareConfig`; the report itself is written by
:func:`alzmri.reporting.report.write_report`.
"""

from alzmri.comparison.compare import TABLE_KEYS, compare, row_state, summarize_row
from alzmri.comparison.config import CompareConfig, ModelEntry, load_compare_config
from alzmri.comparison.cross_validation import compare_cv

__all__ = ["TABLE_KEYS", "CompareConfig", "ModelEntry", "compare", "compare_cv", "load_compare_config", "row_state", "summarize_row"]
