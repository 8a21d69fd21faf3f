"""Training throughput: the notebook's data pipeline against alzmri's, and the machine's matmul peak.

Run from the repository root (about 4 minutes on a quiet 2-core CPU)::

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --accuracy     # validation metrics after the same epochs

Both pipelines train the same registered model (random initialisation, seed 42) at the
same image size, batch size and learning rate, for the same number of steps, on the same
training images (a stratified 70/15/15 split of ``--data`` made by
:func:`alzmri.data.splits.make_split`):

(a) ``notebook``: the student notebook's pipeline. A :class:`torchvision.datasets.ImageFolder`
    (restricted to the training images) decodes every JPEG with PIL as RGB, resizes it
    (``transforms.Resize``, bilinear with antialiasing) and makes a float tensor
    (``ToTensor``; ``Normalize`` with the ImageNet statistics for pretrained-style models)
    for every sample in every epoch, through a ``DataLoader`` with ``--notebook-workers``
    worker processes (2 by default: the usual notebook setting on a 2-core machine);
    3-channel input, fp32, a plain PyTorch loop (``zero_grad``, forward, cross-entropy,
    ``backward``, Adam ``step``, running loss/accuracy with ``.item()``). With
    ``--augment`` each sample also gets the notebook's transforms (torchvision
    equivalents of its kornia ones) in the workers.
(b) ``alzmri``: what ``alzmri train`` runs. Images decoded once into the uint8 cache
    (:func:`alzmri.data.cache.load_images`), batches cut by indexing
    (:class:`alzmri.data.datamodule.SliceDataModule`), conversion and (with ``--augment``)
    kornia augmentation on whole batches (``SliceClassifier.on_after_batch_transfer`` ->
    :func:`alzmri.data.preprocess.prepare_batch`), the :class:`SliceClassifier` step,
    under a Lightning ``Trainer`` with the precision ``alzmri train`` picks
    (:func:`alzmri.training.precision.resolve_precision`) and its ``deterministic`` setting;
    one grayscale channel. No progress bar, logger or checkpoints (per-epoch costs).

The two pipelines run alternately (``--rounds`` times each, the order swapped every round)
so that a change in the machine's load hits both; images/s is the median over rounds of
(images in the timed steps) / (wall time from the end of the ``--warmup`` untimed steps to
the end of the last step). The untimed warm-up contains the DataLoader's worker start-up
and the first kernel calls; leaving it out favours the notebook pipeline (it pays the
worker start-up every epoch). alzmri's one-time decode into the cache (cold) and its
reload (warm) are timed separately.

FLOPs per training image (forward + backward, not the optimiser) are counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on the model as each pipeline feeds it;
the matmul peaks (fp32 and bf16) are measured in the same run
(:func:`_bench.matmul_peak_flops`). The fraction of peak is achieved FLOP/s over the peak
of the precision the pipeline trains in. ``bf16_peak_fraction`` comes from an extra
short alzmri run forced to ``bf16-mixed`` (AltzCNN only): on a CPU without native bf16
(no AMX, no AVX512-BF16) bf16 is emulated and ``alzmri train`` itself uses fp32.

``--clock cpu`` is for a machine that other jobs load: one torch thread, no DataLoader
workers (the notebook pipeline then decodes in the training process, so its decoding is
counted), and steps and the matmul peak timed by this process's CPU time
(``time.process_time``), which does not count waiting for a core.

``--accuracy`` instead trains AltzCNN (32 x 32, batch 32, He initialisation and no
dropout in the classifier, so that a few epochs learn something: with the notebook's
initialisation and dropout AltzCNN sits at the class prior for hundreds of steps) for
``--accuracy-epochs`` (6) full epochs through each pipeline on one shared split
(``alzmri train`` itself for (b), on a manifest it writes; the same manifest's training
and validation images for (a)) and reports the validation accuracy and balanced accuracy
after every epoch.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

MODELS = ("altzcnn", "mobilenet_v2")


# ---------------------------------------------------------------------------- data


def load_split(data: Path, image_size: int, *, seed: int = 42, cache_dir: Path | None = None) -> dict:
    """The dataset, alzmri's decoded cache (timed cold and warm) and a stratified split.

    Returns
    -------
    dict with ``index`` (DatasetIndex), ``images`` (uint8 (n, S, S)), ``labels`` (int64),
    ``splits`` (str), ``hash_s`` (hashing every file for the cache key, paid by every
    run), ``decode_once_s`` (cold cache: decode + write) and ``cache_load_s`` (warm cache:
    read the .npz).
    """
    from alzmri.data import load_images
    from alzmri.data import discover
    from alzmri.data import make_split

    index = discover(data)
    with tempfile.TemporaryDirectory(prefix="alzmri-bench-cache-") as tmp:
        folder = Path(cache_dir) if cache_dir is not None else Path(tmp)
        th = time.perf_counter()
        index.content_hash()  # the cache key: every run hashes every file, cache hit or not
        t0 = time.perf_counter()
        cold = load_images(index, image_size, cache_dir=folder)
        t1 = time.perf_counter()
        warm = load_images(index, image_size, cache_dir=folder)
        t2 = time.perf_counter()
    if not warm.hit and cache_dir is None:
        raise RuntimeError("the second load_images call did not hit the cache")
    splits = make_split("stratified", index.labels, seed=seed)
    return {
        "index": index,
        "images": warm.images if warm.hit else cold.images,
        "labels": index.labels,
        "splits": splits,
        "hash_s": t0 - th,
        "decode_once_s": t1 - t0,
        "cache_load_s": t2 - t1,
    }


def notebook_transform(image_size: int, *, rgb_mean=None, rgb_std=None, augment: bool = False):
    """The notebook's per-sample transform of a PIL RGB image: Resize, ToTensor, (augment), (Normalize).

    Augmentation (``augment``): torchvision per-sample equivalents of the notebook's kornia
    transforms (see :mod:`alzmri.data.augment`): affine 5 deg / translate 0.1 / scale
    0.75-1.05 (p 0.1), perspective 0.1 (p 0.1), horizontal and vertical flips (p 0.1),
    Gaussian blur 5x5 sigma 1e-4..0.5 (p 0.4), sharpness (p 0.1).
    """
    from torchvision import transforms as T

    steps = [T.Resize((image_size, image_size)), T.ToTensor()]
    if augment:
        steps += [
            T.RandomApply([T.RandomAffine(5.0, translate=(0.1, 0.1), scale=(0.75, 1.05))], p=0.1),
            T.RandomPerspective(distortion_scale=0.1, p=0.1),
            T.RandomHorizontalFlip(p=0.1),
            T.RandomVerticalFlip(p=0.1),
            T.RandomApply([T.GaussianBlur(5, sigma=(1e-4, 0.5))], p=0.4),
            T.RandomAdjustSharpness(1.5, p=0.1),
        ]
    if rgb_mean is not None:
        steps.append(T.Normalize(list(rgb_mean), list(rgb_std)))
    return T.Compose(steps)


def notebook_dataset(index, rows: np.ndarray, image_size: int, *, model: str, augment: bool = False):
    """``ImageFolder(index.root)`` restricted to ``rows`` of ``index`` (same images, ImageFolder's labels).

    ImageFolder numbers classes alphabetically by folder name; the labels are a
    permutation of alzmri's, which changes no accuracy figure.
    """
    from torch.utils.data import Subset
    from torchvision.datasets import ImageFolder

    from alzmri.models import get_spec

    spec = get_spec(model)
    tf = notebook_transform(image_size, rgb_mean=spec.rgb_mean, rgb_std=spec.rgb_std, augment=augment)
    folder = ImageFolder(str(index.root), transform=tf)
    position = {str(Path(p).resolve()): i for i, (p, _) in enumerate(folder.samples)}
    wanted = [position[str((index.root / index.records[r].path).resolve())] for r in rows]
    return Subset(folder, wanted)


# ---------------------------------------------------------------------------- pipelines


def _rate(clock: list[tuple[float, int]], warmup: int) -> dict:
    """Images/s over the steps after ``warmup`` from (end time, batch size) per step."""
    t_start = clock[warmup - 1][0]
    t_end = clock[-1][0]
    n = sum(b for _, b in clock[warmup:])
    return {"images_per_s": n / (t_end - t_start), "timed_images": n, "timed_s": t_end - t_start}


def run_notebook(dataset, model: str, image_size: int, *, batch_size: int, lr: float, steps: int, warmup: int = 2,
                 workers: int = 2, seed: int = 42, model_kwargs: dict | None = None) -> dict:
    """Train ``steps + warmup`` steps the notebook's way; images/s of the timed steps."""
    from torch.utils.data import DataLoader

    from alzmri import create_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    net = create_model(model, in_chans=3, image_size=image_size, **(model_kwargs or {})).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")
    net.train()
    clock: list[tuple[float, int]] = []
    running_loss, correct = 0.0, 0
    while len(clock) < warmup + steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            out = net(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            running_loss += loss.item()
            correct += int((out.argmax(1) == y).sum().item())
            clock.append((_bench.step_clock(), len(y)))
            if len(clock) == warmup + steps:
                break
    return _rate(clock, warmup)


def run_alzmri(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, model: str, image_size: int, *, batch_size: int,
               lr: float, steps: int, warmup: int = 2, seed: int = 42, precision: str = "auto", augment: bool = False,
               model_kwargs: dict | None = None, trainer_kwargs: dict | None = None, module_kwargs: dict | None = None) -> dict:
    """Train ``steps + warmup`` steps with alzmri's DataModule, SliceClassifier and Trainer settings.

    ``trainer_kwargs`` and ``module_kwargs`` override the defaults (used by the lever
    measurements). Returns images/s of the timed steps and the precision used.
    """
    import lightning as L

    from alzmri.data import notebook_augmentation
    from alzmri.data import SliceDataModule
    from alzmri.models import create_model, get_spec
    from alzmri.training import SliceClassifier
    from alzmri.training.lightning_setup import quiet_lightning
    from alzmri.training.precision import resolve_precision

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.clock: list[tuple[float, int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.clock.append((_bench.step_clock(), len(batch[1])))

    quiet_lightning()
    spec = get_spec(model)
    L.seed_everything(seed, workers=True, verbose=False)
    net = create_model(model, in_chans=1, image_size=image_size, **(model_kwargs or {}))
    module = SliceClassifier(net, lr=lr, mean=spec.mean, std=spec.std, in_chans=1,
                             augment=notebook_augmentation() if augment else None, **(module_kwargs or {}))
    dm = SliceDataModule(images, labels, splits, batch_size=batch_size, seed=seed)
    clock = StepClock()
    prec = resolve_precision(precision, "auto")
    kwargs = dict(max_steps=warmup + steps, max_epochs=-1, accelerator="auto", devices=1, precision=prec, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  deterministic=not torch.cuda.is_available(), num_sanity_val_steps=0, limit_val_batches=0, callbacks=[clock])
    kwargs.update(trainer_kwargs or {})
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        L.Trainer(**kwargs).fit(module, datamodule=dm)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return {**_rate(clock.clock, warmup), "precision": prec}


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding, _groups,
                         output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient (input, weight) costs
    the multiply-accumulates of the forward convolution, for any ``groups``.

    torch's own formula (torch/utils/flop_counter.py, ``conv_backward_flop``, up to at
    least 2.14) counts the weight gradient of a grouped convolution ``groups`` times over
    (pytorch/pytorch#183405): 21x MobileNetV2's real training FLOPs at 64 x 64.
    """
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def train_flops_per_image(model: str, in_chans: int, image_size: int, *, model_kwargs: dict | None = None) -> int:
    """FLOPs of one training image: forward + backward of cross-entropy (optimiser not counted).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of 2 in
    training mode (2 FLOPs per multiply-accumulate; convolutions and matrix products),
    with the convolution backward formula of :func:`_conv_backward_flops`.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from alzmri import create_model

    torch.manual_seed(0)
    net = create_model(model, in_chans=in_chans, image_size=image_size, **(model_kwargs or {})).train()
    x = torch.rand(2, in_chans, image_size, image_size)
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    with counter:
        F.cross_entropy(net(x), torch.tensor([0, 1])).backward()
    return int(counter.get_total_flops()) // 2


# ---------------------------------------------------------------------------- measurement


def measure_throughput(data: Path, *, models=MODELS, image_size: int = 64, batch_size: int = 128, lr: float = 3e-4,
                       steps: int = 8, warmup: int = 2, rounds: int = 2, workers: int = 2, seed: int = 42,
                       augment: bool = False, bf16_steps: int = 2, peak_sizes=(1024, 2048), peak_repeats: int = 5,
                       cache_dir: Path | None = None) -> dict:
    """Alternate the two pipelines ``rounds`` times per model; FLOPs and peaks in the same run.

    Returns
    -------
    dict
        ``machine``, ``settings``, ``peak_gflops`` (fp32, bf16), ``decode_once_s``,
        ``cache_load_s``, ``models`` (per model: runs, medians, speedup, GFLOPs per image,
        achieved GFLOP/s and peak fractions) and the headline keys for AltzCNN (or the first
        model): ``notebook_images_per_s``, ``alzmri_images_per_s``, ``speedup``,
        ``fp32_peak_fraction``, ``bf16_peak_fraction``, ``precision_used``.
    """
    out: dict = {"benchmark": "train_throughput", "machine": _bench.machine()}
    out["settings"] = dict(data=str(data), models=list(models), image_size=image_size, batch_size=batch_size, lr=lr, steps=steps,
                           warmup=warmup, rounds=rounds, notebook_workers=workers, seed=seed, augment=augment,
                           bf16_steps=bf16_steps, threads=torch.get_num_threads(), clock=_bench.clock_name())
    _bench.log(f"matmul peak (sizes {peak_sizes}) ...")
    peak32 = _bench.matmul_peak_flops(torch.float32, sizes=tuple(peak_sizes), repeats=peak_repeats)
    peak16 = _bench.matmul_peak_flops(torch.bfloat16, sizes=tuple(peak_sizes), repeats=max(2, peak_repeats // 2))
    out["peak_gflops"] = {"fp32": peak32 / 1e9, "bf16": peak16 / 1e9}
    _bench.log(f"peak fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.1f} GFLOP/s; decoding into the cache ...")
    d = load_split(data, image_size, seed=seed, cache_dir=cache_dir)
    out["hash_s"], out["decode_once_s"], out["cache_load_s"] = d["hash_s"], d["decode_once_s"], d["cache_load_s"]
    out["n_train_images"] = int((d["splits"] == "train").sum())
    train_rows = np.flatnonzero(d["splits"] == "train")
    per_model = {}
    for m in models:
        nb_ds = notebook_dataset(d["index"], train_rows, image_size, model=m, augment=augment)
        runs: dict[str, list[dict]] = {"notebook": [], "alzmri": []}
        for r in range(rounds):
            order = ("notebook", "alzmri") if r % 2 == 0 else ("alzmri", "notebook")
            for p in order:
                if p == "notebook":
                    res = run_notebook(nb_ds, m, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup, workers=workers, seed=seed)
                else:
                    res = run_alzmri(d["images"], d["labels"], d["splits"], m, image_size, batch_size=batch_size, lr=lr, steps=steps,
                                     warmup=warmup, seed=seed, augment=augment)
                runs[p].append(res)
                _bench.log(f"{m} round {r + 1}/{rounds} {p}: {res['images_per_s']:.1f} images/s")
        nb = statistics.median(x["images_per_s"] for x in runs["notebook"])
        az = statistics.median(x["images_per_s"] for x in runs["alzmri"])
        f_nb = train_flops_per_image(m, 3, image_size)
        f_az = train_flops_per_image(m, 1, image_size)
        prec = runs["alzmri"][0]["precision"]
        peak_used = peak16 if prec.startswith("bf16") else peak32
        row = {
            "notebook_images_per_s": nb,
            "alzmri_images_per_s": az,
            "speedup": az / nb,
            "notebook_runs": [x["images_per_s"] for x in runs["notebook"]],
            "alzmri_runs": [x["images_per_s"] for x in runs["alzmri"]],
            "precision_used": prec,
            "train_gflops_per_image_notebook": f_nb / 1e9,
            "train_gflops_per_image_alzmri": f_az / 1e9,
            "notebook_gflops_per_s": f_nb * nb / 1e9,
            "alzmri_gflops_per_s": f_az * az / 1e9,
            "notebook_fp32_peak_fraction": f_nb * nb / peak32,
            "alzmri_peak_fraction": f_az * az / peak_used,
            "fp32_peak_fraction": f_az * az / peak32,
        }
        if m == "altzcnn" and bf16_steps > 0:
            b = run_alzmri(d["images"], d["labels"], d["splits"], m, image_size, batch_size=batch_size, lr=lr, steps=bf16_steps,
                           warmup=1, seed=seed, precision="bf16-mixed", augment=augment)
            row["bf16_images_per_s"] = b["images_per_s"]
            row["bf16_gflops_per_s"] = f_az * b["images_per_s"] / 1e9
            row["bf16_peak_fraction"] = f_az * b["images_per_s"] / peak16
            _bench.log(f"{m} alzmri bf16-mixed: {b['images_per_s']:.1f} images/s")
        per_model[m] = row
    out["models"] = per_model
    head = per_model.get("altzcnn") or next(iter(per_model.values()))
    for k in ("notebook_images_per_s", "alzmri_images_per_s", "speedup", "fp32_peak_fraction", "bf16_peak_fraction", "precision_used"):
        if k in head:
            out[k] = head[k]
    return out


def _val_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    return {"val_accuracy": float(np.mean(y_true == y_pred)), "val_balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}


def notebook_fit(index, splits: np.ndarray, *, model: str, image_size: int, batch_size: int, lr: float, epochs: int, workers: int,
                 seed: int, model_kwargs: dict, augment: bool = False) -> dict:
    """The notebook's loop for ``epochs`` full epochs, validated after each; per-epoch metrics and time."""
    from torch.utils.data import DataLoader

    from alzmri import create_model

    tr = notebook_dataset(index, np.flatnonzero(splits == "train"), image_size, model=model, augment=augment)
    va = notebook_dataset(index, np.flatnonzero(splits == "val"), image_size, model=model)
    torch.manual_seed(seed)
    net = create_model(model, in_chans=3, image_size=image_size, **model_kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    train_loader = DataLoader(tr, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(va, batch_size=batch_size, shuffle=False, num_workers=workers)
    history = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        for x, y in train_loader:
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
        net.eval()
        preds, true = [], []
        with torch.no_grad():
            for x, y in val_loader:
                preds.append(net(x).argmax(1))
                true.append(y)
        history.append({"epoch": epoch + 1, **_val_metrics(torch.cat(true).numpy(), torch.cat(preds).numpy())})
        _bench.log(f"notebook epoch {epoch + 1}: {history[-1]}")
    return {"history": history, "fit_s": time.perf_counter() - t0}


def measure_accuracy(data: Path, *, image_size: int = 32, batch_size: int = 32, lr: float = 3e-4, epochs: int = 6, workers: int = 2,
                     seeds=(42,), model_kwargs: dict | None = None, augment: bool = False, work_dir: Path | None = None) -> dict:
    """Validation metrics of AltzCNN after ``epochs`` epochs through each pipeline, per seed.

    (b) is ``alzmri train`` itself (:func:`alzmri.pipeline.train`, stratified
    split, no test evaluation); (a) reads the run's ``manifest.csv`` so both see the same
    training and validation images. Seeds set the initialisation and shuffling of both.
    """
    import csv

    from alzmri import load_train_config
    from alzmri.data import discover
    from alzmri.data import load_manifest
    from alzmri import train

    model_kwargs = {"init": "he", "fc_dropout": 0.0} if model_kwargs is None else model_kwargs
    index = discover(data)
    out: dict = {"benchmark": "train_accuracy", "machine": _bench.machine()}
    out["settings"] = dict(data=str(data), model="altzcnn", image_size=image_size, batch_size=batch_size, lr=lr, epochs=epochs,
                           notebook_workers=workers, seeds=list(seeds), model_kwargs=model_kwargs, augment=augment, split="stratified")
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="alzmri-bench-acc-", dir=work_dir) as tmp:
        for seed in seeds:
            cfg = load_train_config(model="altzcnn", data=index.root, out=Path(tmp) / f"run-{seed}", epochs=epochs, batch_size=batch_size,
                                    lr=lr, image_size=image_size, seed=seed, split_strategy="stratified", model_kwargs=model_kwargs,
                                    augment=augment, evaluate=False)
            t0 = time.perf_counter()
            run = train(cfg, progress=False)
            az_wall = time.perf_counter() - t0
            info = json.loads((run / "run.json").read_text())
            with (run / "history.csv").open() as f:
                az_hist = [{"epoch": int(float(r["epoch"])), "val_accuracy": float(r["val_accuracy"]),
                            "val_balanced_accuracy": float(r["val_balanced_accuracy"])} for r in csv.DictReader(f)]
            _bench.log(f"alzmri seed {seed}: {az_hist[-1]}")
            splits = load_manifest(run / "manifest.csv", index).splits
            nb = notebook_fit(index, splits, model="altzcnn", image_size=image_size, batch_size=batch_size, lr=lr, epochs=epochs,
                              workers=workers, seed=seed, model_kwargs=model_kwargs, augment=augment)
            per_seed.append({
                "seed": seed,
                "n_train": int((splits == "train").sum()),
                "n_val": int((splits == "val").sum()),
                "alzmri_history": az_hist,
                "notebook_history": nb["history"],
                "alzmri_fit_s": info["train_time_s"],
                "alzmri_train_call_s": az_wall,
                "notebook_fit_s": nb["fit_s"],
            })
    out["seeds"] = per_seed
    for key in ("val_accuracy", "val_balanced_accuracy"):
        a = [s["alzmri_history"][-1][key] for s in per_seed]
        n = [s["notebook_history"][-1][key] for s in per_seed]
        out[f"alzmri_{key}"] = float(np.mean(a))
        out[f"notebook_{key}"] = float(np.mean(n))
        out[f"{key}_difference"] = float(np.mean(a) - np.mean(n))
    out["fit_time_ratio"] = float(np.mean([s["notebook_fit_s"] / s["alzmri_fit_s"] for s in per_seed]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_bench.DATA_6400)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registered model names")
    p.add_argument("--image-size", type=int, default=None, help="default 64 (throughput), 32 (--accuracy)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (the notebook's; throughput), 32 (--accuracy)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    p.add_argument("--steps", type=int, default=8, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run")
    p.add_argument("--rounds", type=int, default=2, help="runs of each pipeline per model, alternated")
    p.add_argument("--notebook-workers", type=int, default=2, help="DataLoader worker processes of the notebook pipeline")
    p.add_argument("--bf16-steps", type=int, default=2, help="timed steps of the extra bf16-mixed AltzCNN run (0: none)")
    p.add_argument("--augment", action="store_true", help="both pipelines augment (the notebook trained AltzCNN without)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: time steps and the peak by process CPU time with one thread and no DataLoader workers "
                        "(ratios robust to other jobs' load; worker processes' CPU time could not be counted)")
    p.add_argument("--peak-sizes", default="1024,2048", help="matrix sides for the matmul peak")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--accuracy", action="store_true", help="compare validation metrics after --accuracy-epochs instead")
    p.add_argument("--accuracy-epochs", type=int, default=6)
    p.add_argument("--seeds", default="42", help="--accuracy: comma-separated seeds")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.clock == "cpu":
        _bench.use_cpu_clock()
        a.notebook_workers = 0
    if a.accuracy:
        res = measure_accuracy(a.data, image_size=a.image_size or 32, batch_size=a.batch_size or 32, lr=a.lr,
                               epochs=a.accuracy_epochs, workers=a.notebook_workers, seeds=[int(s) for s in a.seeds.split(",")],
                               augment=a.augment)
    else:
        res = measure_throughput(a.data, models=[m for m in a.models.split(",") if m], image_size=a.image_size or 64,
                                 batch_size=a.batch_size or 128, lr=a.lr, steps=a.steps, warmup=a.warmup, rounds=a.rounds,
                                 workers=a.notebook_workers, seed=a.seed, augment=a.augment, bf16_steps=a.bf16_steps,
                                 peak_sizes=[int(s) for s in a.peak_sizes.split(",")])
    _bench.emit(_bench.round_floats(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
