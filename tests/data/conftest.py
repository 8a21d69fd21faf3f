"""Fixtures shared by the data tests."""

from __future__ import annotations

import pytest

from alzmri.data.discovery import discover


@pytest.fixture(scope="module")
def aug(augmented_brains):
    """The augmented-brains set read back: (index, its true groups, the fixture's dict, (copy, source) index pairs)."""
    from alzmri.data.groups import read_groups_csv

    index = discover(augmented_brains["root"])
    res = read_groups_csv(augmented_brains["groups_csv"], index)
    pairs = [(index.paths.index(c), index.paths.index(s)) for c, s in sorted(augmented_brains["copy_of"].items())]
    return index, res, augmented_brains, pairs
