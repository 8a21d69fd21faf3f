"""history.csv and predictions.csv of a brain-level run, as written."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from alzmri.data.tasks import get_task
from alzmri.training.brain_tables import write_brain_history, write_brain_predictions


def test_history_rows_and_empty_values(tmp_path):
    write_brain_history(tmp_path / "history.csv", [{"epoch": 1, "train_loss": 0.5, "val_loss": None, "val_score": 2 / 3}])
    assert (tmp_path / "history.csv").read_text() == "epoch,train_loss,val_loss,val_score\n1,0.5,,0.666667\n"


def test_predictions_binary_at_the_threshold(tmp_path):
    task = get_task("binary")
    bags = SimpleNamespace(brain_ids=np.array([7, 8, 9]), members=[np.arange(3), np.arange(2), np.arange(4)])
    data = SimpleNamespace(task=task, bags=bags, y=np.array([0, 1, 1]))
    r = {"val_b": np.array([0]), "val_prob": np.array([[0.7, 0.3]]), "test_b": np.array([1, 2]),
         "test_prob": np.array([[0.55, 0.45], [0.2, 0.8]]), "threshold": 0.4}
    write_brain_predictions(tmp_path / "predictions.csv", data, r)
    names = task.class_names
    assert (tmp_path / "predictions.csv").read_text().splitlines() == [
        f"brain,split,n_slices,class,predicted,threshold,p_{names[0]},p_{names[1]}",
        f"7,val,3,{names[0]},{names[0]},0.400000,0.700000,0.300000",
        f"8,test,2,{names[1]},{names[1]},0.400000,0.550000,0.450000",  # P(demented) 0.45 >= 0.4
        f"9,test,4,{names[1]},{names[1]},0.400000,0.200000,0.800000",
    ]
