"""Train one comparison row in a fresh process: ``python -m alzmri.comparison._worker REQUEST RESULT``.

``REQUEST`` is a JSON file ``{"configs": [TrainConfig fields, ...], "progress": bool}``
(``"config"``: one); the runs train one after another (the folds of a cross-validated row
share one process, so Python, torch and Lightning start once per row). The outcome goes to
the JSON file ``RESULT``: ``{"ok": true, "runs": [PATH, ...]}`` or ``{"ok": false, "kind":
"AlzmriError" | TYPE, "message": TEXT, "index": i, "runs": [the PATHs finished before]}``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(request: str, result: str) -> int:
    from alzmri.config import TrainConfig
    from alzmri.errors import AlzmriError
    from alzmri.pipeline import train
    from alzmri.utils.io import atomic_write_json

    from alzmri.utils.distributed import is_global_zero

    req = json.loads(Path(request).read_text(encoding="utf-8"))
    # with --devices N, Lightning re-runs this worker for ranks 1..N-1: they report failures only
    configs = req["configs"] if "configs" in req else [req["config"]]
    runs: list[str] = []
    for i, fields in enumerate(configs):
        try:
            runs.append(str(train(TrainConfig(**fields), progress=bool(req.get("progress", True)))))
        except AlzmriError as exc:
            atomic_write_json(result, {"ok": False, "kind": "AlzmriError", "message": str(exc), "index": i, "runs": runs})
            return 2
        except Exception as exc:
            atomic_write_json(result, {"ok": False, "kind": type(exc).__name__, "message": f"{exc}\n{traceback.format_exc()}",
                                       "index": i, "runs": runs})
            return 1
    if is_global_zero():
        atomic_write_json(result, {"ok": True, "runs": runs, "run": runs[-1] if runs else None})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
