"""The ``alzmri`` command line: one short function per command over the library.

Every user error (:class:`alzmri.errors.AlzmriError`) prints one line, ``error: ...``,
and exits with code 2; no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from alzmri.errors import AlzmriError

app = typer.Typer(help="Train, honestly evaluate and use brain-MRI classifiers of Alzheimer's severity.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

out = Console()
err = Console(stderr=True)

from alzmri.cli_data import data_app  # noqa: E402 (the `alzmri data ...` commands)

app.add_typer(data_app, name="data")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


@app.command()
def train(
    model: Optional[str] = typer.Option(None, help="registered model name (default altzcnn)"),
    task: Optional[str] = typer.Option(None, help="4class (default), 3class (Mild and Moderate merged) or binary (NonDemented vs demented)"),
    loss: Optional[str] = typer.Option(None, help="cross_entropy (default) or ordinal (CORN; 4class or 3class)"),
    level: Optional[str] = typer.Option(None, help="slice (default: one prediction per slice) or brain (one per bag of a brain's slices)"),
    pooling: Optional[str] = typer.Option(None, help="level brain: attention (default) or mean"),
    slice_position: Optional[bool] = typer.Option(
        None, "--slice-position/--no-slice-position", help="level brain: give the model each slice's position in its brain (default off)"
    ),
    frozen_encoder: Optional[bool] = typer.Option(
        None, "--frozen-encoder/--finetune-encoder", help="level brain: keep the slice encoder frozen (default) or fine-tune it"
    ),
    patience: Optional[int] = typer.Option(None, help="early stopping after this many epochs without a better validation score (default: off)"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the downloaded set)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder to create (default runs/MODEL-TIME)"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default 20)"),
    image_size: Optional[int] = typer.Option(None, help="input side in pixels (default: the model's, 64 for altzcnn)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size (default 128)"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 3e-4)"),
    seed: Optional[int] = typer.Option(None, help="random seed (default 42)"),
    split: Optional[Path] = typer.Option(None, help="reuse the split of an existing manifest.csv"),
    split_strategy: Optional[str] = typer.Option(
        None, help="subject (default: no brain in two splits), stratified (random slices by class) or image (the notebook's random slices)"
    ),
    groups: Optional[Path] = typer.Option(None, help="groups CSV from `alzmri data groups` (default: recovered from the images, cached)"),
    folds: Optional[int] = typer.Option(None, help="k-fold cross-validation by subject: K runs in OUT/fold-i and OUT/cv.json"),
    keep_eval_copies: Optional[bool] = typer.Option(
        None, "--keep-eval-copies", help="keep augmented copies that the split puts in validation/test (the notebook's protocol; "
        "warned: pseudo-replicates); default: validation and test hold originals only"
    ),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="kornia batch augmentation (default off)"),
    balance_augment: Optional[bool] = typer.Option(
        None, "--balance-augment/--no-balance-augment", help="augmented copies of minority-class training images until train classes are equal (after splitting; default off)"
    ),
    precision: Optional[str] = typer.Option(None, help="auto (default), 32, bf16-mixed or 16-mixed"),
    in_chans: Optional[int] = typer.Option(None, help="1 (grayscale, default) or 3 (slice copied to RGB)"),
    skip_unreadable: Optional[bool] = typer.Option(None, "--skip-unreadable", help="leave unreadable images out (listed in skipped.csv)"),
    accelerator: Optional[str] = typer.Option(None, help="auto (default), cpu or gpu"),
    devices: Optional[int] = typer.Option(None, help="processes (one device each) per node; more than 1 trains with DDP (default 1; docs/scaling.md)"),
    num_nodes: Optional[int] = typer.Option(None, help="machines (default 1); under torchrun or SLURM as launched"),
    strategy: Optional[str] = typer.Option(None, help="auto (default: DDP when more than one process) or ddp"),
    deterministic: Optional[bool] = typer.Option(
        None, "--deterministic/--no-deterministic", help="deterministic algorithms (default: on for CPU, off on GPU; docs/reliability.md)"
    ),
    resume: bool = typer.Option(
        False, "--resume", help="continue the run folder --out from its last complete checkpoint, with its saved settings and split"
    ),
    config: Optional[Path] = typer.Option(None, help="YAML config file; command-line options override it"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Train a model and evaluate it on the test split; writes a run folder.

    Ctrl-C stops with one line naming the kept checkpoint and exit code 130; continue with
    `alzmri train --out RUN --resume`.
    """
    from alzmri.config import load_train_config
    from alzmri.pipeline import train as train_run
    from alzmri.pipeline import train_cv

    cfg = load_train_config(
        config,
        model=model,
        task=task,
        loss=loss,
        level=level,
        pooling=pooling,
        slice_position=slice_position,
        frozen_encoder=frozen_encoder,
        patience=patience,
        data=data,
        out=out_dir,
        epochs=epochs,
        image_size=image_size,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        split=split,
        split_strategy=split_strategy,
        groups=groups,
        folds=folds,
        keep_eval_copies=keep_eval_copies,
        augment=augment,
        balance_augment=balance_augment,
        precision=precision,
        in_chans=in_chans,
        skip_unreadable=skip_unreadable,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        deterministic=deterministic,
        resume=resume or None,
    )
    if cfg.folds is not None:
        folder = train_cv(cfg, progress=progress)
        out.print(f"cross-validation folder: {folder}")
        cv_file = folder / "cv.json"
        _print_cv(json.loads(cv_file.read_text()))
        out.print(f"written: {cv_file}")
        return
    run = train_run(cfg, progress=progress)
    from alzmri.utils.distributed import is_global_zero

    if not is_global_zero():
        return  # DDP: ranks other than 0 print and write nothing
    out.print(f"run folder: {run}")
    metrics_file = run / "metrics.json"
    if metrics_file.is_file():
        _print_metrics(json.loads(metrics_file.read_text()))


