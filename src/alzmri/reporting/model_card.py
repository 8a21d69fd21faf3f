"""The model card written into every evaluated run folder (``MODEL_CARD.md``).

It states what the model was trained on, how the data were split and what the split's
leakage checks found, the test metrics with their confidence intervals, and the intended
use: a research tool, not a diagnostic device. It only formats values computed elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alzmri.runs import RunInfo
from alzmri.utils.io import atomic_write_text

DISCLAIMER = (
    "This model is a research tool, not a diagnostic device. It has not been validated "
    "clinically and must not be used to diagnose, stage or treat any person."
)
_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_weighted_kappa", "roc_auc_ovr_macro")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _task_lines(info: RunInfo) -> list[str]:
    from alzmri.data.tasks import TASKS

    task = TASKS.get(getattr(info, "task", "") or "4class")
    name = task.name if task is not None else str(info.task)
    ordinal = task is None or task.ordinal
    what = {
        "4class": "the four classes of the notebook",
        "3class": "MildDemented and ModerateDemented merged into one class",
        "binary": "NonDemented against demented (VeryMild, Mild or Moderate)",
    }.get(name, "")
    loss = getattr(info, "loss", "cross_entropy") or "cross_entropy"
    return [
        f"- task: **{name}**" + (f" ({what})" if what else ""),
        f"- classes ({'ordered' if ordinal else 'not ordered'}): {(' < ' if ordinal else ', ').join(info.class_names)}",
        f"- loss: {loss}" + (" (CORN: K-1 conditional logits, rank-consistent class probabilities)" if loss == "ordinal" else ""),
    ]


def _brain_lines(b: dict) -> list[str]:
    ci = b.get("ci") or {}
    keys = [k for k in ("roc_auc", "pr_auc", "balanced_accuracy", "sensitivity", "specificity", "macro_f1", "quadratic_weighted_kappa",
                        "mae_classes", "roc_auc_ovr_macro") if k in b]
    lines = [
        "",
        f"## Brain-level metrics of the task ({b.get('task')}, {b.get('n_brains')} test brains)",
        "",
        "| metric | value | 95% CI |",
        "| --- | --- | --- |",
    ]
    for k in keys:
        iv = ci.get(k)
        lines.append(f"| {k} | {_fmt(b.get(k))} | {'-' if not iv else f'{iv[0]:.3f}-{iv[1]:.3f}'} |")
    lines += ["", "roc_auc is that of P(demented) = 1 - P(NonDemented) against NonDemented vs demented."]
    if "threshold" in b:
        t = b["threshold"]
        at = f"{t.get('min', 0):.3f}-{t.get('max', 0):.3f} (one per fold)" if isinstance(t, dict) else _fmt(t)
        lines.append(f"Sensitivity and specificity at P(demented) >= {at}: {b.get('threshold_rule')}.")
    if b.get("ci_method"):
        lines.append(f"Intervals: {b['ci_method']}.")
    return lines


def model_card_text(info: RunInfo, metrics: dict) -> str:
    """Markdown of the model card for a run and its test metrics (``metrics.json`` content)."""
    ci = metrics.get("confidence_intervals") or {}
    subject = metrics.get("subject_level") or {}
    subject_ci = subject.get("confidence_intervals") or {}
    lines = [
        f"# Model card: {info.model}",
        "",
        f"**Intended use.** {DISCLAIMER} Intended for research and teaching on public axial "
        "brain-MRI slice datasets: comparing models and evaluation protocols.",
        "",
        "## Model",
        f"- architecture `{info.model}`, {info.parameters:,} parameters ({info.trainable_parameters:,} trainable), {info.size_mb:.1f} MB",
        f"- input: {info.in_chans}-channel {info.image_size}x{info.image_size} slices, intensities /255 then (x - {info.mean:g}) / {info.std:g}",
        *_task_lines(info),
        f"- trained {info.epochs_run} epochs on {info.device} ({info.precision}), {info.train_time_s:.0f} s; best validation epoch {info.best_epoch}",
        "",
        "## Data and split",
        f"- data: `{info.data}` (layout {info.layout}, content hash `{info.dataset_hash[:16]}`)",
        f"- split strategy: **{info.split_strategy}**; slices per split: "
        + ", ".join(f"{k} {v}" for k, v in info.split_counts.items()),
        f"- subjects (scan groups): {info.n_groups or '-'} in the run; source: "
        f"{metrics.get('groups_source') or info.groups_source or 'none'}; test subjects: {_fmt(metrics.get('n_subjects'))}",
        *([f"- augmented copies: {note}"] if (note := (getattr(info, "copies", None) or {}).get("note")) else []),
        "",
        "## Leakage audit and warnings",
    ]
    warns = metrics.get("warnings") or []
    lines += [f"- {w}" for w in warns] if warns else ["- none: no subject is shared between splits"]
    if getattr(info, "level", "slice") == "brain":
        lines += ["", "One prediction per brain (a bag of its slices, docs/brain-level.md): no slice-level metrics."]
    else:
        lines += [
            "",
            f"## Test metrics ({metrics.get('n_samples', '-')} slices)",
            "",
            "| metric | slice level | 95% CI | subject level | 95% CI |",
            "| --- | --- | --- | --- | --- |",
        ]
        for k in _METRICS:
            lo_hi = ci.get(k)
            s_lo_hi = subject_ci.get(k)
            lines.append(
                f"| {k} | {_fmt(metrics.get(k))} | {'-' if not lo_hi else f'{lo_hi[0]:.3f}-{lo_hi[1]:.3f}'} "
                f"| {_fmt(subject.get(k))} | {'-' if not s_lo_hi else f'{s_lo_hi[0]:.3f}-{s_lo_hi[1]:.3f}'} |"
            )
        lines += [
            "",
            "Confidence intervals resample subjects, not slices. Subject level = mean of a subject's "
            "slice probabilities. A split that shares subjects between training and test inflates "
            "every number above.",
        ]
    lines += [
        *(_brain_lines(metrics["brain_level"]) if metrics.get("brain_level") else []),
        "",
        "## Limitations",
        "- Trained on 2D axial slices of public, preprocessed research datasets; other scanners, "
        "protocols, preprocessing or populations are untested.",
        "- Classes with few subjects (ModerateDemented has 2 brains in the 6,400-slice set) give "
        "unreliable per-class estimates.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(run_dir: str | Path, info: RunInfo, metrics: dict) -> Path:
    """Write ``MODEL_CARD.md`` into ``run_dir`` (atomically) and return its path."""
    return atomic_write_text(Path(run_dir) / "MODEL_CARD.md", model_card_text(info, metrics))
