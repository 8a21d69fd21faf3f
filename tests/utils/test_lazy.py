"""Lazily imported package names (PEP 562): a module is imported on first use of one of its names, once."""

from __future__ import annotations

import json
import sys

import pytest

from alzmri.utils.lazy import lazy_exports, lazy_submodules


def test_a_name_imports_its_module_on_first_use_and_is_cached(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe_module.py").write_text("LOADS = []\nLOADS.append(1)\ndef probe():\n    return 'probed'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe_module", raising=False)
    namespace: dict = {"already": 1}
    getattr_, dir_ = lazy_exports("fake.pkg", {"probe": "lazy_probe_module", "renamed": ("lazy_probe_module", "LOADS")}, namespace)
    assert "lazy_probe_module" not in sys.modules  # nothing imported before a name is used
    probe = getattr_("probe")
    assert probe() == "probed" and "lazy_probe_module" in sys.modules
    assert namespace["probe"] is probe  # cached in the package's globals: __getattr__ is not asked again
    # (module, attribute): the public name differs from the attribute's
    assert getattr_("renamed") is sys.modules["lazy_probe_module"].LOADS == [1]  # imported once
    assert dir_() == ["already", "probe", "renamed"]


def test_unknown_name_is_an_attribute_error_naming_the_package():
    getattr_, dir_ = lazy_exports("fake.pkg", {"dumps": "json"}, {})
    with pytest.raises(AttributeError, match=r"module 'fake.pkg' has no attribute 'nope'"):
        getattr_("nope")
    assert getattr_("dumps") is json.dumps
    assert dir_() == ["dumps"]


def test_the_packages_use_it():
    import alzmri.utils

    assert alzmri.utils.lazy_exports is lazy_exports
    assert "lazy_exports" in dir(alzmri.utils)
    with pytest.raises(AttributeError, match=r"module 'alzmri.utils' has no attribute 'no_such_helper'"):
        alzmri.utils.no_such_helper  # noqa: B018


def test_lazy_submodules_files_each_name_under_its_submodule(tmp_path, monkeypatch):
    pkg = tmp_path / "lazy_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("def a():\n    return 'a'\nB = 2\n")
    (pkg / "two.py").write_text("C = [3]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in ("lazy_probe_pkg", "lazy_probe_pkg.one", "lazy_probe_pkg.two"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    namespace: dict = {}
    names, getattr_, dir_ = lazy_submodules("lazy_probe_pkg", {"one": "a B", "two": ["C"]}, namespace)
    assert names == ["B", "C", "a"]  # the package's __all__, sorted
    assert "lazy_probe_pkg.two" not in sys.modules
    assert getattr_("C") == [3] and "lazy_probe_pkg.two" in sys.modules and "lazy_probe_pkg.one" not in sys.modules
    assert getattr_("a")() == "a" and getattr_("B") == 2 and namespace["B"] == 2
    with pytest.raises(AttributeError, match="module 'lazy_probe_pkg' has no attribute 'D'"):
        getattr_("D")
    assert dir_() == ["B", "C", "a"]
