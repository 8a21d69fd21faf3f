"""Export a run's model to ONNX, and run an exported file with onnxruntime alone.

The ``.onnx`` file is self-describing: its ``metadata_props`` hold, under the key
``alzmri``, a JSON object with everything needed to preprocess input the way training
did (``image_size``, ``mean``, ``std``, ``in_chans``, ``class_names``, ``model``) and the
calibration ``temperature`` (1.0 when the run has no ``calibration.json``). The graph
maps float32 ``input`` of shape (batch, in_chans, image_size, image_size) to float32
``logits`` of shape (batch, n_classes); the batch axis is dynamic.

:class:`OnnxPredictor` needs only numpy, Pillow and onnxruntime: importing this module
does not import torch or :mod:`alzmri.models` (:func:`export_onnx` imports torch when
called).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from alzmri.errors import AlzmriError
from alzmri.evaluation.calibration import softmax
from alzmri.utils.io import atomic_write_bytes, match_umask

#: Key of the preprocessing metadata in the ONNX ``metadata_props``.
METADATA_KEY = "alzmri"
#: ONNX opset written by :func:`export_onnx`.
OPSET = 17


def preprocess(images: np.ndarray, *, mean: float, std: float, in_chans: int) -> np.ndarray:
    """uint8 slices to normalised float32 model input, as :func:`alzmri.training.module.prepare_batch`.

    Parameters
    ----------
    images : ndarray of shape (n, H, W), dtype uint8
    mean, std : float
        Normalisation of [0, 1] intensities: ``(x / 255 - mean) / std``.
    in_chans : {1, 3}
        3 copies the slice into three channels.

    Returns
    -------
    ndarray of shape (n, in_chans, H, W), dtype float32
    """
    x = np.asarray(images, dtype=np.float32)[:, None] / np.float32(255.0)
    x = (x - np.float32(mean)) / np.float32(std)
    if in_chans == 3:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def export_onnx(run_dir: str | Path, path: str | Path, *, opset: int = OPSET) -> Path:
    """Write a run's best model as an ONNX file with dynamic batch size.

    Uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it
    needs no extra package and exports AltzCNN and the torchvision/timm CNNs exactly;
    where a future torch has removed it, the dynamo exporter is used instead. The file
    is checked with ``onnx.checker`` and written atomically (a temporary file beside
    ``path`` renamed over it), so a failed export never leaves a partial file.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder.
    path : path-like
        The ``.onnx`` file to write (parent folders are created; an existing file is
        replaced).
    opset : int, default=17

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AlzmriError
        Not a run folder, or the model cannot be exported (the exporter's first line).
    """
    import onnx
    import torch

    from alzmri.evaluation.calibration import load_temperature
    from alzmri.runs import load_model

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise AlzmriError(f"{path}: the ONNX file name must end in .onnx")
    model, info = load_model(run_dir)
    meta = {
        "model": info.model,
        "image_size": info.image_size,
        "in_chans": info.in_chans,
        "mean": info.mean,
        "std": info.std,
        "class_names": list(info.class_names),
        "temperature": load_temperature(run_dir),
        "input": "float32 (batch, in_chans, image_size, image_size): (uint8 / 255 - mean) / std",
        "output": "float32 logits (batch, n_classes); probabilities = softmax(logits / temperature)",
    }
    x = torch.zeros(2, info.in_chans, info.image_size, info.image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a scratch file for the exporter, which writes to a path (removed below); the result goes through atomic_write_bytes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".export.onnx")
    match_umask(fd)
    os.close(fd)
    try:
        common = dict(input_names=["input"], output_names=["logits"], opset_version=opset)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), tmp, dynamo=False, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **common)
        except TypeError:  # a torch without the TorchScript exporter
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, (x,), tmp, dynamo=True, external_data=False, dynamic_shapes=({0: batch},), **common)
        proto = onnx.load(tmp)
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        proto.producer_name = "alzmri"
        onnx.checker.check_model(proto)
        atomic_write_bytes(path, proto.SerializeToString())
    except AlzmriError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AlzmriError(f"{info.model}: ONNX export failed ({first})") from None
    finally:
        for leftover in (tmp, tmp + ".data"):
            try:
                os.unlink(leftover)
            except OSError:
                pass
    return path


class OnnxPredictor:
    """Class probabilities from an exported ``.onnx`` file, with onnxruntime only.

    Parameters
    ----------
    path : path-like
        A file written by :func:`export_onnx`.
    providers : list of str, optional
        onnxruntime execution providers; default ``["CPUExecutionProvider"]``.

    Attributes
    ----------
    image_size, in_chans : int
    mean, std, temperature : float
    class_names : list of str
    model : str
        The registered model name of the run.

    Raises
    ------
    AlzmriError
        The file is missing, not an ONNX model, or lacks alzmri's metadata.
    """

    def __init__(self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise AlzmriError(f"{self.path}: ONNX file not found")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AlzmriError(f"{self.path}: not a readable ONNX model ({first[:120]}); export it again with `alzmri export RUN --onnx FILE`") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise AlzmriError(f"{self.path}: no alzmri metadata in this ONNX file; export it with `alzmri export RUN --onnx FILE`")
        try:
            meta = json.loads(raw)
        except ValueError:
            raise AlzmriError(f"{self.path}: its alzmri metadata is not valid JSON; export it again with `alzmri export RUN --onnx FILE`") from None
        self.meta = meta
        self.model = str(meta.get("model", ""))
        self.image_size = int(meta["image_size"])
        self.in_chans = int(meta["in_chans"])
        self.mean = float(meta["mean"])
        self.std = float(meta["std"])
        self.class_names = list(meta["class_names"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Raw logits for uint8 slices.

        Parameters
        ----------
        images : ndarray of shape (n, image_size, image_size), dtype uint8

        Returns
        -------
        ndarray of shape (n, n_classes), dtype float32
        """
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != (self.image_size, self.image_size):
            raise AlzmriError(f"expected slices of shape (n, {self.image_size}, {self.image_size}); got {images.shape}")
        out = [
            self.session.run(None, {self.input_name: preprocess(images[s : s + batch_size], mean=self.mean, std=self.std, in_chans=self.in_chans)})[0]
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict_proba(self, images: np.ndarray, *, batch_size: int = 256, calibrated: bool = True) -> np.ndarray:
        """Softmax probabilities for uint8 slices (temperature-scaled when ``calibrated``).

        Parameters
        ----------
        images : ndarray of shape (n, image_size, image_size), dtype uint8
        calibrated : bool, default=True
            Divide the logits by the stored temperature first.

        Returns
        -------
        ndarray of shape (n, n_classes), dtype float64; rows sum to 1.
        """
        return softmax(self.logits(images, batch_size=batch_size), self.temperature if calibrated else 1.0)
