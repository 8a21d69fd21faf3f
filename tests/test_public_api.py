"""The Python front door: ``import alzmri`` names the verbs, imports them lazily, and they work together."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def test_import_alzmri_is_light_and_names_resolve():
    code = ("import sys, alzmri; heavy = [m for m in ('torch', 'lightning', 'sklearn') if m in sys.modules]; "
            "print(heavy, sorted(alzmri.__all__) == sorted(set(alzmri.__all__)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True"  # nothing heavy until a verb is used
    import alzmri

    for name in alzmri.__all__:
        assert getattr(alzmri, name) is not None, name
    assert alzmri.evaluate.__name__ == "evaluate" and alzmri.predict.__name__ == "predict_files"
    assert "train" in dir(alzmri)
    try:
        alzmri.no_such_verb  # noqa: B018
    except AttributeError as exc:
        assert "no_such_verb" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown attribute must raise AttributeError")


@pytest.mark.slow
def test_train_evaluate_predict_through_the_public_api(small_data, tmp_path):
    import alzmri

    assert "altzcnn" in alzmri.list_models()
    cfg = alzmri.load_train_config(data=small_data, out=tmp_path / "run", model="altzcnn", epochs=2, batch_size=16, image_size=32,
                                   augment=False, seed=0, split_strategy="stratified")
    assert isinstance(cfg, alzmri.TrainConfig)
    run = alzmri.train(cfg, progress=False)
    metrics = alzmri.evaluate(run)
    saved = json.loads((run / "metrics.json").read_text())
    assert metrics["balanced_accuracy"] == saved["balanced_accuracy"]
    model, info = alzmri.load_model(run)
    assert info.image_size == 32 and sum(p.numel() for p in model.parameters()) > 0
    files = sorted(p for p in small_data.rglob("*.jpg"))[:3]
    answers = alzmri.predict(run, files)
    assert len(answers) == 3
    for a in answers:
        probs = np.array(list(a["probabilities"].values()))
        assert abs(probs.sum() - 1) < 1e-4
    try:
        alzmri.load_train_config(data=small_data, epochs=0)
    except alzmri.AlzmriError as exc:
        assert "epochs" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("epochs 0 must be refused")
