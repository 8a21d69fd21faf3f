"""Canonical ordinal classes and the spellings used by public releases of this data."""

from __future__ import annotations

import re

from alzmri.errors import AlzmriError

#: Canonical class names in ordinal order of severity; index = integer label.
CLASS_NAMES: tuple[str, ...] = (
    "NonDemented",
    "VeryMildDemented",
    "MildDemented",
    "ModerateDemented",
)
NUM_CLASSES = len(CLASS_NAMES)

# Folder-name spellings seen in public releases, after normalisation (lower case,
# letters and digits only). Kaggle "Alzheimer MRI Preprocessed" (Non_Demented, ...),
# "Alzheimer's Dataset (4 class of Images)" (NonDemented, ...), the OASIS-derived
# Kaggle set (Non Demented, Very mild Dementia, ...), "Best Alzheimer MRI dataset"
# (No Impairment, Very Mild Impairment, ...).
_SPELLINGS: dict[str, int] = {}
for _label, _names in enumerate(
    (
        ("nondemented", "nondementia", "non", "noimpairment", "nodementia", "cn", "normal", "healthy"),
        ("verymilddemented", "verymilddementia", "verymild", "verymildimpairment"),
        ("milddemented", "milddementia", "mild", "mildimpairment"),
        ("moderatedemented", "moderatedementia", "moderate", "moderateimpairment"),
    )
):
    for _n in _names:
        _SPELLINGS[_n] = _label


def normalize_class_name(name: str) -> str:
    """Lower-case ``name`` and keep only letters and digits (``"Very mild_Dementia"`` -> ``"verymilddementia"``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def class_index(name: str) -> int | None:
    """Ordinal label (0..3) of a folder or class name in any known spelling, else ``None``."""
    return _SPELLINGS.get(normalize_class_name(name))


def class_index_or_raise(name: str, where: str) -> int:
    """Like :func:`class_index`, but raise :class:`AlzmriError` naming ``where`` for unknown names."""
    idx = class_index(name)
    if idx is None:
        raise AlzmriError(
            f"{where}: unknown class name {name!r}; known classes are {', '.join(CLASS_NAMES)} "
            "(any spelling such as Non_Demented, Very mild Dementia)"
        )
    return idx
