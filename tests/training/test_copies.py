"""Runs on an augmented set: validation and test hold originals only unless --keep-eval-copies.

Real slices of 17 known brains plus 40 augmented copies (conftest ``augmented_brains``),
groups and copies known from construction (``--groups`` truth CSV, or recovery replaced
by the truth to stand in for image recovery).
"""

from __future__ import annotations

import csv
import json

import pytest

from alzmri.cli import main
from alzmri.data.discovery import discover
from alzmri.runs import RunInfo
from _helpers import truth_result

TINY = ["--epochs", "1", "--image-size", "32", "--batch-size", "32", "--seed", "0", "--no-progress"]
UNRELIABLE = "the recovered groups are unreliable"


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def manifest_rows(path):
    return {r["path"]: r for r in csv.DictReader(path.open())}


def expected_left_out(rows: dict, copy_of: dict) -> int:
    """Copies whose original the split put in validation or test (from the truth, not from the run's counts)."""
    return sum(rows[o]["split"] in ("val", "test") for o in copy_of.values())


@pytest.fixture(scope="module")
def runs(augmented_brains, tmp_path_factory):
    """A default run and a --keep-eval-copies run on the same split, with their console output."""
    import contextlib
    import io

    base = tmp_path_factory.mktemp("copies-runs")
    out = {}
    for name, extra in (("default", []), ("keep", ["--keep-eval-copies"])):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["train", "--data", str(augmented_brains["root"]), "--groups", str(augmented_brains["groups_csv"]),
                         "--out", str(base / name), *TINY, *extra])
        assert code == 0, err.getvalue()
        out[name] = (base / name, err.getvalue())
    return out


@pytest.mark.slow
def test_default_run_validates_and_tests_on_originals_only(runs, augmented_brains):
    run, err = runs["default"]
    truth = augmented_brains["copy_of"]
    rows = manifest_rows(run / "manifest.csv")
    assert list(next(iter(rows.values()))) == ["path", "class", "split", "sha256", "group", "strategy", "kind", "copy_of"]
    n_left = expected_left_out(rows, truth)
    assert n_left > 0
    for c, o in truth.items():
        assert rows[c]["kind"] == "copy" and rows[c]["copy_of"] == o and rows[c]["group"] == rows[o]["group"]
        assert rows[c]["split"] == ("train" if rows[o]["split"] == "train" else "")
    assert not any(r["kind"] == "copy" and r["split"] in ("val", "test") for r in rows.values())
    info = RunInfo.load(run)
    assert info.copies["n_copies"] == 40 and info.copies["left_out"] == n_left
    assert info.copies["train"] == 40 - n_left and info.copies["val"] == info.copies["test"] == 0
    assert "weight that slice several times" in info.copies["reason"]
    assert sum(info.split_counts.values()) == 153 - n_left
    assert not any("augmented copies" in w for w in info.warnings)
    assert f"note: {n_left} augmented copies left out of validation/test" in err and "Traceback" not in err
    card = (run / "MODEL_CARD.md").read_text()
    assert "augmented copies: 40 images are augmented copies" in card and f"{n_left} were left out of validation and test" in card
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_samples"] == info.split_counts["test"] == sum(r["split"] == "test" for r in rows.values())


@pytest.mark.slow
def test_keep_eval_copies_keeps_them_and_warns_once(runs, augmented_brains):
    run, err = runs["keep"]
    default_rows = manifest_rows(runs["default"][0] / "manifest.csv")
    rows = manifest_rows(run / "manifest.csv")
    truth = augmented_brains["copy_of"]
    n_eval = expected_left_out(rows, truth)
    # the same split of the brains; the copies stay with their brain
    assert {p: r["split"] for p, r in rows.items() if r["kind"] == "original"} == \
           {p: r["split"] for p, r in default_rows.items() if r["kind"] == "original"}
    assert all(rows[c]["split"] == rows[o]["split"] for c, o in truth.items())
    info = RunInfo.load(run)
    assert info.copies["left_out"] == 0 and info.copies["val"] + info.copies["test"] == n_eval > 0
    # the note says they were kept, not that validation and test hold originals only
    assert "kept: --keep-eval-copies" in info.copies["note"] and "hold originals only" not in info.copies["note"]
    line = f"validation and test hold {n_eval} augmented copies"
    assert err.count(line) == 1 and f"warning: {line}" in err
    assert sum(w.startswith(line) for w in info.warnings) == 1
    assert any(w.startswith(line) for w in json.loads((run / "metrics.json").read_text())["warnings"])


