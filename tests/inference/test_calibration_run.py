"""`alzmri calibrate` on a real run; prediction and the ONNX export apply the temperature."""

import json
import shutil

import numpy as np
import pytest

from alzmri.cli import main
from alzmri.errors import AlzmriError
from alzmri.evaluation.calibration import load_temperature, run_logits
from alzmri.inference.onnx_export import OnnxPredictor, export_onnx
from alzmri.inference.predict import predict_files


@pytest.fixture()
def run_copy(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_calibrate_writes_temperature_and_prediction_uses_it(run_copy, small_data, capsys):
    img = sorted(small_data.rglob("*.jpg"))[3]
    before = predict_files(run_copy, [img])[0]
    assert main(["calibrate", str(run_copy), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    cal = json.loads((run_copy / "calibration.json").read_text())
    t = cal["temperature"]
    assert res["temperature"] == t == load_temperature(run_copy) and t > 0
    assert cal["fitted_on"] == "val" and cal["n_samples"] > 0 and cal["test"] is not None
    assert cal["val"]["after"]["nll"] <= cal["val"]["before"]["nll"] + 1e-9
    assert (run_copy / "reliability_diagram.png").stat().st_size > 5000
    after = predict_files(run_copy, [img])[0]
    assert after["predicted_class"] == before["predicted_class"]
    # probabilities are softmax(logits / T)
    names = list(before["probabilities"])
    p0 = np.array([before["probabilities"][c] for c in names])
    logits = np.log(p0)
    expect = np.exp(logits / t) / np.exp(logits / t).sum()
    np.testing.assert_allclose([after["probabilities"][c] for c in names], expect, atol=1e-5)
    # the ONNX export carries the temperature
    pred = OnnxPredictor(export_onnx(run_copy, run_copy / "m.onnx"), threads=1)
    assert pred.temperature == pytest.approx(t)
    via_onnx = predict_files(run_copy / "m.onnx", [img])[0]["probabilities"]
    np.testing.assert_allclose([via_onnx[c] for c in names], [after["probabilities"][c] for c in names], atol=1e-4)


def test_run_logits_and_bad_calibration_file(run_copy):
    logits, y = run_logits(run_copy, split="val")
    assert logits.shape == (len(y), 4) and np.isfinite(logits).all()
    (run_copy / "calibration.json").write_text("{broken")
    with pytest.raises(AlzmriError, match="unreadable calibration file"):
        load_temperature(run_copy)
