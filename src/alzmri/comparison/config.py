"""The comparison config: one shared split, then one training run per listed model.

A comparison YAML file looks like::

    data: ../../shared/datasets/alzheimer-mri-6400   # relative to this file
    out: ../runs/compare-cpu
    seed: 42
    task: 4class                     # or 3class / binary: one task for every row
    split_strategy: subject          # or stratified / image; or `split: MANIFEST`
    keep_eval_copies: false          # true keeps augmented copies in validation/test (warned)
    folds: 5                         # optional: K-fold cross-validation by brain (or --folds K)
    reference: altzcnn               # optional: the row the others are compared with (default: the first)
    title: AltzCNN against small pretrained CNNs
    notes: ["vit_tiny_scratch is a ViT trained from scratch"]
    defaults:                        # TrainConfig fields shared by every row
      epochs: 10
      batch_size: 64
    models:                          # one row each; any TrainConfig field overrides
      - name: altzcnn
        model: altzcnn
        lr: 3.0e-4
      - name: mobilenet_v2-dora
        model: mobilenet_v2
        model_kwargs: {weights: imagenet, finetune: adapter}

The split settings (``data``, ``split``, ``split_strategy``, ``groups``, ``fractions``,
``keep_eval_copies``) belong to the comparison, so every row sees identical images, and so does
``task``, so that every row answers the same question; a row or ``defaults`` that sets one of
them, or ``out``, ``evaluate`` or ``folds``, is an error. Each row is
validated as a :class:`~alzmri.config.TrainConfig` built from ``defaults`` and the row;
errors are one line naming the file and the row.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alzmri.config import TrainConfig, build_config, read_yaml
from alzmri.errors import AlzmriError

__all__ = ["CompareConfig", "ModelEntry", "load_compare_config"]

#: Keys a row must not set: the shared split (top level) and what the comparison decides.
SPLIT_KEYS = ("data", "split", "split_strategy", "groups", "fractions", "keep_eval_copies")
ROW_FORBIDDEN = (*SPLIT_KEYS, "task", "out", "evaluate", "folds", "resume")
#: Training keys of slice-level rows only: a ``defaults`` value is not given to brain-level rows and baselines.
_SLICE_ONLY = ("augment", "balance_augment", "class_weight", "min_epochs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


class ModelEntry(BaseModel):
    """One row of the comparison: a ``name`` plus TrainConfig fields (validated later).

    Attributes
    ----------
    name : str
        Row name: unique, letters, digits and ``._+-``; the row's folder is
        ``OUT/runs/<name>``.
    note : str
        Free text shown in the row's section of the report.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    note: str = ""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _NAME.match(v) or ".incomplete-" in v:
            raise ValueError("must be 1-80 letters, digits or ._+- starting with a letter or digit (it names a folder)")
        return v

    def train_fields(self) -> dict[str, Any]:
        """The row's TrainConfig fields (everything but ``name`` and ``note``)."""
        return dict(self.model_extra or {})


