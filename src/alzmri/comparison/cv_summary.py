"""The numbers and words of a cross-validated comparison: headline metrics, paired statistics, the verdict sentence.

Computes only; :mod:`alzmri.comparison.cross_validation` gathers the rows and
:mod:`alzmri.reporting.cv_report` lays the result out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alzmri.errors import AlzmriError

__all__ = ["HEADLINE_LABELS", "headline_metrics", "paired_statistics", "result_sentence"]

#: Report names of the headline metrics (all at the level of the brain).
HEADLINE_LABELS = {
    "roc_auc": "brain ROC-AUC (demented vs not)",
    "balanced_accuracy": "brain balanced accuracy",
    "quadratic_weighted_kappa": "brain QWK",
}


def headline_metrics(task) -> tuple[str, ...]:
    """The metrics rows are ranked by: binary, brain ROC-AUC; 3class/4class, brain balanced accuracy and QWK.

    Neither needs a decision threshold, so pooled folds are scored on one footing.
    """
    return ("roc_auc",) if task.is_binary else ("balanced_accuracy", "quadratic_weighted_kappa")


def _metric_fn(task, name: str):
    from alzmri.evaluation.task_metrics import metric_functions

    fn = metric_functions(task)[name]
    return lambda y, p: fn(y, p, np.full(len(y), 0.5))


def _aligned(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(brains, labels, name -> probabilities) on the brains every row scored, in brain order.

    Raises
    ------
    AlzmriError
        Rows disagree on a brain's label (they were not run on the same data).
    """
    common = set(rows[0]["_brains"].tolist())
    for r in rows[1:]:
        common &= set(r["_brains"].tolist())
    brains = np.array(sorted(common), dtype=np.int64)
    y = None
    probs = {}
    for r in rows:
        order = {int(b): i for i, b in enumerate(r["_brains"])}
        idx = np.array([order[int(b)] for b in brains], dtype=np.int64)
        yr = r["_y"][idx]
        if y is None:
            y = yr
        elif not np.array_equal(y, yr):
            raise AlzmriError(f"row {r['name']!r} gives other labels to the same brains than row {rows[0]['name']!r}; were they run on the same data?")
        probs[r["name"]] = r["_prob"][idx]
    return brains, (y if y is not None else np.zeros(0, np.int64)), probs


def paired_statistics(rows: list[dict], task, *, reference: str | None = None, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap comparison of every row with the reference row on the same brains.

    Parameters
    ----------
    rows : list of dict
        Cross-validated rows, each with ``name``, ``train_time_s`` and its out-of-fold brains
        ``_brains`` (int64 (n,)), ``_y`` (int64 (n,)) and ``_prob`` (float64 (n, n_classes)).
    task : Task
    reference : str, optional
        Name of the reference row; default the first row.
    n_boot, seed
        Bootstrap replicates (brains drawn with replacement within each class, the same
        draw for every row) and seed.

    Returns
    -------
    dict
        ``reference``, ``metrics`` (headline metric names), ``n_brains``, ``paired``
        (metric -> :func:`alzmri.evaluation.paired.paired_comparison` result against the
        reference), ``top`` (row with the highest first headline metric), ``vs_top`` (the
        same comparison against ``top``), ``best_set`` (rows not distinguishable from
        ``top`` on these brains, ``top`` included) and ``cheapest_best`` (the one of them
        with the least training time). Empty values without rows.
    """
    from alzmri.evaluation.paired import paired_comparison

    metrics = headline_metrics(task)
    if not rows:
        return {"reference": reference, "metrics": list(metrics), "n_brains": 0, "paired": {}, "top": None, "vs_top": None,
                "best_set": [], "cheapest_best": None}
    names = [r["name"] for r in rows]
    reference = reference if reference in names else names[0]
    _, y, probs = _aligned(rows)
    paired = {m: paired_comparison(y, probs, _metric_fn(task, m), reference=reference, n_boot=n_boot, seed=seed) for m in metrics}
    first = paired[metrics[0]]["rows"]
    estimates = {n: first[n]["estimate"] for n in names}
    top = max(names, key=lambda n: -np.inf if estimates[n] is None else estimates[n])
    vs_top = paired_comparison(y, probs, _metric_fn(task, metrics[0]), reference=top, n_boot=n_boot, seed=seed)
    best = [n for n in names if vs_top["rows"][n]["verdict"] in ("reference", "not distinguishable")]
    times = {r["name"]: r.get("train_time_s") for r in rows}
    cheapest = min(best, key=lambda n: np.inf if times[n] is None else times[n]) if best else None
    return {"reference": reference, "metrics": list(metrics), "n_brains": int(len(y)), "paired": paired, "top": top,
            "vs_top": vs_top, "best_set": best, "cheapest_best": cheapest}


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def _interval(ci) -> str:
    return "[n/a]" if not ci or ci[0] is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _seconds(v: float | None) -> str:
    if v is None:
        return "unknown time"
    return f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"


def result_sentence(rows: list[dict], result: dict, task, *, folds: int | None = None) -> str:
    """The report's opening paragraph: the verdicts in words, computed from :func:`paired_statistics`'s numbers."""
    if not rows or not result.get("paired"):
        return "No row finished, so nothing can be compared."
    ref = result["reference"]
    n = result["n_brains"]
    k = len({f["fold"] for r in rows for f in r["per_fold"]}) if folds is None else folds
    parts = [f"Cross-validated by brain ({k} folds; {n} brains, each tested once per row by the fold model that did not see it), "
             f"every row is compared with the reference row {ref} on the same brains (95 % paired bootstrap intervals)."]
    for m in result["metrics"]:
        res = result["paired"][m]["rows"]
        label = HEADLINE_LABELS.get(m, m)
        better = [x for x in res if res[x]["verdict"] == "better"]
        worse = [x for x in res if res[x]["verdict"] == "worse"]
        same = [x for x in res if res[x]["verdict"] == "not distinguishable"]
        ref_est = res[ref]["estimate"]
        s = f"On {label}" + (f", where {ref} scores {ref_est:.3f}" if ref_est is not None else "")
        if not better and not worse:
            s += f", no row is distinguishable from {ref} on these brains"
        else:
            items = [f"{x} is {res[x]['verdict']} ({_signed(res[x]['difference'])} {_interval(res[x]['difference_ci'])})" for x in better + worse]
            s += ": " + "; ".join(items)
            if same:
                s += f"; {len(same)} other row{'s are' if len(same) > 1 else ' is'} not distinguishable from it ({', '.join(same)})"
        parts.append(s + ".")
    m0 = result["metrics"][0]
    top = result["top"]
    top_row = result["vs_top"]["rows"][top] if result.get("vs_top") else None
    if top and top_row and top_row["estimate"] is not None:
        p_best = result["paired"][m0]["rows"][top]["p_best"]
        others = [x for x in result["best_set"] if x != top]
        s = (f"The highest {HEADLINE_LABELS.get(m0, m0)} is {top}'s ({top_row['estimate']:.3f}; probability of being the best over the "
             f"bootstrap replicates {p_best:.2f})")
        if others:
            s += f"; not distinguishable from it on these brains: {', '.join(others)}"
        times = {r["name"]: r.get("train_time_s") for r in rows}
        cheap = result["cheapest_best"]
        if cheap:
            s += f". The cheapest of these best rows to train is {cheap} ({_seconds(times.get(cheap))} for all folds)"
        parts.append(s + ".")
    return " ".join(parts)
