"""The terminal rendering of metrics and cross-validation summaries."""

from alzmri.cli.tables import TABLE_METRICS, brain_line, ci, fmt, print_cv, print_metrics


def test_fmt_and_ci():
    assert [fmt(None), fmt(0.123456), fmt(3), fmt("x")] == ["-", "0.1235", "3", "x"]
    block = {"accuracy": [0.61234, 0.7], "macro_f1": None, "method": "bootstrap"}
    assert [ci(block, "accuracy"), ci(block, "macro_f1"), ci(block, "qwk"), ci(None, "accuracy")] == ["0.612-0.700", "-", "-", "-"]


def test_brain_line_binary_and_ordered_tasks():
    binary = {"task": "binary", "n_brains": 17, "roc_auc": 0.8125, "threshold": {"min": 0.3, "max": 0.45}, "sensitivity": 0.75,
              "specificity": 1.0, "ci": {"roc_auc": [0.6, 0.95]}}
    assert brain_line(binary) == (
        "brain level, task binary (17 brains): ROC-AUC demented vs not 0.8125 (0.600-0.950); "
        "at threshold 0.300-0.450 (one per fold) (validation brains): sensitivity 0.7500, specificity 1.0000"
    )
    assert "at threshold 0.420 (validation brains)" in brain_line(binary | {"threshold": 0.42})
    four = {"task": "4class", "n_brains": 9, "roc_auc": None, "quadratic_weighted_kappa": 0.5, "mae_classes": 0.25}
    assert brain_line(four) == "brain level, task 4class (9 brains): ROC-AUC demented vs not -; QWK 0.5000, MAE 0.2500 classes"


def _slice_metrics():
    m = {k: 0.5 for k in TABLE_METRICS}
    m |= {"model": "altzcnn", "task": "4class", "split": "test", "split_strategy": "subject", "n_samples": 40, "n_subjects": 8,
          "confidence_intervals": {"balanced_accuracy": [0.4, 0.6]}, "subject_level": None,
          "per_class": {"NonDemented": {"support": 10, "sensitivity": 0.9, "specificity": 0.8, "precision": 0.7, "roc_auc": None}},
          "warnings": ["few subjects"]}
    return m


def test_print_metrics_table_and_warnings(capsys):
    print_metrics(_slice_metrics(), show_warnings=True)
    cap = capsys.readouterr()
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in cap.out.splitlines() if line.count("│") > 2)}
    assert rows["balanced_accuracy"] == ["0.5000", "0.400-0.600", "-", "-"]
    assert rows["accuracy"] == ["0.5000", "-", "-", "-"]
    assert rows["NonDemented"] == ["10", "0.9000", "0.8000", "0.7000", "-"]
    assert "altzcnn - task 4class, test split, split strategy: subject (40 slices, 8 subjects)" in " ".join(cap.out.split())
    assert cap.err.strip() == "warning: few subjects"


def test_print_cv_without_test_metrics_and_brain_level(capsys):
    print_cv({"folds": 3})
    assert capsys.readouterr().out == "3 folds trained (no test metrics)\n"
    pooled = {"task": "4class", "n_brains": 17, "roc_auc": 0.7, "quadratic_weighted_kappa": 0.4, "mae_classes": 0.6}
    print_cv({"level": "brain", "model": "baseline:atrophy", "folds": 5, "pooled": pooled})
    assert " ".join(capsys.readouterr().out.split()) == (
        "baseline:atrophy: cross-validation by brain, 5 folds, every brain tested once "
        "brain level, task 4class (17 brains): ROC-AUC demented vs not 0.7000; QWK 0.4000, MAE 0.6000 classes (pooled out of fold)"
    )
