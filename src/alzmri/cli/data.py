"""The ``alzmri data`` commands: inspect, download, groups and audit (added to :mod:`alzmri.cli`'s app).

Each command parses its options, calls one library function and prints its result;
warnings go to stderr as one line each (:func:`alzmri.utils.console.print_warning`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from alzmri.cli.tables import fmt, out
from alzmri.errors import AlzmriError

data_app = typer.Typer(help="Inspect, download, group and audit datasets.", no_args_is_help=True)


def copies_line(n_copies: int, n_originals: int) -> str:
    """``augmented copies: ...``: how many images look like augmented copies of how many originals."""
    if not n_copies:
        return "augmented copies: none found"
    return (f"augmented copies: {n_copies} images look like augmented copies of {n_originals} originals "
            "(rotated, shifted, zoomed, flipped, blurred or intensity-changed)")


@data_app.command("inspect")
def data_inspect(
    data: Path = typer.Argument(..., help="dataset folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    copies: bool = typer.Option(
        False, "--copies", help="recover the subject groups (cached) to count augmented copies; default: report them only "
        "when `alzmri data groups` (or a run) already cached the groups of this data"
    ),
) -> None:
    """Per-class counts, image sizes and modes, the detected layout, unreadable files, augmented copies."""
    from alzmri.data.inspect import inspect_dataset

    info = inspect_dataset(data, copies=copies)
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        _print_inspection(info)


def _print_inspection(info: dict) -> None:
    """The tables of ``alzmri data inspect`` (``info``: :func:`alzmri.data.inspect.inspect_dataset`)."""
    out.print(f"[bold]{info['root']}[/bold]  layout: {info['layout']}  images: {info['total']}")
    t = Table("folder", "class")
    for folder, cls in info["class_folders"].items():
        t.add_row(folder, cls)
    out.print(t)
    t = Table("class", "images", *(f"{s}" for s in info["counts_by_source_split"]))
    for cls, n in info["counts"].items():
        t.add_row(cls, str(n), *(str(d[cls]) for d in info["counts_by_source_split"].values()))
    out.print(t)
    out.print("sizes: " + ", ".join(f"{k} ({v})" for k, v in info["sizes"].items()))
    out.print("modes: " + ", ".join(f"{k} ({v})" for k, v in info["modes"].items()))
    if info["unreadable"]:
        out.print(f"[red]unreadable files: {len(info['unreadable'])}[/red]")
        for u in info["unreadable"]:
            out.print(f"  {u['path']}: {u['reason']}")
    else:
        out.print("unreadable files: none")
    c = info["copies"]
    if c is None:
        out.print("augmented copies: not looked for (no cached groups of this data); `alzmri data inspect --copies` "
                  "or `alzmri data groups` finds them", markup=False, highlight=False)
    else:
        out.print(f"{copies_line(c['n_copies'], c['n_originals_copied'])}; from {c['source']}", markup=False, highlight=False)


@data_app.command("download")
def data_download(
    dest: Optional[Path] = typer.Option(None, help="target folder; default: the user cache"),
    force: bool = typer.Option(False, help="download again even if a complete copy exists"),
) -> None:
    """Fetch the public 6,400-slice set (Hugging Face Hub: Falah/Alzheimer_MRI) into the user cache."""
    from alzmri.data.download import download_dataset

    path = download_dataset(dest, force=force)
    out.print(f"dataset ready at {path}")


@data_app.command("groups")
def data_groups(
    data: Path = typer.Argument(..., help="dataset folder"),
    output: Path = typer.Option(..., "--out", "-o", help="groups CSV to write (path,class,group,position,kind,copy_of)"),
    threshold: Optional[float] = typer.Option(None, help="link threshold on the fine similarity (default 0.83)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Recover which slices come from the same brain (subject groups) and which are augmented copies; write them as CSV.

    When the groups are too close to call (small separation gap), one warning line on
    stderr says so and what to do.
    """
    from alzmri.data.discovery import discover
    from alzmri.data.groups import load_or_recover_groups, write_groups_csv
    from alzmri.utils.console import print_warning

    index = discover(data)
    params = {} if threshold is None else {"threshold": threshold}
    res = load_or_recover_groups(index, **params)
    write_groups_csv(output, index, res)
    summary = res.summary()
    summary["groups_per_class"] = _groups_per_class(res)
    summary["written"] = str(output)
    unreliable = res.reliability_warning()
    summary["warnings"] = [unreliable.removeprefix("warning: ")] if unreliable else []
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print_group_summary(summary)
    for w in summary["warnings"]:
        print_warning(w)


def _groups_per_class(res) -> dict[str, int]:
    from alzmri.data.classes import CLASS_NAMES
    from alzmri.data.subject_splits import group_labels

    if not len(res.group):
        return {}
    glab = group_labels(res.labels, res.group)
    return {name: int((glab == k).sum()) for k, name in enumerate(CLASS_NAMES)}


