"""``compare --folds K``: every row on the same K brain folds, scored out of fold and compared in pairs.

The comparison folder ``OUT`` holds::

    comparison.yaml, split.json      the resolved config; the fold settings (and split warnings)
    folds/fold-<i>.csv               fold i's manifest (test = one fold of brains, validation
                                     carved from the rest by brain), shared by every row
    runs/<name>/fold-<i>/            an ordinary run folder per row and fold (alzmri train)
    runs/<name>/oof_brains.csv       the row's out-of-fold prediction of every brain
    figures/                         forest plots, the Pareto plot, per-row figures
    comparison.json, table.csv       pooled and per-fold metrics, paired statistics, costs
    report.md, report.html           the report

Every brain is tested once per row, by the fold model that did not see it. Slice-level
rows give one prediction per brain as the mean of its test slices' probabilities (as
``alzmri predict --brain`` does); brain-level rows and baselines give one per brain. The
rows are then compared on the *same* brains (:func:`alzmri.evaluation.paired.paired_comparison`).

Running the same command again resumes per fold: a finished fold is not retrained, an
interrupted one continues from its last complete epoch, any other fold folder is moved
aside (never deleted).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alzmri.comparison.rows import _check_rows, _check_split_settings, _say, _split_settings, plan_run, train_or_note_failure
from alzmri.comparison.summary import _read_summary, summarize_row
from alzmri.comparison.config import CompareConfig, ModelEntry
from alzmri.comparison.cv_summary import headline_metrics, paired_statistics, result_sentence
from alzmri.config import TrainConfig, dump_config
from alzmri.errors import AlzmriError
from alzmri.evaluation.evaluate import read_predictions
from alzmri.utils.io import atomic_write_json, atomic_write_text

__all__ = ["FOLDS_DIR", "brain_predictions", "compare_cv"]

FOLDS_DIR = "folds"


def _fold_config(cfg: TrainConfig, manifest: Path, fold_dir: Path) -> TrainConfig:
    return cfg.model_copy(update={"split": manifest.resolve(), "out": fold_dir.resolve()})


def _prepare_folds(config: CompareConfig, k: int, image_size: int, source: str, echo) -> tuple[object, list[Path], list[str]]:
    """Make (or check) ``OUT/folds/fold-<i>.csv``; returns (index, manifests, warnings)."""
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import write_manifest
    from alzmri.data.folds import cv_strategy_name
    from alzmri.training.cv import make_fold_splits
    from alzmri.training.resume import check_manifest, manifest_bytes
    from alzmri.data.locations import resolve_data_dir

    out = Path(config.out)
    data_root = resolve_data_dir(config.data)
    settings = {**_split_settings(config, data_root), "folds": k, "task": config.task}
    settings_file = out / "split.json"
    saved = _check_split_settings(out, settings, source)
    index = discover(data_root)
    split_cfg = TrainConfig(**config.split_fields(), folds=k, task=config.task)
    folds = make_fold_splits(split_cfg, index, image_size)
    manifests = []
    for i, s in enumerate(folds.splits):
        path = out / FOLDS_DIR / f"fold-{i}.csv"
        expected = manifest_bytes(index, s, groups=folds.groups, strategy=cv_strategy_name(i, k), copy_of=folds.copy_of)
        if path.is_file():  # a rerun: the same folds, or one clear error
            check_manifest(path, expected, index.root)
        else:
            write_manifest(path, index, s, groups=folds.groups, strategy=cv_strategy_name(i, k), copy_of=folds.copy_of)
        manifests.append(path)
    if saved is None:
        atomic_write_json(settings_file, {**settings, **({"warnings": folds.warnings} if folds.warnings else {})})
    _say(echo, f"folds: {k} folds by brain ({len(np.unique(folds.groups))} brains) -> {out / FOLDS_DIR}")
    return index, manifests, list(folds.warnings)


# --------------------------------------------------------------------------- reading runs


def brain_predictions(run_dir: str | Path, task) -> dict:
    """The test brains of a finished run: one prediction per brain.

    Parameters
    ----------
    run_dir : path-like
        A run folder with ``predictions.csv`` (slice-level: one row per test slice with its
        ``group``; brain-level and baselines: one row per brain with ``brain`` and ``split``).
    task : Task

    Returns
    -------
    dict
        ``brain`` (int64 (n_brains,), the group id), ``y`` (int64 (n_brains,), task label),
        ``prob`` (float64 (n_brains, n_classes): a slice-level run's mean of the brain's slice
        probabilities), ``n_slices`` (int64 (n_brains,)).

    Raises
    ------
    AlzmriError
        No ``predictions.csv``, or one without brains (names the file).
    """
    pred = read_predictions(run_dir, task)
    names = list(task.class_names)
    if pred.brains is not None:
        ids = pred.brains
    elif pred.groups is not None:
        ids = pred.groups.astype(np.int64)
    else:
        raise AlzmriError(f"{pred.path}: no brain or group column; a comparison by brain needs subject groups (split_strategy: subject)")
    brains = np.unique(ids)
    first = np.array([np.flatnonzero(ids == b)[0] for b in brains], dtype=np.int64)
    y = pred.y_true[first]
    prob = np.array([pred.probs[ids == b].mean(axis=0) for b in brains], dtype=np.float64)
    n = pred.n_slices[first] if pred.brains is not None else np.array([int(np.sum(ids == b)) for b in brains], dtype=np.int64)
    return {"brain": brains, "y": y, "prob": prob.reshape(len(brains), len(names)), "n_slices": n}


def _fold_record(i: int, run: Path, task) -> dict:
    """One fold of one row: costs, epochs and the fold's own headline metrics."""
    from alzmri.evaluation.task_metrics import metric_functions

    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    pred = brain_predictions(run, task)
    bl = metrics.get("brain_level") or {}
    fns = metric_functions(task)
    seconds = info.get("train_time_s")
    brain_file = run / "brain.json"  # brain-level runs: frozen-encoder features computed (not read from the cache) count too
    if seconds is not None and brain_file.is_file():
        seconds = round(seconds + float(json.loads(brain_file.read_text(encoding="utf-8")).get("feature_seconds") or 0.0), 2)
    rec = {
        "fold": i,
        "run": run,
        "train_time_s": seconds,
        "peak_memory_mb": info.get("peak_memory_mb"),
        "epochs_run": info.get("epochs_run"),
        "best_epoch": info.get("best_epoch"),
        "n_test_brains": int(len(pred["brain"])),
        "threshold": bl.get("threshold") if isinstance(bl.get("threshold"), (int, float)) else None,
        "warnings": list(info.get("warnings") or []) + [w for w in metrics.get("warnings") or [] if w not in (info.get("warnings") or [])],
        "slice_balanced_accuracy": metrics.get("balanced_accuracy"),
        "pred": pred,
    }
    for m in headline_metrics(task):
        v = fns[m](pred["y"], pred["prob"], np.full(len(pred["y"]), rec["threshold"] or 0.5))
        rec[m] = None if v is None or not np.isfinite(v) else float(v)
    return rec


