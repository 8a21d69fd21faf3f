"""`alzmri train`: options generated from TrainConfig, CLI > YAML > defaults, bad input as one line with exit code 2."""

import inspect
import shutil
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import typer
from pydantic import BaseModel, Field
from typer.main import get_command
from typer.models import OptionInfo
from typer.testing import CliRunner

import alzmri.cli.train as train_cli
from alzmri.cli import app
from alzmri.cli.train import CONFIG_ONLY, TRAIN_OPTIONS, option_type, options_from_config
from alzmri.config import TrainConfig
from alzmri.errors import AlzmriError
from _helpers import copy_subset

from _helpers import assert_one_line_error, run_cli, tree_digest


def _train(capsys, data, out, *extra):
    return run_cli(capsys, "train", "--data", data, "--out", out, "--epochs", "1", "--image-size", "32", "--no-progress", *extra)


# --------------------------------------------------------------------------------------
# the options: one per command-line field of TrainConfig


def test_every_field_is_a_train_option_or_config_only():
    fields = TrainConfig.model_fields
    assert set(TRAIN_OPTIONS) | CONFIG_ONLY == set(fields)
    assert not set(TRAIN_OPTIONS) & CONFIG_ONLY
    assert [p.name for p in get_command(app).commands["train"].params] == [*TRAIN_OPTIONS, "config", "progress"]
    sig = inspect.signature(train_cli.train)
    for name in TRAIN_OPTIONS:
        p = sig.parameters[name]
        assert p.annotation == Optional[option_type(fields[name].annotation)], name
        assert isinstance(p.default, OptionInfo) and p.default.default is None, name


def test_option_names_and_flags():
    params = {p.name: p for p in get_command(app).commands["train"].params}
    assert params["image_size"].opts == ["--image-size"] and params["batch_size"].opts == ["--batch-size"]
    assert params["out"].opts == ["--out"] and params["num_nodes"].opts == ["--num-nodes"]
    assert (params["frozen_encoder"].opts, params["frozen_encoder"].secondary_opts) == (["--frozen-encoder"], ["--finetune-encoder"])
    assert (params["augment"].opts, params["augment"].secondary_opts) == (["--augment"], ["--no-augment"])
    assert params["resume"].is_flag and params["resume"].secondary_opts == []
    assert params["skip_unreadable"].is_flag and params["keep_eval_copies"].is_flag
    assert params["progress"].default is True and params["config"].default is None
    assert params["lr"].help == "Adam learning rate (default 3e-4)"


def test_option_type_of_config_fields():
    f = TrainConfig.model_fields
    assert [option_type(f[k].annotation) for k in ("task", "in_chans", "image_size", "data", "deterministic", "lr")] == [str, int, int, Path, bool, float]
    for name in ("model_kwargs", "fractions"):
        with pytest.raises(TypeError, match="not a command-line type"):
            option_type(f[name].annotation)
    with pytest.raises(TypeError, match="not one type"):
        option_type(int | str | None)


def test_options_from_config_on_a_small_model():
    class Toy(BaseModel):
        size: int | None = Field(None, description="side in pixels")
        mode: Literal["a", "b"] = "a"
        fast: bool = False
        where: Optional[Path] = None

    seen = {}
    toy = typer.Typer(add_completion=False)

    @toy.command()
    @options_from_config(Toy, {"mode": ((), "a or b"), "size": (("--side", "-s"), None), "fast": (("--fast/--slow",), "speed"), "where": ((), "folder")})
    def run(*, verbose: bool = typer.Option(False, "--verbose"), **options: Any) -> None:
        seen.update(options, verbose=verbose)

    runner = CliRunner()
    assert runner.invoke(toy, ["-s", "3", "--mode", "b", "--slow", "--where", "x"]).exit_code == 0
    assert seen == {"size": 3, "mode": "b", "fast": False, "where": Path("x"), "verbose": False}
    seen.clear()
    assert runner.invoke(toy, ["--verbose"]).exit_code == 0
    assert seen == {"size": None, "mode": None, "fast": None, "where": None, "verbose": True}
    params = {p.name: p for p in get_command(toy).params}
    assert [p.name for p in get_command(toy).params] == ["mode", "size", "fast", "where", "verbose"]
    assert params["size"].help == "side in pixels" and params["mode"].help == "a or b"
    with pytest.raises(KeyError):
        options_from_config(Toy, {"colour": ((), "no such field")})(lambda **kw: None)


@pytest.fixture
def resolved(monkeypatch):
    """The real load_train_config, stopped after resolving: what it was given and what it returned."""
    seen = {}

    def stop_after_resolving(config_file=None, **overrides):
        seen["overrides"] = overrides
        seen["cfg"] = load(config_file, **overrides)
        raise AlzmriError("resolved")

    load = train_cli.load_train_config
    monkeypatch.setattr(train_cli, "load_train_config", stop_after_resolving)
    return seen


def test_command_line_wins_over_the_yaml_config(capsys, tmp_path, resolved):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 7\nbatch_size: 64\nlr: 0.01\naugment: true\nseed: 5\nclass_weight: balanced\n")
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--epochs", "3", "--batch-size", "16", "--no-augment", "--out", tmp_path / "r", "--image-size", "48")
    assert_one_line_error(code, err, r"^error: resolved$")
    c = resolved["cfg"]
    assert (c.epochs, c.batch_size, c.augment, c.image_size, c.out) == (3, 16, False, 48, tmp_path / "r")  # command line
    assert (c.lr, c.seed, c.class_weight) == (0.01, 5, "balanced")  # YAML
    assert (c.model, c.split_strategy, c.resume, c.deterministic) == ("altzcnn", "subject", False, None)  # defaults
    o = resolved["overrides"]
    assert set(o) == set(TRAIN_OPTIONS)
    assert (o["epochs"], o["batch_size"], o["augment"], o["image_size"]) == (3, 16, False, 48)
    assert o["lr"] is None and o["seed"] is None and o["resume"] is None and o["frozen_encoder"] is None


