"""Fine-tuning modes: train everything, only the head, or DoRA adapters plus the head.

``"full"``
    Every parameter trains.
``"linear"``
    Linear probing: the backbone is frozen, only the head trains.
``"adapter"``
    DoRA (weight-decomposed low-rank adaptation; Liu et al., ICML 2024) through PEFT:
    ``LoraConfig(r=adapter_rank, lora_alpha=adapter_alpha, use_dora=True)`` on the
    ``adapter_targets`` (default: the head, the last layer, as the original notebook
    did). Only the adapters train; the head also trains when it is not itself a target
    (what PEFT calls ``modules_to_save``).

The adapters are injected in place (``peft.inject_adapter_in_model``), so the model keeps
its class, ``forward_features`` and ``head``, and its ``state_dict()`` (with
``*.base_layer.*``, ``*.lora_A.default.*``, ``*.lora_B.default.*`` and
``*.lora_magnitude_vector.default.*`` keys) loads into a model rebuilt with the same
arguments. With a frozen backbone (``"linear"``, ``"adapter"``), a
:class:`~alzmri.models.classifier.BackboneClassifier` keeps its backbone in eval mode
during training, so batch-norm statistics stay those of the pretrained weights.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from alzmri.errors import AlzmriError

FINETUNE_MODES = ("full", "linear", "adapter")
ADAPTABLE = (nn.Linear, nn.Conv2d)


class _ModuleCallSelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` that calls ``out_proj`` as a module.

    The stock module applies ``out_proj.weight`` functionally, so an adapter wrapped
    around ``out_proj`` would be silently skipped. Same parameters and state dict; self
    attention (query is key is value), ``batch_first=True``, no masks, no weights returned
    - exactly how torchvision's ViT encoder calls it.
    """

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True, attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        if not (query is key is value) or key_padding_mask is not None or attn_mask is not None or need_weights or not self.batch_first or self.bias_k is not None or not self._qkv_same_embed_dim:
            raise NotImplementedError("adapter on out_proj supports only batch-first self-attention without masks or returned weights")
        b, n, e = query.shape
        h = self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias).view(b, n, 3, h, e // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=self.dropout if self.training else 0.0, is_causal=is_causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, e)), None


def resolve_targets(model: nn.Module, targets: Sequence[str]) -> list[str]:
    """Full module names matched by ``targets``.

    A target matches a module whose dotted name equals it or ends with ``"." + target``
    (PEFT's rule) and that is an ``nn.Linear`` or ``nn.Conv2d``; other matches (an
    ``nn.Identity`` left where a classifier was) are ignored.

    Returns
    -------
    list of str
        Sorted in module order, without duplicates.

    Raises
    ------
    AlzmriError
        A target that matches no adaptable module (with candidate names), or one naming
        an ``nn.MultiheadAttention`` (DoRA cannot adapt its fused q/k/v parameter).
    """
    if isinstance(targets, str):
        targets = [targets]
    modules = dict(model.named_modules())
    chosen: list[str] = []
    for t in targets:
        hits = [n for n, m in modules.items() if n and (n == t or n.endswith("." + t))]
        if any(isinstance(modules[n], nn.MultiheadAttention) for n in hits):
            raise AlzmriError(
                f"adapter target {t!r} is an nn.MultiheadAttention, whose fused q/k/v projection (in_proj_weight) PEFT's DoRA cannot adapt; "
                "target its 'out_proj', the MLP layers ('mlp.0', 'mlp.3' in torchvision's ViT), or use a timm ViT whose 'qkv' is a Linear"
            )
        ok = [n for n in hits if isinstance(modules[n], ADAPTABLE)]
        if not ok:
            cands = [n for n, m in modules.items() if isinstance(m, ADAPTABLE)]
            raise AlzmriError(f"adapter target {t!r} matches no Linear or Conv2d module; e.g. {', '.join(cands[-4:])} (a name or its last dotted parts)")
        chosen += [n for n in ok if n not in chosen]
    order = {n: i for i, n in enumerate(modules)}
    return sorted(chosen, key=order.__getitem__)


def apply_finetune(model: nn.Module, finetune: str = "full", *, head: str = "head", targets: Sequence[str] | None = None, rank: int = 4, alpha: float = 8) -> nn.Module:
    """Set which parameters train; inject DoRA adapters for ``"adapter"``.

    Parameters
    ----------
    model : nn.Module
        A registry model with a classifier module named ``head``.
    finetune : {"full", "linear", "adapter"}, default="full"
    head : str, default="head"
    targets : list of str, optional
        Module names for the adapters (see :func:`resolve_targets`); default ``[head]``.
    rank : int, default=4
    alpha : float, default=8

    Returns
    -------
    nn.Module
        The same model, changed in place.

    Raises
    ------
    AlzmriError
        Unknown mode, a non-positive rank, or a bad target.
    """
    if finetune not in FINETUNE_MODES:
        raise AlzmriError(f"The 'finetune' parameter of create_model must be one of {', '.join(map(repr, FINETUNE_MODES))}. Got {finetune!r} instead.")
    if finetune == "full":
        return model
    if finetune == "linear":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(head + "."))
    else:
        if not isinstance(rank, int) or rank < 1:
            raise AlzmriError(f"The 'adapter_rank' parameter of create_model must be a positive integer. Got {rank!r} instead.")
        names = resolve_targets(model, list(targets) if targets else [head])
        modules = dict(model.named_modules())
        for n in names:
            parent = n.rsplit(".", 1)[0] if "." in n else ""
            if n.endswith(".out_proj") and type(modules.get(parent)) is nn.MultiheadAttention:
                modules[parent].__class__ = _ModuleCallSelfAttention
        from peft import LoraConfig, inject_adapter_in_model

        pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
        config = LoraConfig(r=rank, lora_alpha=alpha, use_dora=True, lora_dropout=0.0, bias="none", target_modules=pattern)
        inject_adapter_in_model(config, model)
        train_head = head not in names
        for name, p in model.named_parameters():
            p.requires_grad_(".lora_" in name or (train_head and name.startswith(head + ".")))
    if hasattr(model, "frozen_backbone"):
        model.frozen_backbone = True
        model.train(model.training)
    return model


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    """Number of trainable elements per parameter name."""
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}

