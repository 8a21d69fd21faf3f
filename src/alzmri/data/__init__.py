"""Data stage: discovery and class mapping, image decoding, the decode-once cache, splits
and manifests, subject groups and augmented copies, leakage audit, download, task framings,
the DataModule and the batch preprocessing shared by training and prediction."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_submodules

#: Submodule -> the public names it defines, each imported on first use (:mod:`alzmri.utils.lazy`).
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "audit": "audit_split",
    "augment": "notebook_augmentation",
    "bags": "make_bags",
    "cache": "CachedImages load_checked_images load_images",
    "classes": "CLASS_NAMES",
    "datamodule": "SliceDataModule",
    "discovery": "DatasetIndex discover",
    "download": "download_dataset",
    "folds": "subject_folds",
    "groups": "load_or_recover_groups recover_groups",
    "images": "UnreadableImageError decode_image",
    "inspect": "inspect_dataset",
    "locations": "default_cache_dir resolve_data_dir",
    "manifest": "Manifest load_manifest read_manifest write_manifest",
    "preprocess": "prepare_batch",
    "slice_check": "check_slice_file",
    "split_checks": "split_warnings",
    "splits": "make_split",
    "subjects": "Subjects resolve_subjects",
    "tasks": "Task get_task",
    "volumes": "load_volume_slices",
}, globals())