def _write_oof(path: Path, folds: list[dict], task) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["brain", "fold", "n_slices", "class", *(f"p_{c}" for c in task.class_names)])
    rows = sorted((int(b), f["fold"], int(n), task.class_names[int(y)], p) for f in folds
                  for b, y, p, n in zip(f["pred"]["brain"], f["pred"]["y"], f["pred"]["prob"], f["pred"]["n_slices"]))
    for b, fold, n, c, p in rows:
        w.writerow([b, fold, n, c, *(repr(float(v)) for v in p)])  # full precision: the pooled metrics are recomputable
    atomic_write_text(path, buf.getvalue())


def _row_summary(entry: ModelEntry, cfg: TrainConfig, row_dir: Path, folds: list[dict], task, first: dict | None) -> dict:
    """A cross-validated row: costs (fold 0's model for size, FLOPs and inference time), epochs per fold, pooled brains."""
    from alzmri.evaluation.task_metrics import brain_metrics

    info = json.loads((folds[0]["run"] / "run.json").read_text(encoding="utf-8"))
    y = np.concatenate([f["pred"]["y"] for f in folds])
    prob = np.concatenate([f["pred"]["prob"] for f in folds])
    thr = np.concatenate([np.full(len(f["pred"]["y"]), f["threshold"] if f["threshold"] is not None else 0.5) for f in folds])
    brains = np.concatenate([f["pred"]["brain"] for f in folds])
    pooled = brain_metrics(y, prob, task, threshold=thr if task.is_binary else None, n_boot=1000, seed=0)
    times = [f["train_time_s"] for f in folds]
    level = "baseline" if cfg.model.startswith("baseline:") else info.get("level", "slice")
    first = first or {}
    return {
        "name": entry.name,
        "model": cfg.model,
        "model_kwargs": dict(cfg.model_kwargs),
        "level": level,
        "loss": cfg.loss,
        "note": entry.note,
        "parameters": info.get("parameters"),
        "trainable_parameters": info.get("trainable_parameters"),
        "size_mb": info.get("size_mb"),
        "flops_per_image": first.get("flops_per_image"),
        "inference_ms_per_image": first.get("inference_ms_per_image"),
        "train_time_s": round(float(sum(t or 0 for t in times)), 2),
        "peak_memory_mb": max((f["peak_memory_mb"] or 0 for f in folds), default=None),
        "image_size": info.get("image_size"),
        "epochs": cfg.epochs,
        "patience": cfg.patience,
        "min_epochs": cfg.min_epochs,
        "class_weight": cfg.class_weight,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "augment": cfg.augment,
        "precision": info.get("precision"),
        "device": info.get("device"),
        "feature_cache": info.get("feature_cache"),
        "pooled": pooled,
        "per_fold": [{k: v for k, v in f.items() if k not in ("pred", "run", "warnings")} | {"run": f["run"].relative_to(row_dir.parent.parent).as_posix()}
                     for f in folds],
        "n_brains": int(len(np.unique(brains))),
        "figures": dict(first.get("figures") or {}),
        "_brains": brains,
        "_y": y,
        "_prob": prob,
    }


