"""``alzmri compare``: train and evaluate every model of a comparison config; write its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from alzmri.cli.tables import compare_cv_table, compare_table, out


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

    cfg = load_compare_config(config, data=data, out=out_dir, folds=folds).with_train_settings(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy
    )
    folder = compare(cfg, progress=progress, echo=lambda line: out.print(line, markup=False, highlight=False), source=str(config))
    summary = json.loads((folder / "comparison.json").read_text())
    if cfg.folds is not None:  # cross-validated: one line per row, the first headline metric's verdicts
        out.print(compare_cv_table(summary, cfg.title))
        out.print(f"report: {folder / 'report.html'} (and report.md; every metric and fold in table.csv)")
        return
    out.print(compare_table(summary, cfg.title))
    out.print(f"report: {folder / 'report.html'} (and report.md)")
