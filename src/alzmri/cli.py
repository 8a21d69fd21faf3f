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
from rich.table import Table

from alzmri.errors import AlzmriError

app = typer.Typer(help="Train, honestly evaluate and use brain-MRI classifiers of Alzheimer's severity.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console()
err = Console(stderr=True)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


@data_app.command("inspect")
def data_inspect(
    data: Path = typer.Argument(..., help="dataset folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Per-class counts, image sizes and modes, the detected layout, unreadable files."""
    from alzmri.data.inspect import inspect_dataset

    info = inspect_dataset(data)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    out.print(f"[bold]{info['root']}[/bold]  layout: {info['layout']}  images: {info['total']}")
    t = Table("folder", "class")
    for folder, cls in info["class_folders"].items():
        t.add_row(folder, cls)
    out.print(t)
    t = Table("class", "images", *(f"{s}" for s in info["counts_by_source_split"]))
    for cls, n in info["counts"].items():
        t.add_row(cls, str(n), *(str(d[cls]) for d in info["counts_by_source_split"].values()))
    out.print(t)
    out.print("sizes: " + ", ".join(f"{k} ({v})" for k, v in info["sizes"].items()))
    out.print("modes: " + ", ".join(f"{k} ({v})" for k, v in info["modes"].items()))
    if info["unreadable"]:
        out.print(f"[red]unreadable files: {len(info['unreadable'])}[/red]")
        for u in info["unreadable"]:
            out.print(f"  {u['path']}: {u['reason']}")
    else:
        out.print("unreadable files: none")


@data_app.command("download")
def data_download(
    dest: Optional[Path] = typer.Option(None, help="target folder; default: the user cache"),
    force: bool = typer.Option(False, help="download again even if a complete copy exists"),
) -> None:
    """Fetch the public 6,400-slice set (Hugging Face Hub: Falah/Alzheimer_MRI) into the user cache."""
    from alzmri.data.download import download_dataset

    path = download_dataset(dest, force=force)
    out.print(f"dataset ready at {path}")


@app.command()
def train(
    model: Optional[str] = typer.Option(None, help="registered model name (default altzcnn)"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the downloaded set)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder to create (default runs/MODEL-TIME)"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default 20)"),
    image_size: Optional[int] = typer.Option(None, help="input side in pixels (default: the model's, 64 for altzcnn)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size (default 128)"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 3e-4)"),
    seed: Optional[int] = typer.Option(None, help="random seed (default 42)"),
    split: Optional[Path] = typer.Option(None, help="reuse the split of an existing manifest.csv"),
    split_strategy: Optional[str] = typer.Option(None, help="stratified (default) or image (the notebook's plain random split)"),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="kornia batch augmentation (default on)"),
    precision: Optional[str] = typer.Option(None, help="auto (default), 32, bf16-mixed or 16-mixed"),
    in_chans: Optional[int] = typer.Option(None, help="1 (grayscale, default) or 3 (slice copied to RGB)"),
    skip_unreadable: Optional[bool] = typer.Option(None, "--skip-unreadable", help="leave unreadable images out (listed in skipped.csv)"),
    config: Optional[Path] = typer.Option(None, help="YAML config file; command-line options override it"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Train a model and evaluate it on the test split; writes a run folder."""
    from alzmri.config import load_train_config
    from alzmri.training.train import train as train_run

    cfg = load_train_config(
        config,
        model=model,
        data=data,
        out=out_dir,
        epochs=epochs,
        image_size=image_size,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        split=split,
        split_strategy=split_strategy,
        augment=augment,
        precision=precision,
        in_chans=in_chans,
        skip_unreadable=skip_unreadable,
    )
    run = train_run(cfg, progress=progress)
    out.print(f"run folder: {run}")
    metrics_file = run / "metrics.json"
    if metrics_file.is_file():
        _print_metrics(json.loads(metrics_file.read_text()))


def _print_metrics(m: dict) -> None:
    t = Table(title=f"{m['model']} - {m['split']} split ({m['split_strategy']}), {m['n_samples']} slices")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_weighted_kappa", "roc_auc_ovr_macro"):
        t.add_row(k, _fmt(m.get(k)))
    out.print(t)
    t = Table("class", "support", "sensitivity", "specificity", "precision", "ROC-AUC")
    for cls, d in m["per_class"].items():
        t.add_row(cls, str(d["support"]), _fmt(d["sensitivity"]), _fmt(d["specificity"]), _fmt(d["precision"]), _fmt(d["roc_auc"]))
    out.print(t)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run folder"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the run's)"),
    split: str = typer.Option("test", help="test, val or train"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Score a run on its test split: metrics.json, confusion matrix and ROC PNGs."""
    from alzmri.evaluation.evaluate import evaluate_run

    if split not in ("test", "val", "train"):
        raise AlzmriError(f"--split must be test, val or train; got {split!r}")
    m = evaluate_run(run, data=data, split=split)
    if as_json:
        print(json.dumps(m, indent=2))
    else:
        _print_metrics(m)
        out.print(f"written: {run / ('metrics.json' if split == 'test' else f'metrics_{split}.json')}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="run folder"),
    images: list[Path] = typer.Argument(..., help="image files (JPEG, PNG)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Class probabilities for each image."""
    from alzmri.inference.predict import predict_files

    results = predict_files(run, images)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    names = list(results[0]["probabilities"]) if results else []
    t = Table("image", "predicted", *names)
    for r in results:
        t.add_row(r["path"], r["predicted_class"], *(f"{r['probabilities'][c]:.3f}" for c in names))
    out.print(t)


@app.command("models")
def models_cmd() -> None:
    """List registered models and their defaults."""
    from alzmri.models import get_spec, list_models

    t = Table("name", "image size", "description")
    for name in list_models():
        s = get_spec(name)
        t.add_row(name, str(s.image_size), s.description)
    out.print(t)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alzmri`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except AlzmriError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("error: interrupted", markup=False)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
