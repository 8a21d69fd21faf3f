"""Data stage: discovery and class mapping, image decoding, the decode-once cache, splits
and manifests, subject groups and augmented copies, leakage audit, download, task framings,
the DataModule and the batch preprocessing shared by training and prediction."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

#: Public name -> the module defining it; imported on first use (:mod:`alzmri.utils.lazy`).
_WHERE = {
    "CLASS_NAMES": "alzmri.data.classes",
    "CachedImages": "alzmri.data.cache",
    "DatasetIndex": "alzmri.data.discovery",
    "Manifest": "alzmri.data.manifest",
    "SliceDataModule": "alzmri.data.datamodule",
    "Subjects": "alzmri.data.subjects",
    "Task": "alzmri.data.tasks",
    "UnreadableImageError": "alzmri.data.images",
    "audit_split": "alzmri.data.audit",
    "check_slice_file": "alzmri.data.slice_check",
    "decode_image": "alzmri.data.images",
    "default_cache_dir": "alzmri.data.locations",
    "discover": "alzmri.data.discovery",
    "download_dataset": "alzmri.data.download",
    "get_task": "alzmri.data.tasks",
    "inspect_dataset": "alzmri.data.inspect",
    "load_checked_images": "alzmri.data.cache",
    "load_images": "alzmri.data.cache",
    "load_manifest": "alzmri.data.manifest",
    "load_or_recover_groups": "alzmri.data.groups",
    "load_volume_slices": "alzmri.data.volumes",
    "make_bags": "alzmri.data.bags",
    "make_split": "alzmri.data.splits",
    "notebook_augmentation": "alzmri.data.augment",
    "prepare_batch": "alzmri.data.preprocess",
    "read_manifest": "alzmri.data.manifest",
    "recover_groups": "alzmri.data.groups",
    "resolve_data_dir": "alzmri.data.locations",
    "resolve_subjects": "alzmri.data.subjects",
    "split_warnings": "alzmri.data.split_checks",
    "subject_folds": "alzmri.data.folds",
    "write_manifest": "alzmri.data.manifest",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
