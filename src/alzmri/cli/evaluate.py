"""``alzmri evaluate`` and ``alzmri calibrate``: score a finished run, fit its temperature scaling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from alzmri.cli.tables import out, print_metrics
from alzmri.errors import AlzmriError


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
        print_metrics(m, show_warnings=True)
        out.print(f"written: {run / ('metrics.json' if split == 'test' else f'metrics_{split}.json')}")


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