class CompareConfig(BaseModel):
    """A comparison: shared data and split, shared training defaults, one row per model.

    See the module docstring for the YAML layout. Paths are as given (the loader
    resolves relative paths of a YAML file against the file's folder).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: Path | None = Field(None, description="dataset folder; default: the downloaded 6,400-image set")
    out: Path = Field(..., description="comparison folder: manifest.csv, runs/<name>/, figures/, report.md, report.html")
    seed: int = Field(42, description="split seed, and every row's training seed unless the row sets its own")
    task: Literal["4class", "3class", "binary"] = Field("4class", description="task framing of every row (alzmri.data.tasks); a row may not set its own")
    split: Path | None = Field(None, description="an existing manifest.csv to use instead of splitting")
    split_strategy: str = Field(default_factory=lambda: TrainConfig.model_fields["split_strategy"].default)
    groups: Path | None = Field(None, description="groups CSV for subject-level splits (see TrainConfig.groups)")
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    keep_eval_copies: bool = Field(False, description="keep augmented copies in validation/test of the shared split (see TrainConfig.keep_eval_copies)")
    folds: int | None = Field(None, ge=2, description="K-fold cross-validation by brain: every row on the same K folds (alzmri compare --folds K); default one shared split")
    reference: str | None = Field(None, description="row every other row is compared with in pairs (cross-validated comparisons); default the first row")
    title: str = "Model comparison"
    notes: list[str] = Field(default_factory=list, description="paragraphs for the report's introduction")
    defaults: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields shared by every row")
    models: list[ModelEntry] = Field(..., min_length=1)

    @field_validator("notes", mode="before")
    @classmethod
    def _notes_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unique_names(self) -> "CompareConfig":
        seen: set[str] = set()
        for m in self.models:
            if m.name.lower() in seen:
                raise ValueError(f"row name {m.name!r} is used twice; every row needs its own name")
            seen.add(m.name.lower())
        if self.reference is not None and self.reference not in [m.name for m in self.models]:
            raise ValueError(f"reference {self.reference!r} is not a row; use one of {', '.join(m.name for m in self.models)}")
        return self

    def split_fields(self) -> dict[str, Any]:
        """The shared split settings as TrainConfig fields (those TrainConfig knows)."""
        known = TrainConfig.model_fields
        values = {"data": self.data, "split": self.split, "split_strategy": self.split_strategy, "groups": self.groups,
                  "fractions": self.fractions, "seed": self.seed, "keep_eval_copies": self.keep_eval_copies}
        return {k: v for k, v in values.items() if k in known and not (k == "groups" and v is None)}

    def manifest_path(self) -> Path:
        """``OUT/manifest.csv``, the split every row uses."""
        return Path(self.out) / "manifest.csv"

    def row_dir(self, name: str) -> Path:
        """``OUT/runs/<name>``, a row's run folder."""
        return Path(self.out) / "runs" / name

    def with_train_settings(self, **values: Any) -> "CompareConfig":
        """A copy in which every row trains with ``values`` (TrainConfig fields, e.g. the
        command line's ``devices``, ``num_nodes``, ``strategy``, ``accelerator``): they are
        set in ``defaults`` and removed from the rows, so they win over the file. None
        values are ignored; the result is validated by :meth:`train_configs`."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        rows = [ModelEntry(**{k: v for k, v in m.model_dump().items() if k not in values}) for m in self.models]
        return self.model_copy(update={"defaults": {**self.defaults, **values}, "models": rows})

    def train_configs(self, source: str = "comparison config") -> list[tuple[ModelEntry, TrainConfig]]:
        """One :class:`TrainConfig` per row: library defaults < ``defaults`` < the row.

        Each uses ``OUT/manifest.csv`` as its split and ``OUT/runs/<name>`` as its run
        folder.

        Raises
        ------
        AlzmriError
            A row or ``defaults`` sets a shared key, an unknown key or a wrong type; a
            row names an unregistered model. The message names ``source`` and the row.
        """
        from alzmri.models import get_spec
        from alzmri.models.ordinal import check_loss

        for key in self.defaults:
            if key in ROW_FORBIDDEN:
                raise AlzmriError(f"{source}: defaults: {_forbidden_hint(key)}")
        build_config(TrainConfig, {k: v for k, v in self.defaults.items()}, f"{source}: defaults")
        out = []
        for i, entry in enumerate(self.models):
            where = f"{source}: models[{i}] {entry.name!r}"
            fields = entry.train_fields()
            for key in fields:
                if key in ROW_FORBIDDEN:
                    raise AlzmriError(f"{where}: {_forbidden_hint(key)}")
            values = {**self.split_fields(), **self.defaults, **fields}
            if str(values.get("model", "")).startswith("baseline:") or values.get("level") == "brain":
                for key in _SLICE_ONLY:  # shared defaults of slice rows do not apply to brain-level rows and baselines
                    if key not in fields:
                        values.pop(key, None)
            values.update(split=self.manifest_path().resolve(), out=self.row_dir(entry.name).resolve(), evaluate=True, task=self.task)
            cfg = build_config(TrainConfig, values, where)
            try:
                if not cfg.model.startswith("baseline:"):  # baselines are not registered networks (training/brain.py)
                    get_spec(cfg.model)
                check_loss(cfg.task, cfg.loss)
            except AlzmriError as exc:
                raise AlzmriError(f"{where}: {exc}") from None
            out.append((entry, cfg))  # type: ignore[arg-type]
        return out


def _forbidden_hint(key: str) -> str:
    if key in SPLIT_KEYS:
        return f"{key!r} belongs at the top level of the comparison (every row shares one split)"
    if key == "folds":
        return "'folds' belongs at the top level of the comparison (every row is cross-validated on the same brain folds; or alzmri compare --folds K)"
    if key == "resume":
        return "'resume' is not a row setting: running the same comparison again resumes it"
    if key == "task":
        return "'task' belongs at the top level of the comparison (one task for every row, so that the rows answer the same question)"
    return f"{key!r} is set by the comparison (each row's run folder is OUT/runs/<name>, always evaluated)"


def _first_error(exc: Exception, source: str) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return f"{source}: {exc}"
    err = exc.errors()[0]
    loc = err.get("loc", ())
    if err.get("type") == "extra_forbidden":
        import difflib

        key = str(loc[-1]) if loc else "?"
        close = difflib.get_close_matches(key, list(CompareConfig.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(CompareConfig.model_fields)})"
        return f"{source}: unknown key {key!r}{hint}"
    where = ".".join(str(x) for x in loc)
    msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    if where:
        return f"{source}: {where!r}: {msg}; got {err.get('input')!r}" if err.get("type") != "missing" else f"{source}: {where!r} is required"
    return f"{source}: {msg}"


def load_compare_config(path: str | Path, **overrides: Any) -> CompareConfig:
    """Read and validate a comparison YAML file.

    Relative ``data``, ``out``, ``split`` and ``groups`` paths are resolved against the
    file's folder; ``overrides`` that are not None (command-line ``--data``, ``--out``)
    replace the file's values as given. Every row is validated too (see
    :meth:`CompareConfig.train_configs`), so a typo in the last row fails before the
    first one trains.

    Parameters
    ----------
    path : path-like
    **overrides
        ``data``, ``out``, ...: top-level keys.

    Returns
    -------
    CompareConfig

    Raises
    ------
    AlzmriError
        Missing or unreadable file, unknown key, wrong type, duplicate or unsafe row
        name, a bad row; one line naming the file (and the row).
    """
    path = Path(path)
    values = read_yaml(path)
    base = path.resolve().parent
    for key in ("data", "out", "split", "groups"):
        if isinstance(values.get(key), str) and not Path(values[key]).expanduser().is_absolute():
            values[key] = os.path.normpath(base / Path(values[key]).expanduser())
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("out") is None:
        values["out"] = str(Path("runs") / f"compare-{path.stem}")
    if isinstance(values.get("models"), list):
        for i, m in enumerate(values["models"]):
            if not isinstance(m, dict):
                raise AlzmriError(f"{path}: models[{i}] must be a mapping with a name and training keys; got {m!r}")
            if "name" not in m:
                raise AlzmriError(f"{path}: models[{i}] has no 'name' (every row needs a unique name)")
    try:
        cfg = CompareConfig(**values)
    except Exception as exc:  # pydantic ValidationError
        raise AlzmriError(_first_error(exc, str(path))) from None
    cfg.train_configs(str(path))
    # the split settings are validated by the field validators of TrainConfig
    build_config(TrainConfig, {k: v for k, v in cfg.split_fields().items() if k != "split"}, f"{path}")
    return cfg