_TABLE_METRICS = ("balanced_accuracy", "macro_f1", "roc_auc_ovr_macro", "quadratic_weighted_kappa", "accuracy")


def _ci(block: dict | None, key: str) -> str:
    if not block or not block.get(key):
        return "-"
    lo, hi = block[key]
    return f"{lo:.3f}-{hi:.3f}"


def _print_metrics(m: dict, *, show_warnings: bool = False) -> None:
    if m.get("level") == "brain":  # a brain-level model or baseline: one prediction per brain, no slice metrics
        out.print(f"{m['model']} - task {m.get('task')}, {m['split']} split, split strategy: {m['split_strategy']}", markup=False, highlight=False)
        out.print(_brain_line(m["brain_level"]), markup=False, highlight=False)
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
    for k in _TABLE_METRICS:
        t.add_row(k, _fmt(m.get(k)), _ci(m.get("confidence_intervals"), k), _fmt(sub.get(k)) if sub else "-", _ci(sub.get("confidence_intervals") if sub else None, k))
    out.print(t)
    if sub:
        out.print(f"subject level: {sub['aggregation']}; intervals: {sub['confidence_intervals']['method']}", markup=False, highlight=False)
    brain = m.get("brain_level")
    if brain:
        out.print(_brain_line(brain), markup=False, highlight=False)
    t = Table("class", "support", "sensitivity", "specificity", "precision", "ROC-AUC", title="per class (slice level)")
    for cls, d in m["per_class"].items():
        t.add_row(cls, str(d["support"]), _fmt(d["sensitivity"]), _fmt(d["specificity"]), _fmt(d["precision"]), _fmt(d["roc_auc"]))
    out.print(t)
    if show_warnings:
        from alzmri.utils.console import print_warning

        for w in m.get("warnings", []):
            print_warning(w)


def _threshold(t) -> str:
    """A brain-level threshold: one number, or the range of the folds' own thresholds (pooled folds)."""
    if isinstance(t, dict):
        return f"{t.get('min', 0):.3f}-{t.get('max', 0):.3f} (one per fold)"
    return _fmt(t) if t is None else f"{float(t):.3f}"


