"""The leakage audit's report as plain text for the terminal."""

from __future__ import annotations

from alzmri.data.audit_neighbours import SPLIT_ORDER


def format_audit(report: dict) -> str:
    """Plain-text summary of an :func:`audit_split` report for the terminal.

    Parameters
    ----------
    report : dict
        As returned by :func:`audit_split`.

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    n = report["n_images"]
    lines = [
        "Leakage audit: " + ", ".join(f"{s} {n[s]}" for s in SPLIT_ORDER)
        + (f", left out {report['n_left_out']}" if report.get("n_left_out") else "")
    ]

    def pairs_line(title: str, d: dict, extra: str = "") -> None:
        by = ", ".join(f"{k} {v}" for k, v in d["by_splits"].items())
        lines.append(f"  {title}{extra}: {d['n_pairs']} pair(s)" + (f" ({by})" if by else ""))
        for e in d["examples"][:3]:
            sim = f"  similarity {e['similarity']:.4f}" if "similarity" in e else ""
            lines.append(f"      {e['a_split']}: {e['a']}  <->  {e['b_split']}: {e['b']}{sim}")

    pairs_line("exact duplicates across splits", report["exact_duplicates"])
    nd = report["near_duplicates"]
    pairs_line("near-duplicates across splits", nd, f" (similarity >= {nd['threshold']:g})")
    sg = report.get("shared_groups")
    if sg is None:
        lines.append("  scan groups shared between splits: not checked (no groups given)")
    else:
        by = ", ".join(f"{k} {v}" for k, v in sg["by_splits"].items())
        lines.append(
            f"  scan groups shared between splits: {sg['n_groups_shared']} of {sg['n_groups']}" + (f" ({by})" if by else "")
        )
        for e in sg["examples"][:3]:
            lines.append(f"      group {e['group']}: " + ", ".join(f"{k} {v}" for k, v in e["splits"].items()))
    cc = report.get("cross_split_copies")
    if cc is not None:
        by = ", ".join(f"{k} {v}" for k, v in cc["by_splits"].items())
        lines.append(
            f"  copies across splits (pose similarity >= {cc['threshold']:g}; rotation, flips, shift, zoom): "
            f"{cc['n_images']} val/test image(s)" + (f" ({by})" if by else "")
        )
        for e in cc["examples"][:3]:
            lines.append(f"      {e['a_split']}: {e['a']}  <->  {e['b_split']}: {e['b']}  similarity {e['similarity']:.4f}")
        k = cc.get("known")
        if k is not None:
            lines.append(
                f"  augmented copies outside their original's split (from the groups): {k['n_copies_outside_original_split']} "
                f"of {k['n_copies']} copies, {k['n_families_across']} original(s)"
            )
            for e in k["examples"][:3]:
                lines.append(f"      {e['a_split']}: {e['a']}  ->  {e['b_split']}: {e['b']}")
    for key in ("baseline", "pose_baseline"):
        b = report.get(key)
        if b is None:
            if key == "baseline":
                lines.append("  1-NN baselines: not run (need train and val or test images)")
            continue
        lines.append(
            f"  1-NN baseline ({b['model']}, train -> {b['eval_split']}, {b['n_eval']} images): "
            f"accuracy {b['accuracy']:.3f} (chance {b['chance_accuracy']:.3f}), "
            f"balanced accuracy {b['balanced_accuracy']:.3f} (chance {b['chance_balanced_accuracy']:.3f})"
        )
    lines.append(("  WARNING: " if report["leakage_warning"] else "  OK: ") + report["message"])
    return "\n".join(lines)
