"""The split a run (or a comparison, or cross-validation) uses: made or reused, with its copies and warnings.

:func:`prepare_split` is the one place that turns a :class:`~alzmri.config.TrainConfig`,
the dataset and its subjects into the split per image: a reused manifest as written, or
a new split by the configured strategy, with augmented copies left out of validation and
test unless ``keep_eval_copies`` (:mod:`alzmri.data.eval_copies`). It also collects the
warnings the split deserves, each once: unreliable recovered groups, brains or copies
across splits, copies kept in validation or test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alzmri.config import TrainConfig
from alzmri.data.discovery import DatasetIndex, discover
from alzmri.data.eval_copies import CopySummary, leave_out_eval_copies, summarize_copies
from alzmri.data.manifest import Manifest, load_manifest, write_manifest
from alzmri.data.split_checks import split_warnings
from alzmri.data.splits import make_split
from alzmri.data.subjects import Subjects, resolve_subjects


@dataclass
class PreparedSplit:
    """A run's split with what is known about it.

    Attributes
    ----------
    splits : ndarray of shape (n_images,), dtype str
        ``"train"``/``"val"``/``"test"``, ``""`` for images left out.
    strategy : str
        The strategy that made it (``subject``, ..., or ``manifest:PATH``).
    subjects : Subjects
        Subject and copy source of every image (``subjects.group``, ``subjects.copy_of``).
    copies : CopySummary
        Augmented copies per split and left out.
    warnings : list of str
        One sentence each, without a ``warning:`` prefix, in the order printed.
    made : bool
        True when the split was made here (not read from a manifest).
    """

    splits: np.ndarray
    strategy: str
    subjects: Subjects
    copies: CopySummary
    warnings: list[str] = field(default_factory=list)
    made: bool = True

    @property
    def groups(self) -> np.ndarray:
        """Subject id per image, int64 array of shape (n_images,)."""
        return self.subjects.group

    def copies_record(self) -> dict:
        """The copies block of run.json / comparison.json: counts, ``reason`` and ``note`` (empty dict without copies)."""
        if not self.copies.n_copies:
            return {}
        return {**self.copies.as_dict(), "note": self.copies.note()}

    def left_out_note(self) -> str | None:
        """A line for the console when this split left copies out of validation and test, else None."""
        c = self.copies
        if not (self.made and c.left_out):
            return None
        return (f"{c.left_out} augmented copies left out of validation/test (validation and test hold originals only; "
                f"{c.train} copies stay in training); --keep-eval-copies keeps them")


def prepare_split(
    cfg: TrainConfig,
    index: DatasetIndex,
    manifest: Manifest | None,
    subjects: Subjects,
    *,
    readable: np.ndarray | None = None,
) -> PreparedSplit:
    """The split of ``cfg`` on ``index``: ``manifest`` as written, else made by ``cfg.split_strategy``.

    Parameters
    ----------
    cfg : TrainConfig
        ``split_strategy``, ``fractions``, ``seed`` and ``keep_eval_copies`` are used.
    index : DatasetIndex
    manifest : Manifest or None
        A reused manifest (used as written: its copies stay where it puts them).
    subjects : Subjects
        From :func:`alzmri.data.subjects.resolve_subjects`.
    readable : ndarray of shape (n_images,), dtype bool, optional
        Unreadable images are left out (``""``).

    Returns
    -------
    PreparedSplit
    """
    copy_of = subjects.copy_of
    if manifest is not None:
        splits, strategy, made, source = manifest.splits, manifest.strategy or f"manifest:{cfg.split}", False, None
    else:
        source = [r.source_split for r in index.records]
        splits = make_split(cfg.split_strategy, index.labels, fractions=cfg.fractions, seed=cfg.seed, source_split=source,
                            groups=subjects.group)
        splits = leave_out_eval_copies(splits, copy_of, keep=cfg.keep_eval_copies)
        strategy, made = cfg.split_strategy, True
    splits = np.asarray(splits, dtype=str)
    if readable is not None:
        splits = np.where(readable, splits, "").astype(str)
    copies = summarize_copies(splits, copy_of)
    warns = [w for w in (subjects.warning(),) if w]
    warns += split_warnings(index.labels, splits, groups=subjects.group, strategy=strategy, source_split=source, copy_of=copy_of)
    if copies.warning():
        warns.append(copies.warning())
    return PreparedSplit(splits=splits, strategy=strategy, subjects=subjects, copies=copies, warnings=warns, made=made)


def make_split_manifest(cfg: TrainConfig, path: str | Path, *, index: DatasetIndex | None = None) -> PreparedSplit:
    """Split ``cfg.data`` exactly as :func:`alzmri.training.train.train` would and write only the manifest.

    Used to give several runs (a comparison) one shared split: each then trains with
    ``split=path``. With ``cfg.split`` set, that manifest is checked against the data and
    written again (with its groups, strategy and copies).

    Parameters
    ----------
    cfg : TrainConfig
        Its ``data``, ``split``, ``split_strategy``, ``groups``, ``fractions``, ``seed``
        and ``keep_eval_copies`` are used.
    path : path-like
        Manifest CSV to write (atomically).
    index : DatasetIndex, optional
        The already discovered dataset of ``cfg.data``.

    Returns
    -------
    PreparedSplit
        The split written (unreadable images are not checked here).

    Raises
    ------
    AlzmriError
        Bad data, manifest or groups file.
    """
    from alzmri.data.locations import resolve_data_dir

    index = index if index is not None else discover(resolve_data_dir(cfg.data))
    manifest = load_manifest(cfg.split, index) if cfg.split is not None else None
    prep = prepare_split(cfg, index, manifest, resolve_subjects(index, groups_file=cfg.groups, manifest=manifest))
    write_manifest(path, index, prep.splits, groups=prep.groups, strategy=prep.strategy, copy_of=prep.subjects.copy_of)
    return prep


def write_split_manifest(cfg: TrainConfig, path: str | Path, *, index: DatasetIndex | None = None) -> Path:
    """:func:`make_split_manifest`, returning only the written path."""
    make_split_manifest(cfg, path, index=index)
    return Path(path)
