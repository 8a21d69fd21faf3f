"""Utilities every stage may use: atomic file writes, console messages, distributed-run helpers, lazy exports."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_submodules

#: Submodule -> the public names it defines, each imported on first use (:mod:`alzmri.utils.lazy`).
__all__, __getattr__, __dir__ = lazy_submodules(__name__, {
    "console": "print_note print_warning",
    "distributed": "ProcessLayout node_cache_lock resolve_ranks",
    "io": "atomic_write_bytes atomic_write_chunks atomic_write_json atomic_write_text replace_dir",
    "lazy": "lazy_exports lazy_submodules",
}, globals())