def _print_group_summary(s: dict) -> None:
    how = f"{s['method']}" + (f", threshold {s['threshold']:g}" if s.get("threshold") is not None else "")
    out.print(f"[bold]{s['n_groups']} groups[/bold] ({how}) for {s['n_images']} images; written {s['written']}")
    gs = s["group_size"]
    out.print(f"group size: min {gs['min']}, median {gs['median']:g}, mean {gs['mean']:g}, max {gs['max']}; singletons {s['n_singletons']}")
    t = Table("group size", "groups", title="size histogram")
    for size, n in s["size_histogram"].items():
        t.add_row(size, str(n))
    out.print(t)
    out.print("classes per group: " + ", ".join(f"{k} class{'es' if k != '1' else ''}: {v} groups" for k, v in s["classes_per_group"].items()))
    out.print("groups (subjects) per class, by majority class: " + ", ".join(f"{k} {v}" for k, v in s["groups_per_class"].items()))
    out.print(copies_line(s["n_copies"], s["n_originals_copied"]), markup=False, highlight=False)
    sep = s.get("separation")
    if sep:
        out.print(
            f"separation: weakest link within groups {fmt(sep['weakest_link_within'])}, "
            f"strongest similarity between groups {fmt(sep['strongest_between'])} (gap {fmt(sep['gap'])})"
        )
    if s["n_unreadable"]:
        out.print(f"unreadable images (each its own group): {s['n_unreadable']}")
    n_mixed = s["n_mixed_class_groups"]
    if n_mixed:
        out.print(f"[bold red]FLAGGED: {n_mixed} mixed-class group(s)[/bold red] (a scan has one diagnosis: a recovery or labelling error)")
        for m in s["mixed_class_groups"][:10]:
            cls = ", ".join(f"{k} {v}" for k, v in m["classes"].items())
            out.print(f"  group {m['group']} ({m['size']} images): {cls}; e.g. {', '.join(m['examples'])}", markup=False, highlight=False)
    else:
        out.print("mixed-class groups: none")


@data_app.command("audit")
def data_audit(
    data: Path = typer.Argument(..., help="dataset folder"),
    split: Optional[Path] = typer.Option(None, help="manifest.csv of the split to audit, as written (default: the release's own split folders, else the split alzmri train would make)"),
    groups: Optional[Path] = typer.Option(None, help="groups CSV (alzmri data groups); default: from the manifest or recovered"),
    split_strategy: str = typer.Option("subject", help="without --split: subject, stratified or image"),
    seed: int = typer.Option(42, help="without --split: split seed"),
    keep_eval_copies: bool = typer.Option(
        False, "--keep-eval-copies", help="without --split: keep augmented copies in validation/test, as alzmri train --keep-eval-copies"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Leakage audit of a split: duplicates, near-duplicates and shared subjects across splits, and a 1-NN baseline vs chance.

    Exit code 0 even when leakage is found; the warning is printed (also on stderr).
    """
    from alzmri.data.audit import audit_split
    from alzmri.data.audit_format import format_audit
    from alzmri.data.discovery import discover
    from alzmri.data.eval_copies import leave_out_eval_copies, summarize_copies
    from alzmri.data.manifest import load_manifest
    from alzmri.data.splits import SPLITTERS, make_split
    from alzmri.data.subjects import resolve_subjects
    from alzmri.utils.console import print_warning

    index = discover(data)
    manifest = load_manifest(split, index) if split is not None else None
    subjects = resolve_subjects(index, groups_file=groups, manifest=manifest)
    if manifest is not None:
        splits, what = manifest.splits, f"manifest {split}" + (f" (strategy {manifest.strategy})" if manifest.strategy else "")
    else:
        if index.layout == "split_folders":
            splits = [r.source_split or "" for r in index.records]
            what = "the release's own split folders (" + ", ".join(sorted({s for s in splits if s})) + ")"
        else:
            if split_strategy not in SPLITTERS:
                raise AlzmriError(f"--split-strategy must be one of {', '.join(SPLITTERS)}; got {split_strategy!r}")
            splits = make_split(split_strategy, index.labels, seed=seed, groups=subjects.group)
            what = f"strategy {split_strategy}, seed {seed}, 70/15/15"
        # as training would use it: validation and test hold originals only unless --keep-eval-copies
        splits = leave_out_eval_copies(splits, subjects.copy_of, keep=keep_eval_copies)
    copies = summarize_copies(splits, subjects.copy_of)
    report = audit_split(index, splits, groups=subjects.result)
    report["split_audited"] = what
    report["groups_source"] = subjects.source
    report["eval_copies"] = copies.as_dict()
    report["groups_warning"] = subjects.warning()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        out.print(f"split audited: {what}; subject groups: {subjects.source}", markup=False, highlight=False)
        if copies.n_copies:
            out.print(f"{copies_line(copies.n_copies, copies.n_originals_copied)}; in the split: {copies.train} train, "
                      f"{copies.val} val, {copies.test} test, {copies.left_out} left out", markup=False, highlight=False)
        text = format_audit(report)
        for line in text.splitlines():
            style = "bold yellow" if line.lstrip().startswith("WARNING") else None
            out.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    if report["groups_warning"]:
        print_warning(report["groups_warning"])
    if report["leakage_warning"]:
        print_warning(report["message"])