# --------------------------------------------------------------------------- outputs


def _write_table_csv(path: Path, rows: list[dict], result: dict) -> None:
    """``table.csv``: one line per row: pooled headline metrics with intervals, paired differences, verdicts, P(best), costs."""
    metrics = result.get("metrics") or []
    header = ["name", "model", "level"]
    for m in metrics:
        header += [m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_difference", f"{m}_difference_ci_low", f"{m}_difference_ci_high", f"{m}_verdict"]
    header += ["p_best", "train_time_s", "epochs_run_per_fold", "best_epoch_per_fold", "parameters", "trainable_parameters", "size_mb",
               "flops_per_image", "inference_ms_per_image", "peak_memory_mb", "n_brains"]
    out = [header]
    for r in rows:
        line = [r["name"], r["model"], r["level"]]
        for m in metrics:
            p = result["paired"][m]["rows"][r["name"]]
            ci, dci = p.get("ci") or (None, None), p.get("difference_ci") or (None, None)
            line += [p.get("estimate"), ci[0], ci[1], p.get("difference"), dci[0], dci[1], p.get("verdict")]
        p0 = result["paired"][metrics[0]]["rows"][r["name"]] if metrics else {}
        line += [p0.get("p_best"), r.get("train_time_s"), " ".join(str(f.get("epochs_run") or "") for f in r["per_fold"]).strip(),
                 " ".join(str(f.get("best_epoch") or "") for f in r["per_fold"]).strip(), r.get("parameters"), r.get("trainable_parameters"),
                 r.get("size_mb"), r.get("flops_per_image"), r.get("inference_ms_per_image"), r.get("peak_memory_mb"), r.get("n_brains")]
        out.append(line)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["" if v is None else v for v in line] for line in out])
    atomic_write_text(path, buf.getvalue())