def _brain_line(b: dict) -> str:
    """One line of a metrics.json ``brain_level`` block: ROC-AUC of P(demented), then the task's own measures."""
    ci = b.get("ci") or {}

    def val(key: str) -> str:
        iv = ci.get(key)
        return _fmt(b.get(key)) + (f" ({iv[0]:.3f}-{iv[1]:.3f})" if iv else "")

    parts = [f"ROC-AUC demented vs not {val('roc_auc')}"]
    if "threshold" in b:
        parts.append(f"at threshold {_threshold(b['threshold'])} (validation brains): sensitivity {val('sensitivity')}, specificity {val('specificity')}")
    else:
        parts.append(f"QWK {val('quadratic_weighted_kappa')}, MAE {val('mae_classes')} classes")
    return f"brain level, task {b.get('task')} ({b.get('n_brains')} brains): " + "; ".join(parts)


def _print_cv(cv: dict) -> None:
    if cv.get("level") == "brain":
        out.print(f"{cv['model']}: cross-validation by brain, {cv['folds']} folds, every brain tested once", markup=False, highlight=False)
        out.print(_brain_line(cv["pooled"]) + " (pooled out of fold)", markup=False, highlight=False)
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
    for k in _TABLE_METRICS:
        a = ms["slice_level"][k]
        b = sub_ms.get(k) or {}
        t.add_row(
            k,
            f"{a['mean']:.3f} +- {a['std']:.3f}" if a["mean"] is not None else "-",
            _fmt(pooled.get(k)),
            _ci(pooled.get("confidence_intervals"), k),
            f"{b['mean']:.3f} +- {b['std']:.3f}" if b.get("mean") is not None else "-",
            _fmt(sub.get(k)),
            _ci(sub.get("confidence_intervals"), k),
        )
    out.print(t)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run folder"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the run's)"),
    split: str = typer.Option("test", help="test, val or train"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    accelerator: str = typer.Option("auto", help="auto, cpu or gpu"),
    devices: int = typer.Option(1, help="processes predicting in parallel per node (DDP); metrics equal one process's"),
    num_nodes: int = typer.Option(1, help="machines"),
    strategy: str = typer.Option("auto", help="auto or ddp"),
) -> None:
    """Score a run on its test split: metrics.json, confusion matrix and ROC PNGs."""
    from alzmri.pipeline import evaluate as evaluate_run
    from alzmri.utils.distributed import ProcessLayout, resolve_ranks

    if split not in ("test", "val", "train"):
        raise AlzmriError(f"--split must be test, val or train; got {split!r}")
    layout = ProcessLayout(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
    resolve_ranks(layout)  # checks the values, and that the accelerator exists here (one line, nothing written)
    m = evaluate_run(run, data=data, split=split, layout=layout)
    if m is None:
        return  # DDP: ranks other than 0 print and write nothing
    if as_json:
        print(json.dumps(m, indent=2))
    else:
        _print_metrics(m, show_warnings=True)
        out.print(f"written: {run / ('metrics.json' if split == 'test' else f'metrics_{split}.json')}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="run folder, or a .onnx file from `alzmri export`"),
    images: list[Path] = typer.Argument(..., help="image files (JPEG, PNG), NIfTI volumes (.nii, .nii.gz), DICOM files or series folders"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (volumes and brains: with per-slice values)"),
    brain: bool = typer.Option(False, "--brain", help="all inputs are ONE brain: its slice files, a folder of them (sorted by name) or one volume; one answer"),
    cam: Optional[Path] = typer.Option(None, "--cam", help="write a Grad-CAM overlay PNG per input into this folder"),
    n_central: Optional[int] = typer.Option(None, "--n-central", help="central slices averaged per volume (default 32)"),
    backend: Optional[str] = typer.Option(None, help="torch or onnx (default: onnx, the faster here, docs/performance.md; torch with --cam)"),
) -> None:
    """Class probabilities for each image or volume (calibrated when the run has calibration.json).

    A 2D image that does not look like a brain MRI slice (colour, no dark frame or
    background: docs/inference.md) is flagged: MRI-like "NO", one warning line, and
    `looks_like_mri`, `input_check`, `warning` in --json.

    With --brain, the inputs are one brain and get one answer (a slice-level run: the mean
    of its slices' probabilities). A brain-level run takes each folder or volume as a
    brain (a single image file as a brain of one slice).
    """
    from alzmri.inference.predict import predict_files
    from alzmri.utils.console import print_warning

    if brain:
        from alzmri.inference.brain import predict_brain

        if cam is not None:
            raise AlzmriError("--cam explains single slices; drop it with --brain (the slice weights are in --json)")
        results = [predict_brain(run, images, n_central=n_central, backend=backend)]
    else:
        results = predict_files(run, images, n_central=n_central, cam_dir=cam, backend=backend)
    if as_json:
        print(json.dumps(results[0] if brain else results, indent=2))
        for r in results:
            if r.get("warning"):
                print_warning(r["warning"])
        return
    names = list(results[0]["probabilities"]) if results else []
    checked = any("looks_like_mri" in r for r in results)  # 2D inputs: the slice check's verdict as a column
    # In a narrow terminal the input path and the headers fold; class names and probabilities
    # are never cut. Piped output (not a terminal) is not squeezed to 80 columns.
    t = Table(
        Column("input", overflow="fold", min_width=10),
        Column("predicted", no_wrap=True, min_width=max([len(r["predicted_class"]) for r in results] + [9])),
        *(Column(c, overflow="fold", justify="right", min_width=5) for c in names),
        *([Column("MRI-like", overflow="fold", min_width=3)] if checked else []),
        *([Column("explained (CAM)", overflow="fold", min_width=8)] if cam else []),
    )
    for r in results:
        what = r["path"] + _predict_what(r)
        mri_like = [{True: "yes", False: "NO"}.get(r.get("looks_like_mri"), "-")] if checked else []
        t.add_row(what, r["predicted_class"], *(f"{r['probabilities'][c]:.3f}" for c in names), *mri_like, *([r["explained_class"]] if cam else []))
    (out if out.is_terminal else Console(width=400)).print(t)
    for r in results:
        if r.get("kind") == "brain":
            out.print(f"{r['path']}: {r['aggregation']}; decision: {r['decision']}", markup=False, highlight=False, soft_wrap=True)
            for note in r["notes"]:
                print_warning(note)
        if r.get("warning"):
            print_warning(r["warning"])
    if cam:
        out.print(f"Grad-CAM overlays written to {cam}")


def _predict_what(r: dict) -> str:
    """What an answer of `predict` covers, after its path: a volume's central slices or a brain's slice count."""
    if r.get("kind") == "volume":
        return f" (volume, mean of slices {r['central_slices'][0]}-{r['central_slices'][1] - 1})"
    if r.get("kind") == "brain":
        return f" (brain of {r['n_slices']} slice{'s' if r['n_slices'] != 1 else ''}, {r['source']})"
    return ""


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write (dynamic batch, preprocessing in its metadata)"),
) -> None:
    """Export a run's model to ONNX, runnable with onnxruntime alone."""
    from alzmri.inference.onnx_export import export_onnx

    out.print(f"written: {export_onnx(run, onnx)}")


@app.command("calibrate")
def calibrate_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the run's)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Fit temperature scaling on the validation split; write calibration.json and reliability_diagram.png."""
    from alzmri.pipeline import calibrate as calibrate_run

    res = calibrate_run(run, data=data)
    if as_json:
        print(json.dumps(res, indent=2))
        return
    out.print(f"temperature {res['temperature']:.4f} (fitted on {res['n_samples']} validation slices)")
    t = Table("split", "NLL before", "NLL after", "ECE before", "ECE after", "Brier before", "Brier after")
    for split in ("val", "test"):
        if res.get(split):
            b, a = res[split]["before"], res[split]["after"]
            t.add_row(split, *(f"{v:.4f}" for v in (b["nll"], a["nll"], b["ece"], a["ece"], b["brier"], a["brier"])))
    out.print(t)
    out.print(f"written: {run / 'calibration.json'}, {run / 'reliability_diagram.png'}")


@app.command("serve")
def serve_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (default: this machine only; the service has no authentication)"),
    port: int = typer.Option(8000, help="TCP port"),
    backend: Optional[str] = typer.Option(None, help="torch or onnx (default: onnx, alzmri.inference.backends.DEFAULT_BACKEND)"),
    micro_batch: Optional[bool] = typer.Option(None, "--micro-batch/--no-micro-batch", help="share forward passes between concurrent requests (default: alzmri.serve.DEFAULT_MICRO_BATCH, off)"),
    max_request_mb: float = typer.Option(20.0, "--max-request-mb", min=0.001, help="largest request body in MB (10^6 bytes)"),
) -> None:
    """Serve a run: JSON API (POST /predict, GET /health, /docs) and a page at / (Grad-CAM, probabilities)."""
    from alzmri.serve import serve

    serve(run, host=host, port=port, backend=backend, micro_batch=micro_batch, max_request_bytes=int(max_request_mb * 1_000_000))


