"""A comparison on an augmented set: the shared split holds originals only in validation and test.

Real slices of 17 known brains plus 40 augmented copies (conftest ``augmented_brains``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from alzmri.comparison import compare, load_compare_config
from alzmri.errors import AlzmriError
from alzmri.runs import RunInfo
from _helpers import truth_result

UNRELIABLE = "the recovered groups are unreliable"


def write_config(path: Path, data: Path, out: Path, **extra) -> Path:
    cfg = {
        "data": str(data), "out": str(out), "seed": 0, "split_strategy": "subject", "title": "copies",
        "defaults": {"epochs": 1, "batch_size": 32, "image_size": 32, "model_kwargs": {"fc_dropout": 0.0, "init": "he"}},
        "models": [{"name": "altz", "model": "altzcnn"}],
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def rows_of(path: Path) -> dict:
    return {r["path"]: r for r in csv.DictReader(path.open())}


@pytest.mark.slow
def test_unreliable_recovery_is_one_warning_and_eval_copies_are_left_out(augmented_brains, tmp_path, monkeypatch, capsys):
    import alzmri.data.groups as groups

    ab = augmented_brains
    monkeypatch.setattr(groups, "load_or_recover_groups",
                        lambda index, images=None, **kw: truth_result(index, ab["brain"], ab["copy_of"], gap=0.01))
    config = write_config(tmp_path / "c.yaml", ab["root"], tmp_path / "out")
    lines: list[str] = []
    out = compare(config, progress=False, isolate=False, echo=lines.append)
    err = capsys.readouterr().err
    assert err.count(UNRELIABLE) == 1 and f"warning: {UNRELIABLE} (gap 0.010" in err and "Traceback" not in err
    manifest = rows_of(out / "manifest.csv")
    n_left = sum(manifest[o]["split"] in ("val", "test") for o in ab["copy_of"].values())
    assert n_left > 0 and not any(r["kind"] == "copy" and r["split"] in ("val", "test") for r in manifest.values())
    assert any(line.startswith(f"note: {n_left} augmented copies left out of validation/test") for line in lines)
    split = json.loads((out / "comparison.json").read_text())["split"]
    assert split["copies"]["left_out"] == n_left and split["copies"]["n_copies"] == 40 and not split["keep_eval_copies"]
    assert len(split["warnings"]) == 1 and split["warnings"][0].startswith(UNRELIABLE)
    report = (out / "report.md").read_text()
    assert f"{n_left} were left out of validation and test" in report and f"> **Warning.** {UNRELIABLE}" in report
    assert UNRELIABLE in (out / "report.html").read_text()
    assert RunInfo.load(out / "runs" / "altz").copies["left_out"] == n_left
    # a rerun (nothing retrained) says it again, once, from split.json
    compare(config, progress=False, isolate=False, echo=lines.append)
    assert capsys.readouterr().err.count(UNRELIABLE) == 1


@pytest.mark.slow
def test_keep_eval_copies_is_a_comparison_key(augmented_brains, tmp_path, capsys):
    ab = augmented_brains
    config = write_config(tmp_path / "c.yaml", ab["root"], tmp_path / "out", groups=str(ab["groups_csv"]), keep_eval_copies=True)
    out = compare(config, progress=False, isolate=False, echo=None)
    assert json.loads((out / "split.json").read_text())["keep_eval_copies"] is True
    manifest = rows_of(out / "manifest.csv")
    n_eval = sum(manifest[o]["split"] in ("val", "test") for o in ab["copy_of"].values())
    assert n_eval > 0 and all(manifest[c]["split"] == manifest[o]["split"] for c, o in ab["copy_of"].items())
    info = RunInfo.load(out / "runs" / "altz")
    assert info.copies["left_out"] == 0 and info.copies["val"] + info.copies["test"] == n_eval
    assert sum(w.startswith(f"validation and test hold {n_eval} augmented copies") for w in info.warnings) == 1
    assert json.loads((out / "comparison.json").read_text())["split"]["keep_eval_copies"] is True
    # the same folder with the default refuses: it was split with other settings
    with pytest.raises(AlzmriError, match=r"split with other settings \(keep_eval_copies: True\)"):
        compare(write_config(tmp_path / "c2.yaml", ab["root"], tmp_path / "out", groups=str(ab["groups_csv"])),
                progress=False, isolate=False, echo=None)
    # a row may not set it: every row shares one split
    bad = write_config(tmp_path / "bad.yaml", ab["root"], tmp_path / "o2", models=[{"name": "a", "model": "altzcnn", "keep_eval_copies": True}])
    with pytest.raises(AlzmriError, match=r"models\[0\] 'a': 'keep_eval_copies' belongs at the top level of the comparison"):
        load_compare_config(bad)