def _write_outputs(config: CompareConfig, rows: list[dict], result: dict, task, *, folds: int, split_warnings: list[str],
                   failed: list[tuple[str, str]], out: Path) -> tuple[Path, Path]:
    """comparison.json, table.csv, the figures and the report."""
    from alzmri.comparison.cv_summary import HEADLINE_LABELS
    from alzmri.reporting.cv_report import write_cv_report
    from alzmri.reporting.plots import plot_forest, plot_pareto

    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    fig_dir = out / "figures"
    figures: dict[str, Path] = {}
    metrics = result.get("metrics") or []
    if rows:
        for m in metrics:
            figures[f"forest_{m}"] = plot_forest(result["paired"][m], fig_dir / f"forest_{m}.png", metric_label=HEADLINE_LABELS.get(m, m))
        m0 = metrics[0]
        points = [{"name": r["name"], "train_time_s": r.get("train_time_s"), "size_mb": r.get("size_mb"),
                   m0: result["paired"][m0]["rows"][r["name"]]["estimate"]} for r in rows]
        figures["pareto"] = plot_pareto(points, fig_dir / "pareto.png", metric=m0, metric_label=f"{HEADLINE_LABELS.get(m0, m0)} ({folds}-fold CV)",
                                        title=f"{HEADLINE_LABELS.get(m0, m0)} against training time of all folds (marker area ∝ size)")
    task_block = {"name": task.name, "class_names": list(task.class_names), "ordinal": task.ordinal}
    atomic_write_json(out / "comparison.json", {
        "title": config.title, "task": task_block, "folds": folds, "split": {"strategy": "subject-cv", "folds_dir": FOLDS_DIR,
                                                                              "seed": config.seed, "warnings": split_warnings},
        "result": result, "rows": public, "failed": [{"name": n, "error": e} for n, e in failed]})
    _write_table_csv(out / "table.csv", rows, result)
    notes = list(config.notes) + [f"Row {n!r} failed and is not in the table: {e}" for n, e in failed]
    return write_cv_report(public, result, out, title=config.title, folds=folds, sentence=result["sentence"], notes=notes, task=task_block,
                           split_warnings=split_warnings, figures=figures)


# --------------------------------------------------------------------------- main


