"""Find the images of a dataset folder and map its class folders onto the canonical classes.

Two public layouts are read:

``class_folders``
    ``DATA/<Class>/*.jpg`` (for example the Kaggle "Alzheimer MRI Preprocessed Dataset",
    ``Non_Demented/``, ``Very_Mild_Demented/``, ...).
``split_folders``
    ``DATA/train/<Class>/*.jpg`` and ``DATA/test/<Class>/*.jpg`` (for example the Kaggle
    "Alzheimer's Dataset (4 class of Images)", 176x208).

A single wrapper folder around either layout (``DATA/Alzheimer_s Dataset/train/...``) is
descended into. Images inside sub-folders of a class folder belong to that class.
Records are sorted by (label, path), so nothing depends on directory listing order.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alzmri.data.classes import CLASS_NAMES, class_index, normalize_class_name
from alzmri.errors import AlzmriError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
#: Files that operating systems and tools leave in folders; never data.
JUNK_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
SPLIT_FOLDER_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    Attributes
    ----------
    path : str
        POSIX path relative to the dataset root, e.g. ``"Mild_Demented/mild_10.jpg"``.
    label : int
        Canonical ordinal label, index into :data:`alzmri.data.classes.CLASS_NAMES`.
    source_split : str or None
        ``"train"``, ``"val"`` or ``"test"`` when the release ships its own split folders.
    """

    path: str
    label: int
    source_split: str | None = None

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


@dataclass
class DatasetIndex:
    """The images of one dataset folder, in canonical order.

    Attributes
    ----------
    root : Path
        Absolute dataset folder.
    layout : str
        ``"class_folders"`` or ``"split_folders"``.
    records : list of ImageRecord
        Sorted by (label, path).
    class_folders : dict
        Folder name as found on disk (relative to root) -> canonical class name.
    """

    root: Path
    layout: str
    records: list[ImageRecord]
    class_folders: dict[str, str] = field(default_factory=dict)
    non_images: list[str] = field(default_factory=list)
    _hashes: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        """Labels, int64 array of shape (n_images,)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.records]

    def class_counts(self) -> dict[str, int]:
        """Images per canonical class (all four classes, 0 where absent)."""
        counts = np.bincount(self.labels, minlength=len(CLASS_NAMES))
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}

    def file_hashes(self) -> list[str]:
        """SHA-256 hex digest of every file's bytes, aligned with :attr:`records` (computed once)."""
        if self._hashes is None:
            self._hashes = hash_files([self.root / r.path for r in self.records])
        return self._hashes

    def content_hash(self) -> str:
        """SHA-256 over every (path, class, file hash): changes when any image, name or class changes."""
        h = hashlib.sha256()
        for rec, fh in zip(self.records, self.file_hashes()):
            h.update(f"{rec.path}\t{rec.label}\t{fh}\n".encode())
        return h.hexdigest()


