"""Utilities every stage may use: atomic file writes, console messages, distributed-run helpers, lazy exports."""

from __future__ import annotations

from alzmri.utils.lazy import lazy_exports

#: Public name -> the module defining it; imported on first use (:mod:`alzmri.utils.lazy`).
_WHERE = {
    "ProcessLayout": "alzmri.utils.distributed",
    "atomic_write_bytes": "alzmri.utils.io",
    "atomic_write_chunks": "alzmri.utils.io",
    "atomic_write_json": "alzmri.utils.io",
    "atomic_write_text": "alzmri.utils.io",
    "lazy_exports": "alzmri.utils.lazy",
    "node_cache_lock": "alzmri.utils.distributed",
    "print_note": "alzmri.utils.console",
    "print_warning": "alzmri.utils.console",
    "replace_dir": "alzmri.utils.io",
    "resolve_ranks": "alzmri.utils.distributed",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
