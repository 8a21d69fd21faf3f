"""The comparison report and its figures, from synthetic rows (no training)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alzmri.data.classes import CLASS_NAMES
from alzmri.reporting.figures import (
    pareto_figure,
    pareto_front,
    plot_pareto,
    plot_roc_comparison,
    plot_tsne,
    save_figure,
    training_curves_figure,
)
from alzmri.reporting.report import COLUMNS, format_table, leakage_note, write_report


def assert_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        assert img.width > 300 and img.height > 300


def row(name: str, time_s: float, bacc: float, size: float, **extra) -> dict:
    r = {"name": name, "model": "altzcnn", "parameters": 1_000_000, "trainable_parameters": 5_000, "size_mb": size,
         "flops_per_image": 2.5e8, "train_time_s": time_s, "peak_memory_mb": 900.0, "train_images_per_s": 120.0,
         "inference_ms_per_image": 1.5, "accuracy": 0.9, "balanced_accuracy": bacc, "macro_f1": 0.8,
         "quadratic_weighted_kappa": 0.85, "roc_auc_ovr_macro": 0.95, "image_size": 64, "in_chans": 1, "epochs": 2}
    r.update(extra)
    return r


def test_pareto_front():
    # (time, score): b is dominated by a (slower, worse); d ties c's score but is slower
    assert pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.7, 0.7]) == [0, 2]
    assert pareto_front([5.0], [0.1]) == [0]


def test_pareto_and_tsne_pngs(tmp_path):
    rows = [row("a", 10, 0.6, 5), row("b", 2000, 0.8, 90), row("c", 50, 0.5, 20)]
    assert_png(plot_pareto(rows, tmp_path / "pareto.png"))
    fig = pareto_figure(rows)
    assert fig.axes[0].get_xscale() == "log"  # 200x spread
    assert fig.axes[0].get_xlabel() == "training time (s)"
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 2))
    labels = np.repeat(np.arange(4), 10)
    assert_png(plot_tsne(emb, labels, CLASS_NAMES, tmp_path / "tsne.png", title="t"))
    with pytest.raises(ValueError, match="shape"):
        plot_tsne(emb[:, :1], labels, CLASS_NAMES, tmp_path / "x.png")
    y = np.repeat(np.arange(4), 5)
    p = rng.dirichlet(np.ones(4), size=20)
    assert_png(plot_roc_comparison({"a": (y, p), "b": (y, p[::-1])}, CLASS_NAMES, tmp_path / "roc.png", aucs={"a": 0.5}))


def test_write_report_tables_notes_and_self_contained_html(tmp_path):
    fig = save_figure(training_curves_figure([{"epoch": 1, "train_loss": 1.0}]), tmp_path / "src" / "curves.png")
    rows = [row("a", 10, 0.6, 5, figures={"training_curves": str(fig)}, note="first"), row("b", 20, 0.7, 6)]
    md, html = write_report(rows, tmp_path / "rep", title="T", notes=["hello"], split={"strategy": "image", "counts": {"train": 1, "val": 1, "test": 1}})
    text = md.read_text()
    for _, header, _ in COLUMNS:
        assert header in text
    assert "subject" not in format_table(rows)[0][-1]
    assert "Leakage warning" in text and "hello" in text and "first" in text
    assert (tmp_path / "rep" / "figures" / "a-training_curves.png").is_file()
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 1 and not re.search(r"https?://", page)


def test_subject_level_and_interval_columns_appear_when_present():
    rows = [row("a", 1, 0.5, 1, subject_level={"balanced_accuracy": 0.4, "accuracy": 0.5, "confidence_intervals": {"balanced_accuracy": [0.3, 0.5]}},
                confidence_intervals={"balanced_accuracy": [0.45, 0.55]}), row("b", 1, 0.5, 1)]
    headers, cells = format_table(rows)
    assert "subject balanced accuracy" in headers and "subject accuracy" in headers and "subject macro-F1" not in headers
    assert cells[0][headers.index("balanced accuracy 95% CI")] == "0.450-0.550"
    assert cells[0][headers.index("subject balanced accuracy 95% CI")] == "0.300-0.500"
    assert cells[1][headers.index("subject balanced accuracy")] == "-"


def test_leakage_note():
    assert "slice" in leakage_note("stratified") and "slice" in leakage_note("image")
    assert leakage_note("subject") is None
    assert "manifest" in leakage_note("manifest:x.csv")
