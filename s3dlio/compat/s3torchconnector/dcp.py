"""s3torchconnector's ``s3torchconnector.dcp`` names over :mod:`s3dlio.torch.dcp`.

``S3StorageWriter(region, path, ...)`` / ``S3StorageReader(region, path)`` are
:class:`s3dlio.torch.dcp.StorageWriter` / :class:`~s3dlio.torch.dcp.StorageReader` (any URI
scheme, CRC32C-verified loads, ``.metadata`` written last), with s3torchconnector's
signatures, ``fs`` (an :class:`S3FileSystem`), ``overwrite`` and prefix strategies. The
reader also loads checkpoints that s3torchconnector itself wrote (``torch.save`` per item);
s3torchconnector's reader cannot load what this writer writes (raw tensor bytes).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch.distributed.checkpoint.filesystem import FileSystemBase
from torch.distributed.checkpoint.planner import SavePlan

from ...errors import InvalidArgumentError, NotFoundError, S3DlioError
from ...io.uri import ObjectURI, parse_uri
from ...io.writer import ObjectWriter, WriterOptions
from ...torch import dcp as _dcp
from ._io import S3ClientConfig, S3Reader, S3ReaderConstructor, S3Writer, client_for

__all__ = [
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "NumericPrefixStrategy",
    "RoundRobinPrefixStrategy",
    "S3FileSystem",
    "S3PrefixStrategyBase",
    "S3StorageReader",
    "S3StorageWriter",
]


# -- prefix strategies (s3torchconnector's classes and layout) --------------------------------


class S3PrefixStrategyBase(ABC):
    """Names the key prefix of each rank's shard objects: subclass and define
    :meth:`generate_prefix`; ``strategy(rank)`` calls it."""

    def __call__(self, rank: int) -> str:
        return self.generate_prefix(rank)

    @abstractmethod
    def generate_prefix(self, rank: int) -> str:
        """The prefix of ``rank``'s objects (relative to the checkpoint URI)."""


class DefaultPrefixStrategy(S3PrefixStrategyBase):
    """``__<rank>_``: every shard beside ``.metadata``."""

    def generate_prefix(self, rank: int) -> str:
        return f"__{rank}_"


class NumericPrefixStrategy(S3PrefixStrategyBase):
    """Ranks spread over ``prefix_count`` leading prefixes: a number in ``base``, reversed.

    Args:
        base: The base of the numbers (2, 16).
        epoch_num: Adds ``epoch_<n>/`` after the spread prefix.
        min_prefix_length: Digits at least (zero-padded).
        prefix_count: Distinct prefixes (default: the world size when ``torch.distributed``
            is initialised at construction, else 1).

    Raises:
        ValueError: ``min_prefix_length`` < 1, ``prefix_count`` < 1, or a non-integer
            ``epoch_num``.
    """

    def __init__(
        self,
        base: int,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        if not isinstance(base, int) or base < 2:
            raise InvalidArgumentError(f"base must be an integer >= 2, got {base!r}")
        if not isinstance(min_prefix_length, int) or min_prefix_length < 1:
            raise InvalidArgumentError(
                f"Minimum prefix length must be positive, got {min_prefix_length}"
            )
        if epoch_num is not None and not isinstance(epoch_num, int):
            raise InvalidArgumentError(f"Epoch number must be None or an integer, got {epoch_num}")
        if prefix_count is not None and (not isinstance(prefix_count, int) or prefix_count < 1):
            raise InvalidArgumentError(
                f"Prefix count must be a positive integer, got {prefix_count}"
            )
        self.base = base
        self.epoch_num = epoch_num
        self.min_prefix_len = min_prefix_length
        if prefix_count is None:
            initialized = dist.is_available() and dist.is_initialized()
            prefix_count = dist.get_world_size() if initialized else 1
        self.prefix_count = prefix_count
        digits, size = 1, base
        while size < prefix_count:
            digits, size = digits + 1, size * base
        width = max(digits, min_prefix_length)
        #: The spread prefix of rank ``r`` is ``prefix_map[r % len(prefix_map)]``.
        self.prefix_map = [self._format_number(i, width)[::-1] for i in range(prefix_count)]

    def _format_number(self, number: int, length: int) -> str:
        digits = []
        while number:
            number, d = divmod(number, self.base)
            digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[d])
        return "".join(reversed(digits)).rjust(length, "0")

    def generate_prefix(self, rank: int) -> str:
        epoch = "" if self.epoch_num is None else f"epoch_{self.epoch_num}/"
        return f"{self.prefix_map[rank % len(self.prefix_map)]}/{epoch}__{rank}_"


