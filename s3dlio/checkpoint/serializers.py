"""Tensor trees (PyTorch ``state_dict``, JAX/NumPy pytrees) as a streamable shard format.

A shard holding a tree is laid out so that it can be written in one pass and read back
without copying tensor data::

    0   magic  b"S3DLTREE"            8 bytes
    8   version (u32 LE) = 1, flags (u32 LE) = 0
    16  index length I (u64 LE), skeleton length K (u64 LE), data start D (u64 LE)
    40  index: UTF-8 JSON {"tensors": [{"kind", "dtype", "shape", "offset", "nbytes"}, ...]}
    40+I  skeleton: the tree pickled with every tensor replaced by a reference to its index entry
    D   tensor bytes, each starting on a 64-byte boundary (``offset`` is relative to D)

Writing streams each tensor's memory straight into the writer (the tree is never pickled into
one big ``bytes``). :func:`load` maps each tensor onto an in-memory shard with
``torch.frombuffer`` / ``np.frombuffer`` (no copy; the buffer lives as long as any tensor
does); :mod:`~s3dlio.checkpoint.loading` instead reads each tensor's bytes straight into its
own memory, using :func:`parse_header`, :meth:`TensorEntry.empty` and :func:`build`. Tensors
that share storage with the same shape (tied weights) are stored once and come back shared.

The skeleton is loaded with a restricted unpickler by default (``weights_only=True``, as
``torch.load`` does): containers, scalars, strings, ``OrderedDict``, ``set`` and torch dtypes
only. Pass ``weights_only=False`` for trees holding other objects, from sources you trust.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IntegrityError

__all__ = [
    "MAGIC",
    "Header",
    "TensorEntry",
    "build",
    "dump",
    "header_size",
    "is_bytes_like",
    "is_tree_shard",
    "load",
    "parse_header",
]

MAGIC = b"S3DLTREE"
VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sIIQQQ")
_PAD = bytes(ALIGN)

#: Globals the restricted unpickler resolves (besides torch dtypes).
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("torch", "Size"),
    ("torch", "device"),
}


def is_bytes_like(data: Any) -> bool:
    """Whether ``data`` is stored as-is (a buffer: bytes, bytearray, memoryview...).

    NumPy arrays are buffers too, but are tensors to a checkpoint: they are stored as a tree
    so that dtype and shape come back.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (np.ndarray, np.generic, str)) or _is_torch(data) or _is_jax(data):
        return False
    try:
        memoryview(data)
    except TypeError:
        return False
    return True


def is_tree_shard(buf: Any) -> bool:
    """Whether ``buf`` starts like a shard written by :func:`dump`."""
    view = memoryview(buf)
    return len(view) >= _PREFIX.size and view[:8] == MAGIC


# -- leaves -------------------------------------------------------------------------------------


