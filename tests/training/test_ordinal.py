"""The ordinal (CORN) loss: log probabilities from conditional logits and back, and a real 3-class run."""

import csv
import json

import numpy as np
import pytest
import torch
from dlordinal.losses import CORNLoss

from alzmri.cli import main
from alzmri.errors import AlzmriError
from alzmri.models import create_model
from alzmri.models.ordinal import (
    check_loss,
    corn_log_probs,
    corn_logits_from_log_probs,
    is_ordinal,
    make_ordinal,
)
from alzmri.training.module import SliceClassifier


@pytest.mark.parametrize("k", [3, 4])
def test_conditional_logits_round_trip(k):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, k - 1, generator=g) * 4
    z[0] = torch.tensor([12.0, -12.0, 12.0][: k - 1])  # saturated sigmoids
    log_p = corn_log_probs(z)
    assert log_p.shape == (64, k)
    assert torch.allclose(log_p.exp().sum(1), torch.ones(64), atol=1e-5)
    assert torch.allclose(corn_logits_from_log_probs(log_p), z, atol=1e-4)


def test_probabilities_are_rank_consistent():
    torch.manual_seed(0)
    model = make_ordinal(create_model("altzcnn", num_classes=3, image_size=32))  # 4 classes, 3 conditional logits
    with torch.no_grad():
        out = model.eval()(torch.randn(16, 1, 32, 32) * 3)
    assert out.shape == (16, 4)
    p = torch.softmax(out, dim=1)
    assert torch.allclose(p.sum(1), torch.ones(16), atol=1e-5)
    above = torch.flip(torch.cumsum(torch.flip(p, [1]), 1), [1])[:, 1:]  # P(y > k), k = 0 .. K-2
    assert (above[:, 1:] <= above[:, :-1] + 1e-6).all()
    # softmax of the output is exactly the chain rule of the conditional probabilities
    with torch.no_grad():
        z = corn_logits_from_log_probs(out)
    s = torch.sigmoid(z)
    assert torch.allclose(above, torch.cumprod(s, 1), atol=1e-5)
    x = torch.zeros(2, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        assert is_ordinal(model) and make_ordinal(model) is model  # applied once only: the same output
        assert torch.equal(model(x), before)


def test_module_loss_is_dlordinal_corn_on_the_conditional_logits():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, 2, generator=g, requires_grad=True)
    y = torch.arange(32) % 3
    module = SliceClassifier(torch.nn.Identity(), loss="ordinal")
    ours = module.compute_loss(corn_log_probs(z), y)
    ref = CORNLoss(num_classes=3)(z, y)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    (g1,) = torch.autograd.grad(ours, z)
    (g2,) = torch.autograd.grad(CORNLoss(num_classes=3)(z, y), z)
    assert torch.allclose(g1, g2, atol=1e-6)
    ce = SliceClassifier(torch.nn.Identity()).compute_loss(corn_log_probs(z), y)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(corn_log_probs(z), y).item())


def test_ordinal_loss_needs_an_ordered_task():
    check_loss("4class", "ordinal"), check_loss("3class", "ordinal"), check_loss("binary", "cross_entropy")
    with pytest.raises(AlzmriError, match=r"^ordinal loss needs an ordered task: 4class or 3class$"):
        check_loss("binary", "ordinal")
    with pytest.raises(AlzmriError, match="unknown loss 'hinge'"):
        check_loss("4class", "hinge")


@pytest.mark.slow
def test_train_3class_ordinal_loss_falls_and_predict_sums_to_one(capsys, small_data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model_kwargs: {fc_dropout: 0.0, conv_dropout: 0.0, init: he}\nsplit_strategy: stratified\n")
    run = tmp_path / "ord"
    code = main(["train", "--config", str(config), "--data", str(small_data), "--out", str(run), "--task", "3class", "--loss", "ordinal",
                 "--epochs", "6", "--image-size", "32", "--batch-size", "8", "--lr", "3e-4", "--seed", "0", "--no-progress"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    info = json.loads((run / "run.json").read_text())
    assert (info["task"], info["loss"]) == ("3class", "ordinal")
    assert info["class_names"] == ["NonDemented", "VeryMildDemented", "MildModerateDemented"]
    losses = [float(r["train_loss"]) for r in csv.DictReader((run / "history.csv").open())]
    assert len(losses) == 6 and min(losses[-2:]) < 0.85 * losses[0], losses
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "3class" and len(m["confusion_matrix"]) == 3
    assert {"quadratic_weighted_kappa", "mae_classes", "roc_auc"} <= set(m["brain_level"]) and "threshold" not in m["brain_level"]
    assert "QWK" in cap.out and "MAE" in cap.out

    img = sorted((small_data / "Moderate_Demented").iterdir())[0]
    results = {}
    for backend in ("torch", "onnx"):  # the ONNX export carries the CORN hook
        assert main(["predict", str(run), str(img), "--json", "--backend", backend]) == 0
        (r,) = json.loads(capsys.readouterr().out)
        assert r["task"] == "3class" and list(r["probabilities"]) == info["class_names"]
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        results[backend] = np.array(list(r["probabilities"].values()))
    assert np.allclose(results["torch"], results["onnx"], atol=1e-4)