@pytest.mark.slow
def test_run_manifest_is_what_a_resume_recomputes(runs):
    from alzmri.data.manifest import load_manifest
    from alzmri.data.subjects import resolve_subjects
    from alzmri.training.resume import manifest_bytes

    run = runs["default"][0]
    index = discover(RunInfo.load(run).data)
    m = load_manifest(run / "manifest.csv", index)
    subj = resolve_subjects(index, manifest=m)
    expected = manifest_bytes(index, m.splits, groups=subj.group, strategy=m.strategy, copy_of=subj.copy_of)
    assert expected == (run / "manifest.csv").read_bytes()


@pytest.mark.slow
def test_reused_manifest_keeps_its_copies_and_counts(runs, augmented_brains, tmp_path, capsys):
    run = runs["default"][0]
    code, _, err = run_cli(capsys, "train", "--data", augmented_brains["root"], "--split", run / "manifest.csv",
                           "--out", tmp_path / "again", *TINY)
    assert code == 0, err
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (run / "manifest.csv").read_bytes()
    assert RunInfo.load(tmp_path / "again").copies == RunInfo.load(run).copies
    assert "note:" not in err  # the reused split was made (and announced) earlier


@pytest.fixture
def unreliable_recovery(monkeypatch, augmented_brains):
    """Image recovery replaced by the truth with a separation gap of 0.01 (unreliable)."""
    import alzmri.data.groups as groups

    def fake(index, images=None, **kw):
        return truth_result(index, augmented_brains["brain"], augmented_brains["copy_of"], gap=0.01)

    monkeypatch.setattr(groups, "load_or_recover_groups", fake)


def test_unreliable_recovered_groups_warn_once_in_train(unreliable_recovery, augmented_brains, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", augmented_brains["root"], "--out", tmp_path / "r", *TINY)
    assert code == 0 and "Traceback" not in err
    assert err.count(UNRELIABLE) == 1 and f"warning: {UNRELIABLE} (gap 0.010" in err and "pass --groups FILE" in err
    info = RunInfo.load(tmp_path / "r")
    assert sum(UNRELIABLE in w for w in info.warnings) == 1 and not info.warnings[0].startswith("warning:")
    # the recovered copies are used: validation and test hold originals only
    rows = manifest_rows(tmp_path / "r" / "manifest.csv")
    assert info.copies["n_copies"] == 40 and not any(r["kind"] == "copy" and r["split"] in ("val", "test") for r in rows.values())


@pytest.mark.slow
def test_cross_validation_folds_hold_originals_in_validation_and_test(augmented_brains, tmp_path, capsys):
    out = tmp_path / "cv"
    code, _, err = run_cli(capsys, "train", "--data", augmented_brains["root"], "--groups", augmented_brains["groups_csv"],
                           "--out", out, "--folds", "3", *TINY)
    assert code == 0, err
    truth = augmented_brains["copy_of"]
    tested = set()
    for i in range(3):
        rows = manifest_rows(out / "cv-splits" / f"fold-{i}.csv")
        assert not any(rows[c]["split"] in ("val", "test") for c in truth)
        assert all(rows[c]["split"] == ("train" if rows[o]["split"] == "train" else "") for c, o in truth.items())
        tested |= {p for p, r in rows.items() if r["split"] == "test"}
        assert RunInfo.load(out / f"fold-{i}").copies["left_out"] == expected_left_out(rows, truth)
    # every original is tested exactly once across the folds, no copy ever
    originals = {p for p in augmented_brains["brain"] if p not in truth}
    assert tested == originals
