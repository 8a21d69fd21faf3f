"""The report of a cross-validated comparison: ``report.md`` and a self-contained ``report.html``.

Lays out values it is given (the rows and the paired statistics of
:mod:`alzmri.comparison.cv_summary`) and figures that exist; computes no metric. The HTML
is the markdown rendered by markdown-it-py (CommonMark plus tables) with every PNG embedded
as a ``data:`` URI, so the one file opens offline.
"""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alzmri.reporting.report import _CSS, _data_uri, task_text
from alzmri.utils.io import atomic_write_text

__all__ = ["cv_table", "fold_table", "write_cv_report"]

_LABELS = {
    "roc_auc": "brain ROC-AUC",
    "balanced_accuracy": "brain balanced accuracy",
    "quadratic_weighted_kappa": "brain QWK",
}


def _num(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def _ci(ci: Any, signed: bool = False) -> str:
    if not ci or ci[0] is None:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    return f" [{f.format(ci[0])}, {f.format(ci[1])}]"


def _epochs(row: Mapping[str, Any]) -> str:
    """``run (best)`` per fold, e.g. ``7 (4), 5 (2)``; ``-`` for rows without epochs (baselines)."""
    parts = []
    for f in row.get("per_fold") or []:
        if not f.get("epochs_run"):  # baselines fit once, without epochs
            return "-"
        parts.append(f"{f['epochs_run']}" + (f" ({f['best_epoch']})" if f.get("best_epoch") is not None else ""))
    return ", ".join(parts) or "-"


def cv_table(rows: Sequence[Mapping[str, Any]], result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of the main table: pooled headline metrics with intervals, paired differences, verdicts, costs."""
    metrics = list(result.get("metrics") or [])
    header = ["model", "level"]
    for m in metrics:
        header += [f"{_LABELS.get(m, m)} [95 % CI]", "difference vs reference [paired 95 % CI]", "verdict"]
    header += ["P(best)", "training time, all folds (s)", "epochs run per fold (best)", "parameters", "trainable parameters", "size (MB)",
               "GFLOPs / image", "inference (ms / image)"]
    cells = []
    for r in rows:
        c = [str(r["name"]), str(r.get("level", "-"))]
        for m in metrics:
            p = ((result.get("paired") or {}).get(m) or {}).get("rows", {}).get(r["name"], {})
            c.append(_num(p.get("estimate")) + _ci(p.get("ci")))
            c.append("reference" if p.get("verdict") == "reference" else
                     ("-" if p.get("difference") is None else f"{p['difference']:+.3f}") + _ci(p.get("difference_ci"), signed=True))
            c.append(str(p.get("verdict", "-")))
        p0 = ((result.get("paired") or {}).get(metrics[0]) or {}).get("rows", {}).get(r["name"], {}) if metrics else {}
        c += [_num(p0.get("p_best"), 2), _num(r.get("train_time_s"), 0), _epochs(r),
              "-" if r.get("parameters") is None else f"{int(r['parameters']):,}",
              "-" if r.get("trainable_parameters") is None else f"{int(r['trainable_parameters']):,}",
              _num(r.get("size_mb"), 1), "-" if r.get("flops_per_image") is None else f"{float(r['flops_per_image']) / 1e9:.3f}",
              _num(r.get("inference_ms_per_image"), 2)]
        cells.append(c)
    return header, cells


def fold_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(header, cells): one line per row and fold, the fold's own test brains."""
    header = ["model", "fold", "test brains", *(_LABELS.get(m, m) for m in metrics), "slice balanced accuracy", "epochs run", "best epoch",
              "training time (s)"]
    cells = []
    for r in rows:
        for f in r.get("per_fold") or []:
            cells.append([str(r["name"]), str(f["fold"]), str(f.get("n_test_brains", "-")), *(_num(f.get(m)) for m in metrics),
                          _num(f.get("slice_balanced_accuracy")), str(f["epochs_run"]) if f.get("epochs_run") else "-",
                          "-" if f.get("best_epoch") is None else str(f["best_epoch"]), _num(f.get("train_time_s"), 1)])
    return header, cells


def _md_table(header: list[str], cells: list[list[str]]) -> list[str]:
    esc = [[x.replace("|", "\\|") for x in row] for row in [header, *cells]]
    return ["| " + " | ".join(esc[0]) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |",
            *("| " + " | ".join(row) + " |" for row in esc[1:]), ""]


def write_cv_report(
    rows: Sequence[Mapping[str, Any]],
    result: Mapping[str, Any],
    out_dir: str | Path,
    *,
    title: str,
    folds: int,
    sentence: str,
    notes: Sequence[str] = (),
    task: Mapping[str, Any] | None = None,
    split_warnings: Sequence[str] = (),
    figures: Mapping[str, str | Path] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` of a cross-validated comparison into ``out_dir``.

    Parameters
    ----------
    rows : sequence of dict
        Cross-validated rows (``name``, ``level``, costs, ``per_fold``, ``figures``; see
        :func:`alzmri.comparison.cross_validation.compare_cv`).
    result : dict
        :func:`alzmri.comparison.cv_summary.paired_statistics`.
    out_dir : path-like
    title : str
    folds : int
    sentence : str
        The opening paragraph (:func:`alzmri.comparison.cv_summary.result_sentence`).
    notes : sequence of str
    task : dict, optional
        ``name``, ``class_names``, ``ordinal``.
    split_warnings : sequence of str
        Shown as warnings under the split description (e.g. a class with too few brains
        for three splits).
    figures : dict, optional
        ``forest_<metric>``, ``pareto`` -> PNG path.

    Returns
    -------
    md_path, html_path : pathlib.Path
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = {k: Path(v) for k, v in (figures or {}).items() if v is not None and Path(v).is_file()}
    metrics = list(result.get("metrics") or [])
    stamp = time.strftime("%Y-%m-%d %H:%M")

    def rel(p: Path) -> str:
        try:
            return p.resolve().relative_to(out_dir.resolve()).as_posix()
        except ValueError:
            return str(p)

    md: list[str] = [f"# {title}", "", f"_Written {stamp} by alzmri._", ""]
    if task_text(task):
        md += [str(task_text(task)), ""]
    md += [f"**Result.** {sentence}", ""]
    header, cells = cv_table(rows, result)
    md += _md_table(header, cells)
    md += [f"Split: {folds}-fold cross-validation by brain; every row trains on the same folds ({rel(out_dir / 'folds')}/fold-<i>.csv): "
           "one fold of brains is the test split, validation brains are carved from the others, so no brain is in two splits of a "
           "fold and every brain is tested exactly once per row. Slice-level rows score a brain by the mean of its slices' "
           "probabilities; brain-level rows and baselines score it directly. Metric intervals resample brains (stratified by "
           "class); a difference's interval draws the same brains for both rows in every replicate; the verdict is 'better' or "
           "'worse' when that interval excludes 0, else 'not distinguishable on these brains'. P(best) is the share of replicates "
           "in which the row scores highest.", ""]
    md += [line for w in split_warnings for line in (f"> **Split warning.** {w}", "")]
    md += [*(p for n in notes for p in (n, ""))]
    md += ["Units: training time is the wall clock of every fold's fit loop together (a cache hit of frozen-backbone features costs "
           "nothing; computing them counts in the first fold); epochs run per fold with the best (kept) epoch in brackets: early "
           "stopping ends a fold after `patience` epochs without a better validation score, at most `epochs`; size in MB of fp32 "
           "parameters; GFLOPs and inference time (median ms per image, batches of 32) of fold 0's model, for slice-level rows.", ""]
    for m in metrics:
        if f"forest_{m}" in figures:
            md += [f"## {_LABELS.get(m, m)}: each row and its difference from the reference", "",
                   f"![Forest plot of {_LABELS.get(m, m)}]({rel(figures[f'forest_{m}'])})", ""]
    if "pareto" in figures:
        m0 = _LABELS.get(metrics[0], metrics[0]) if metrics else "score"
        md += [f"## Cross-validated {m0} against training time", "",
               "Training time of all folds; marker area proportional to model size; the dashed line joins the rows no other row "
               "beats on both.", "", f"![Pareto plot]({rel(figures['pareto'])})", ""]
    fh, fc = fold_table(rows, metrics)
    md += ["## Per fold", "", "Each fold's own test brains (about 1/K of them: wide intervals, shown without them).", "", *_md_table(fh, fc)]
    for r in rows:
        md += [f"## {r['name']}", ""]
        settings = [("model", r.get("model")), ("options", r.get("model_kwargs") or None), ("level", r.get("level")), ("image size", r.get("image_size"))]
        if r.get("level") != "baseline":  # baselines fit once: no epochs, learning rate or loss
            settings += [("loss", r.get("loss")), ("max epochs", r.get("epochs")), ("min epochs", r.get("min_epochs")), ("patience", r.get("patience")),
                         ("lr", r.get("lr")), ("batch size", r.get("batch_size")), ("precision", r.get("precision"))]
        if r.get("level") == "slice":
            settings += [("class weight", r.get("class_weight")), ("augmentation", r.get("augment"))]
        settings += [("frozen-backbone features", r.get("feature_cache") if (r.get("feature_cache") or {}).get("used") else None),
                     ("note", r.get("note") or None)]
        md += [f"- **{k}:** {v}" for k, v in settings if v is not None and v != ""]
        md.append("")
        for kind, caption in (("training_curves", "Training curves (fold 0)"), ("tsne", "t-SNE of penultimate features (fold 0's test split)")):
            src = (r.get("figures") or {}).get(kind)
            if src and (out_dir / src).is_file():
                dest = fig_dir / f"{r['name']}-{kind}.png"
                shutil.copyfile(out_dir / src, dest)
                md += [f"![{caption}]({rel(dest)})", f"*{caption}*", ""]
    text = "\n".join(md).rstrip() + "\n"
    md_path = atomic_write_text(out_dir / "report.md", text)

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(text)
    for p in sorted(fig_dir.glob("*.png")):
        body = body.replace(f'src="{rel(p)}"', f'src="{_data_uri(p)}"')
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n{body}</body></html>\n")
    html_path = atomic_write_text(out_dir / "report.html", page)
    return md_path, html_path