@app.command("models")
def models_cmd() -> None:
    """List registered models and their defaults."""
    from alzmri.models import get_spec, list_models

    from alzmri.models.baselines import BASELINES

    t = Table("name", "image size", "description")
    for name in list_models():
        s = get_spec(name)
        t.add_row(name, str(s.image_size), s.description)
    for name, cls in BASELINES.items():  # scikit-learn baselines: brain level, one prediction per brain
        import re

        first = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        t.add_row(name, "128", re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), first))
    out.print(t)



@app.command("compare")
def compare_cmd(
    config: Path = typer.Option(..., "--config", help="comparison YAML (configs/cpu.yaml, configs/notebook.yaml)"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (overrides the file's data)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="comparison folder (overrides the file's out)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bars while training"),
    accelerator: Optional[str] = typer.Option(None, help="every row: auto, cpu or gpu (default: the file's, else auto)"),
    devices: Optional[int] = typer.Option(None, help="every row: processes per node, DDP when more than 1 (default: the file's, else 1)"),
    num_nodes: Optional[int] = typer.Option(None, help="every row: machines (default: the file's, else 1)"),
    strategy: Optional[str] = typer.Option(None, help="every row: auto or ddp (default: the file's, else auto)"),
    folds: Optional[int] = typer.Option(None, "--folds", help="K-fold cross-validation by brain, every row on the same folds (default: the file's folds, else one split)"),
) -> None:
    """Train and evaluate every model of a config on one shared split (or the same K brain folds); write report.md and report.html.

    Rerunning the same config resumes: finished rows (folds) are not retrained.
    """
    from alzmri.comparison import compare, load_compare_config
    from alzmri.reporting.report import format_table

    cfg = load_compare_config(config, data=data, out=out_dir, folds=folds).with_train_settings(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy
    )
    folder = compare(cfg, progress=progress, echo=lambda line: out.print(line, markup=False, highlight=False), source=str(config))
    summary = json.loads((folder / "comparison.json").read_text())
    if cfg.folds is not None:  # cross-validated: one line per row, the first headline metric's verdicts
        from alzmri.reporting.cv_report import cv_table

        headers, cells = cv_table(summary["rows"], summary["result"])
        keep = [0, 2, 3, 4] + [i for i, h in enumerate(headers) if h.startswith(("P(best)", "training time"))]
        t = Table(title=cfg.title)
        for i in keep:
            t.add_column(headers[i], justify="left" if i == 0 else "right", overflow="fold")
        for row in cells:
            t.add_row(*(row[i] for i in keep))
        out.print(t)
        out.print(f"report: {folder / 'report.html'} (and report.md; every metric and fold in table.csv)")
        return
    headers, cells = format_table(summary["rows"])
    # one column per model, one row per measure: readable in 80 columns
    t = Table(title=cfg.title)
    t.add_column(headers[0], overflow="fold")
    for row in cells:
        t.add_column(row[0], justify="right", overflow="fold")
    for i, header in enumerate(headers[1:], start=1):
        t.add_row(header, *(row[i] for row in cells))
    out.print(t)
    out.print(f"report: {folder / 'report.html'} (and report.md)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alzmri`` console script.

    Usage errors (unknown option, missing argument) are reported by Typer with the
    command's usage and exit code 2; :class:`AlzmriError` prints one line and exits 2.
    """
    try:
        # standalone mode: Typer/Click print usage errors themselves and raise SystemExit
        app(args=argv, standalone_mode=True)
    except AlzmriError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return getattr(exc, "exit_code", 2)  # 2, or 130/143 for an interrupted run (RunInterrupted)
    except KeyboardInterrupt:
        err.print("error: interrupted", markup=False)
        return 130
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
