"""``compare(config) -> report folder``: every model of a config on one shared split.

The comparison folder ``OUT`` holds::

    comparison.yaml       the resolved comparison config
    split.json            the split settings the manifest was made with
    manifest.csv          the one split every row uses
    runs/<name>/          one run folder per row (alzmri train), plus summary.json,
                          tsne.csv and tsne.png
    runs/<name>.incomplete-<time>/   an unfinished row that could not be resumed, moved aside
    figures/              every PNG of the report
    comparison.json, table.csv       all rows' table values
    report.md, report.html           the report (the HTML is self-contained)

Running the same config again resumes: a row whose folder holds ``metrics.json`` and
``run.json`` and whose training settings are unchanged is not retrained; an interrupted
row (unchanged settings and a ``checkpoints/last.ckpt``) continues from its last
complete epoch, as ``alzmri train --resume`` does; any other existing row folder is
moved aside (never deleted) and the row is trained again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alzmri.comparison.config import CompareConfig, load_compare_config
from alzmri.comparison.rows import _check_rows, _check_split_settings, _say, _split_settings, plan_run, row_state, train_or_note_failure, train_rows
from alzmri.comparison.summary import _METRIC_KEYS, TABLE_KEYS, _read_summary, summarize_row
from alzmri.config import TrainConfig, dump_config
from alzmri.data.tasks import Task
from alzmri.errors import AlzmriError
from alzmri.evaluation.evaluate import read_predictions
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["TABLE_KEYS", "compare", "row_state", "summarize_row", "train_rows"]

# --------------------------------------------------------------------------- split


def _prepare_manifest(cfg: CompareConfig, source: str, echo: Callable[[str], None] | None = None):
    """Discover the data and make (or check) ``OUT/manifest.csv``.

    Returns (index, splits, strategy, notes): the dataset, the split per image, the name
    of the strategy that made the split, and ``notes`` (``copies``: the augmented copies
    per split and left out, empty without copies; ``warnings``: the unreliable-groups
    warning, kept in ``split.json`` so that a rerun says it again). The unreliable-groups
    warning is printed on stderr once per call.
    """
    from alzmri.data.discovery import discover
    from alzmri.data.eval_copies import summarize_copies
    from alzmri.data.manifest import load_manifest
    from alzmri.training.splitting import make_split_manifest
    from alzmri.data.locations import resolve_data_dir
    from alzmri.utils.console import print_warning

    out = Path(cfg.out)
    data_root = resolve_data_dir(cfg.data)
    settings = _split_settings(cfg, data_root)
    manifest = cfg.manifest_path()
    settings_file = out / "split.json"
    saved = _check_split_settings(out, settings, source)
    index = discover(data_root)
    warns = list((saved or {}).get("warnings", [])) if manifest.is_file() else []
    if not manifest.is_file():
        prep = make_split_manifest(TrainConfig(**cfg.split_fields()), manifest, index=index)
        warns = [w for w in (prep.subjects.warning(),) if w]
        atomic_write_json(settings_file, {**settings, **({"warnings": warns} if warns else {})})
        if prep.left_out_note():
            _say(echo, f"note: {prep.left_out_note()}")
    for w in warns:
        print_warning(w)
    m = load_manifest(manifest, index)  # checks every file against its hash
    strategy = m.strategy or (f"manifest:{cfg.split}" if cfg.split else cfg.split_strategy)
    copies = summarize_copies(m.splits, m.copy_of) if m.copy_of is not None else None
    notes = {"copies": {**copies.as_dict(), "note": copies.note()} if copies and copies.n_copies else {}, "warnings": warns}
    return index, m.splits, strategy, notes


def _read_predictions(row_dir: Path, task: Task) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, probabilities) of a row's test predictions; None when it has none."""
    if not (row_dir / "predictions.csv").is_file():
        return None
    pred = read_predictions(row_dir, task)
    return (pred.y_true, pred.probs) if len(pred.y_true) else None


# --------------------------------------------------------------------------- main


