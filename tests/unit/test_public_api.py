"""The top-level module's public surface: ``__all__`` lists exactly the names it offers."""

from __future__ import annotations

import ast
from pathlib import Path

import s3dlio

INIT = Path(s3dlio.__file__)


def _eager_names() -> set[str]:
    """Names ``s3dlio/__init__.py`` binds at import: its relative imports and public
    assignments (``list_buckets = ...``), read from the source."""
    names: set[str] = set()
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    names.add(target.id)
    return names


def test_all_is_sorted_and_equals_the_eager_and_lazy_names() -> None:
    assert s3dlio.__all__ == sorted(s3dlio.__all__)
    expected = _eager_names() | set(s3dlio._LAZY)
    listed = set(s3dlio.__all__)
    assert not expected - listed, f"missing from __all__: {sorted(expected - listed)}"
    assert not listed - expected, f"in __all__ but never bound: {sorted(listed - expected)}"


def test_every_lazy_name_resolves_to_its_module() -> None:
    for name, module in s3dlio._LAZY.items():
        value = getattr(s3dlio, name)
        assert value is not None, name
        assert name in dir(s3dlio)
        assert getattr(__import__(module, fromlist=[name]), name) is value, name


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in s3dlio.__all__
        if callable(getattr(s3dlio, name)) and not (getattr(s3dlio, name).__doc__ or "").strip()
    ]
    assert not undocumented, undocumented
