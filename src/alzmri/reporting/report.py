"""The comparison report: ``report.md`` and a self-contained ``report.html``.

The report only lays out values it is given (one dict per model, as written to each
row's ``summary.json`` by :mod:`alzmri.comparison.compare`) and figures that exist; it
computes no metric. The HTML embeds every PNG as a base64 ``data:`` URI and carries its
own CSS, so the one file can be mailed or archived and opens offline.
"""

from __future__ import annotations

import base64
import html
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alzmri.utils.io import atomic_write_text

__all__ = ["BRAIN_COLUMNS", "COLUMNS", "SUBJECT_COLUMNS", "format_table", "leakage_note", "table_columns", "task_text", "write_report"]


def _int(v: Any) -> str:
    return f"{int(v):,}"


def _f(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{float(v):.{digits}f}"


def _gflops(v: Any) -> str:
    return f"{float(v) / 1e9:.3f}"


#: (key in a row, header with unit, formatter) of the main table, in order.
COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("parameters", "parameters", _int),
    ("trainable_parameters", "trainable parameters", _int),
    ("size_mb", "size (MB)", _f(1)),
    ("flops_per_image", "GFLOPs / image", _gflops),
    ("train_time_s", "training time (s)", _f(0)),
    ("peak_memory_mb", "peak memory (MB)", _f(0)),
    ("train_images_per_s", "training throughput (images/s)", _f(1)),
    ("inference_ms_per_image", "inference (ms / image)", _f(2)),
    ("accuracy", "accuracy", _f(3)),
    ("balanced_accuracy", "balanced accuracy", _f(3)),
    ("macro_f1", "macro-F1", _f(3)),
    ("quadratic_weighted_kappa", "quadratic weighted kappa", _f(3)),
    ("roc_auc_ovr_macro", "ROC-AUC (macro, one-vs-rest)", _f(3)),
)

#: Subject-level metrics shown when a row's evaluation has a ``subject_level`` block.
SUBJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("accuracy", "subject accuracy"),
    ("balanced_accuracy", "subject balanced accuracy"),
    ("macro_f1", "subject macro-F1"),
    ("quadratic_weighted_kappa", "subject QWK"),
    ("roc_auc_ovr_macro", "subject ROC-AUC"),
)

#: The task's brain-level metrics (``brain_level`` of a row), shown when a row has them.
BRAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("roc_auc", "brain ROC-AUC (demented vs not)"),
    ("balanced_accuracy", "brain balanced accuracy"),
    ("quadratic_weighted_kappa", "brain QWK"),
    ("sensitivity", "brain sensitivity (demented)"),
    ("specificity", "brain specificity"),
    ("mae_classes", "brain MAE (classes)"),
)

