"""Bounded load test of `alzmri serve`: throughput, latency percentiles, failures, server memory.

Run from the repository root::

    .venv/bin/python benchmarks/load_test.py                      # trains a tiny run first (~1 min)
    .venv/bin/python benchmarks/load_test.py --run runs/main-6400   # an existing run folder

For each serving mode (``--modes``, default both: ``batched`` = micro-batching on,
``per-request`` = one forward pass per request) it starts ``python -m alzmri serve RUN``
as a subprocess on 127.0.0.1 with a free port, waits for ``GET /health``, sends
``--warmup`` requests that are not counted, then ``--rounds`` rounds of exactly
``--requests`` ``POST /predict`` requests from ``--clients`` concurrent clients (each
client sends its next request as soon as its previous one is answered; the uploads are
``--images`` real JPEG slices of the 6,400 set, cycled). After each round it records the
throughput (requests / wall-clock seconds of the round), the p50/p95/p99 latency (ms,
send to full answer), the failed requests (any status but 200, or a transport error) and
the server process's resident memory (RSS, MB = 10^6 bytes). Then it stops the server.

Without ``--run`` a tiny run is trained first (AltzCNN at 64 x 64, the main job's input
size, so the forward pass costs what the real model's does: 1 epoch on 20 real slices
per class, ``--split-strategy stratified``; its accuracy is irrelevant here).

The check: no failed request, and the RSS after the last round at most
``--max-rss-growth-mb`` above the RSS after the first round. Progress goes to stderr;
the last line printed is one JSON object with every number, the command and the
machine. Exit code 0 when the check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA_6400 = REPO.parent / "shared" / "datasets" / "alzheimer-mri-6400"
MODES = {"batched": "--micro-batch", "per-request": "--no-micro-batch"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (10^6 bytes)."""
    status = Path(f"/proc/{pid}/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    import psutil  # not Linux

    return psutil.Process(pid).memory_info().rss / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    import psutil  # not Linux

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def train_tiny_run(data: Path, work: Path, per_class: int) -> tuple[Path, float]:
    """Train AltzCNN 64 x 64 for 1 epoch on ``per_class`` real slices per class; (run folder, seconds)."""
    subset = work / "data"
    for cls_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(cls_dir.glob("*.jpg"))[::7][:per_class]
        (subset / cls_dir.name).mkdir(parents=True)
        for f in files:
            (subset / cls_dir.name / f.name).symlink_to(f)
    run = work / "run"
    cmd = [sys.executable, "-m", "alzmri", "train", "--model", "altzcnn", "--data", str(subset), "--out", str(run), "--epochs", "1", "--image-size", "64",
           "--batch-size", "16", "--split-strategy", "stratified", "--seed", "0", "--no-progress"]
    log("training a tiny run: " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "ALZMRI_CACHE_DIR": str(work / "cache")})
    if res.returncode != 0:
        raise SystemExit(f"training the tiny run failed ({res.returncode}): {res.stderr[-2000:]}")
    return run, time.perf_counter() - t0


class Server:
    """`python -m alzmri serve RUN` on 127.0.0.1 and a free port, as a context manager."""

    def __init__(self, run: Path, mode: str, backend: str | None, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "alzmri", "serve", str(run), "--port", str(self.port), MODES[mode]] + (["--backend", backend] if backend else [])
        self.log_path = log_path

    def __enter__(self) -> "Server":
        import httpx

        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        t0 = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                r = httpx.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    self.health = r.json()
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > 180:
                self.proc.kill()
                raise SystemExit("server did not answer /health within 180 s")
            time.sleep(0.2)
        self.startup_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


async def send_round(url: str, payloads: list[tuple[str, bytes]], n_requests: int, clients: int, explain: bool) -> dict:
    """``n_requests`` POST /predict from ``clients`` concurrent clients; latencies (s), failures, wall time."""
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(n_requests))
    params = {"explain": "true"} if explain else {}

    async def client_loop(ac: httpx.AsyncClient) -> None:
        for i in counter:
            name, data = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            try:
                r = await ac.post("/predict", params=params, files={"file": (name, data, "image/jpeg")})
                ok = r.status_code == 200 and "predicted_class" in r.json()
                if not ok:
                    failures.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as ac:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(ac) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "failures": failures, "wall_s": wall}


def summarise(lat_s: list[float]) -> dict:
    ms = np.asarray(lat_s) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)} | {"mean_ms": round(float(ms.mean()), 2), "max_ms": round(float(ms.max()), 2)}


