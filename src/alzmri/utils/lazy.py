"""Names of a package imported on first use (PEP 562), so importing the package stays light.

scikit-learn's sub-package ``__init__`` files name their public functions; alzmri's do the
same, but import a name's module only when the name is first used: ``import alzmri.data``
then loads no PyTorch, and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str | tuple[str, str]], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names load lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    names : mapping
        Public name -> module that defines it, or -> ``(module, attribute)`` when the
        attribute is named differently there.
    namespace : dict
        The package's ``globals()``: a loaded name is cached there, so later accesses skip
        ``__getattr__``.

    Returns
    -------
    __getattr__, __dir__ : callables
        To assign at the package's top level.

    Raises
    ------
    AttributeError
        (from ``__getattr__``) A name the package does not export.
    """

    def __getattr__(name: str) -> Any:
        try:
            where = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attr = where if isinstance(where, tuple) else (where, name)
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
