"""Smoke test of an installed s3dlio distribution, run by ``make dist`` (scripts/dist.sh).

Run it with the Python of a fresh venv into which the wheel was installed, in isolated mode
so the source tree cannot shadow the installed package::

    VENV/bin/python -I scripts/smoke_dist.py --extras none --sdist dist/s3dlio-X.tar.gz
    VENV/bin/python -I scripts/smoke_dist.py --extras all

It uses only the standard library and the installed s3dlio. Checks: the package comes from
the venv and its version from the metadata; a ``file://`` round trip; ``s3-cli --version``;
every console script and entry point of the installed distribution resolves (read from its
metadata, so new ones are checked without editing this file); ``py.typed`` and the license
are installed; every s3dlio module imports (with ``--extras all``) or fails only for a missing
third-party package (without extras), where a backend names the extra to install;
``import s3dlio`` loads no SDK or framework; the sdist holds the tests, docs and license.
Prints one line per check and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import os
import pkgutil
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

FAILURES: list[str] = []

#: Heavy packages that ``import s3dlio`` must not import (docs/install.md promises it).
LAZY_PACKAGES = ("boto3", "botocore", "azure", "google.cloud", "torch", "jax", "h5py", "pyarrow")

#: Members every sdist must carry (below its top directory).
SDIST_MEMBERS = (
    "pyproject.toml",
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "MANIFEST.in",
    "s3dlio/__init__.py",
    "s3dlio/py.typed",
    "docs/index.md",
    "docs/install.md",
    "tests/conftest.py",
    "tests/unit/test_packaging.py",
    "tests/servers/moto.py",
    "examples/demo.py",
)


def check(name: str) -> Callable[[Callable[[], str | None]], None]:
    """Run the decorated function now; record a failure instead of stopping."""

    def run(fn: Callable[[], str | None]) -> None:
        began = time.monotonic()
        try:
            detail = fn()
        except Exception:
            FAILURES.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        else:
            took = f" [{time.monotonic() - began:.1f}s]"
            print(f"ok   {name}{': ' + detail if detail else ''}{took}", flush=True)

    return run


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras_outside_all(dist: metadata.Distribution) -> dict[str, str]:
    """Requirement name -> extra, for the extras that ``[all]`` leaves out (not test/dev)."""
    by_extra: dict[str, list[str]] = {}
    for req in dist.requires or []:
        marker = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", req)
        if marker:
            name = re.match(r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?", req)
            assert name, req
            by_extra.setdefault(marker.group(1), []).append(name.group(0).strip())
    in_all: set[str] = set()
    todo = ["all"]
    while todo:
        extra = todo.pop()
        if extra in in_all:
            continue
        in_all.add(extra)
        for req in by_extra.get(extra, []):
            inner = re.fullmatch(r"s3dlio\[([^\]]*)\]", req)
            todo += [e.strip() for e in inner.group(1).split(",")] if inner else []
    return {
        _norm(req.split("[")[0]): extra
        for extra, reqs in by_extra.items()
        if extra not in in_all | {"test", "dev"}
        for req in reqs
    }


def _excused(exc: ImportError, full: bool, outside: dict[str, str]) -> str | None:
    """Why a failed import is acceptable here, or None when it is a packaging bug.

    Without extras, a missing third-party package is expected. With ``[all]``, only a package
    of an extra that ``[all]`` leaves out on purpose. A missing s3dlio module never is.
    """
    missing = (exc.name or "").split(".")[0]
    if not missing or missing == "s3dlio":
        return None
    if not full:
        return f"needs {missing}"
    extra = outside.get(_norm(missing))
    return f"needs {missing} from [{extra}], which [all] leaves out" if extra else None


def _in_venv(path: str | os.PathLike[str]) -> bool:
    return Path(path).resolve().is_relative_to(Path(sys.prefix).resolve())


def _script(name: str) -> Path:
    return Path(sys.prefix) / "bin" / name


def _sdist_checks(sdist: Path, package_files: list[str]) -> None:
    @check(f"the sdist {sdist.name} holds the tests, docs, license and every package file")
    def _() -> str:
        with tarfile.open(sdist) as tar:
            names = tar.getnames()
        top = names[0].split("/")[0]
        missing = [m for m in (*SDIST_MEMBERS, *package_files) if f"{top}/{m}" not in names]
        assert not missing, f"missing from the sdist: {missing}"
        cached = [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not cached, f"byte code in the sdist: {cached[:5]}"
        tests = sum(1 for n in names if n.startswith(f"{top}/tests/") and n.endswith(".py"))
        docs = sum(1 for n in names if n.startswith(f"{top}/docs/") and n.endswith(".md"))
        return f"{len(names)} members, {tests} test files, {docs} docs pages"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", choices=["none", "all"], required=True)
    parser.add_argument("--sdist", type=Path, help="also check this sdist's contents")
    parser.add_argument(
        "--package-files",
        type=Path,
        help="a file listing the package's files in the source tree (git ls-files s3dlio):"
        " each must be installed (and in the sdist)",
    )
    args = parser.parse_args()
    full = args.extras == "all"
    package_files = (
        [line.strip() for line in args.package_files.read_text().splitlines() if line.strip()]
        if args.package_files is not None
        else []
    )

    import s3dlio  # after argument parsing, so --help works whatever is installed

    dist = metadata.distribution("s3dlio")

    @check("s3dlio is imported from the venv, with the metadata's version")
    def _() -> str:
        assert _in_venv(s3dlio.__file__), f"{s3dlio.__file__} is not under {sys.prefix}"
        assert s3dlio.__version__ == dist.version, (s3dlio.__version__, dist.version)
        return f"{s3dlio.__version__} at {Path(s3dlio.__file__).parent}"

    @check("the metadata declares Apache-2.0 and the license file is installed")
    def _() -> str:
        assert dist.metadata["License-Expression"] == "Apache-2.0", dist.metadata.get("License")
        licenses = [f for f in dist.files or [] if f.parts[-2:] == ("licenses", "LICENSE")]
        assert licenses, "no .dist-info/licenses/LICENSE"
        text = Path(str(licenses[0].locate())).read_text()
        assert "Apache License" in text and "Version 2.0" in text
        return str(licenses[0])

    @check("py.typed is installed")
    def _() -> None:
        marker = Path(s3dlio.__file__).parent / "py.typed"
        assert marker.is_file(), f"{marker} missing"
        assert any(str(f) == "s3dlio/py.typed" for f in dist.files or []), "not in RECORD"

    @check("import s3dlio loads no SDK or framework")
    def _() -> str:
        code = (
            "import sys, s3dlio\n"
            f"loaded = [m for m in {LAZY_PACKAGES!r} if m in sys.modules]\n"
            "print(','.join(loaded))"
        )
        out = subprocess.run(
            [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert not out.stdout.strip(), f"imported at 'import s3dlio': {out.stdout.strip()}"
        return "none of " + ", ".join(LAZY_PACKAGES)

    @check("a file:// round trip (put, get, range, stat, list, streaming writer, delete)")
    def _() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = f"file://{tmp}/smoke/"
            payload = os.urandom(3 * 1024 * 1024 + 17)
            s3dlio.put_bytes(root + "a.bin", payload)
            assert bytes(s3dlio.get(root + "a.bin")) == payload
            assert bytes(s3dlio.get_range(root + "a.bin", 1000, 24)) == payload[1000:1024]
            assert s3dlio.stat(root + "a.bin")["size"] == len(payload)
            with s3dlio.open_writer(root + "w.bin") as writer:
                writer.write_chunk(payload[:100])
                writer.write_chunk(payload[100:])
            assert bytes(s3dlio.get(root + "w.bin")) == payload
            assert sorted(s3dlio.list(root)) == [root + "a.bin", root + "w.bin"]
            s3dlio.delete(root, recursive=True)
            assert s3dlio.list(root, recursive=True) == []

    @check("s3-cli --version")
    def _() -> str:
        out = subprocess.run(
            [_script("s3-cli"), "--version"], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert s3dlio.__version__ in out.stdout, out.stdout
        return out.stdout.strip()

    entry_points = sorted(dist.entry_points, key=lambda ep: (ep.group, ep.name))
    outside = _extras_outside_all(dist)

    @check("the distribution has console scripts")
    def _() -> str:
        scripts = [ep.name for ep in entry_points if ep.group == "console_scripts"]
        assert "s3-cli" in scripts, scripts
        return ", ".join(scripts)

    for ep in entry_points:

        @check(f"entry point [{ep.group}] {ep.name} = {ep.value}")
        def _(ep: metadata.EntryPoint = ep) -> str:
            if ep.group in ("console_scripts", "gui_scripts"):
                script = _script(ep.name)
                assert script.is_file() and os.access(script, os.X_OK), f"{script} missing"
            try:
                target = ep.load()
            except ImportError as exc:
                # Only a missing third-party package may stop it (see _excused), and then a
                # command must say which extra to install.
                why = _excused(exc, full, outside)
                if why is None:
                    raise
                if ep.group in ("console_scripts", "gui_scripts"):
                    assert "pip install 's3dlio[" in str(exc), f"no install hint: {exc}"
                return why
            assert callable(target) or ep.group not in ("console_scripts", "gui_scripts")
            return f"{target!r}"[:80]

    modules = sorted(
        m.name
        for m in pkgutil.walk_packages(s3dlio.__path__, "s3dlio.", onerror=lambda n: None)
        if not m.name.endswith(".__main__")  # runs the program when imported
    )

    @check(f"every module imports ({len(modules)} modules)")
    def _() -> str:
        skipped = []
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                why = _excused(exc, full, outside)
                if why is None:
                    raise AssertionError(f"{name}: {exc!r}") from exc
                skipped.append(f"{name} ({why})")
        assert all(_in_venv(sys.modules[m].__file__ or "") for m in modules if m in sys.modules)
        return f"not imported: {'; '.join(skipped)}" if skipped else "all"

    @check("every lazy name of s3dlio resolves" if full else "a missing SDK names its extra")
    def _() -> str:
        if full:
            for name in sorted(set(dir(s3dlio)) - set(vars(s3dlio))):
                getattr(s3dlio, name)
            return f"{len(s3dlio.__all__)} names in __all__"
        hints = []
        for uri, extra in (("s3://b/k", "s3"), ("az://a/c/k", "azure"), ("gs://b/k", "gcs")):
            try:
                s3dlio.stat(uri)
            except ImportError as exc:
                assert f"pip install 's3dlio[{extra}]'" in str(exc), str(exc)
                hints.append(extra)
            else:
                raise AssertionError(f"stat({uri!r}) worked without the [{extra}] extra")
        return ", ".join(hints)

    if args.package_files is not None:

        @check("every file of the package's source tree is installed")
        def _() -> str:
            installed = {str(f) for f in dist.files or []}
            missing = [f for f in package_files if f not in installed]
            assert not missing, f"in the source tree, not in the wheel: {missing}"
            return f"{len(package_files)} files"

    if args.sdist is not None:
        _sdist_checks(args.sdist, package_files)

    if FAILURES:
        print(f"{len(FAILURES)} of the smoke checks failed: {FAILURES}")
        return 1
    print(f"smoke checks passed ({args.extras} extras)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
