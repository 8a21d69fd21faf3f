"""Run configuration: a pydantic model, from YAML and command-line options.

Precedence: command line > YAML file > model defaults > library defaults. Unknown keys
and wrong types are errors that name the key and the file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alzmri.errors import AlzmriError


class TrainConfig(BaseModel):
    """Everything that defines a training run (saved as ``config.yaml`` in the run folder)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("altzcnn", description="registered model name (alzmri models), a baseline (baseline:atrophy, baseline:knn, baseline:pixels) or timm:<name>")
    task: Literal["4class", "3class", "binary"] = Field(
        "4class", description="task framing: 4class (the notebook's), 3class (Mild and Moderate merged) or binary (NonDemented vs demented)"
    )
    loss: Literal["cross_entropy", "ordinal"] = Field(
        "cross_entropy", description="cross_entropy, or ordinal: CORN (Shi et al. 2023, dlordinal's CORNLoss) for the ordered classes of 4class/3class"
    )
    level: Literal["slice", "brain"] = Field(
        "slice", description="slice: one prediction per slice (brain = mean of its slices); brain: one prediction per bag of a brain's slices"
    )
    pooling: Literal["mean", "attention"] = Field("attention", description="level brain: how slice features become one brain feature (attention: Ilse et al. 2018)")
    slice_position: bool = Field(False, description="level brain: give the model each slice's relative position in its brain (0 = first, 1 = last)")
    frozen_encoder: bool = Field(
        True, description="level brain: the slice encoder stays frozen (its features are computed once and cached on disk) or is fine-tuned with the head"
    )
    patience: int | None = Field(None, ge=1, description="early stopping: stop after this many epochs without a better validation score (default: train all epochs)")
    min_epochs: int | None = Field(None, ge=1, description="early stopping never stops a slice-level run before this many epochs (default: no minimum)")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="slice level, cross_entropy: 'balanced' weights each class by n / (K x n_class) of the training slices (scikit-learn's rule), so a model cannot sit at the majority class"
    )
    data: Path | None = Field(None, description="dataset folder; default: the downloaded 6,400-image set")
    out: Path | None = Field(None, description="run folder to create")
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(3e-4, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0)
    image_size: int | None = Field(None, gt=7, description="input side in pixels; default: the model's")
    in_chans: Literal[1, 3] = Field(1, description="1: grayscale input; 3: the slice copied to RGB")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra builder arguments, e.g. {fc_dropout: 0.2}")
    seed: int = 42
    split: Path | None = Field(None, description="existing split manifest CSV to reuse")
    split_strategy: str = Field(
        "subject",
        description="how to split when no manifest is given: subject (by scan group, no brain in two splits), "
        "stratified (random slices, stratified by class) or image (the notebook's random slices)",
    )
    groups: Path | None = Field(None, description="groups CSV (alzmri data groups); default: recovered from the images and cached")
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation by subject: K runs in OUT/fold-0 .. fold-K-1 and OUT/cv.json")
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    keep_eval_copies: bool = Field(
        False,
        description="keep augmented copies that a new split puts in validation or test (the notebook's protocol; warned: "
        "pseudo-replicates); default: validation and test hold originals only, copies of training brains stay in training",
    )
    augment: bool = Field(False, description="kornia batch augmentation of training batches (the notebook trained AltzCNN without)")
    balance_augment: bool = Field(
        False, description="add augmented copies of minority-class training images (in memory) until train classes are equal"
    )
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    accelerator: str = "auto"
    devices: int = Field(1, ge=1, description="processes (one device each) per node; more than 1 trains with DDP (docs/scaling.md)")
    num_nodes: int = Field(1, ge=1, description="machines; devices x num_nodes processes in all")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Lightning strategy: auto (DDP when more than one process) or ddp")
    num_workers: int = Field(0, ge=0)
    skip_unreadable: bool = Field(False, description="leave unreadable images out (listed in the run) instead of stopping")
    evaluate: bool = Field(True, description="evaluate on the test split after training")
    deterministic: bool | None = Field(
        None, description="deterministic algorithms: default on for CPU, off on GPU; true on a GPU is best effort (docs/reliability.md)"
    )
    resume: bool = Field(False, description="continue the run folder `out` from its last complete checkpoint, same settings and split")

    @field_validator("split_strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from alzmri.data.splits import SPLITTERS

        if v not in SPLITTERS:
            raise ValueError(f"must be one of {', '.join(SPLITTERS)}")
        return v

    @model_validator(mode="after")
    def _brain_options_need_brain_level(self) -> "TrainConfig":
        # a saved config.yaml lists every key with its value: only a value other than the default is a brain-level choice
        given = [k for k in ("pooling", "slice_position", "frozen_encoder") if k in self.model_fields_set and getattr(self, k) != type(self).model_fields[k].default]
        if self.level == "slice" and given and not self.model.startswith("baseline:"):
            raise ValueError(f"{', '.join(given)}: brain-level settings; they apply to brain-level models only: add level: brain (--level brain) or drop them")
        return self

    @model_validator(mode="after")
    def _convergence_settings_agree(self) -> "TrainConfig":
        if self.class_weight != "none" and self.loss != "cross_entropy":
            raise ValueError(f"class_weight: {self.class_weight} applies to loss cross_entropy; CORN (loss: ordinal) takes no class weights: drop one of them")
        if self.min_epochs is not None and self.min_epochs > self.epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) is more than epochs ({self.epochs}), the most a run trains: lower min_epochs or raise epochs")
        return self

    @field_validator("fractions")
    @classmethod
    def _fractions_sum(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1) > 1e-6 or v[0] <= 0:
            raise ValueError("must be three non-negative numbers (train, val, test) summing to 1")
        return v


