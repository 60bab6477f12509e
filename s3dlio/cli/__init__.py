"""``s3-cli``: the command line of s3dlio (``python -m s3dlio.cli`` works too).

Every subcommand goes through the public API, so it works on every backend: ``ls``/``list``,
``stat``, ``get``, ``put``, ``rm``/``delete``, ``upload``, ``download``, ``cp``,
``list-buckets``, ``create-bucket``/``mb``, ``delete-bucket``/``rb``, ``tfrecord-index`` and
``replay``. See ``docs/cli.md``.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
