"""Ordinal classification with CORN: a model whose head outputs K-1 conditional logits.

CORN (Shi, Cao & Raschka 2023) trains the K-1 binary tasks "is the class above k, given
that it is above k-1?" with logits ``z_k`` (k = 0 .. K-2). Class probabilities follow by
the chain rule and are rank-consistent (``P(y > k)`` never increases with ``k``):

.. math::

    \\log P(y > k) = \\sum_{j \\le k} \\log\\sigma(z_j), \\qquad
    \\log P(y = k) = \\log P(y > k-1) + \\log\\sigma(-z_k),

with ``log P(y > -1) = 0`` and ``log P(y = K-1) = log P(y > K-2)``.

:func:`make_ordinal` registers a forward hook on a model built with
``create_model(..., num_classes=K-1)`` so that it outputs these K log class
probabilities. ``softmax`` of the output is then the class probabilities, so evaluation,
prediction, ONNX export, Grad-CAM and serving treat it as any classifier. Training
recovers the conditional logits from the output (:func:`corn_logits_from_log_probs`,
``z_k = logsumexp(log p[k+1:]) - log p[k]``) and applies dlordinal's ``CORNLoss``
(:mod:`alzmri.training.module`).

References
----------
Shi, X., Cao, W., & Raschka, S. (2023). Deep neural networks for rank-consistent ordinal
regression based on conditional probabilities. *Pattern Analysis and Applications* 26,
941-955.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alzmri.errors import AlzmriError

__all__ = [
    "LOSSES",
    "check_loss",
    "corn_log_probs",
    "corn_logits_from_log_probs",
    "head_classes",
    "is_ordinal",
    "make_ordinal",
]

#: Training losses: ``cross_entropy`` on K logits, ``ordinal`` (CORN) on K-1 conditional logits.
LOSSES = ("cross_entropy", "ordinal")
_FLAG = "_alzmri_corn"


def check_loss(task, loss: str) -> None:
    """Check that ``loss`` can train ``task``.

    Parameters
    ----------
    task : str or alzmri.data.tasks.Task
    loss : {"cross_entropy", "ordinal"}

    Raises
    ------
    AlzmriError
        An unknown loss; ``ordinal`` with a task that is binary or not ordered.
    """
    from alzmri.data.tasks import Task, get_task

    if loss not in LOSSES:
        raise AlzmriError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)} (--loss)")
    task = task if isinstance(task, Task) else get_task(task)
    if loss == "ordinal" and (task.is_binary or not task.ordinal):
        raise AlzmriError("ordinal loss needs an ordered task: 4class or 3class")


def head_classes(num_classes: int, loss: str) -> int:
    """Outputs of the model head: K for cross-entropy, K-1 conditional logits for ``ordinal``."""
    return num_classes - 1 if loss == "ordinal" else num_classes


def corn_log_probs(z: Tensor) -> Tensor:
    """Log class probabilities (batch, K) from CORN conditional logits (batch, K-1).

    Computed in float32 whatever the input dtype (autocast included).
    """
    z = z.float()
    log_above = torch.cumsum(F.logsigmoid(z), dim=1)  # log P(y > k), k = 0 .. K-2
    prev = torch.cat([torch.zeros_like(log_above[:, :1]), log_above[:, :-1]], dim=1)  # log P(y > k-1)
    return torch.cat([prev + F.logsigmoid(-z), log_above[:, -1:]], dim=1)


def corn_logits_from_log_probs(log_p: Tensor) -> Tensor:
    """The CORN conditional logits (batch, K-1) behind log class probabilities (batch, K).

    ``z_k = log P(y > k) - log P(y = k) = logsumexp(log p[k+1:]) - log p[k]``; the inverse
    of :func:`corn_log_probs`.
    """
    log_p = log_p.float()
    # log P(y > k) for k = 0 .. K-2: reversed cumulative logsumexp
    tail = torch.logcumsumexp(log_p.flip(1), dim=1).flip(1)[:, 1:]
    return tail - log_p[:, :-1]


def _corn_hook(module: nn.Module, args, output: Tensor) -> Tensor:
    return corn_log_probs(output)


def make_ordinal(model: nn.Module) -> nn.Module:
    """Make a model with K-1 CORN logits output K log class probabilities (in place).

    Parameters
    ----------
    model : nn.Module
        Built with ``create_model(..., num_classes=K-1)``; outputs (batch, K-1).

    Returns
    -------
    nn.Module
        The same model, outputs (batch, K) log probabilities (``softmax`` of them = the
        class probabilities). Applying it twice changes nothing.
    """
    if not getattr(model, _FLAG, False):
        model.register_forward_hook(_corn_hook)
        setattr(model, _FLAG, True)
    return model


def is_ordinal(model: nn.Module) -> bool:
    """True for a model passed through :func:`make_ordinal`."""
    return bool(getattr(model, _FLAG, False))
