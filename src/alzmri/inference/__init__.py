"""Using a trained run: slices, volumes and whole brains in, class probabilities out.

:func:`predict_files` answers per image or volume (``alzmri predict``);
:func:`predict_brain` answers once for one brain given as a folder of its slices, its
slice files or one volume (``alzmri predict --brain``, :mod:`alzmri.inference.brain`);
:func:`load_backend` and :func:`export_onnx` run a model with PyTorch or onnxruntime.
Names are imported on first use, so importing this package loads no model framework.
"""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

_WHERE = {
    "export_onnx": "alzmri.inference.onnx_export",
    "load_backend": "alzmri.inference.backends",
    "load_brain_run": "alzmri.inference.brain",
    "predict_brain": "alzmri.inference.brain",
    "predict_brains": "alzmri.inference.brain",
    "predict_files": "alzmri.inference.predict",
    "predict_proba": "alzmri.runs",
    "read_brain_input": "alzmri.inference.inputs",
}
__all__ = ["export_onnx", "load_backend", "load_brain_run", "predict_brain", "predict_brains", "predict_files", "predict_proba", "read_brain_input"]
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
