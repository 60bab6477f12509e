"""The ``pyarrow.fs`` side of :func:`s3dlio.fsspec.arrow_filesystem`.

pyarrow's ``FSSpecHandler`` makes any fsspec filesystem a ``pyarrow.fs.FileSystem``; this
handler changes what costs requests: an input file opens with one metadata request (the
stock handler asks ``isfile`` and then opens, two), and reads hand pyarrow the freshly filled
buffer (``read_buffer``) instead of a copy into ``bytes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import pyarrow.fs as pafs
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "s3dlio.fsspec.arrow_filesystem needs pyarrow; install it with: "
        "pip install 's3dlio[parquet]'",
        name="pyarrow",
    ) from exc

if TYPE_CHECKING:
    from .fsspec import S3dlioFileSystem

__all__ = ["S3dlioArrowHandler", "make_arrow_filesystem"]


class S3dlioArrowHandler(pafs.FSSpecHandler):
    """``pyarrow.fs.FSSpecHandler`` over an :class:`~s3dlio.fsspec.S3dlioFileSystem`."""

    def get_type_name(self) -> str:
        """``"s3dlio"``."""
        return "s3dlio"

    def open_input_file(self, path: str) -> Any:
        """A random-access file (one metadata request; ``FileNotFoundError`` if missing)."""
        import pyarrow

        return pyarrow.PythonFile(self.fs.open(path, mode="rb"), mode="r")

    def open_input_stream(self, path: str) -> Any:
        """A sequential input stream over the same file object."""
        return self.open_input_file(path)


def make_arrow_filesystem(fs: S3dlioFileSystem) -> Any:
    """``pyarrow.fs.PyFileSystem(S3dlioArrowHandler(fs))``."""
    return pafs.PyFileSystem(S3dlioArrowHandler(fs))
