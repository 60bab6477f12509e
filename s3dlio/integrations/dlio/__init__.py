"""The DLIO benchmark (and MLPerf Storage) on s3dlio, with DLIO's files left as they are.

Run DLIO exactly as ``dlio_benchmark`` is run, with s3dlio as its storage::

    python -m s3dlio.integrations.dlio workload=unet3d_a100 \\
        ++workload.dataset.data_folder=s3://bucket/unet3d ++workload.workflow.generate_data=True

or ``s3dlio-dlio <same arguments>``. At start-up :func:`install` puts s3dlio into DLIO's
storage, reader, generator and checkpointing factories in memory (see
:mod:`~s3dlio.integrations.dlio.install`); the data and checkpoint folders may then be any
``s3://``, ``az://``, ``gs://``, ``file://`` or ``direct://`` URI, or a local path.

Modules: ``install`` (the factories, :func:`run`), ``storage`` (the ``DataStorage``),
``readers``, ``generators``, ``checkpointing``, ``clients`` (``storage_options`` as a
:class:`s3dlio.Client`), ``paths`` (how DLIO's names become URIs). Importing this package
imports neither DLIO nor its frameworks; :func:`install` and :func:`run` do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "install_s3dlio_storage", "main", "run"]


def install() -> None:
    """Install s3dlio into DLIO's factories in this process (see :func:`.install.install`)."""
    from .install import install as _install

    _install()


def install_s3dlio_storage(dlio_path: str | None = None) -> None:
    """The original's name for :func:`install` (no file of DLIO's is written)."""
    install()


def run(argv: list[str] | None = None) -> int:
    """Run DLIO with s3dlio installed (see :func:`.install.run`); returns the exit status."""
    from .install import run as _run

    return _run(argv)


def main(*_: Any) -> None:
    """``s3dlio-dlio``: :func:`run` with the command line, as the exit status."""
    raise SystemExit(run())
