"""The model card: what a run was trained on, how it was split, its test metrics with intervals, its intended use."""

from __future__ import annotations

import json

from alzmri.reporting.model_card import DISCLAIMER, model_card_text, write_model_card
from alzmri.runs import RunInfo


def test_card_of_a_run_states_model_split_metrics_and_use(tiny_run):
    card = (tiny_run / "MODEL_CARD.md").read_text()
    m = json.loads((tiny_run / "metrics.json").read_text())
    info = RunInfo.load(tiny_run)
    assert card.startswith("# Model card: altzcnn\n") and DISCLAIMER in card
    assert f"- architecture `altzcnn`, {info.parameters:,} parameters" in card
    assert "- input: 1-channel 32x32 slices" in card
    assert f"split strategy: **{info.split_strategy}**" in card and info.split_strategy == "stratified"
    assert f"## Test metrics ({m['n_samples']} slices)" in card
    assert f"| balanced_accuracy | {m['balanced_accuracy']:.3f} |" in card
    ci = m["confidence_intervals"]
    assert ci is not None  # the run's manifest records subjects: intervals resample them
    for k in ("accuracy", "balanced_accuracy", "macro_f1"):
        lo, hi = ci[k]
        assert f"| {k} | {m[k]:.3f} | {lo:.3f}-{hi:.3f} |" in card, k
    for w in m["warnings"]:
        assert w in card
    # the card is a pure function of run.json and metrics.json
    assert card == model_card_text(info, m)


def _info(**changes) -> RunInfo:
    values = dict(model="resnet18", image_size=64, in_chans=3, mean=0.5, std=0.25, class_names=["NonDemented", "Demented"], task="binary",
                  split_strategy="subject", split_counts={"train": 70, "val": 15, "test": 15}, parameters=1234567,
                  trainable_parameters=1000, size_mb=4.9, epochs_run=3, best_epoch=2, n_groups=12)
    return RunInfo(**{**values, **changes})


def test_card_of_values_given():
    metrics = {"n_samples": 15, "accuracy": 0.8, "balanced_accuracy": 0.75, "n_subjects": 3, "groups_source": "manifest",
               "confidence_intervals": {"balanced_accuracy": [0.5, 0.9]}, "warnings": [],
               "subject_level": {"balanced_accuracy": 0.6667, "confidence_intervals": {"balanced_accuracy": [0.25, 1.0]}},
               "brain_level": {"task": "binary", "n_brains": 3, "roc_auc": 0.5, "sensitivity": 1.0, "ci": {"roc_auc": [0.0, 1.0]},
                               "threshold": 0.42, "threshold_rule": "Youden's J on validation brains"}}
    card = model_card_text(_info(), metrics)
    assert "- architecture `resnet18`, 1,234,567 parameters (1,000 trainable), 4.9 MB" in card
    assert "- task: **binary** (NonDemented against demented (VeryMild, Mild or Moderate))" in card
    assert "- classes (not ordered): NonDemented, Demented" in card
    assert "slices per split: train 70, val 15, test 15" in card
    assert "- subjects (scan groups): 12 in the run; source: manifest; test subjects: 3" in card
    assert "- none: no subject is shared between splits" in card
    assert "| balanced_accuracy | 0.750 | 0.500-0.900 | 0.667 | 0.250-1.000 |" in card
    assert "| accuracy | 0.800 | - | - | - |" in card
    assert "## Brain-level metrics of the task (binary, 3 test brains)" in card
    assert "| roc_auc | 0.500 | 0.000-1.000 |" in card and "| sensitivity | 1.000 | - |" in card
    assert "Sensitivity and specificity at P(demented) >= 0.420: Youden's J on validation brains." in card


def test_card_of_a_brain_level_run_has_no_slice_metrics(tmp_path):
    info = _info(level="brain")
    path = write_model_card(tmp_path, info, {"warnings": ["ModerateDemented has 2 subjects"]})
    card = path.read_text()
    assert path == tmp_path / "MODEL_CARD.md"
    assert "no slice-level metrics" in card and "## Test metrics" not in card
    assert "- ModerateDemented has 2 subjects" in card and "none: no subject is shared" not in card