def _is_torch(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _is_jax(obj: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.Array)


@dataclass(frozen=True)
class _Leaf:
    kind: str  # "torch" | "numpy" | "numpy_scalar" | "jax"
    dtype: str
    shape: tuple[int, ...]
    data: memoryview
    extra: dict[str, Any]


def _numpy_dtype_name(dtype: np.dtype) -> str:
    # ml_dtypes (bfloat16, float8_*) have no portable ``str``; they are found by name.
    return dtype.name if dtype.kind == "V" or dtype.type.__module__ != "numpy" else dtype.str


def _numpy_leaf(arr: np.ndarray, kind: str) -> _Leaf:
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    raw: Any = arr.reshape(-1).view(np.uint8) if arr.size else np.empty(0, np.uint8)
    return _Leaf(kind, _numpy_dtype_name(arr.dtype), tuple(arr.shape), memoryview(raw), {})


def _torch_leaf(tensor: Any) -> _Leaf:
    import torch

    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.resolve_conj().resolve_neg().contiguous()
    flat = t.reshape(-1)
    raw: Any = flat.view(torch.uint8).numpy() if flat.numel() else np.empty(0, np.uint8)
    extra: dict[str, Any] = {}
    if isinstance(tensor, torch.nn.Parameter):
        extra["parameter"] = True
        extra["requires_grad"] = bool(tensor.requires_grad)
    return _Leaf(
        "torch", str(t.dtype).removeprefix("torch."), tuple(t.shape), memoryview(raw), extra
    )


def _torch_identity(tensor: Any) -> tuple[Any, ...] | None:
    """What makes two tensors the same stored tensor; ``None`` for non-strided layouts."""
    import torch

    if tensor.layout is not torch.strided or tensor.is_quantized:
        return None
    storage = tensor.untyped_storage()
    return (
        tensor.device.type,
        storage.data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


class _TreePickler(pickle.Pickler):
    """Pickles the skeleton; tensors become persistent ids pointing into the index."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self.leaves: list[_Leaf] = []
        self._seen: dict[Any, int] = {}
        self._keep: list[Any] = []  # keep leaf sources alive while their memory is referenced

    def _add(self, key: Any, make: Callable[[], _Leaf], source: Any) -> int:
        if key is not None and key in self._seen:
            return self._seen[key]
        self.leaves.append(make())
        self._keep.append(source)
        index = len(self.leaves) - 1
        if key is not None:
            self._seen[key] = index
        return index

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                return None
            key = ("np", obj.__array_interface__["data"][0], obj.shape, obj.strides, obj.dtype)
            return self._add(key, lambda: _numpy_leaf(obj, "numpy"), obj)
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return self._add(None, lambda: _numpy_leaf(np.asarray(obj), "numpy_scalar"), obj)
        if _is_torch(obj):
            ident = _torch_identity(obj)
            if ident is None:  # sparse / quantized: pickled by torch itself
                return None
            return self._add(ident, lambda: _torch_leaf(obj), obj)
        if _is_jax(obj):
            host = np.asarray(obj)
            return self._add(("jax", id(obj)), lambda: _numpy_leaf(host, "jax"), obj)
        return None


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def dump(tree: Any, write: Callable[[Any], Any]) -> int:
    """Stream ``tree`` into ``write`` (a writer's ``write``), tensor by tensor.

    Args:
        tree: Nested dicts/lists/tuples of tensors (torch, NumPy, JAX) and plain values.
        write: Called with each piece, in order (header, skeleton, then every tensor's memory).

    Returns:
        Bytes written.
    """
    skeleton = io.BytesIO()
    pickler = _TreePickler(skeleton)
    pickler.dump(tree)
    entries = []
    offset = 0
    for leaf in pickler.leaves:
        entry: dict[str, Any] = {
            "kind": leaf.kind,
            "dtype": leaf.dtype,
            "shape": list(leaf.shape),
            "offset": offset,
            "nbytes": len(leaf.data),
        }
        entry.update(leaf.extra)
        entries.append(entry)
        offset = _aligned(offset + len(leaf.data))
    index = json.dumps({"tensors": entries}, separators=(",", ":")).encode()
    body = skeleton.getbuffer()
    head_len = _PREFIX.size + len(index) + len(body)
    data_start = _aligned(head_len)
    write(_PREFIX.pack(MAGIC, VERSION, 0, len(index), len(body), data_start))
    write(index)
    write(body)
    write(_PAD[: data_start - head_len])
    total = data_start
    for leaf in pickler.leaves:
        write(leaf.data)
        pad = _aligned(len(leaf.data)) - len(leaf.data)
        if pad:
            write(_PAD[:pad])
        total += len(leaf.data) + pad
    body.release()
    return total


# -- loading ------------------------------------------------------------------------------------


class _TreeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, leaf: Callable[[int], Any], weights_only: bool) -> None:
        super().__init__(file)
        self._leaf = leaf
        self._weights_only = weights_only

    def persistent_load(self, pid: Any) -> Any:
        return self._leaf(int(pid))

    def find_class(self, module: str, name: str) -> Any:
        if not self._weights_only or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module == "torch":
            import torch

            found = getattr(torch, name, None)
            if isinstance(found, torch.dtype):
                return found
        raise pickle.UnpicklingError(
            f"checkpoint tree holds {module}.{name}, which weights_only=True does not load; "
            "pass weights_only=False if you trust the source"
        )


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes  # noqa: F401 - registers bfloat16, float8_* with NumPy

        return np.dtype(getattr(ml_dtypes, name))


def _torch_dtype(name: str) -> Any:
    import torch

    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):
        raise IntegrityError(f"checkpoint tree: unknown torch dtype {name!r}")
    return found


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a tree shard, as its index describes it.

    Attributes:
        index: Its number (what the skeleton refers to).
        kind: ``"torch"``, ``"numpy"``, ``"numpy_scalar"`` or ``"jax"``.
        dtype: The dtype name.
        shape: The shape.
        start: Absolute offset of its bytes in the shard.
        nbytes: Its size in bytes.
        extra: Other fields (``parameter``, ``requires_grad``).
    """

    index: int
    kind: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    nbytes: int
    extra: dict[str, Any]

    def empty(self) -> tuple[Any, memoryview]:
        """A new, uninitialised tensor for this entry and a writable byte view of its memory."""
        if self.kind == "torch":
            import torch

            tensor = torch.empty(self.shape, dtype=_torch_dtype(self.dtype))
            flat = tensor.reshape(-1)
            raw: Any = flat.view(torch.uint8).numpy() if flat.numel() else np.empty(0, np.uint8)
            obj: Any = tensor
        else:
            obj = np.empty(self.shape, dtype=_numpy_dtype(self.dtype))
            raw = obj.reshape(-1).view(np.uint8)
        view = memoryview(raw)
        if view.nbytes != self.nbytes:
            raise IntegrityError(
                f"checkpoint tree: tensor {self.index} has {self.nbytes} bytes, but shape "
                f"{list(self.shape)} of {self.dtype} needs {view.nbytes}"
            )
        return obj, view

    def over(self, buf: Any) -> Any:
        """This tensor as a view of ``buf`` (the whole shard, writable): no copy."""
        if self.start + self.nbytes > len(buf):
            raise IntegrityError(f"checkpoint tree: tensor {self.index} runs past the shard's end")
        if self.kind == "torch":
            import torch

            dt = _torch_dtype(self.dtype)
            numel = self.nbytes // torch.empty((), dtype=dt).element_size()
            if numel == 0:
                return torch.empty(self.shape, dtype=dt)
            return torch.frombuffer(buf, dtype=dt, count=numel, offset=self.start).view(self.shape)
        dt = _numpy_dtype(self.dtype)
        count = self.nbytes // dt.itemsize if dt.itemsize else 0
        return np.frombuffer(buf, dtype=dt, count=count, offset=self.start).reshape(self.shape)

    def finish(self, obj: Any) -> Any:
        """The value the tree holds, from the filled tensor ``obj``."""
        if self.kind == "torch":
            if self.extra.get("parameter"):
                import torch

                return torch.nn.Parameter(obj, requires_grad=bool(self.extra.get("requires_grad")))
            return obj
        if self.kind == "numpy_scalar":
            return obj[()]
        if self.kind == "jax":
            import jax.numpy as jnp

            return jnp.asarray(obj)
        return obj


@dataclass(frozen=True)
class Header:
    """What precedes the tensor bytes of a tree shard.

    Attributes:
        tensors: Every tensor, by index.
        skeleton: The pickled tree with tensor references.
        data_start: Where tensor bytes begin.
        end: The shard's length.
    """

    tensors: tuple[TensorEntry, ...]
    skeleton: bytes
    data_start: int
    end: int


def header_size(head: Any) -> int | None:
    """How many leading bytes hold the header, given at least the first 40 (``None``: no tree).

    Raises:
        IntegrityError: the magic matches but the version or the lengths do not.
    """
    view = memoryview(head)
    if not is_tree_shard(view):
        return None
    _magic, version, _flags, index_len, skeleton_len, data_start = _PREFIX.unpack_from(view)
    if version != VERSION:
        raise IntegrityError(f"checkpoint tree version {version} is not supported")
    if _PREFIX.size + index_len + skeleton_len > data_start:
        raise IntegrityError("checkpoint tree: inconsistent header lengths")
    return int(data_start)


def parse_header(head: Any) -> Header:
    """Parse the header from the shard's first :func:`header_size` bytes.

    Raises:
        IntegrityError: not a tree shard, or an unreadable / inconsistent index.
    """
    view = memoryview(head)
    if header_size(view) is None:
        raise IntegrityError("not a checkpoint tree shard (bad magic)")
    _magic, _version, _flags, index_len, skeleton_len, data_start = _PREFIX.unpack_from(view)
    at = _PREFIX.size
    if len(view) < data_start:
        raise IntegrityError("checkpoint tree: the header runs past the end of the shard")
    try:
        raw = json.loads(bytes(view[at : at + index_len]))["tensors"]
        tensors = tuple(
            TensorEntry(
                index=i,
                kind=str(e["kind"]),
                dtype=str(e["dtype"]),
                shape=tuple(int(d) for d in e["shape"]),
                start=data_start + int(e["offset"]),
                nbytes=int(e["nbytes"]),
                extra={
                    k: v
                    for k, v in e.items()
                    if k not in ("kind", "dtype", "shape", "offset", "nbytes")
                },
            )
            for i, e in enumerate(raw)
        )
    except (ValueError, KeyError, TypeError):
        raise IntegrityError("checkpoint tree: unreadable tensor index") from None
    if any(t.kind not in ("torch", "numpy", "numpy_scalar", "jax") for t in tensors):
        raise IntegrityError("checkpoint tree: unknown tensor kind in the index")
    end = max(
        (data_start + _aligned(t.start - data_start + t.nbytes) for t in tensors),
        default=data_start,
    )
    skeleton = bytes(view[at + index_len : at + index_len + skeleton_len])
    return Header(tensors, skeleton, data_start, end)


def build(header: Header, values: list[Any], *, weights_only: bool = True) -> Any:
    """Unpickle the skeleton with tensor ``i`` replaced by ``values[i]``.

    Raises:
        pickle.UnpicklingError: the tree holds an object ``weights_only`` refuses.
        IntegrityError: the skeleton refers to a tensor the index does not have.
    """

    def leaf(index: int) -> Any:
        if not 0 <= index < len(values):
            raise IntegrityError(f"checkpoint tree: no tensor {index} in the index")
        return values[index]

    return _TreeUnpickler(io.BytesIO(header.skeleton), leaf, weights_only).load()


def load(buf: Any, *, weights_only: bool = True) -> Any:
    """Rebuild the tree :func:`dump` wrote, as views of ``buf`` (no tensor copies).

    Args:
        buf: The whole shard, a writable buffer (a ``BytesView`` or ``bytearray``); read-only
            input is copied once.
        weights_only: Restrict the skeleton to plain containers and values (see module doc).

    Raises:
        IntegrityError: ``buf`` is not a tree shard, or its header is inconsistent.
        pickle.UnpicklingError: the tree holds an object ``weights_only`` refuses.
    """
    view = memoryview(buf)
    if view.readonly:
        buf = bytearray(view)
        view = memoryview(buf)
    header = parse_header(view)
    values = [t.finish(t.over(buf)) for t in header.tensors]
    return build(header, values, weights_only=weights_only)
