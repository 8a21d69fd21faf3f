"""Names of a package imported on first use (PEP 562), so importing the package stays light.

scikit-learn's sub-package ``__init__`` files name their public functions; alzmri's do the
same, but import a name's module only when the name is first used: ``import alzmri.data``
then loads no PyTorch, and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports", "lazy_submodules"]


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


def lazy_submodules(package: str, modules: Mapping[str, str | Iterable[str]], namespace: dict[str, Any]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of a package whose public names live in its submodules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : mapping
        Submodule (relative to ``package``) -> the public names it defines: a string of
        names separated by white space, or an iterable of names.
    namespace : dict
        The package's ``globals()``, as for :func:`lazy_exports`.

    Returns
    -------
    __all__ : list of str
        Every name, sorted.
    __getattr__, __dir__ : callables
        Those of :func:`lazy_exports`.
    """
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in (names.split() if isinstance(names, str) else names)}
    return sorted(where), *lazy_exports(package, where, namespace)
