"""Recover which slices come from the same scan (subject groups), from file names or from the images.

Public MRI slice sets such as the Kaggle "Alzheimer MRI Preprocessed Dataset" (6,400
images) hold many consecutive axial slices of each brain and no subject IDs. Neighbouring
slices of one brain are nearly identical, so any split of *slices* puts the same brain
in train and test. :func:`recover_groups` rebuilds the brains from the pixels so that
splits can be made by group (see ``docs/honest-evaluation.md`` for the measurements).

Method (``method="images"``)
----------------------------
1. **Features.** Each image is taken at 64 x 64 pixels (the decode-once cache). The
   *fine* feature is the image filtered with a Laplacian of Gaussian (sigma 1 px at 64 px),
   z-normalised (zero mean, unit norm). The filter removes the low-frequency anatomy that
   all atlas-registered brains share at one level and keeps the gyral detail that differs
   between people; on the 6,400 set it widens the gap between "adjacent slice of the same
   brain" and "any slice of another brain" from a distance ratio of 2.2 (raw pixels) to 3.1.
   The *coarse* feature is the raw image at 32 x 32, z-normalised.
2. **Candidates.** Every image's ``n_neighbors`` nearest images by coarse Pearson
   correlation, flip-invariant (the larger of the correlation with the other image and
   with its left-right mirror). Coarse raw pixels rank a 5-degree rotated copy's source
   first, where fine features would not.
3. **Similarity.** For each candidate pair, the fine correlation maximised over the
   mirror and over rotations of the query from ``-max_rotation`` to ``+max_rotation``
   degrees in ``rotation_step`` steps (bilinear, about the image centre). An augmented
   copy (flip, small rotation, blur, JPEG re-compression) of a slice therefore scores like
   the slice itself.
4. **Groups.** Pairs with similarity >= ``threshold`` are linked (optionally only mutual
   nearest neighbours); connected components are the groups.
5. **Positions.** Within a group, the order along the slice chain comes from spectral
   seriation (Fiedler vector of a Gaussian-affinity graph whose width is the group's median
   nearest-neighbour distance), polished by 2-opt on the path length; groups are then
   oriented consistently with each other (templates by relative position) and so that
   position 0 is the end with the larger brain cross-section (inferior on these sets).
6. **Augmented copies** (``find_copies=True``, :mod:`alzmri.data.groups.copies`): copies
   that were shifted, zoomed, flipped up-down or strongly rotated do not chain in step 4;
   they join the brain of their best match under a pose-invariant similarity
   (:mod:`alzmri.data.groups.pose`), and ``GroupResult.copy_of`` says which image is a
   copy of which original. Positions (step 5) are those of the originals; a copy takes
   its original's.

Modules: :mod:`~alzmri.data.groups.similarity` (steps 1-3),
:mod:`~alzmri.data.groups.seriation` (5), :mod:`~alzmri.data.groups.pose` and
:mod:`~alzmri.data.groups.copies` (6), :mod:`~alzmri.data.groups.recover` (the whole),
:mod:`~alzmri.data.groups.table` (CSV), :mod:`~alzmri.data.groups.cache` (on disk),
:mod:`~alzmri.data.groups.filenames` (subject IDs in names).

Method (``method="filename"``)
------------------------------
When every file name carries an OASIS-style subject ID (``OAS1_0001_MR1_mpr-1_100.jpg``),
the subject ID is the group (sessions of one subject are one brain) and the trailing
number orders the slices.
"""

from __future__ import annotations

from alzmri.data.groups.cache import (
    GROUPS_CACHE_VERSION,
    cached_groups,
    groups_cache_key,
    load_or_recover_groups,
)
from alzmri.data.groups.filenames import OASIS_ID_PATTERN, SLICE_NUMBER_PATTERN
from alzmri.data.groups.recover import (
    DEFAULT_THRESHOLD,
    image_array,
    image_aspects,
    recover_groups,
)
from alzmri.data.groups.result import MIN_RELIABLE_GAP, GroupResult
from alzmri.data.groups.seriation import MAX_POSITION_GROUP
from alzmri.data.groups.similarity import (
    DEFAULT_IMAGE_SIZE,
    SimilarityFeatures,
    similar_pairs,
    similarity_features,
)
from alzmri.data.groups.table import GROUP_COLUMNS, read_groups_csv, write_groups_csv

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_THRESHOLD",
    "GROUPS_CACHE_VERSION",
    "GROUP_COLUMNS",
    "MAX_POSITION_GROUP",
    "MIN_RELIABLE_GAP",
    "OASIS_ID_PATTERN",
    "SLICE_NUMBER_PATTERN",
    "GroupResult",
    "SimilarityFeatures",
    "cached_groups",
    "groups_cache_key",
    "image_array",
    "image_aspects",
    "load_or_recover_groups",
    "read_groups_csv",
    "recover_groups",
    "similar_pairs",
    "similarity_features",
    "write_groups_csv",
]