def hash_files(paths: list[Path], *, workers: int = 4) -> list[str]:
    """SHA-256 hex digests of the given files' bytes, in order.

    A broken or looping symbolic link gets the digest of its name instead (the decoder
    reports it as unreadable, so it never enters a split).

    Raises
    ------
    AlzmriError
        A file that exists but cannot be read (permissions).
    """

    def _one(p: Path) -> str:
        try:
            return hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as exc:
            if p.is_symlink() and not p.exists():
                # a broken or looping link: the decoder lists it as unreadable; this digest names it alone
                return hashlib.sha256(f"unreadable symbolic link {p.name}".encode()).hexdigest()
            raise AlzmriError(f"{p}: cannot read file ({exc.strerror or exc}); check permissions or remove it") from None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_one, paths))


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _inside(path: str, folder: str) -> bool:
    """True when the real path ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_folder_link(link: Path, folder: Path, root: Path) -> None:
    """Refuse a symbolic link to a folder that would count images twice or under another class.

    A link to the class folder itself or into it is harmless (each real folder is visited
    once); a link to one of its ancestors (a loop: the dataset root, say) or into another
    part of the dataset would put other classes' images into this class.
    """
    real, real_folder, real_root = os.path.realpath(link), os.path.realpath(folder), os.path.realpath(root)
    if _inside(real, real_folder):
        return
    cls = CLASS_NAMES[class_index(folder.name)] if class_index(folder.name) is not None else folder.name
    if _inside(real_folder, real):
        raise AlzmriError(
            f"{link}: symbolic link to {real}, which holds the class folder itself (a loop that would count "
            f"other classes' images as {cls}); remove the link"
        )
    if _inside(real, real_root):
        raise AlzmriError(
            f"{link}: symbolic link to {real}, another part of the dataset (its images would be counted twice, "
            f"once as {cls}); remove the link or copy the images into the right class folder"
        )


def _collect_class_folder(folder: Path, root: Path) -> tuple[list[str], list[str]]:
    """Image paths (relative to root) under ``folder`` and the non-image files found there.

    Follows symbolic links but visits each real folder once, so a link back into the
    class folder ends; a link to an ancestor (a loop through the dataset) or into another
    class folder raises :class:`AlzmriError`. A broken or looping symbolic link with an
    image name is kept as an image, so that decoding reports it as unreadable (never
    silently dropped).
    """
    images: list[str] = []
    non_images: list[str] = []
    seen: set[str] = set()
    stack = [folder]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise AlzmriError(f"{d}: cannot list folder ({exc.strerror or exc}); check permissions") from None
        for e in entries:
            if e.name.startswith(".") or e.name.lower() in JUNK_FILES:
                continue
            p = Path(e.path)
            try:
                is_dir, is_file = e.is_dir(), e.is_file()
            except OSError:  # a symbolic link loop (ELOOP) or an entry that cannot be examined
                is_dir = is_file = False
            if is_dir:
                if e.is_symlink():
                    _check_folder_link(p, folder, root)
                stack.append(p)
            elif is_file or e.is_symlink():  # a broken or looping link is reported by the decoder
                rel = p.relative_to(root).as_posix()
                (images if p.suffix.lower() in IMAGE_EXTENSIONS else non_images).append(rel)
            # sockets, FIFOs and devices are neither
    return images, non_images


def _map_class_dirs(dirs: list[Path], root: Path) -> dict[Path, int]:
    mapping: dict[Path, int] = {}
    unknown = [d for d in dirs if class_index(d.name) is None]
    if unknown:
        names = ", ".join(repr(d.relative_to(root).as_posix()) for d in unknown)
        raise AlzmriError(
            f"{root}: unknown class folder(s) {names}; expected folders for "
            f"{', '.join(CLASS_NAMES)} (spellings like Non_Demented or 'Very mild Dementia' are recognised) "
            "- rename or remove them"
        )
    by_label: dict[int, Path] = {}
    for d in dirs:
        label = class_index(d.name)
        assert label is not None
        if label in by_label:
            raise AlzmriError(
                f"{root}: folders {by_label[label].name!r} and {d.name!r} both mean {CLASS_NAMES[label]}; "
                "merge them into one folder"
            )
        by_label[label] = d
        mapping[d] = label
    return mapping


def discover(root: str | os.PathLike, *, allow_non_images: bool = False) -> DatasetIndex:
    """Index the images of a dataset folder.

    Parameters
    ----------
    root : path-like
        Dataset folder in the ``class_folders`` or ``split_folders`` layout.
    allow_non_images : bool, default=False
        List non-image files in ``DatasetIndex.non_images`` instead of raising (used by
        ``alzmri data inspect``, which reports them).

    Returns
    -------
    DatasetIndex
        Records sorted by (label, path), labels in canonical ordinal order.

    Raises
    ------
    AlzmriError
        The folder is missing or not a folder; no layout is recognised; a class folder
        name is unknown or two folders mean the same class; a class folder holds no
        images; a class folder holds non-image files; no images at all; a symbolic link
        in a class folder loops back to one of its ancestors or into another part of the
        dataset.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise AlzmriError(f"{root}: data folder does not exist; give the path of a folder with one sub-folder per class")
    if not root.is_dir():
        raise AlzmriError(f"{root}: is a file, not a data folder; give the path of a folder with one sub-folder per class")
    root = root.resolve()

    base = root
    dirs = _visible_dirs(base)
    # descend through single wrapper folders ("Alzheimer_s Dataset/")
    for _ in range(3):
        if len(dirs) == 1 and class_index(dirs[0].name) is None and normalize_class_name(dirs[0].name) not in SPLIT_FOLDER_NAMES:
            base = dirs[0]
            dirs = _visible_dirs(base)
        else:
            break
    if not dirs:
        # a lone folder that is not a class name was taken as a wrapper: name it
        unknown = f" (the only folder, '{base.relative_to(root).as_posix()}', is not a class name)" if base != root else ""
        raise AlzmriError(
            f"{root}: no class folders found{unknown}; expected DATA/<class>/*.jpg or DATA/train/<class>/*.jpg "
            f"with classes {', '.join(CLASS_NAMES)}"
        )

    split_names = [SPLIT_FOLDER_NAMES.get(normalize_class_name(d.name)) for d in dirs]
    groups: list[tuple[str | None, dict[Path, int]]] = []
    if all(s is not None for s in split_names):
        layout = "split_folders"
        for d, s in zip(dirs, split_names):
            groups.append((s, _map_class_dirs(_visible_dirs(d), root)))
    elif any(s is not None for s in split_names) and not any(class_index(d.name) is not None for d in dirs):
        layout = "split_folders"
        _map_class_dirs(dirs, root)  # raises, listing the unknown folders
    else:
        layout = "class_folders"
        groups.append((None, _map_class_dirs(dirs, root)))

    records: list[ImageRecord] = []
    class_folders: dict[str, str] = {}
    skipped_non_images: list[str] = []
    for split, mapping in groups:
        for d, label in mapping.items():
            rel_dir = d.relative_to(root).as_posix()
            images, non_images = _collect_class_folder(d, root)
            if non_images and allow_non_images:
                skipped_non_images.extend(non_images)
            elif non_images:
                shown = ", ".join(non_images[:3]) + (f" and {len(non_images) - 3} more" if len(non_images) > 3 else "")
                raise AlzmriError(
                    f"{root}: {len(non_images)} non-image file(s) in class folder {rel_dir!r} ({shown}); "
                    f"move them out (images are {', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            if not images:
                raise AlzmriError(
                    f"{root / rel_dir}: class folder holds no images; add images or remove the empty folder"
                )
            class_folders[rel_dir] = CLASS_NAMES[label]
            records.extend(ImageRecord(p, label, split) for p in images)

    records.sort(key=lambda r: (r.label, r.path))
    return DatasetIndex(root=root, layout=layout, records=records, class_folders=class_folders, non_images=sorted(skipped_non_images))