_FIGURES = (
    ("training_curves", "Training curves"),
    ("confusion_matrix", "Confusion matrix (test split, row-normalised)"),
    ("roc_curves", "One-vs-rest ROC curves (test split)"),
    ("tsne", "t-SNE of penultimate-layer features (test split), coloured by true class"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{font-size:1.1em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3;vertical-align:bottom;white-space:normal}td:first-child,th:first-child{text-align:left}
.note{background:#fff6e0;border-left:4px solid #e0a000;padding:.6em 1em;margin:1em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;flex:1 1 440px;max-width:560px}
figure img{width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
code{background:#f3f3f3;padding:0 .2em}
"""


def leakage_note(strategy: str | None) -> str | None:
    """A warning for slice-level splits, None for subject-level ones.

    Parameters
    ----------
    strategy : str or None
        The split strategy (``"image"``, ``"stratified"``, ``"subject"``, ...,
        ``"manifest:PATH"`` when only the manifest is known).

    Returns
    -------
    str or None
    """
    s = (strategy or "").lower()
    if s in ("image", "stratified"):
        return (
            f"Split by slice ('{strategy}'), not by brain: neighbouring, nearly identical slices of one scan sit in "
            "both the training and the test split, so these test scores measure recognition of memorised "
            "neighbours and overstate how the models do on new patients (Yagis et al., Sci. Rep. 2021). "
            "Compare the models with one another here, not with the literature."
        )
    if s.startswith("manifest:") or not s:
        return (
            "The split came from an existing manifest that does not say how it was made; unless it keeps each "
            "brain's slices in one split, the test scores are inflated by neighbouring slices."
        )
    return None


def _ci(v: Any) -> str:
    lo, hi = v
    return f"{float(lo):.3f}-{float(hi):.3f}"


def table_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, Callable[[Any], str]]]:
    """The table's columns for ``rows``: :data:`COLUMNS`, plus those the rows support.

    A 95% confidence interval column follows balanced accuracy when a row has
    ``confidence_intervals.balanced_accuracy``; subject-level columns
    (:data:`SUBJECT_COLUMNS`) appear when a row has a ``subject_level`` block, the task's
    brain-level ones (:data:`BRAIN_COLUMNS`) when a row has a ``brain_level`` block.

    Returns
    -------
    list of (key, header, formatter)
        Nested keys are dotted (``"subject_level.balanced_accuracy"``,
        ``"confidence_intervals.balanced_accuracy"``).
    """
    def has(key: str) -> bool:
        return any(_value(r, key) is not None for r in rows)

    cols: list[tuple[str, str, Callable[[Any], str]]] = []
    for col in COLUMNS:
        cols.append(col)
        if col[0] == "balanced_accuracy" and has("confidence_intervals.balanced_accuracy"):
            cols.append(("confidence_intervals.balanced_accuracy", "balanced accuracy 95% CI", _ci))
    for key, header in SUBJECT_COLUMNS:
        if has(f"subject_level.{key}"):
            cols.append((f"subject_level.{key}", header, _f(3)))
            if key == "balanced_accuracy" and has("subject_level.confidence_intervals.balanced_accuracy"):
                cols.append(("subject_level.confidence_intervals.balanced_accuracy", "subject balanced accuracy 95% CI", _ci))
    for key, header in BRAIN_COLUMNS:
        if has(f"brain_level.{key}"):
            cols.append((f"brain_level.{key}", header, _f(3)))
            if key == "roc_auc" and has("brain_level.ci.roc_auc"):
                cols.append(("brain_level.ci.roc_auc", "brain ROC-AUC 95% CI", _ci))
    return cols


def _value(row: Mapping[str, Any], key: str) -> Any:
    v: Any = row
    for part in key.split("."):
        if not isinstance(v, Mapping):
            return None
        v = v.get(part)
    return v


def _cell(row: Mapping[str, Any], key: str, fmt: Callable[[Any], str]) -> str:
    v = _value(row, key)
    if v is None:
        return "-"
    try:
        return fmt(v)
    except (TypeError, ValueError):
        return str(v)


def format_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The comparison table as text: headers (with units) and one list of cells per row.

    Parameters
    ----------
    rows : sequence of dict
        As for :func:`write_report`.

    Returns
    -------
    headers : list of str
        ``"model"`` then :func:`table_columns`' headers.
    cells : list of list of str
        Formatted values; ``"-"`` where a value is missing.
    """
    cols = table_columns(rows)
    headers = ["model", *(h for _, h, _ in cols)]
    cells = [[str(r.get("name"))] + [_cell(r, k, f) for k, _, f in cols] for r in rows]
    return headers, cells


def task_text(task: Mapping[str, Any] | None) -> str | None:
    """The report's sentence naming the task and its classes (None without a task).

    >>> task_text({"name": "binary", "class_names": ["NonDemented", "Demented"], "ordinal": False})
    'Task: binary, 2 classes: NonDemented, Demented (every row is trained and scored on these classes).'
    """
    if not task or not task.get("name"):
        return None
    names = list(task.get("class_names") or [])
    order = " < ".join(names) if task.get("ordinal") else ", ".join(names)
    return f"Task: {task['name']}, {len(names)} classes: {order} (every row is trained and scored on these classes)."


def _settings(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    kw = row.get("model_kwargs") or {}
    items = [
        ("model", f"{row.get('model')}" + (f" ({', '.join(f'{k}={v}' for k, v in kw.items())})" if kw else "")
                  + (f"; loss {row['loss']}" if row.get("loss") else "")),
        ("input", f"{row.get('image_size')} x {row.get('image_size')} px, {row.get('in_chans')} channel(s)"),
        ("training", f"{row.get('epochs_run')} of {row.get('epochs')} epochs (best validation epoch {row.get('best_epoch')}), "
                     f"batch {row.get('batch_size')}, Adam lr {row.get('lr')}, weight decay {row.get('weight_decay')}, "
                     f"augmentation {'on' if row.get('augment') else 'off'}"),
        ("hardware", f"{row.get('device')}, precision {row.get('precision')}; inference timed on {row.get('inference_device')}"),
        ("test slices", f"{row.get('n_test')}" + (f" from {row['n_test_subjects']} subjects" if row.get("n_test_subjects") else "")),
    ]
    if row.get("note"):
        items.append(("note", str(row["note"])))
    return items


def _copy_figures(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[list[tuple[str, str]]]:
    """Copy each row's PNGs into ``out_dir/figures``; per row (caption, relative path)."""
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for row in rows:
        figs = []
        for key, caption in _FIGURES:
            src = (row.get("figures") or {}).get(key)
            if not src:
                continue
            src_path = Path(src) if Path(src).is_absolute() else out_dir / src
            if not src_path.is_file():
                continue
            dest = fig_dir / f"{row['name']}-{key}.png"
            if src_path.resolve() != dest.resolve():
                shutil.copyfile(src_path, dest)
            figs.append((caption, dest.relative_to(out_dir).as_posix()))
        result.append(figs)
    return result


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    title: str = "Model comparison",
    notes: Sequence[str] = (),
    split: Mapping[str, Any] | None = None,
    figures: Mapping[str, str | Path] | None = None,
    task: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` into ``out_dir``.

    Parameters
    ----------
    rows : sequence of dict
        One per model, in table order: ``name`` and the :data:`COLUMNS` keys (units:
        MB, FLOPs per image, s, images/s, ms per image; None shows as "-"), optionally a
        ``subject_level`` dict (adds :data:`SUBJECT_COLUMNS`), training settings
        (``model``, ``model_kwargs``, ``image_size``, ``epochs``, ...) and ``figures``:
        ``training_curves``, ``confusion_matrix``, ``roc_curves``, ``tsne`` -> PNG path
        (absolute, or relative to ``out_dir``). The PNGs are copied into
        ``out_dir/figures/<name>-<kind>.png``.
    out_dir : path-like
        Report folder (created if needed).
    title : str, default="Model comparison"
    notes : sequence of str, default=()
        Paragraphs placed after the split description.
    split : dict, optional
        ``strategy``, ``manifest``, ``seed``, ``fractions``, ``counts`` (split -> images);
        a slice-level strategy adds a leakage warning (:func:`leakage_note`); ``copies``
        (its ``note``: how many augmented copies were left out of validation/test and
        why) and ``warnings`` (e.g. unreliable recovered groups) are shown under the
        split description.
    figures : dict, optional
        Comparison figures: ``pareto`` and ``roc`` -> PNG path.
    task : dict, optional
        ``name``, ``class_names`` and ``ordinal`` of the comparison's task: a line of the
        report's header (:func:`task_text`).

    Returns
    -------
    md_path, html_path : pathlib.Path
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    split = dict(split or {})
    figures = {k: Path(v) for k, v in (figures or {}).items() if v is not None and Path(v).is_file()}
    header, cells = format_table(rows)
    row_figs = _copy_figures(rows, out_dir)

    def rel(p: Path) -> str:
        try:
            return p.resolve().relative_to(out_dir.resolve()).as_posix()
        except ValueError:
            return str(p)

    strategy = split.get("strategy")
    counts = split.get("counts") or {}
    split_text = (
        f"Split strategy: {strategy or 'unknown'}; one manifest for every model ({split.get('manifest', 'manifest.csv')}), so all "
        f"rows train, validate and test on identical images"
        + (f": {counts.get('train')} training, {counts.get('val')} validation and {counts.get('test')} test slices" if counts else "")
        + (f" (seed {split['seed']})." if split.get("seed") is not None else ".")
    )
    task_line = task_text(task)
    copies_note = (split.get("copies") or {}).get("note")
    if copies_note:
        split_text += f" Augmented copies: {copies_note}."
    split_warns = [str(w) for w in split.get("warnings") or []]
    leak = leakage_note(strategy) if split else None
    rules = sorted({str(r["subject_level"]["aggregation"]) for r in rows
                    if isinstance(r.get("subject_level"), Mapping) and r["subject_level"].get("aggregation")})
    if rules:
        notes = [*notes, "Subject-level scores: " + "; ".join(rules)]
    units = ("Units: size in MB (10^6 bytes of fp32 parameters and buffers); GFLOPs = 10^9 floating-point operations of one "
             "forward pass of one image (a multiply-accumulate counts 2; element-wise operations not counted); training time is "
             "the wall clock of the whole fit loop including validation; peak memory is the training process's peak resident "
             "memory on a CPU, peak allocated GPU memory on a GPU; training throughput = training images x epochs / training "
             "time; inference = median wall-clock time per image in batches of 32. Scores are on the test split.")
    stamp = time.strftime("%Y-%m-%d %H:%M")

    # ---------------------------------------------------------------- markdown
    md: list[str] = [f"# {title}", "", f"_Written {stamp} by alzmri._", "", *([task_line, ""] if task_line else []), split_text, ""]
    if leak:
        md += [f"> **Leakage warning.** {leak}", ""]
    md += [line for w in split_warns for line in (f"> **Warning.** {w}", "")]
    md += [*(p for n in notes for p in (n, "")), units, ""]
    md += ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    md += ["| " + " | ".join(c) + " |" for c in cells]
    md.append("")
    if "pareto" in figures:
        md += ["## Balanced accuracy against training time", "",
               "Marker area is proportional to model size (MB); the dashed line joins the models no other model beats on both "
               "speed and balanced accuracy (the Pareto front).", "", f"![Pareto plot]({rel(figures['pareto'])})", ""]
    if "roc" in figures:
        md += ["## ROC curves of all models", "", f"![ROC curves of all models]({rel(figures['roc'])})", ""]
    for r, figs in zip(rows, row_figs):
        md += [f"## {r.get('name')}", ""]
        md += [f"- **{k}:** {v}" for k, v in _settings(r)]
        md.append("")
        for caption, path in figs:
            md += [f"![{caption}]({path})", f"*{caption}*", ""]
    md_path = atomic_write_text(out_dir / "report.md", "\n".join(md).rstrip() + "\n")

    # ---------------------------------------------------------------- html
    e = html.escape
    h: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>", f"<p><em>Written {e(stamp)} by alzmri.</em></p>",
        *([f"<p>{e(task_line)}</p>"] if task_line else []), f"<p>{e(split_text)}</p>",
    ]
    if leak:
        h.append(f'<div class="note"><strong>Leakage warning.</strong> {e(leak)}</div>')
    h += [f'<div class="note"><strong>Warning.</strong> {e(w)}</div>' for w in split_warns]
    h += [f"<p>{e(n)}</p>" for n in notes]
    h.append(f"<p><small>{e(units)}</small></p>")
    h.append("<table><thead><tr>" + "".join(f"<th>{e(x)}</th>" for x in header) + "</tr></thead><tbody>")
    h += ["<tr>" + "".join(f"<td>{e(x)}</td>" for x in c) + "</tr>" for c in cells]
    h.append("</tbody></table>")

    def img(path: Path, caption: str) -> str:
        return f'<figure><img src="{_data_uri(path)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'

    if "pareto" in figures:
        h += ["<h2>Balanced accuracy against training time</h2>",
              "<p>Marker area is proportional to model size (MB); the dashed line joins the models no other model beats on "
              "both speed and balanced accuracy (the Pareto front).</p>",
              '<div class="figs">' + img(figures["pareto"], "Balanced accuracy against training time") + "</div>"]
    if "roc" in figures:
        h += ["<h2>ROC curves of all models</h2>", '<div class="figs">' + img(figures["roc"], "Macro-averaged ROC curves") + "</div>"]
    for r, figs in zip(rows, row_figs):
        h.append(f"<h2>{e(str(r.get('name')))}</h2><ul>")
        h += [f"<li><strong>{e(k)}:</strong> {e(v)}</li>" for k, v in _settings(r)]
        h.append('</ul><div class="figs">')
        h += [img(out_dir / path, caption) for caption, path in figs]
        h.append("</div>")
    h.append("</body></html>")
    html_path = atomic_write_text(out_dir / "report.html", "\n".join(h) + "\n")
    return md_path, html_path