class BinaryPrefixStrategy(NumericPrefixStrategy):
    """Base-2 spread prefixes (``0000000000``, ``1000000000``, ``0100000000``...)."""

    def __init__(
        self,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(2, epoch_num, min_prefix_length, prefix_count)


class HexPrefixStrategy(NumericPrefixStrategy):
    """Base-16 spread prefixes (``0000000000``, ``1000000000``... ``a000000000``...)."""

    def __init__(
        self,
        epoch_num: int | None = None,
        min_prefix_length: int = 10,
        prefix_count: int | None = None,
    ) -> None:
        super().__init__(16, epoch_num, min_prefix_length, prefix_count)


class RoundRobinPrefixStrategy(S3PrefixStrategyBase):
    """Rank ``r`` under ``user_prefixes[r % len(user_prefixes)]`` (``ValueError`` if empty)."""

    def __init__(self, user_prefixes: list[str], epoch_num: int | None = None) -> None:
        if not user_prefixes:
            raise InvalidArgumentError("user_prefixes must not be empty")
        self.user_prefixes = user_prefixes
        self.epoch_num = epoch_num

    def generate_prefix(self, rank: int) -> str:
        epoch = "" if self.epoch_num is None else f"epoch_{self.epoch_num}/"
        return f"{self.user_prefixes[rank % len(self.user_prefixes)]}/{epoch}__{rank}_"


# -- file system ------------------------------------------------------------------------------


def _uri(path: str | os.PathLike[str]) -> ObjectURI:
    return parse_uri(os.fspath(path), allow_bare=True)


class S3FileSystem(FileSystemBase):
    """s3torchconnector's ``S3FileSystem`` (DCP's ``FileSystemBase``) over any URI.

    Args:
        region: Signing region (default: the environment's).
        s3_client: An :class:`~s3dlio.compat.s3torchconnector.S3Client` to use.
        s3client_config: Settings of the client made when ``s3_client`` is not given.
        reader_constructor: How :meth:`create_stream` reads (default: sequential).
    """

    def __init__(
        self,
        region: str | None = None,
        s3_client: Any = None,
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: Any = None,
    ) -> None:
        from ._io import S3Client

        self._path: str | os.PathLike[str] = ""
        self._reader_constructor = reader_constructor or S3ReaderConstructor.default()
        self._client = (
            s3_client
            if s3_client is not None
            else S3Client(region, s3client_config=s3client_config)
        )

    @contextmanager
    def create_stream(
        self, path: str | os.PathLike[str], mode: str
    ) -> Generator[S3Reader | S3Writer, None, None]:
        """A writer (``"wb"``: the object appears when the block ends) or a reader (``"rb"``).

        Raises:
            ValueError: another ``mode``.
        """
        if mode == "wb":
            options = WriterOptions(part_size=self._client.s3client_config.part_size)
            with S3Writer(ObjectWriter(_uri(path), options, client=self._client.client)) as w:
                yield w
        elif mode == "rb":
            with self._reader_constructor(_uri(path), self._client.client) as r:
                yield r
        else:
            raise InvalidArgumentError(
                f"Invalid {mode=} mode argument: create_stream only supports rb (read mode) "
                "& wb (write mode)"
            )

    def concat_path(self, path: str | os.PathLike[str], suffix: str) -> str:
        """``path/suffix``."""
        return os.path.join(os.fspath(path), suffix)

    def init_path(self, path: str | os.PathLike[str]) -> str | os.PathLike[str]:
        """Remember ``path`` and return it."""
        self._path = path
        return path

    def rename(self, old_path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        """Copy ``old_path`` to ``new_path``, then delete ``old_path``.

        Raises:
            ValueError: the two are in different buckets.
            NotFoundError: ``old_path`` does not exist.
        """
        from ...io import ops, transfer

        old, new = _uri(old_path), _uri(new_path)
        if (old.scheme, old.bucket) != (new.scheme, new.bucket):
            raise InvalidArgumentError(
                "Source and destination buckets cannot be different (rename does not support "
                "cross-buckets operations)"
            )
        transfer.copy_object(old, new, client=self._client.client)
        ops.delete(old, missing_ok=True, client=self._client.client)

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        """Nothing to do on object stores."""

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether the object exists (other errors are raised)."""
        from ...io import ops

        try:
            ops.stat(_uri(path), self._client.client)
        except NotFoundError:
            return False
        return True

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        """Delete the object; a missing one, or a failure, is not raised (as upstream)."""
        from ...io import ops

        try:
            ops.delete(_uri(path), missing_ok=True, client=self._client.client)
        except S3DlioError:
            pass

    def ls(self, path: str | os.PathLike[str]) -> list[str]:
        """The URIs below ``path``."""
        from ...io.listing import select

        base = _uri(path)
        if base.key and not base.key.endswith("/"):
            base = base.with_key(base.key + "/")
        return [str(m.uri) for m in select(base, recursive=True, client=self._client.client)]

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        """True for a ``Path`` and for a URI with a bucket (any scheme s3dlio serves)."""
        if isinstance(checkpoint_id, Path):
            return True
        try:
            parse_uri(os.fspath(checkpoint_id))
        except (S3DlioError, TypeError):
            return False
        return True


# -- storage writer and reader ----------------------------------------------------------------


class S3StorageWriter(_dcp.StorageWriter):
    """DCP writer (s3torchconnector's signature) over any URI.

    Args:
        region: Signing region (default: the environment's).
        path: The checkpoint URI.
        s3client_config: Its ``part_size`` sizes upload parts.
        prefix_strategy: An :class:`S3PrefixStrategyBase` (default: :class:`DefaultPrefixStrategy`).
        thread_count: Objects the small items of a rank are packed into, at least (default 1).
        kwargs: ``FileSystemWriter``'s options: ``overwrite`` (default ``True``; ``False``
            fails a save where a checkpoint exists: "Checkpoint already exists") and
            ``cache_staged_state_dict`` are used; ``single_file_per_rank``, ``sync_files``,
            ``per_thread_copy_ahead`` and ``_extensions`` are accepted and have no effect
            (items are stored uncompressed, in s3dlio's layout).
    """

    def __init__(
        self,
        region: str | None,
        path: str | os.PathLike[str],
        s3client_config: S3ClientConfig | None = None,
        prefix_strategy: Any = None,
        thread_count: int = 1,
        **kwargs: Any,
    ) -> None:
        config = s3client_config or S3ClientConfig()
        super().__init__(
            path,
            client=client_for(region, None, s3client_config),
            prefix_strategy=prefix_strategy or DefaultPrefixStrategy(),
            thread_count=thread_count,
            part_size=config.part_size,
            cache_staged_state_dict=bool(kwargs.get("cache_staged_state_dict", False)),
        )
        self.overwrite = bool(kwargs.get("overwrite", True))
        self.fs = S3FileSystem(region, s3client_config=s3client_config)
        self.path = self.fs.init_path(path)

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        """Refuse to replace a checkpoint when ``overwrite=False`` (an
        :class:`~s3dlio.errors.InvalidArgumentError` "Checkpoint already exists", which
        ``dcp.save`` raises inside a ``CheckpointException``, as DCP's ``FileSystemWriter``)."""
        if not self.overwrite:
            from ...io import ops

            target = self.uri.with_key(f"{self.uri.key}/.metadata" if self.uri.key else ".metadata")
            try:
                ops.stat(target, self.client)
            except NotFoundError:
                pass
            else:
                raise InvalidArgumentError(
                    "Checkpoint already exists and overwrite=False",
                    uri=str(self.uri),
                    op="DCP_SAVE",
                )
        return super().prepare_local_plan(plan)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return S3FileSystem.validate_checkpoint_id(checkpoint_id)


class S3StorageReader(_dcp.StorageReader):
    """DCP reader (s3torchconnector's signature) over any URI.

    ``reader_constructor`` is kept (``fs`` reads with it) and not needed for loads: the reader
    always fetches only the byte ranges each rank needs, concurrently, whichever is given.
    """

    def __init__(
        self,
        region: str | None,
        path: str | os.PathLike[str],
        s3client_config: S3ClientConfig | None = None,
        reader_constructor: Any = None,
    ) -> None:
        super().__init__(path, client=client_for(region, None, s3client_config))
        self._reader_constructor = reader_constructor or S3ReaderConstructor.dcp_optimized()
        self.fs = S3FileSystem(
            region, s3client_config=s3client_config, reader_constructor=self._reader_constructor
        )
        self.path = self.fs.init_path(path)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return S3FileSystem.validate_checkpoint_id(checkpoint_id)