#: Spellings of other tools' configs, for the "did you mean" hint of an unknown key.
KEY_ALIASES = {
    "learning_rate": "lr", "max_epochs": "epochs", "num_epochs": "epochs", "n_epochs": "epochs",
    "img_size": "image_size", "input_size": "image_size", "arch": "model", "model_name": "model",
    "data_dir": "data", "dataset": "data", "output": "out", "out_dir": "out", "output_dir": "out",
}


def _format_error(err: dict[str, Any], source: str, fields: list[str]) -> str:
    loc = ".".join(str(x) for x in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        alias = KEY_ALIASES.get(loc)
        close = [alias] if alias in fields else difflib.get_close_matches(loc, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(fields)})"
        return f"{source}: unknown key {loc!r}{hint}"
    value = err.get("input")
    if not loc:  # a check across keys: its message says it all
        return f"{source}: {str(err.get('msg', 'invalid settings')).removeprefix('Value error, ')}"
    return f"{source}: {loc!r} {err.get('msg', 'is invalid').lower()}; got {value!r}"


def build_config(cls: type[BaseModel], values: dict[str, Any], source: str) -> BaseModel:
    """Validate ``values`` into ``cls``; errors become one-line :class:`AlzmriError`."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise AlzmriError(_format_error(exc.errors()[0], source, list(cls.model_fields))) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise AlzmriError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AlzmriError(f"{path}: not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AlzmriError(f"{path}: a config must be a YAML mapping of key: value")
    return data


def load_train_config(config_file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Resolve a :class:`TrainConfig` from an optional YAML file and overrides.

    ``None`` overrides are ignored (an option not given on the command line).
    Relative paths in the YAML file are resolved against the file's folder.
    """
    values: dict[str, Any] = {}
    source = "command line"
    if config_file is not None:
        values = read_yaml(config_file)
        base = Path(config_file).resolve().parent
        for key in ("data", "out", "split", "groups"):
            if isinstance(values.get(key), str) and not Path(values[key]).expanduser().is_absolute():
                values[key] = str(base / values[key])
        source = str(config_file)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    if explicit:
        # validate the file alone first so its errors name the file
        if config_file is not None:
            build_config(TrainConfig, values, source)
        values.update(explicit)
        source = f"{source} + command line" if config_file is not None else "command line"
    return build_config(TrainConfig, values, source)  # type: ignore[return-value]


def dump_config(cfg: BaseModel) -> str:
    """YAML text of a config, paths as strings."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
