"""How a slice-level run sets up Lightning: quiet logs, the determinism setting, the NaN stop.

:func:`alzmri.training.train.train` builds its ``lightning.Trainer`` with these; the
benchmarks call :func:`quiet_lightning` too, so that their output matches a run's.
"""

from __future__ import annotations

import logging
import warnings

import torch
from lightning.pytorch.callbacks import Callback

from alzmri.errors import AlzmriError
from alzmri.training.checkpointing import describe_last_checkpoint

__all__ = ["NonFiniteLossStop", "quiet_lightning", "resolve_deterministic"]


def quiet_lightning() -> None:
    """Silence Lightning's informational log lines and the warnings a run expects.

    Sets Lightning's rank-zero, CUDA, seed and signal loggers to WARNING and ignores the
    warnings about few data-loader workers, a resumed run's non-empty checkpoint folder,
    the module's ``on_after_batch_transfer`` hook and a frozen backbone in eval mode.
    Process-wide and idempotent; returns nothing.
    """
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed",
                 "lightning.pytorch.trainer.connectors.signal_connector"):  # "Received SIGTERM": RunInterrupted says it
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # a resumed run continues in its own checkpoints/ folder
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    # the module's on_after_batch_transfer is the intended hook (the DataModule has none)
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # a frozen backbone stays in eval mode


def resolve_deterministic(deterministic: bool | None, accelerator: str) -> bool | str:
    """Lightning's ``deterministic`` for a run (docs/reliability.md, "Determinism").

    ``None`` (default): ``True`` on CPU, ``False`` on a CUDA GPU (speed). ``True``: ``True``
    on CPU, ``"warn"`` on a GPU (``torch.use_deterministic_algorithms(True,
    warn_only=True)``, cuDNN deterministic, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``; operations
    without a deterministic CUDA kernel warn instead of failing). ``False``: ``False``.

    Parameters
    ----------
    deterministic : bool or None
        The run's ``deterministic`` setting.
    accelerator : str
        The run's accelerator: a GPU is used when CUDA is available and it is ``"auto"``,
        ``"gpu"`` or ``"cuda"``.

    Returns
    -------
    bool or "warn"
        The ``deterministic`` argument of ``lightning.Trainer``.
    """
    gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if deterministic is None:
        return not gpu
    if not deterministic:
        return False
    return "warn" if gpu else True


class NonFiniteLossStop(Callback):
    """Stop with a clear message when the training loss becomes NaN or infinite.

    Raises
    ------
    AlzmriError
        (from ``on_train_batch_end``) Naming the epoch and step and the last complete
        checkpoint kept, if any.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            where = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback is not None else None
            kept = describe_last_checkpoint(where, trainer.max_epochs) if where else "no checkpoint is written"
            raise AlzmriError(
                f"training loss became {loss.item()} at epoch {trainer.current_epoch + 1}, step {batch_idx + 1} "
                f"(global step {trainer.global_step}); training stopped, {kept}; lower --lr or check the data"
            )