def run_mode(run: Path, mode: str, args, payloads, work: Path) -> dict:
    with Server(run, mode, args.backend, work / f"serve-{mode}.log") as srv:
        log(f"{mode}: server up in {srv.startup_s:.1f} s ({srv.health['model']['version']}, backend {srv.health['model']['backend']}); rss {rss_mb(srv.proc.pid):.0f} MB")
        warm = asyncio.run(send_round(srv.url, payloads, args.warmup, args.clients, args.explain))
        rounds, all_lat = [], []
        for k in range(args.rounds):
            cpu0 = cpu_seconds(srv.proc.pid)
            res = asyncio.run(send_round(srv.url, payloads, args.requests, args.clients, args.explain))
            cpu = cpu_seconds(srv.proc.pid) - cpu0
            mem = rss_mb(srv.proc.pid)
            n = len(res["latencies"])
            row = {"round": k + 1, "requests": n, "failed": len(res["failures"]), "wall_s": round(res["wall_s"], 3),
                   "throughput_rps": round(n / res["wall_s"], 2), **summarise(res["latencies"]), "rss_mb": round(mem, 1),
                   "server_cpu_ms_per_request": round(1000 * cpu / n, 2), "server_cores_used": round(cpu / res["wall_s"], 2)}
            if res["failures"]:
                row["first_failures"] = res["failures"][:3]
            rounds.append(row)
            all_lat += res["latencies"]
            log(f"{mode} round {k + 1}: {row['throughput_rps']} req/s, p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
                f"failed {row['failed']}, rss {row['rss_mb']} MB, server CPU {row['server_cpu_ms_per_request']} ms/request on {row['server_cores_used']} cores")
        import httpx

        health = httpx.get(srv.url + "/health", timeout=10).json()
    growth = rounds[-1]["rss_mb"] - rounds[0]["rss_mb"]
    total = sum(r["requests"] for r in rounds)
    return {
        "mode": mode,
        "startup_s": round(srv.startup_s, 2),
        "warmup_failed": len(warm["failures"]),
        "rounds": rounds,
        "requests": total,
        "failed": sum(r["failed"] for r in rounds) + len(warm["failures"]),
        "throughput_rps": round(total / sum(r["wall_s"] for r in rounds), 2),
        "server_cpu_ms_per_request": round(sum(r["server_cpu_ms_per_request"] * r["requests"] for r in rounds) / total, 2),
        "latency": summarise(all_lat),
        "rss_first_round_mb": rounds[0]["rss_mb"],
        "rss_last_round_mb": rounds[-1]["rss_mb"],
        "rss_growth_mb": round(growth, 1),
        "batching_stats": health.get("batching_stats"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="run folder to serve (default: train a tiny one)")
    ap.add_argument("--data", type=Path, default=DATA_6400, help="class folders of JPEG slices (uploads, and the tiny run's data)")
    ap.add_argument("--modes", default="batched,per-request", help="comma-separated: batched, per-request")
    ap.add_argument("--backend", choices=["torch", "onnx"], help="serve --backend (default: the service's default)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients")
    ap.add_argument("--requests", type=int, default=200, help="requests per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=24, help="requests sent before the rounds, not counted")
    ap.add_argument("--images", type=int, default=32, help="distinct real slices uploaded (cycled)")
    ap.add_argument("--explain", action="store_true", help="ask for Grad-CAM (?explain=true) in every request")
    ap.add_argument("--per-class", type=int, default=20, help="tiny run: training slices per class")
    ap.add_argument("--max-rss-growth-mb", type=float, default=25.0, help="allowed RSS growth from the first to the last round")
    args = ap.parse_args(argv)

    import torch

    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: dataset folder not found; pass --data")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; use {', '.join(MODES)}")
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="alzmri-load-"))
    try:
        train_s = None
        run = args.run
        if run is None:
            run, train_s = train_tiny_run(args.data, work, args.per_class)
            log(f"tiny run trained in {train_s:.1f} s")
        files = sorted(args.data.rglob("*.jpg"))
        step = max(1, len(files) // args.images)
        payloads = [(f.name, f.read_bytes()) for f in files[::step][: args.images]]
        results = {m: run_mode(run, m, args, payloads, work) for m in modes}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks = {m: {"no_failed_request": r["failed"] == 0, "memory_flat": r["rss_growth_mb"] <= args.max_rss_growth_mb} for m, r in results.items()}
    ok = all(all(c.values()) for c in checks.values())
    faster = max(results, key=lambda m: results[m]["throughput_rps"]) if len(results) > 1 else None
    out = {
        "command": ("python benchmarks/load_test.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "run": str(args.run) if args.run else f"tiny AltzCNN 64x64 (1 epoch, {args.per_class} slices per class, trained here)",
        "train_s": None if train_s is None else round(train_s, 1),
        "settings": {"clients": args.clients, "requests_per_round": args.requests, "rounds": args.rounds, "warmup": args.warmup, "images": len(payloads), "explain": args.explain, "backend": args.backend or "default"},
        "results": results,
        "faster_mode": faster,
        "speedup": round(results["batched"]["throughput_rps"] / results["per-request"]["throughput_rps"], 3) if {"batched", "per-request"} <= set(results) else None,
        "checks": checks,
        "ok": ok,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "loadavg_1m_start": round(load_start[0], 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        },
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(out), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
