"""What holds AltzCNN training back on a CPU: a torch.profiler breakdown and measured levers.

Run from the repository root (about 5 minutes on a quiet 2-core CPU)::

    .venv/bin/python benchmarks/train_levers.py                     # every lever but threads and compile
    .venv/bin/python benchmarks/train_levers.py --levers threads,compile
    .venv/bin/python benchmarks/train_levers.py --steps 6 --rounds 3 --model mobilenet_v2   # longer, another model

Plain-loop variants use the layout alzmri trains with (channels-last on a CPU) unless the
lever is the layout. Every lever is measured on the same cached training images (stratified split of
``--data``, decoded once at ``--image-size``) against its baseline *in the same run*,
the variants alternating over ``--rounds`` rounds with the order rotated every round;
the figure kept is the median images/s over rounds of the steps after ``--warmup``
untimed ones. Levers (names for ``--levers``):

``defaults``   alzmri's pipeline with ``SliceClassifier``'s defaults (on a CPU: channels-last)
               against the same with ``channels_last=False`` (alzmri before this change).
``lightning``  the Lightning ``Trainer`` as ``alzmri train`` runs it (the ``SliceClassifier``
               step with its defaults) against a plain loop over the same DataModule,
               ``prepare_batch``, model, loss and Adam with the same layout and optimiser:
               Lightning's per-step overhead.
``layout``     channels-last (NHWC) model and input against NCHW, plain loop, foreach Adam.
``adam``       Adam's fused kernel (``fused=True``) against ``foreach``, plain loop.
``deterministic``  ``Trainer(deterministic=True)`` (alzmri's CPU default) against False.
``threads``    intra-op threads 1 and all cores, inter-op threads 1, and OpenMP's passive
               wait policy (``OMP_WAIT_POLICY=PASSIVE``: idle threads sleep instead of
               spinning), each in a fresh subprocess (these can only be set before any
               parallel work).
``batch``      batch sizes 32, 64, 128, 256 (images/s; the same number of images).
``compile``    ``torch.compile`` (inductor) of the model: compile time (first steps minus
               eager steps) and steady-state images/s against eager.
``profile``    torch.profiler over ``--steps`` plain-loop steps: the share of step time
               spent in data (batch indexing and ``prepare_batch``), forward, backward and
               the optimiser, and the operators with the most self CPU time.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402
from train_throughput import load_split, run_alzmri  # noqa: E402

LEVERS = ("defaults", "lightning", "layout", "adam", "deterministic", "threads", "batch", "compile", "profile")
#: Measured by default (about 5 minutes); ``threads`` (fresh subprocesses) and ``compile``
#: (a minute or more of compilation) only when named.
DEFAULT_LEVERS = tuple(x for x in LEVERS if x not in ("threads", "compile"))


def plain_loop(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, *, model: str = "altzcnn", image_size: int = 64,
               batch_size: int = 128, lr: float = 3e-4, steps: int = 8, warmup: int = 2, seed: int = 42,
               channels_last: bool | None = None, fused: bool = False, compile: bool = False, profile: bool = False) -> dict:
    """alzmri's training step without Lightning: DataModule batches, prepare_batch, model, loss, Adam.

    ``channels_last=None`` uses the layout ``SliceClassifier`` picks by default (channels-last
    on a CPU).

    Returns images/s of the steps after ``warmup`` and, with ``compile``, the seconds of the
    warm-up steps (which hold the compilation); with ``profile`` the profiler table.
    """
    from torch.profiler import ProfilerActivity, profile as tprofile, record_function

    from alzmri.data import SliceDataModule
    from alzmri.models import create_model, get_spec
    from alzmri.data import prepare_batch

    spec = get_spec(model)
    torch.manual_seed(seed)
    net = create_model(model, in_chans=1, image_size=image_size).train()
    if channels_last is None:
        channels_last = not torch.cuda.is_available()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    step_net = torch.compile(net) if compile else net
    opt = torch.optim.Adam(net.parameters(), lr=lr, fused=True if fused else None)
    loader = SliceDataModule(images, labels, splits, batch_size=batch_size, seed=seed).train_dataloader()
    clock: list[tuple[float, int]] = []
    t_first = _bench.step_clock()
    prof_ctx = tprofile(activities=[ProfilerActivity.CPU]) if profile else contextlib.nullcontext()
    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    with prof_ctx as prof:
        while len(clock) < warmup + steps:
            it = iter(loader)
            while len(clock) < warmup + steps:
                t0 = _bench.step_clock()
                with record_function("data"):
                    try:
                        x, y = next(it)
                    except StopIteration:
                        break
                    x = prepare_batch(x, mean=spec.mean, std=spec.std, in_chans=1).contiguous(memory_format=fmt)
                t1 = _bench.step_clock()
                with record_function("forward"):
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(step_net(x), y)
                t2 = _bench.step_clock()
                with record_function("backward"):
                    loss.backward()
                t3 = _bench.step_clock()
                with record_function("optimizer"):
                    opt.step()
                t4 = _bench.step_clock()
                if len(clock) >= warmup:
                    for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                        phases[k] += dt
                clock.append((t4, len(y)))
    t_start, t_end = clock[warmup - 1][0], clock[-1][0]
    n = sum(b for _, b in clock[warmup:])
    res = {"images_per_s": n / (t_end - t_start), "warmup_s": t_start - t_first,
           "phase_share": {k: v / (t_end - t_start) for k, v in phases.items()}}
    if profile:
        res["profile_table"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        res["top_ops"] = {e.key: e.self_cpu_time_total / total for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]}
    return res


def _alternate(variants: dict, rounds: int) -> dict:
    """Run every variant ``rounds`` times, rotating the order each round; median images/s."""
    names = list(variants)
    runs: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            res = variants[name]()
            runs[name].append(res["images_per_s"])
            _bench.log(f"  {name} round {r + 1}/{rounds}: {res['images_per_s']:.1f} images/s")
    med = {n: statistics.median(v) for n, v in runs.items()}
    base = names[0]
    return {"images_per_s": med, "runs": runs, "ratio_to_" + base: {n: med[n] / med[base] for n in names}}


def _subprocess_run(args: list[str], threads: int, interop: int | None, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--single", "--threads", str(threads), *args]
    if interop:
        cmd += ["--interop", str(interop)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_levers(data: Path, *, levers=LEVERS, model: str = "altzcnn", image_size: int = 64, batch_size: int = 128, lr: float = 3e-4, steps: int = 6,
                   warmup: int = 2, rounds: int = 2, seed: int = 42, compile_steps: int = 6, batch_sizes=(32, 64, 128, 256),
                   cache_dir: Path | None = None) -> dict:
    """Measure each lever of ``levers`` against its baseline in this run (see the module notes)."""
    out: dict = {"benchmark": "train_levers", "machine": _bench.machine()}
    out["settings"] = dict(data=str(data), model=model, image_size=image_size, batch_size=batch_size, lr=lr, steps=steps,
                           warmup=warmup, rounds=rounds, seed=seed, levers=list(levers),
                           clock=_bench.clock_name(), threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="alzmri-bench-cache-") as tmp:
        cache_dir = Path(cache_dir) if cache_dir is not None else Path(tmp)
        out["levers"] = _measure(data, cache_dir, levers=levers, model=model, image_size=image_size, batch_size=batch_size, lr=lr, steps=steps,
                                 warmup=warmup, rounds=rounds, seed=seed, compile_steps=compile_steps, batch_sizes=batch_sizes)
    return out


def _measure(data: Path, cache_dir: Path, *, levers, model, image_size, batch_size, lr, steps, warmup, rounds, seed, compile_steps, batch_sizes) -> dict:
    d = load_split(data, image_size, seed=seed, cache_dir=cache_dir)
    im, lab, spl = d["images"], d["labels"], d["splits"]
    common = dict(model=model, image_size=image_size, lr=lr, warmup=warmup, seed=seed)
    plain = lambda **kw: (lambda: plain_loop(im, lab, spl, batch_size=batch_size, steps=steps, **common, **kw))  # noqa: E731
    res: dict = {}
    if "defaults" in levers:
        _bench.log("lever: SliceClassifier defaults (channels-last on a CPU) vs NCHW")
        res["defaults"] = _alternate({
            "nchw": lambda: run_alzmri(im, lab, spl, model, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup, seed=seed,
                                       module_kwargs={"channels_last": False}),
            "defaults": lambda: run_alzmri(im, lab, spl, model, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup, seed=seed),
        }, rounds)
    if "lightning" in levers:
        _bench.log("lever: Lightning Trainer vs plain loop")
        res["lightning"] = _alternate({
            "lightning": lambda: run_alzmri(im, lab, spl, model, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup, seed=seed),
            "plain": plain(),
        }, rounds)
    if "layout" in levers:
        _bench.log("lever: channels-last")
        res["layout"] = _alternate({"nchw": plain(channels_last=False), "channels_last": plain(channels_last=True)}, rounds)
    if "adam" in levers:
        _bench.log("lever: fused Adam")
        res["adam"] = _alternate({"foreach": plain(), "fused": plain(fused=True)}, rounds)
    if "deterministic" in levers:
        _bench.log("lever: deterministic")
        res["deterministic"] = _alternate({
            "deterministic": lambda: run_alzmri(im, lab, spl, model, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup, seed=seed),
            "not_deterministic": lambda: run_alzmri(im, lab, spl, model, image_size, batch_size=batch_size, lr=lr, steps=steps, warmup=warmup,
                                                    seed=seed, trainer_kwargs={"deterministic": False}),
        }, rounds)
    if "threads" in levers:
        _bench.log("lever: threads (subprocesses)")
        args = ["--data", str(data), "--image-size", str(image_size), "--batch-size", str(batch_size), "--steps", str(steps),
                "--warmup", str(warmup), "--lr", str(lr), "--cache-dir", str(cache_dir), "--model", model]
        cores = os.cpu_count() or 1
        variants = {f"intra{cores}": lambda: _subprocess_run(args, cores, None),
                    "intra1": lambda: _subprocess_run(args, 1, None),
                    f"intra{cores}_interop1": lambda: _subprocess_run(args, cores, 1),
                    f"intra{cores}_passive": lambda: _subprocess_run(args, cores, None, {"OMP_WAIT_POLICY": "PASSIVE"})}
        res["threads"] = _alternate(variants, rounds)
    if "batch" in levers:
        _bench.log("lever: batch size")
        n_images = max(batch_sizes) * steps
        res["batch"] = _alternate({f"batch{b}": (lambda b=b: plain_loop(im, lab, spl, batch_size=b, steps=max(1, n_images // b), **common))
                                   for b in batch_sizes}, rounds)
    if "compile" in levers:
        _bench.log("lever: torch.compile")
        eager = plain_loop(im, lab, spl, batch_size=batch_size, steps=compile_steps, **common)
        t0 = time.perf_counter()
        comp = plain_loop(im, lab, spl, batch_size=batch_size, steps=compile_steps, compile=True, **common)
        total = time.perf_counter() - t0
        eager2 = plain_loop(im, lab, spl, batch_size=batch_size, steps=compile_steps, **common)
        eager_ips = statistics.median([eager["images_per_s"], eager2["images_per_s"]])
        eager_warm = statistics.median([eager["warmup_s"], eager2["warmup_s"]])
        res["compile"] = {
            "eager_images_per_s": eager_ips,
            "compiled_images_per_s": comp["images_per_s"],
            "ratio": comp["images_per_s"] / eager_ips,
            "compile_s": comp["warmup_s"] - eager_warm,
            "compiled_run_s": total,
        }
        _bench.log(f"  compile: {res['compile']}")
    if "profile" in levers:
        _bench.log("profile (torch.profiler)")
        p = plain_loop(im, lab, spl, batch_size=batch_size, steps=steps, profile=True, **common)
        print(p.pop("profile_table"), file=sys.stderr)
        res["profile"] = {"phase_share": p["phase_share"], "top_ops_self_cpu_share": p["top_ops"]}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_bench.DATA_6400)
    p.add_argument("--levers", default=",".join(DEFAULT_LEVERS), help=f"comma-separated subset of {','.join(LEVERS)}")
    p.add_argument("--model", default="altzcnn", help="registered model name")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--compile-steps", type=int, default=6)
    p.add_argument("--batch-sizes", default="32,64,128,256")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cache-dir", type=Path, default=None, help="alzmri cache folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--interop", type=int, default=0, help="torch.set_num_interop_threads (0: torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time steps by wall clock, or by process CPU time with one thread (ratios robust to other jobs' load)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one plain-loop run (the threads lever's subprocess)
    a = p.parse_args(argv)
    if a.interop:
        torch.set_num_interop_threads(a.interop)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.clock == "cpu":
        _bench.use_cpu_clock()
    if a.single:
        d = load_split(a.data, a.image_size, seed=a.seed, cache_dir=a.cache_dir)
        r = plain_loop(d["images"], d["labels"], d["splits"], model=a.model, image_size=a.image_size, batch_size=a.batch_size, lr=a.lr, steps=a.steps,
                       warmup=a.warmup, seed=a.seed)
        print(json.dumps({"images_per_s": r["images_per_s"], "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads()}))
        return 0
    res = measure_levers(a.data, levers=[x for x in a.levers.split(",") if x], model=a.model, image_size=a.image_size, batch_size=a.batch_size, lr=a.lr,
                         steps=a.steps, warmup=a.warmup, rounds=a.rounds, seed=a.seed, compile_steps=a.compile_steps,
                         batch_sizes=[int(b) for b in a.batch_sizes.split(",")], cache_dir=a.cache_dir)
    _bench.emit(_bench.round_floats(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