def test_flags_given_reach_the_config(capsys, tmp_path, resolved):
    code, _, _ = run_cli(capsys, "train", "--level", "brain", "--finetune-encoder", "--slice-position", "--resume", "--skip-unreadable", "--in-chans", "3", "--task", "binary")
    assert code == 2
    c = resolved["cfg"]
    assert (c.level, c.frozen_encoder, c.slice_position, c.resume, c.skip_unreadable, c.in_chans, c.task) == ("brain", False, True, True, True, 3, "binary")


# --------------------------------------------------------------------------------------
# bad input: one line, exit code 2, nothing written


def test_empty_class_folder(capsys, data, tmp_path, earlier_run):
    before = tree_digest(earlier_run.parent)
    for f in (data / "Moderate_Demented").iterdir():
        f.unlink()
    code, _, err = _train(capsys, data, tmp_path / "runs" / "new")
    assert_one_line_error(code, err, r"Moderate_Demented: class folder holds no images")
    assert tree_digest(earlier_run.parent) == before and not (tmp_path / "runs" / "new").exists()


def test_corrupt_jpeg_names_the_file_and_the_fix(capsys, data, tmp_path, earlier_run):
    before = tree_digest(earlier_run.parent)
    bad = sorted((data / "Non_Demented").iterdir())[2]
    bad.write_bytes(bad.read_bytes()[:500])
    code, _, err = _train(capsys, data, tmp_path / "runs" / "new")
    assert_one_line_error(code, err, rf"{bad.name}: corrupt or truncated image.*--skip-unreadable")
    assert tree_digest(earlier_run.parent) == before and not (tmp_path / "runs" / "new").exists()


def test_non_image_file(capsys, data, tmp_path):
    (data / "Mild_Demented" / "readme.txt").write_text("hi")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"non-image file\(s\) in class folder 'Mild_Demented'")


def test_text_file_named_jpg(capsys, data, tmp_path):
    (data / "Mild_Demented" / "fake.jpg").write_text("I am not a JPEG")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"fake.jpg: not an image file")


def test_unknown_class_folder(capsys, data, tmp_path):
    shutil.copytree(data / "Mild_Demented", data / "Severe_Demented")
    code, _, err = _train(capsys, data, tmp_path / "new")
    assert_one_line_error(code, err, r"unknown class folder\(s\) 'Severe_Demented'")


def test_manifest_naming_files_that_are_gone(capsys, data, tmp_path, data_6400):
    other = copy_subset(data_6400, tmp_path / "other", 6, stride=3)
    manifest = tmp_path / "m.csv"
    from alzmri.data.discovery import discover
    from alzmri.data.manifest import write_manifest
    from alzmri.data.splits import make_split

    idx = discover(other)
    write_manifest(manifest, idx, make_split("stratified", idx.labels))
    code, _, err = _train(capsys, data, tmp_path / "new", "--split", manifest)
    assert_one_line_error(code, err, r"file\(s\) named in the manifest are not in")
    assert not (tmp_path / "new").exists()


def test_existing_run_folder_is_never_overwritten(capsys, data, earlier_run):
    before = tree_digest(earlier_run)
    code, _, err = _train(capsys, data, earlier_run)
    assert_one_line_error(code, err, r"run folder already exists and is not empty")
    assert tree_digest(earlier_run) == before


def test_bad_config_and_options(capsys, data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    code, _, err = run_cli(capsys, "train", "--config", cfg, "--data", data)
    assert_one_line_error(code, err, r"c.yaml: unknown key 'learning_rate'")
    code, _, err = run_cli(capsys, "train", "--data", data, "--lr", "-1")
    assert_one_line_error(code, err, r"'lr' input should be greater than 0")
    code, _, err = run_cli(capsys, "train", "--data", data, "--model", "resnet5")
    assert_one_line_error(code, err, r"unknown model 'resnet5'")


def test_split_options_bad_input(capsys, data, tmp_path):
    code, _, err = _train(capsys, data, tmp_path / "r", "--split-strategy", "random")
    assert_one_line_error(code, err, r"'split_strategy' value error, must be one of subject, stratified, image; got 'random'")
    code, _, err = _train(capsys, data, tmp_path / "r", "--folds", "1")
    assert_one_line_error(code, err, r"'folds' input should be greater than or equal to 2")
    code, _, err = _train(capsys, data, tmp_path / "r", "--folds", "3", "--split-strategy", "image")
    assert_one_line_error(code, err, r"--folds K is cross-validation by subject; it needs --split-strategy subject, got 'image'")
    code, _, err = _train(capsys, data, tmp_path / "r", "--groups", tmp_path / "missing.csv")
    assert_one_line_error(code, err, r"missing.csv: groups file not found")
    assert not (tmp_path / "r").exists()


def test_train_without_data_and_nothing_downloaded(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "r", "--epochs", "1")
    assert_one_line_error(code, err, r"no --data given and no downloaded dataset.*alzmri data download")
