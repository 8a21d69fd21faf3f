"""The comparison report, its tables and notes, from synthetic rows (no training)."""

from __future__ import annotations

import re


from alzmri.reporting.plots import save_figure, training_curves_figure
from alzmri.reporting.report import COLUMNS, format_table, leakage_note, write_report


def row(name: str, time_s: float, bacc: float, size: float, **extra) -> dict:
    r = {"name": name, "model": "altzcnn", "parameters": 1_000_000, "trainable_parameters": 5_000, "size_mb": size,
         "flops_per_image": 2.5e8, "train_time_s": time_s, "peak_memory_mb": 900.0, "train_images_per_s": 120.0,
         "inference_ms_per_image": 1.5, "accuracy": 0.9, "balanced_accuracy": bacc, "macro_f1": 0.8,
         "quadratic_weighted_kappa": 0.85, "roc_auc_ovr_macro": 0.95, "image_size": 64, "in_chans": 1, "epochs": 2}
    r.update(extra)
    return r


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
