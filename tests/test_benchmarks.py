"""Smoke tests of the performance benchmarks (benchmarks/*.py) at tiny sizes on real slices.

They check the figures each benchmark reports (keys, finite positive values, counts that
follow from the settings, FLOPs that follow from the architecture), never how fast
anything ran.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _bench  # noqa: E402
import inference_latency  # noqa: E402
import memory  # noqa: E402
import train_levers  # noqa: E402
import train_throughput  # noqa: E402


def _positive(d: dict, keys) -> None:
    for k in keys:
        assert k in d, k
        assert isinstance(d[k], (int, float)) and math.isfinite(d[k]) and d[k] > 0, (k, d[k])


def test_training_flops_are_three_forward_passes_less_the_first_input_gradient():
    from alzmri.evaluation.profiling import flops_per_image
    from alzmri.models import create_model

    for ch in (1, 3):
        fwd = flops_per_image(create_model("altzcnn", in_chans=ch, image_size=32), (ch, 32, 32))
        conv1_input_grad = 2 * 32 * 32 * 32 * 9 * ch  # not computed: the input needs no gradient
        assert train_throughput.train_flops_per_image("altzcnn", ch, 32) == 3 * fwd - conv1_input_grad


def test_training_flops_count_a_grouped_convolution_once():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise, as in MobileNetV2
    x = torch.rand(2, 8, 16, 16, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: train_throughput._conv_backward_flops})
    with counter:
        conv(x).sum().backward()
    macs = 2 * 8 * 16 * 16 * 9  # batch x channels x positions x one 3x3 filter each
    assert counter.get_total_flops() == 3 * 2 * macs  # forward, input gradient, weight gradient


def test_matmul_peak_and_machine():
    import torch

    assert _bench.matmul_peak_flops(torch.float32, sizes=(64,), repeats=2) > 0
    m = _bench.machine()
    assert m["cores"] >= 1 and set(m["flags"]) == set(_bench.RELEVANT_FLAGS)
    with pytest.raises(ValueError, match="speedup"):
        _bench.check_finite_positive({"speedup": float("nan")}, ["speedup"])


def test_notebook_dataset_holds_the_same_images(small_data):
    import numpy as np

    from alzmri.data.discovery import discover
    from alzmri.data.images import decode_image

    index = discover(small_data)
    rows = np.array([0, 45, 100])
    ds = train_throughput.notebook_dataset(index, rows, 32, model="altzcnn")
    for k, r in enumerate(rows):
        x, _ = ds[k]
        assert x.shape == (3, 32, 32)
        # PIL RGB + torchvision Resize gives alzmri's grayscale decode in every channel
        ref = decode_image(index.root / index.records[r].path, 32)
        assert np.abs(x.numpy() * 255 - ref[None]).max() <= 1.0


def test_train_throughput_reports_its_keys(small_data, tmp_path):
    res = train_throughput.measure_throughput(small_data, models=("altzcnn",), image_size=32, batch_size=8, steps=2, warmup=1, rounds=2,
                                              workers=0, bf16_steps=1, peak_sizes=(128,), peak_repeats=1)
    _positive(res, ["notebook_images_per_s", "alzmri_images_per_s", "speedup", "fp32_peak_fraction", "bf16_peak_fraction", "decode_once_s"])
    row = res["models"]["altzcnn"]
    assert len(row["notebook_runs"]) == len(row["alzmri_runs"]) == 2
    assert res["speedup"] == pytest.approx(res["alzmri_images_per_s"] / res["notebook_images_per_s"])
    assert row["train_gflops_per_image_notebook"] > row["train_gflops_per_image_alzmri"] > 0  # 3 channels against 1
    assert res["precision_used"] in ("32-true", "bf16-mixed")
    assert res["n_train_images"] == 84  # 70 % of the 120 slices


def test_train_accuracy_mode_uses_one_split(small_data, tmp_path):
    res = train_throughput.measure_accuracy(small_data, image_size=32, batch_size=16, epochs=1, workers=0, seeds=(0,), work_dir=tmp_path)
    (s,) = res["seeds"]
    assert s["n_train"] == 84 and s["n_val"] == 18
    assert len(s["alzmri_history"]) == len(s["notebook_history"]) == 1
    for k in ("alzmri_val_accuracy", "notebook_val_accuracy", "alzmri_val_balanced_accuracy", "notebook_val_balanced_accuracy"):
        assert 0.0 <= res[k] <= 1.0
    _positive(res, ["fit_time_ratio"])


def test_train_levers_report_ratios_and_profile(small_data):
    res = train_levers.measure_levers(small_data, levers=("defaults", "lightning", "layout", "profile"), image_size=32, batch_size=8, steps=1, warmup=1, rounds=1)
    lev = res["levers"]
    _positive(lev["lightning"]["images_per_s"], ["lightning", "plain"])
    assert lev["layout"]["ratio_to_nchw"]["nchw"] == 1.0
    _positive(lev["defaults"]["images_per_s"], ["nchw", "defaults"])
    shares = lev["profile"]["phase_share"]
    assert set(shares) == {"data", "forward", "backward", "optimizer"}
    assert all(v > 0 for v in shares.values()) and sum(shares.values()) <= 1.0 + 1e-6
    assert any("convolution" in op for op in lev["profile"]["top_ops_self_cpu_share"])


def test_inference_latency_reports_both_paths(small_data, tmp_path):
    res = inference_latency.measure_latency(small_data, models=("altzcnn",), image_size=32, batch_sizes=(1, 4), warmup=1, repeats=2, work_dir=tmp_path)
    for b in (1, 4):
        row = res["models"]["altzcnn"][f"batch{b}"]
        _positive(row, ["eager_ms", "onnx_ms", "eager_model_ms", "onnx_model_ms", "onnx_speedup"])
        assert row["faster"] in ("eager", "onnx")
    assert res["faster_path"] in ("eager", "onnx", "mixed")
    assert res["settings"]["weights"].startswith("random")


@pytest.mark.slow
def test_memory_reports_cache_sizes_and_peaks(small_data, tmp_path):
    res = memory.measure_memory(small_data, models=("altzcnn",), batch_sizes=(4,), image_sizes=(32,), n_augmented=200, cache_sizes=(32,),
                                work_dir=tmp_path)
    (row,) = res["training"]
    assert row["peak_rss_mb"] >= row["rss_after_data_mb"] > 0
    assert res["cache_6400_mb"] == pytest.approx(120 * 32 * 32 / 1e6)  # one byte per pixel
    assert res["cache_augmented_mb"] == pytest.approx(200 * 32 * 32 / 1e6)
    phases = [(r["set"], r["phase"], r["hit"]) for r in res["cache"]]
    assert phases == [("real", "cold", False), ("real", "warm", True), ("augmented", "cold", False), ("augmented", "warm", True)]


def test_augmented_set_is_flips_and_rotations_outside_the_repo(small_data, tmp_path):
    import numpy as np
    from PIL import Image

    from alzmri.data.discovery import discover

    out = memory.build_augmented_set(small_data, tmp_path / "aug", 130)
    index = discover(out)
    assert len(index) == 130 and index.class_counts() == discover(small_data).class_counts() | {"NonDemented": 40}
    first = discover(small_data).records[0]
    flipped = np.asarray(Image.open(out / Path(first.path).parent / f"{Path(first.path).stem}_t1.jpg"))
    orig = np.asarray(Image.open(small_data / first.path).convert("L"))
    assert np.abs(flipped.astype(int) - orig[:, ::-1]).mean() < 3  # JPEG re-encoding only
    with pytest.raises(ValueError, match="inside the repository"):
        memory.build_augmented_set(small_data, BENCH / "tmp-aug", 1)
