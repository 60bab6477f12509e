"""The extras in pyproject.toml match what the code imports.

Every ``import`` of a third-party package in ``s3dlio/`` (at module level or inside a function,
outside ``if TYPE_CHECKING:``) is either a core dependency or has a row in
:data:`OPTIONAL_IMPORTS` naming the extra(s) that bring it. The rows themselves are checked
against pyproject.toml and against the installed distributions' own requirements, so a row
cannot claim that an extra brings a package it does not.

Adding a module with a new optional dependency (pyarrow, fsspec, ray, webdataset, ...):
add the requirement to an extra in pyproject.toml (and to ``all``, or the extra to
:data:`OUTSIDE_ALL`), then add a row to :data:`OPTIONAL_IMPORTS`.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "s3dlio"

#: Import name (or dotted prefix; the longest matching prefix wins) -> {extra: the requirement
#: listed in that extra which brings the import, directly or through its own dependencies}.
#: An import available from several extras (``requests`` comes with the Azure and the Google
#: SDKs) lists each of them.
OPTIONAL_IMPORTS: dict[str, dict[str, str]] = {
    "boto3": {"s3": "boto3"},
    "botocore": {"s3": "boto3"},
    "urllib3": {
        "s3": "urllib3",
        "azure": "azure-storage-blob",
        "gcs": "google-cloud-storage",
    },
    "azure": {"azure": "azure-storage-blob"},  # azure.storage.blob, azure.core
    "azure.identity": {"azure": "azure-identity"},
    "google": {"gcs": "google-cloud-storage"},  # google.cloud.storage, google.auth, google.api_core
    "requests": {"azure": "azure-storage-blob", "gcs": "google-cloud-storage"},
    "torch": {"torch": "torch"},
    "jax": {"jax": "jax"},
    "ml_dtypes": {"jax": "jax"},
    "h5py": {"hdf5": "h5py"},
    "pyarrow": {"parquet": "pyarrow"},
    "fsspec": {"fsspec": "fsspec"},
    # DLIO and what s3dlio.integrations.dlio imports of its dependencies.
    "dlio_benchmark": {"dlio": "dlio-benchmark"},
    "hydra": {"dlio": "dlio-benchmark"},
    "omegaconf": {"dlio": "dlio-benchmark"},
    "mpi4py": {"dlio": "dlio-benchmark"},
    "ray": {"ray": "ray"},  # ray, ray.data
    "tensorflow": {"tensorflow": "tensorflow"},  # s3dlio.jax_tf (the original's TF bridge)
}

#: Extras left out of [all] on purpose (say, a framework too heavy for the test venv, tested in
#: a venv of its own). Their rows are checked against pyproject.toml, and against the installed
#: packages only where those are installed.
#: DLIO brings TensorFlow, torch and DALI; Ray and TensorFlow are large (see pyproject.toml).
OUTSIDE_ALL: set[str] = {"dlio", "ray", "tensorflow"}

_HINT = re.compile(r"s3dlio\[([A-Za-z0-9_-]+)\]")


@dataclass(frozen=True)
class Use:
    """One ``import`` statement of a third-party package in one module."""

    module: str  # path relative to the repository root
    line: int
    name: str  # the dotted name imported


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unparsable requirement {requirement!r}"
    return _norm(match.group(1))


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every absolute import under ``node``, skipping TYPE_CHECKING."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)  # only the else branch runs
    else:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _imports(child)


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _third_party_uses(path: Path) -> list[Use]:
    rel = _display(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    return [
        Use(rel, line, name)
        for line, name in _imports(tree)
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "s3dlio"
    ]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _row(name: str) -> tuple[str, dict[str, str]] | None:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in OPTIONAL_IMPORTS:
            return prefix, OPTIONAL_IMPORTS[prefix]
    return None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _top_level_distributions(import_name: str) -> set[str]:
    return {_norm(d) for d in _packages_distributions().get(import_name, [])}


def _closure(dist: str) -> set[str]:
    """``dist`` and everything its installed metadata requires (extras' markers ignored)."""
    seen: set[str] = set()
    todo = [_norm(dist)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_req_name(r) for r in requires if "extra ==" not in r.replace("'", '"'))
    return seen


def _expand(extras: dict[str, list[str]], extra: str) -> set[str]:
    """The requirement names an extra brings, following ``s3dlio[a,b]`` self-references."""
    names: set[str] = set()
    for req in extras[extra]:
        if _req_name(req) == "s3dlio":
            inner = re.search(r"\[([^\]]*)\]", req)
            for sub in inner.group(1).split(",") if inner else []:
                names |= _expand(extras, sub.strip())
        else:
            names.add(_req_name(req))
    return names


def _unprovided(paths: list[Path]) -> list[str]:
    """One message per import that is neither a core dependency nor in OPTIONAL_IMPORTS."""
    core = {_req_name(r) for r in _pyproject()["dependencies"]}
    problems = []
    for path in paths:
        for use in _third_party_uses(path):
            top = use.name.split(".")[0]
            if _row(use.name) is not None or _top_level_distributions(top) & core:
                continue
            problems.append(
                f"{use.module}:{use.line} imports {use.name!r}, which is neither a core dependency"
                f" nor in OPTIONAL_IMPORTS (tests/unit/test_packaging.py): put its package in an"
                f" extra in pyproject.toml (and that extra in [all], or in OUTSIDE_ALL) and add"
                f" a row {top!r}: {{extra: requirement}}"
            )
    return problems


def test_every_third_party_import_is_a_core_dependency_or_has_an_extra() -> None:
    problems = _unprovided(_modules())
    assert not problems, "\n".join(problems)


def test_each_row_names_extras_that_bring_the_import() -> None:
    extras = _pyproject()["optional-dependencies"]
    in_all = _expand(extras, "all")
    users: dict[str, list[str]] = {}
    for path in _modules():
        for use in _third_party_uses(path):
            row = _row(use.name)
            if row is not None:
                users.setdefault(row[0], []).append(f"{use.module}:{use.line}")
    problems = []
    for prefix, providers in OPTIONAL_IMPORTS.items():
        used_by = ", ".join(users.get(prefix, [])[:3]) or "no module yet"
        for extra, requirement in providers.items():
            where = (
                f"import {prefix!r} (in {used_by}) expects extra [{extra}] to list"
                f" {requirement!r} (OPTIONAL_IMPORTS)"
            )
            if extra not in extras:
                problems.append(f"{where}: pyproject.toml has no extra [{extra}]")
                continue
            if _norm(requirement) not in _expand(extras, extra):
                problems.append(f"{where}: [{extra}] does not list {requirement}: {extras[extra]}")
            if _norm(requirement) not in in_all and extra not in OUTSIDE_ALL:
                problems.append(
                    f"{where}: {requirement} is not in [all] (add [{extra}] to [all], or to"
                    f" OUTSIDE_ALL if it is left out on purpose)"
                )
            dists = _top_level_distributions(prefix.split(".")[0])
            if not dists and extra in OUTSIDE_ALL:
                continue  # not installed in the test venv, by design
            if not dists:
                problems.append(f"{where}: no installed distribution provides {prefix!r}")
            elif not dists & _closure(requirement):
                problems.append(
                    f"{where}: {prefix!r} comes from {sorted(dists)}, which installing"
                    f" {requirement} does not bring"
                )
    assert not problems, "\n".join(problems)


def test_install_hints_name_the_extra_of_the_modules_imports() -> None:
    """A module that says ``pip install 's3dlio[X]'`` imports only what [X] brings."""
    extras = _pyproject()["optional-dependencies"]
    problems = []
    for path in _modules():
        hinted = set(_HINT.findall(path.read_text(encoding="utf-8")))
        problems += [
            f"{_display(path)} tells users to install [{x}], which pyproject.toml does not define"
            for x in sorted(hinted - set(extras))
        ]
        if not hinted:
            continue
        for use in _third_party_uses(path):
            row = _row(use.name)
            if row is not None and not hinted & set(row[1]):
                problems.append(
                    f"{use.module}:{use.line} imports {use.name!r}, which extra(s)"
                    f" {sorted(row[1])} bring, but its install hint names {sorted(hinted)}"
                )
    assert not problems, "\n".join(problems)


def test_backend_extras_bring_what_the_backend_imports() -> None:
    """The extra named when a scheme's backend fails to import provides that backend's imports."""
    from s3dlio.io import store

    extras = _pyproject()["optional-dependencies"]
    problems = []
    for scheme, target in store._REGISTRY.items():
        module = target.partition(":")[0]
        if not module.startswith("s3dlio."):
            continue  # a backend another test registered (tests/datasets' slowfile)
        path = ROOT / (module.replace(".", "/") + ".py")
        extra = store._EXTRAS.get(scheme)
        if extra is not None and extra not in extras:
            problems.append(f"{scheme}:// names extra [{extra}], which pyproject.toml lacks")
        for use in _third_party_uses(path):
            row = _row(use.name)
            if row is None:
                continue  # a core dependency (checked above)
            if extra not in row[1]:
                problems.append(
                    f"{use.module}:{use.line} ({scheme}:// backend) imports {use.name!r},"
                    f" which {sorted(row[1])} bring, but a missing import names"
                    f" [{extra}] as the fix"
                )
    assert not problems, "\n".join(problems)


def test_an_import_without_an_extra_fails_naming_module_import_and_fix(tmp_path: Path) -> None:
    """Lazy imports inside functions count; imports under TYPE_CHECKING do not."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import fsspec\n"
        "else:\n"
        "    import numpy\n"
        "def f():\n"
        "    import pyarrow.parquet as pq\n"
        "    from webdataset import WebDataset\n"
    )
    assert [u.name for u in _third_party_uses(probe)] == ["numpy", "pyarrow.parquet", "webdataset"]
    assert _row("pyarrow.parquet") == ("pyarrow", {"parquet": "pyarrow"})
    problems = _unprovided([probe])
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{probe}:8 imports 'webdataset', which is neither")
    assert "add a row 'webdataset': {extra: requirement}" in problems[0]


def test_the_version_is_written_once_and_read_from_the_metadata() -> None:
    import s3dlio

    written = _pyproject()["version"]
    assert metadata.version("s3dlio") == written, "stale install: run make setup"
    assert s3dlio.__version__ == written
    literals = [
        node.lineno
        for node in ast.walk(ast.parse((PACKAGE / "__init__.py").read_text()))
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert not literals, f"s3dlio/__init__.py:{literals} writes the version; pyproject.toml only"


def test_s3_cli_prints_the_version() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "s3dlio.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"s3-cli (s3dlio) {_pyproject()['version']}"
