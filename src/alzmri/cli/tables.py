"""Terminal rendering of metrics, cross-validation and comparison results (rich tables and lines).

The commands compute nothing here: each function takes the dict a library function
returned or wrote (``metrics.json``, ``cv.json``, ``comparison.json``) and prints it.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

#: Standard output of every command (stderr is :mod:`alzmri.utils.console`'s and the entry point's).
out = Console()

#: The slice- and subject-level metrics shown, in this order, by :func:`print_metrics` and :func:`print_cv`.
TABLE_METRICS = ("balanced_accuracy", "macro_f1", "roc_auc_ovr_macro", "quadratic_weighted_kappa", "accuracy")


def fmt(v) -> str:
    """A table cell: ``-`` for None, a float with four decimals, anything else as ``str``.

    Parameters
    ----------
    v : float, int, str or None
        The value.

    Returns
    -------
    str
    """
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def ci(block: dict | None, key: str) -> str:
    """The 95% interval of metric ``key`` in a ``confidence_intervals`` block, as ``lo-hi``; ``-`` when absent.

    Parameters
    ----------
    block : dict or None
        ``{metric: [lo, hi], ...}`` (other keys, such as ``method``, are ignored).
    key : str
        The metric's name.

    Returns
    -------
    str
        ``"0.612-0.734"`` (three decimals) or ``"-"``.
    """
    if not block or not block.get(key):
        return "-"
    lo, hi = block[key]
    return f"{lo:.3f}-{hi:.3f}"


def print_metrics(m: dict, *, show_warnings: bool = False) -> None:
    """Print a run's metrics (the dict of ``metrics.json``): slice- and subject-level table, brain line, per-class table.

    Parameters
    ----------
    m : dict
        Metrics as written by :func:`alzmri.pipeline.evaluate`; a brain-level
        model or baseline (``level == "brain"``) prints its one brain-level line only.
    show_warnings : bool, default=False
        Also print the metrics' ``warnings``, one line each on stderr.
    """
    if m.get("level") == "brain":  # a brain-level model or baseline: one prediction per brain, no slice metrics
        out.print(f"{m['model']} - task {m.get('task')}, {m['split']} split, split strategy: {m['split_strategy']}", markup=False, highlight=False)
        out.print(brain_line(m["brain_level"]), markup=False, highlight=False)
        return
    sub = m.get("subject_level")
    n_subj = f", {m['n_subjects']} subjects" if m.get("n_subjects") else ""
    task = f"task {m['task']}, " if m.get("task") else ""
    t = Table(title=f"{m['model']} - {task}{m['split']} split, split strategy: {m['split_strategy']} ({m['n_samples']} slices{n_subj})")
    t.add_column("metric")
    t.add_column("slice-level", justify="right")
    t.add_column("95% CI", justify="right")
    t.add_column("subject-level", justify="right")
    t.add_column("95% CI", justify="right")
    for k in TABLE_METRICS:
        t.add_row(k, fmt(m.get(k)), ci(m.get("confidence_intervals"), k), fmt(sub.get(k)) if sub else "-", ci(sub.get("confidence_intervals") if sub else None, k))
    out.print(t)
    if sub:
        out.print(f"subject level: {sub['aggregation']}; intervals: {sub['confidence_intervals']['method']}", markup=False, highlight=False)
    brain = m.get("brain_level")
    if brain:
        out.print(brain_line(brain), markup=False, highlight=False)
    t = Table("class", "support", "sensitivity", "specificity", "precision", "ROC-AUC", title="per class (slice level)")
    for cls, d in m["per_class"].items():
        t.add_row(cls, str(d["support"]), fmt(d["sensitivity"]), fmt(d["specificity"]), fmt(d["precision"]), fmt(d["roc_auc"]))
    out.print(t)
    if show_warnings:
        from alzmri.utils.console import print_warning

        for w in m.get("warnings", []):
            print_warning(w)


def _threshold(t) -> str:
    """A brain-level threshold: one number, or the range of the folds' own thresholds (pooled folds)."""
    if isinstance(t, dict):
        return f"{t.get('min', 0):.3f}-{t.get('max', 0):.3f} (one per fold)"
    return fmt(t) if t is None else f"{float(t):.3f}"


