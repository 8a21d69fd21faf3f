"""``alzmri train``: its options are :class:`~alzmri.config.TrainConfig`'s fields.

:data:`TRAIN_OPTIONS` names, in the order of ``alzmri train --help``, the fields the
command line sets, with their option names and help text; the type of each option is its
field's, and every one defaults to None: "not given", so the YAML config (``--config``),
then the field's default, decides (precedence: command line > YAML > defaults).
:func:`options_from_config` turns that table into the command's signature for Typer.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer
from pydantic import BaseModel

from alzmri.cli.tables import out, print_cv, print_metrics
from alzmri.config import TrainConfig, load_train_config

#: ``field: help`` or ``field: (option declarations, help)`` of every field ``alzmri train`` sets, in
#: ``--help`` order. No declarations: ``--field-name`` (``--field-name/--no-field-name`` for a
#: bool); help None: the field's description.
TRAIN_OPTIONS: dict[str, str | tuple[tuple[str, ...], str | None]] = {
    "model": "registered model name (default altzcnn)",
    "task": "4class (default), 3class (Mild and Moderate merged) or binary (NonDemented vs demented)",
    "loss": "cross_entropy (default) or ordinal (CORN; 4class or 3class)",
    "level": "slice (default: one prediction per slice) or brain (one per bag of a brain's slices)",
    "pooling": "level brain: attention (default) or mean",
    "slice_position": "level brain: give the model each slice's position in its brain (default off)",
    "frozen_encoder": (("--frozen-encoder/--finetune-encoder",), "level brain: keep the slice encoder frozen (default) or fine-tune it"),
    "patience": "early stopping after this many epochs without a better validation score (default: off)",
    "data": "dataset folder (default: the downloaded set)",
    "out": "run folder to create (default runs/MODEL-TIME)",
    "epochs": "epochs (default 20)",
    "image_size": "input side in pixels (default: the model's, 64 for altzcnn)",
    "batch_size": "batch size (default 128)",
    "lr": "Adam learning rate (default 3e-4)",
    "seed": "random seed (default 42)",
    "split": "reuse the split of an existing manifest.csv",
    "split_strategy": "subject (default: no brain in two splits), stratified (random slices by class) or image (the notebook's random slices)",
    "groups": "groups CSV from `alzmri data groups` (default: recovered from the images, cached)",
    "folds": "k-fold cross-validation by subject: K runs in OUT/fold-i and OUT/cv.json",
    "keep_eval_copies": (
        ("--keep-eval-copies",),
        "keep augmented copies that the split puts in validation/test (the notebook's protocol; "
        "warned: pseudo-replicates); default: validation and test hold originals only",
    ),
    "augment": "kornia batch augmentation (default off)",
    "balance_augment": "augmented copies of minority-class training images until train classes are equal (after splitting; default off)",
    "precision": "auto (default), 32, bf16-mixed or 16-mixed",
    "in_chans": "1 (grayscale, default) or 3 (slice copied to RGB)",
    "skip_unreadable": (("--skip-unreadable",), "leave unreadable images out (listed in skipped.csv)"),
    "accelerator": "auto (default), cpu or gpu",
    "devices": "processes (one device each) per node; more than 1 trains with DDP (default 1; docs/scaling.md)",
    "num_nodes": "machines (default 1); under torchrun or SLURM as launched",
    "strategy": "auto (default: DDP when more than one process) or ddp",
    "deterministic": "deterministic algorithms (default: on for CPU, off on GPU; docs/reliability.md)",
    "resume": (("--resume",), "continue the run folder --out from its last complete checkpoint, with its saved settings and split"),
}

#: TrainConfig fields set in a YAML config only (``--config``), not on the command line.
CONFIG_ONLY = frozenset({"min_epochs", "class_weight", "weight_decay", "model_kwargs", "fractions", "num_workers", "evaluate"})


def option_type(annotation: Any) -> type:
    """The command-line type of a config field: its annotation without None, a ``Literal`` as its values' type.

    Parameters
    ----------
    annotation : type
        A pydantic field's annotation: ``int``, ``Path | None``, ``Literal["a", "b"]``, ``Literal[1, 3]``, ...

    Returns
    -------
    type
        ``bool``, ``int``, ``float``, ``str`` or ``pathlib.Path``.

    Raises
    ------
    TypeError
        For an annotation the command line cannot give (a dict, a tuple, a union of two types).
    """
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{annotation}: not one type")
        annotation = args[0]
    if typing.get_origin(annotation) is Literal:
        kinds = {type(v) for v in typing.get_args(annotation)}
        if len(kinds) != 1:
            raise TypeError(f"{annotation}: values of more than one type")
        annotation = kinds.pop()
    if annotation not in (bool, int, float, str, Path):
        raise TypeError(f"{annotation}: not a command-line type")
    return annotation


def options_from_config(config: type[BaseModel], options: dict[str, str | tuple[tuple[str, ...], str | None]]) -> Callable:
    """Decorator: give a Typer command one option per field of ``config`` named in ``options``.

    The options come first, in the order of ``options``, then the command's own keyword-only
    parameters; each has the field's :func:`option_type`, made Optional, and default None
    (not given). The command receives them in ``**kwargs``.

    Parameters
    ----------
    config : type[pydantic.BaseModel]
        The config model whose fields become options.
    options : dict
        ``{field: (declarations, help)}``, or ``{field: help}`` for no declarations; empty
        declarations: ``--field-name``; help None: the field's description.

    Returns
    -------
    callable
        The decorator; it sets the function's ``__signature__`` and ``__annotations__``.

    Raises
    ------
    KeyError
        When ``options`` names a field ``config`` does not have.
    """

    def decorate(func: Callable) -> Callable:
        params = []
        for name, spec in options.items():
            decls, help_text = spec if isinstance(spec, tuple) else ((), spec)
            field = config.model_fields[name]
            default = typer.Option(None, *decls, help=help_text if help_text is not None else field.description)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Optional[option_type(field.annotation)]))
        hints = typing.get_type_hints(func)
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(func).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        func.__signature__ = inspect.Signature(params + own, return_annotation=None)
        func.__annotations__ = {p.name: p.annotation for p in params + own} | {"return": None}
        return func

    return decorate


@options_from_config(TrainConfig, TRAIN_OPTIONS)
def train(
    *,
    config: Optional[Path] = typer.Option(None, help="YAML config file; command-line options override it"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
    **options: Any,
) -> None:
    """Train a model and evaluate it on the test split; writes a run folder.

    Ctrl-C stops with one line naming the kept checkpoint and exit code 130; continue with
    `alzmri train --out RUN --resume`.
    """
    from alzmri.pipeline import train_cv
    from alzmri.pipeline import train as train_run

    cfg = load_train_config(config, **options)
    if cfg.folds is not None:
        folder = train_cv(cfg, progress=progress)
        out.print(f"cross-validation folder: {folder}")
        cv_file = folder / "cv.json"
        print_cv(json.loads(cv_file.read_text()))
        out.print(f"written: {cv_file}")
        return
    run = train_run(cfg, progress=progress)
    from alzmri.utils.distributed import is_global_zero

    if not is_global_zero():
        return  # DDP: ranks other than 0 print and write nothing
    out.print(f"run folder: {run}")
    metrics_file = run / "metrics.json"
    if metrics_file.is_file():
        print_metrics(json.loads(metrics_file.read_text()))