def compare_cv(
    config: CompareConfig,
    *,
    folds: int,
    progress: bool = True,
    isolate: bool = True,
    echo: Callable[[str], None] | None = print,
    source: str = "comparison config",
) -> Path:
    """Cross-validate every row of a comparison on the same ``folds`` brain folds; write the report.

    Parameters
    ----------
    config : CompareConfig
    folds : int
        Number of folds K (>= 2): each brain is in the test split of exactly one fold.
    progress, isolate, echo, source
        As :func:`alzmri.comparison.compare.compare`; with ``isolate`` each row trains all
        its folds in one fresh process.

    Returns
    -------
    Path
        The comparison folder (see the module docstring).

    Raises
    ------
    AlzmriError
        A bad config; ``split`` set or a split strategy other than ``subject`` (the folds
        are by brain); a folder split with other settings; failed rows (after the report
        of the others is written; rerunning retries them).
    RunInterrupted
        Ctrl-C or SIGTERM while a row trains (finished folds are kept).
    """
    from alzmri.data.tasks import get_task
    from alzmri.models import get_spec

    if config.split is not None:
        raise AlzmriError(f"{source}: folds (--folds) makes its own folds by brain; drop 'split' (or drop folds to reuse the manifest)")
    if config.split_strategy != "subject":
        raise AlzmriError(f"{source}: folds (--folds) is cross-validation by brain; it needs split_strategy: subject, got {config.split_strategy!r}")
    rows = config.train_configs(source)
    task = get_task(config.task)
    names = [e.name for e, _ in rows]
    reference = config.reference or names[0]
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise AlzmriError(f"{out}: exists and is not a folder; choose another out for the comparison")
    ours = any((out / f).is_file() for f in ("comparison.yaml", "split.json"))
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise AlzmriError(f"{out}: folder exists, is not empty and holds no comparison; choose another out (nothing was changed)")
    _check_rows(rows, config, source)  # runs/<name> of a cross-validated row is never a finished run: every row is checked
    image_size = next((c.image_size or get_spec(c.model).image_size for _, c in rows if not c.model.startswith("baseline:")), 64)
    out.mkdir(parents=True, exist_ok=True)
    index, manifests, warns = _prepare_folds(config, folds, image_size, source, echo)
    atomic_write_text(out / "comparison.yaml", dump_config(config.model_copy(update={"folds": folds})))
    _say(echo, f"task: {task.name} ({', '.join(task.class_names)}); reference row: {reference}")

    failed: list[tuple[str, str]] = []
    for r, (entry, cfg) in enumerate(rows, start=1):
        row_dir = config.row_dir(entry.name)
        head = f"[{r}/{len(rows)}] {entry.name} ({cfg.model})"
        todo: list[TrainConfig] = []
        for i, manifest in enumerate(manifests):
            fold_dir = row_dir / f"fold-{i}"
            fcfg = _fold_config(cfg, manifest, fold_dir)
            planned = plan_run(fold_dir.resolve(), fcfg, head=f"{head}: fold {i}", echo=echo)
            if planned is not None:
                todo.append(planned)
        if not todo:
            _say(echo, f"{head}: all {folds} folds finished earlier, not retrained")
            continue
        _say(echo, f"{head}: training {len(todo)} of {folds} folds")
        train_or_note_failure(todo, name=entry.name, head=head, failed=failed, echo=echo, progress=progress, isolate=isolate)

    summaries: list[dict] = []
    fold_warnings: dict[str, list[int]] = {}
    images_by_size: dict[int, np.ndarray] = {}
    failed_names = {n for n, _ in failed}
    for entry, cfg in rows:
        if entry.name in failed_names:
            continue
        row_dir = config.row_dir(entry.name)
        recs = [_fold_record(i, row_dir / f"fold-{i}", task) for i in range(folds)]
        for rec in recs:
            for w in rec["warnings"]:
                fold_warnings.setdefault(w, [])
                if rec["fold"] not in fold_warnings[w]:
                    fold_warnings[w].append(rec["fold"])
        first = None
        if not cfg.model.startswith("baseline:") and cfg.level == "slice":  # FLOPs, inference time, t-SNE: fold 0's model
            fold0 = row_dir / "fold-0"
            first = _read_summary(fold0, entry)
            if first is None:
                _say(echo, f"{entry.name}: measuring FLOPs, inference time and t-SNE (fold 0's model)")
                first = summarize_row(entry, _fold_config(cfg, manifests[0], fold0), fold0, index, out_dir=out, seed=config.seed,
                                      images_by_size=images_by_size)
        _write_oof(row_dir / "oof_brains.csv", recs, task)
        summaries.append(_row_summary(entry, cfg, row_dir, recs, task, first))

    result = paired_statistics(summaries, task, reference=reference if reference not in failed_names else None)
    if reference in failed_names and summaries:  # said first, so that no reader takes the stand-in for the configured reference
        warns = [f"the reference row {reference} failed; the rows are compared with {result['reference']} instead", *warns]
    split_warnings = list(warns) + [f"{w} (fold{'s' if len(f) > 1 else ''} {', '.join(str(i) for i in sorted(f))})"
                                    for w, f in fold_warnings.items()]
    result["sentence"] = result_sentence(summaries, result, task, folds=folds)
    if reference in failed_names and summaries:
        result["sentence"] = f"The configured reference row {reference} failed (see the notes); {result['reference']} stands in for it. " + result["sentence"]
    md, html = _write_outputs(config, summaries, result, task, folds=folds, split_warnings=split_warnings, failed=failed, out=out)
    _say(echo, result["sentence"])
    _say(echo, f"report: {md} and {html}")
    if failed:
        names_failed = ", ".join(n for n, _ in failed)
        raise AlzmriError(f"{len(failed)} row(s) failed: {names_failed} (first: {failed[0][1]}); the report at {html} holds the others; rerun to retry")
    return out
