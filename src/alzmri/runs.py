"""The run folder: what training writes and what evaluation, prediction and serving read.

A run folder holds::

    config.yaml          resolved configuration
    manifest.csv         the split (path, class, split, sha256)
    environment.json     package versions, device, threads
    run.json             model name, input spec, classes, size, timing, memory
    model.safetensors    weights of the best validation epoch (no pickle)
    history.csv          per-epoch train/val loss and accuracy
    checkpoints/         Lightning checkpoints (best.ckpt, last.ckpt) for resuming
    metrics.json, confusion_matrix.png, training_curves.png, roc_curves.png
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.utils.io import atomic_write_bytes, atomic_write_json

RUN_FILE = "run.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class RunInfo:
    """Contents of ``run.json``: enough to rebuild the model and preprocess input.

    Sizes are in MB (10^6 bytes), times in seconds. ``split_strategy`` names how the
    split was made (``subject``, ``stratified``, ``image``, ``subject-cv (fold i of K)``,
    or ``manifest:PATH`` for a reused manifest without a strategy column);
    ``groups_source`` where the subject groups came from; ``warnings`` the warnings
    printed during training (a class with fewer subjects than splits, subjects shared
    between splits, ...); ``augmented_train_images`` the in-memory augmented copies added
    to the training split by ``balance_augment``; ``copies`` the augmented copies found in
    the data (images that are copies of other images of the set): ``n_copies``,
    ``n_originals_copied``, copies per split (``train``, ``val``, ``test``), ``left_out``
    (out of validation and test), ``reason`` and a ``note`` sentence; empty without copies.
    ``task`` is the task framing (:mod:`alzmri.data.tasks`; ``class_names`` are its
    classes), ``loss`` ``cross_entropy`` or ``ordinal`` (the model's head has K-1 CORN
    outputs, see :mod:`alzmri.models.ordinal`), ``level`` ``slice`` or ``brain``; run.json
    files written before these fields existed read as 4class, cross_entropy, slice.
    ``feature_cache`` says whether a slice run trained its head on cached features of a
    frozen backbone (:mod:`alzmri.training.frozen`): ``{"used": true, "hit", "seconds",
    "key"}`` (``seconds`` 0 on a cache hit) or ``{"used": false, "reason"}``; empty in
    run.json files written before it existed.
    """

    model: str
    image_size: int
    in_chans: int
    mean: float
    std: float
    class_names: list[str]
    task: str = "4class"
    loss: str = "cross_entropy"
    level: str = "slice"
    data: str = ""
    dataset_hash: str = ""
    layout: str = ""
    split_strategy: str = ""
    split_counts: dict[str, int] = field(default_factory=dict)
    split_seed: int | None = None
    groups_source: str = ""
    copies: dict = field(default_factory=dict)
    n_groups: int = 0
    balance_augment: bool = False
    augmented_train_images: int = 0
    augmented_per_class: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    parameters: int = 0
    trainable_parameters: int = 0
    size_mb: float = 0.0
    train_time_s: float = 0.0
    peak_memory_mb: float = 0.0
    best_epoch: int | None = None
    epochs_run: int = 0
    precision: str = "32"
    device: str = "cpu"
    alzmri_version: str = ""
    model_kwargs: dict = field(default_factory=dict)
    feature_cache: dict = field(default_factory=dict)

    def save(self, run_dir: str | Path) -> Path:
        return atomic_write_json(Path(run_dir) / RUN_FILE, asdict(self))

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunInfo":
        """Read ``run.json`` of a run folder.

        Raises
        ------
        AlzmriError
            Not a run folder, or run.json is unreadable.
        """
        run_dir = Path(run_dir)
        path = run_dir / RUN_FILE
        if not run_dir.is_dir():
            raise AlzmriError(f"{run_dir}: run folder not found; pass the --out folder of a finished `alzmri train`")
        if not path.is_file():
            raise AlzmriError(f"{run_dir}: not a finished run folder (no {RUN_FILE}); train it to the end or pass another folder")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise TypeError(f"a JSON object expected, got {type(data).__name__}")
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise AlzmriError(f"{path}: unreadable run file ({exc}); retrain the run") from None


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def model_size_mb(model: nn.Module) -> float:
    """Size of the parameters and buffers in MB (10^6 bytes), as stored in fp32/native dtype."""
    n = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    return n / 1e6


def save_weights(model: nn.Module, run_dir: str | Path) -> Path:
    """Write the model's state dict to ``model.safetensors`` (atomically)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write_bytes(Path(run_dir) / WEIGHTS_FILE, save(state))


def load_model(run_dir: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, RunInfo]:
    """Rebuild a run's model with its best weights, in eval mode.

    Returns
    -------
    model : nn.Module
        Input float (batch, in_chans, image_size, image_size), output logits (batch, n_classes)
        (for ``loss: ordinal``, log class probabilities: :func:`alzmri.models.ordinal.make_ordinal`).
    info : RunInfo

    Raises
    ------
    AlzmriError
        Not a run folder; a brain-level run (see :mod:`alzmri.inference.brain`); weights
        missing, unreadable or of another architecture.
    """
    from alzmri.models import create_model
    from alzmri.models.ordinal import head_classes, make_ordinal
    from alzmri.models.weights import state_mismatch

    info = RunInfo.load(run_dir)
    if info.level == "brain":
        raise AlzmriError(
            f"{run_dir}: a brain-level run ({info.model}) predicts one class per brain, not per slice; "
            "use `alzmri predict RUN PATH... --brain` (its test metrics are in metrics.json)"
        )
    path = Path(run_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise AlzmriError(f"{path}: weights file missing; the run did not finish - retrain it")
    # the saved state dict holds every weight: pretrained ones are not fetched again
    kwargs = {**info.model_kwargs, "weights": "none"}
    model = create_model(info.model, num_classes=head_classes(len(info.class_names), info.loss), in_chans=info.in_chans,
                         image_size=info.image_size, **kwargs)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise AlzmriError(f"{path}: not a readable safetensors weights file ({exc}); retrain the run") from None
    if why := state_mismatch(state, model.state_dict()):
        raise AlzmriError(
            f"{path}: weights do not fit model {info.model!r} of run.json: {why}; the file belongs to another "
            "architecture or an older alzmri version - retrain the run or put back its own model.safetensors"
        )
    model.load_state_dict(state, strict=True)
    if info.loss == "ordinal":
        make_ordinal(model)
    return model.to(device).eval(), info


def environment() -> dict:
    """Package versions, Python, platform, CPU threads and accelerator of this process."""
    pkgs = {}
    for name in ("alzmri", "torch", "torchvision", "lightning", "kornia", "timm", "numpy", "scikit-learn", "pillow", "pydantic"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    env = {
        "packages": pkgs,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
    return env


@torch.inference_mode()
def predict_proba(model: nn.Module, info: RunInfo, images: np.ndarray, *, batch_size: int = 256, device: str | torch.device = "cpu", temperature: float = 1.0) -> np.ndarray:
    """Softmax probabilities for preprocessed slices.

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    info : RunInfo
        Gives normalisation and channels.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    temperature : float, default=1.0
        Logits are divided by it before the softmax (temperature scaling, see
        :mod:`alzmri.evaluation.calibration`); 1.0 leaves them unchanged.

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64; rows sum to 1.
    """
    from alzmri.data.preprocess import prepare_batch

    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        x = prepare_batch(x, mean=info.mean, std=info.std, in_chans=info.in_chans)
        out.append(torch.softmax(model(x).float() / temperature, dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, len(info.class_names)))
    return np.concatenate(out).astype(np.float64)