def brain_line(b: dict) -> str:
    """One line of a metrics.json ``brain_level`` block: ROC-AUC of P(demented), then the task's own measures.

    Parameters
    ----------
    b : dict
        The block: ``task``, ``n_brains``, ``roc_auc``, optional ``ci`` (``{key: [lo, hi]}``), and either
        ``threshold``, ``sensitivity``, ``specificity`` (binary) or ``quadratic_weighted_kappa``, ``mae_classes``.

    Returns
    -------
    str
        ``"brain level, task binary (17 brains): ROC-AUC demented vs not 0.8125 (0.600-0.950); at threshold ..."``.
    """
    cis = b.get("ci") or {}

    def val(key: str) -> str:
        iv = cis.get(key)
        return fmt(b.get(key)) + (f" ({iv[0]:.3f}-{iv[1]:.3f})" if iv else "")

    parts = [f"ROC-AUC demented vs not {val('roc_auc')}"]
    if "threshold" in b:
        parts.append(f"at threshold {_threshold(b['threshold'])} (validation brains): sensitivity {val('sensitivity')}, specificity {val('specificity')}")
    else:
        parts.append(f"QWK {val('quadratic_weighted_kappa')}, MAE {val('mae_classes')} classes")
    return f"brain level, task {b.get('task')} ({b.get('n_brains')} brains): " + "; ".join(parts)


def print_cv(cv: dict) -> None:
    """Print a cross-validation summary (the dict of ``cv.json``): mean +- sd over folds and pooled out-of-fold values.

    Parameters
    ----------
    cv : dict
        As written by :func:`alzmri.pipeline.train_cv`; a brain-level one prints its pooled brain line only,
        one without test metrics (``mean_std`` or ``pooled`` missing) the number of folds only.
    """
    if cv.get("level") == "brain":
        out.print(f"{cv['model']}: cross-validation by brain, {cv['folds']} folds, every brain tested once", markup=False, highlight=False)
        out.print(brain_line(cv["pooled"]) + " (pooled out of fold)", markup=False, highlight=False)
        return
    ms, pooled = cv.get("mean_std"), cv.get("pooled")
    if not ms or not pooled:
        out.print(f"{cv['folds']} folds trained (no test metrics)")
        return
    t = Table(title=f"cross-validation by subject, {cv['folds']} folds (split strategy: {cv['strategy']})")
    for col in ("metric", "slice mean +- sd", "slice pooled", "95% CI", "subject mean +- sd", "subject pooled", "95% CI"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    sub_ms = ms.get("subject_level") or {}
    sub = pooled.get("subject_level") or {}
    for k in TABLE_METRICS:
        a = ms["slice_level"][k]
        b = sub_ms.get(k) or {}
        t.add_row(
            k,
            f"{a['mean']:.3f} +- {a['std']:.3f}" if a["mean"] is not None else "-",
            fmt(pooled.get(k)),
            ci(pooled.get("confidence_intervals"), k),
            f"{b['mean']:.3f} +- {b['std']:.3f}" if b.get("mean") is not None else "-",
            fmt(sub.get(k)),
            ci(sub.get("confidence_intervals"), k),
        )
    out.print(t)


def compare_cv_table(summary: dict, title: str) -> Table:
    """The terminal table of a cross-validated comparison: one line per row, the first headline metric's verdicts.

    Parameters
    ----------
    summary : dict
        ``comparison.json`` of a ``compare --folds`` run (``rows`` and ``result``).
    title : str
        The comparison's title.

    Returns
    -------
    rich.table.Table
        The columns of :func:`alzmri.reporting.cv_report.cv_table` numbered 0, 2, 3, 4, then
        those headed ``P(best)`` or ``training time``.
    """
    from alzmri.reporting.cv_report import cv_table

    headers, cells = cv_table(summary["rows"], summary["result"])
    keep = [0, 2, 3, 4] + [i for i, h in enumerate(headers) if h.startswith(("P(best)", "training time"))]
    t = Table(title=title)
    for i in keep:
        t.add_column(headers[i], justify="left" if i == 0 else "right", overflow="fold")
    for row in cells:
        t.add_row(*(row[i] for i in keep))
    return t


def compare_table(summary: dict, title: str) -> Table:
    """The terminal table of a one-split comparison: one column per model, one row per measure (readable in 80 columns).

    Parameters
    ----------
    summary : dict
        ``comparison.json`` of a one-split ``compare`` run (``rows``).
    title : str
        The comparison's title.

    Returns
    -------
    rich.table.Table
        :func:`alzmri.reporting.report.format_table` transposed.
    """
    from alzmri.reporting.report import format_table

    headers, cells = format_table(summary["rows"])
    t = Table(title=title)
    t.add_column(headers[0], overflow="fold")
    for row in cells:
        t.add_column(row[0], justify="right", overflow="fold")
    for i, header in enumerate(headers[1:], start=1):
        t.add_row(header, *(row[i] for row in cells))
    return t