def compare(
    config: CompareConfig | str | Path,
    *,
    progress: bool = True,
    isolate: bool = True,
    echo: Callable[[str], None] | None = print,
    source: str | None = None,
) -> Path:
    """Train and evaluate every model of a comparison on one shared split; write the report.

    Parameters
    ----------
    config : CompareConfig or path-like
        A config, or a YAML file (see :mod:`alzmri.comparison.config`).
    progress : bool, default=True
        Progress bars while training.
    isolate : bool, default=True
        Train each row in a fresh Python process, so that each row's peak memory is
        its own; False trains in this process (faster start, for tests).
    echo : callable, default=print
        Receives one line per step; None for silence.
    source : str, optional
        Where ``config`` came from, for messages (default: the YAML file's path, or
        "comparison config").

    Returns
    -------
    Path
        The comparison folder ``OUT``, holding ``report.md``, ``report.html``,
        ``figures/``, ``comparison.json``, ``table.csv`` and ``runs/<name>/``.

    Raises
    ------
    AlzmriError
        A bad config (before anything is trained); data that no longer match the
        comparison's manifest; a comparison folder split with other settings. A row
        whose training fails with an AlzmriError does not stop the others: the report is
        written without it, then the error names the failed rows (rerunning retries
        them).
    """
    from alzmri.data.tasks import get_task
    from alzmri.reporting.plots import plot_pareto, plot_roc_comparison
    from alzmri.reporting.report import write_report

    source = source or "comparison config"
    if not isinstance(config, CompareConfig):
        source = str(config)
        config = load_compare_config(config)
    if config.folds is not None:  # every row on the same brain folds, compared in pairs
        from alzmri.comparison.cross_validation import compare_cv

        return compare_cv(config, folds=config.folds, progress=progress, isolate=isolate, echo=echo, source=source)
    rows = config.train_configs(source)
    _check_rows(rows, config, source)
    task = get_task(config.task)
    class_names = list(task.class_names)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise AlzmriError(f"{out}: exists and is not a folder; choose another out for the comparison")
    ours = any((out / f).is_file() for f in ("comparison.yaml", "split.json", "manifest.csv"))
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise AlzmriError(f"{out}: folder exists, is not empty and holds no comparison; choose another out (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    index, splits, strategy, split_notes = _prepare_manifest(config, source, echo)
    atomic_write_text(out / "comparison.yaml", dump_config(config))
    counts = {s: int(np.sum(splits == s)) for s in ("train", "val", "test")}
    _say(echo, f"split: {counts['train']} train / {counts['val']} val / {counts['test']} test images -> {config.manifest_path()}")
    _say(echo, f"task: {task.name} ({', '.join(class_names)})")

    summaries: list[dict] = []
    failed: list[tuple[str, str]] = []
    images_by_size: dict[int, np.ndarray] = {}
    for i, (entry, cfg) in enumerate(rows, start=1):
        row_dir = config.row_dir(entry.name)
        head = f"[{i}/{len(rows)}] {entry.name} ({cfg.model})"
        trained = False
        row_cfg = plan_run(row_dir, cfg, head=head, echo=echo)
        if row_cfg is None:
            _say(echo, f"{head}: finished earlier, not retrained")
        else:
            if not row_cfg.resume:
                _say(echo, f"{head}: training")
            if not train_or_note_failure([row_cfg], name=entry.name, head=head, failed=failed, echo=echo, progress=progress, isolate=isolate):
                continue
            trained = True
        summary = None if trained else _read_summary(row_dir, entry)
        if summary is None:
            _say(echo, f"{head}: measuring FLOPs, inference time and t-SNE")
            summary = summarize_row(entry, cfg, row_dir, index, out_dir=out, seed=config.seed, images_by_size=images_by_size)
        summaries.append(summary)

    fig_dir = out / "figures"
    figures: dict[str, Path] = {}
    if summaries:
        figures["pareto"] = plot_pareto(summaries, fig_dir / "pareto.png")
        curves, aucs = {}, {}
        for s in summaries:
            pred = _read_predictions(config.row_dir(s["name"]), task)
            if pred is not None:
                curves[s["name"]] = pred
                aucs[s["name"]] = s.get("roc_auc_ovr_macro")
        if curves:
            figures["roc"] = plot_roc_comparison(curves, class_names, fig_dir / "roc_comparison.png", aucs=aucs)
    split_block = _split_block(config, counts, strategy, split_notes)
    task_block = {"name": task.name, "class_names": class_names, "ordinal": task.ordinal}
    atomic_write_json(out / "comparison.json", {"title": config.title, "task": task_block, "split": split_block, "rows": summaries,
                                                "failed": [{"name": n, "error": e} for n, e in failed]})
    _write_table_csv(out / "table.csv", summaries, strategy)
    notes = list(config.notes) + [f"Row {n!r} failed and is not in the table: {e}" for n, e in failed]
    md, html = write_report(summaries, out, title=config.title, notes=notes, split=split_block, figures=figures, task=task_block)
    _say(echo, f"report: {md} and {html}")
    if failed:
        names = ", ".join(n for n, _ in failed)
        raise AlzmriError(f"{len(failed)} row(s) failed: {names} (first: {failed[0][1]}); the report at {html} holds the others; rerun to retry")
    return out


def _split_block(config: CompareConfig, counts: dict[str, int], strategy: str, notes: dict | None = None) -> dict:
    """The split as comparison.json and the report describe it; ``copies`` and ``warnings`` from :func:`_prepare_manifest`."""
    notes = notes or {}
    return {
        "strategy": strategy,
        "source_manifest": str(config.split) if config.split else None,
        "manifest": "manifest.csv",
        "seed": config.seed,
        "fractions": list(config.fractions),
        "counts": counts,
        "keep_eval_copies": config.keep_eval_copies,
        "copies": notes.get("copies") or {},
        "warnings": list(notes.get("warnings") or []),
    }


def _write_table_csv(path: Path, summaries: list[dict], strategy: str) -> None:
    """``table.csv``: one row per model, the table's values, every 95 % interval as ``_ci_low``/``_ci_high``
    columns (subject-level ones prefixed ``subject_``); written with :mod:`csv` (quoted where needed)."""
    sub_keys: list[str] = []
    for s in summaries:
        for k in (s.get("subject_level") or {}):
            if k not in sub_keys:
                sub_keys.append(k)
    sub_keys = [k for k in sub_keys if not any(isinstance((s.get("subject_level") or {}).get(k), (dict, list, str)) for s in summaries)]

    def intervals(block: dict | None) -> list:  # 95 % bootstrap interval of each metric, as _low/_high columns
        ci = (block or {}).get("confidence_intervals") or {}
        return [b for k in _METRIC_KEYS for b in (ci.get(k) or (None, None))]

    ci_cols = [f"{k}_ci_{end}" for k in _METRIC_KEYS for end in ("low", "high")]
    header = ["name", "model", "split_strategy", *TABLE_KEYS, *ci_cols, *(f"subject_{k}" for k in sub_keys), *(f"subject_{c}" for c in ci_cols)]
    rows = [header]
    for s in summaries:
        sub = s.get("subject_level") or {}
        rows.append([s["name"], s["model"], strategy, *(s.get(k) for k in TABLE_KEYS), *intervals(s),
                     *(sub.get(k) for k in sub_keys), *intervals(sub)])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["" if v is None else v for v in row] for row in rows])
    atomic_write_text(path, buf.getvalue())
