"""``alzmri predict`` and ``alzmri export``: class probabilities from a run or its ONNX export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from alzmri.cli.tables import out
from alzmri.errors import AlzmriError


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


def export_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write (dynamic batch, preprocessing in its metadata)"),
) -> None:
    """Export a run's model to ONNX, runnable with onnxruntime alone."""
    from alzmri.inference.onnx_export import export_onnx

    out.print(f"written: {export_onnx(run, onnx)}")
