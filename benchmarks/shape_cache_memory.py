"""Memory of a PyTorch forward pass fed every batch size, with and without batch buckets.

Run from the repository root::

    .venv/bin/python benchmarks/shape_cache_memory.py RUN [--max-batch 32] [--passes 2]

For each variant, in a fresh subprocess, it loads the run's model and calls
:func:`alzmri.runs.predict_proba` on batch sizes 1, 2, ..., ``--max-batch``
(random uint8 slices), ``--passes`` times, printing the process's resident memory (RSS,
MB = 10^6 bytes) after loading and after each pass. ``plain`` calls it directly;
``buckets`` through :func:`alzmri.inference.backends.bucketed` (batch sizes of
:data:`alzmri.inference.backends.BATCH_BUCKETS` only), as the service does. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, os, sys
import numpy as np
from alzmri.runs import predict_proba
from alzmri import load_model
from alzmri.inference.backends import bucketed

def rss():
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)

run, variant, max_batch, passes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model, info = load_model(run)
fn = lambda x: predict_proba(model, info, x)
if variant == "buckets":
    fn = bucketed(fn)
x = np.random.default_rng(0).integers(0, 256, (max_batch, info.image_size, info.image_size), dtype=np.uint8)
out = {"variant": variant, "rss_loaded_mb": rss(), "rss_after_pass_mb": []}
for _ in range(passes):
    for n in range(1, max_batch + 1):
        fn(x[:n])
    out["rss_after_pass_mb"].append(rss())
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run folder")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args(argv)
    results = []
    for variant in ("plain", "buckets"):
        res = subprocess.run([sys.executable, "-c", CHILD, args.run, variant, str(args.max_batch), str(args.passes)], capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["growth_mb"] = round(row["rss_after_pass_mb"][-1] - row["rss_loaded_mb"], 1)
        print(f"{variant}: {row}", file=sys.stderr)
        results.append(row)
    print(json.dumps({"command": "python benchmarks/shape_cache_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]), "max_batch": args.max_batch, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
