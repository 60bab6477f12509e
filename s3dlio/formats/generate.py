"""Synthetic datasets: ``put()`` generates and uploads raw, NPZ, TFRecord or HDF5 objects.

Every object is a valid file of its type: ``numpy.load`` reads the NPZ objects (arrays ``x``
and ``y``), the ``tfrecord`` package (or TensorFlow) reads the TFRecord objects
(``tf.train.Example`` records with a bytes feature ``data`` and an int64 feature ``label``) and
h5py reads the HDF5 objects (a chunked ``uint8`` dataset ``data``). The bytes inside come from
:func:`s3dlio.generate_data`, so ``dedup_factor`` and ``compress_factor`` shape them as they
shape raw objects.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import numpy as np

from ..errors import InvalidArgumentError
from ..io import ops
from ..io.buffers import BytesView
from ..io.config import KiB, MiB, parse_size
from ..io.datagen import Generator, generate_data
from ..io.store import HasStores, backend_for
from ..io.transfer import run_batch
from ..io.uri import ObjectURI, parse_uri
from ..io.writer import ObjectWriter
from .example import encode_example
from .framing import frame_header, masked_crc
from .npz import generate_npz_bytes
from .registry import FormatSpec, format_names, format_spec

__all__ = [
    "DATA_GEN_MODES",
    "DEFAULT_SIZE",
    "generate_hdf5",
    "generate_npz",
    "generate_object",
    "generate_parquet",
    "generate_raw",
    "generate_tfrecord",
    "object_types",
    "put",
]

DATA_GEN_MODES = ("streaming", "single-pass")
DEFAULT_SIZE = 20 * MiB  # the original's default object size
DEFAULT_RECORD_SIZE = 64 * KiB


def object_types() -> tuple[str, ...]:
    """The formats :func:`put` can generate (from the format registry)."""
    return format_names("generate")


def generate_object(
    object_type: str,
    size: int,
    *,
    dedup: int = 1,
    compress: int = 1,
    seed: int | None = None,
    record_size: int = DEFAULT_RECORD_SIZE,
) -> BytesView | bytes:
    """One synthetic object of ``object_type`` (a registered format or alias) holding about
    ``size`` bytes of data. Raw objects are exactly ``size`` bytes; the others add their
    format's framing.

    Raises:
        InvalidArgumentError: an unknown format, or one that cannot be generated.
    """
    make = _spec(object_type).load("generate")
    return make(size, dedup=dedup, compress=compress, seed=seed, record_size=record_size)


def _spec(object_type: str) -> FormatSpec:
    try:
        spec = format_spec(object_type)
    except InvalidArgumentError:
        spec = None
    if spec is None or spec.generate is None:
        raise InvalidArgumentError(
            f"object_type must be one of {object_types()}, got {object_type!r}", op="PUT"
        )
    return spec


def generate_raw(
    size: int, *, dedup: int = 1, compress: int = 1, seed: int | None = None, record_size: int = 0
) -> BytesView:
    """``size`` bytes of synthetic data (:func:`s3dlio.generate_data`)."""
    return generate_data(size, dedup=dedup, compress=compress, seed=seed)


def generate_npz(
    size: int, *, dedup: int = 1, compress: int = 1, seed: int | None = None, record_size: int = 0
) -> BytesView | bytes:
    """An NPZ archive holding a ``size``-byte ``uint8`` array ``x`` (and a label ``y``)."""
    return generate_npz_bytes([size], "|u1", 1, dedup=dedup, compress=compress, seed=seed)


def generate_tfrecord(
    size: int,
    *,
    dedup: int = 1,
    compress: int = 1,
    seed: int | None = None,
    record_size: int = DEFAULT_RECORD_SIZE,
) -> bytes:
    """TFRecord Examples ``{"data": bytes, "label": int64}`` holding ``size`` bytes of data in
    ``record_size`` pieces."""
    data = generate_data(size, dedup=dedup, compress=compress, seed=seed)
    return _tfrecord_bytes(data, record_size)


def generate_hdf5(
    size: int, *, dedup: int = 1, compress: int = 1, seed: int | None = None, record_size: int = 0
) -> bytes:
    """An HDF5 file image with a chunked ``uint8`` dataset ``data`` of ``size`` bytes."""
    return _hdf5_bytes(generate_data(size, dedup=dedup, compress=compress, seed=seed))


def generate_parquet(
    size: int, *, dedup: int = 1, compress: int = 1, seed: int | None = None, record_size: int = 0
) -> BytesView:
    """A Parquet file of ``float32`` columns with about ``size`` bytes of values, in ~1 MiB
    row groups (needs pyarrow)."""
    from .parquet_gen import parquet_for_size

    return parquet_for_size(size, seed=seed)


def _tfrecord_bytes(data: BytesView, record_size: int) -> bytes:
    """Examples ``{"data": bytes, "label": int64}`` holding ``data`` in ``record_size`` pieces."""
    view = memoryview(data)
    out = io.BytesIO()
    step = max(1, record_size)
    for label, at in enumerate(range(0, max(1, len(view)), step)):
        payload = encode_example({"data": view[at : at + step], "label": label})
        out.write(frame_header(len(payload)))
        out.write(payload)
        out.write(masked_crc(payload).to_bytes(4, "little"))
    return out.getvalue()


def _hdf5_bytes(data: BytesView) -> bytes:
    """An HDF5 file image with a chunked ``uint8`` dataset ``data``."""
    from .hdf5 import _h5py

    h5py = _h5py()
    array = np.frombuffer(data, np.uint8)
    chunk = (max(1, min(len(array), MiB)),)
    name = f"s3dlio-{uuid.uuid4().hex}.h5"  # in memory only: never touches the disk
    with h5py.File(name, "w", driver="core", backing_store=False) as f:
        f.create_dataset("data", data=array, chunks=chunk if len(array) else None)
        f.flush()
        return bytes(f.id.get_file_image())


def _stream_raw(
    uri: ObjectURI,
    size: int,
    dedup: int,
    compress: int,
    seed: int | None,
    chunk: int,
    client: HasStores | None,
) -> None:
    """A raw object generated and uploaded chunk by chunk (memory bounded by the writer)."""
    source = Generator(size, dedup=dedup, compress=compress, seed=seed)
    buf = BytesView.allocate(min(size, chunk))
    with ObjectWriter(uri, client=client) as writer:
        while True:
            n = source.fill_chunk(buf)
            if not n:
                break
            writer.write(memoryview(buf)[:n])
        writer.finalize()


def put(
    prefix: str | ObjectURI,
    num: int,
    template: str | None = "object_{}_of_{}.dat",
    max_in_flight: int = 64,
    size: int | str | None = None,
    should_create_bucket: bool = False,
    object_type: str = "raw",
    dedup_factor: int = 1,
    compress_factor: int = 1,
    data_gen_algorithm: str = "random",
    data_gen_mode: str = "streaming",
    chunk_size: int | str = 256 * KiB,
    *,
    record_size: int | str = DEFAULT_RECORD_SIZE,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: HasStores | None = None,
) -> int:
    """Generate ``num`` synthetic objects of one type and upload them below ``prefix``.

    Args:
        prefix: Where the objects go (a URI ending in ``/``; one is added if missing).
        num: How many objects.
        template: Object name, formatted with ``(index, num)``:
            ``"object_{}_of_{}.dat"`` gives ``object_0_of_8.dat``...
        max_in_flight: Objects generated/uploaded at once.
        size: Bytes of data per object (``"4MiB"`` accepted; default 20 MiB, as the
            original).
        should_create_bucket: Create the bucket/container first (no error if it exists).
        object_type: ``"raw"`` (alias ``"zeros"``), ``"npz"``, ``"tfrecord"``, ``"hdf5"`` or
            ``"parquet"`` (8 ``float32`` columns in ~1 MiB row groups; needs pyarrow).
        dedup_factor: Deduplication factor of the data (see :func:`s3dlio.generate_data`).
        compress_factor: Compression factor of the data.
        data_gen_algorithm: Accepted for compatibility (``"random"``); the generator is
            always the block generator of :mod:`s3dlio.io.datagen`.
        data_gen_mode: ``"streaming"`` (raw objects larger than ``chunk_size`` are generated
            and uploaded piece by piece, bounded memory) or ``"single-pass"`` (each object is
            built whole, then uploaded). Formatted objects are always built whole.
        chunk_size: Generation chunk in streaming mode.
        record_size: TFRecord payload bytes per record.
        seed: Make the data reproducible (object ``i`` uses ``seed + i``).
        progress: Called as ``progress(bytes, 1)`` after each object is stored.
        client: The :class:`s3dlio.Client` to store through (default: the default client).

    Returns:
        The number of objects written.

    Raises:
        BatchError: some objects failed (the others were written).
    """
    kind = _spec(object_type).name
    mode = data_gen_mode.lower().replace("_", "-")
    if mode not in DATA_GEN_MODES:
        raise InvalidArgumentError(
            f"data_gen_mode must be one of {DATA_GEN_MODES}, got {data_gen_mode!r}"
        )
    if num < 0:
        raise InvalidArgumentError(f"num must be >= 0, got {num}")
    nbytes = DEFAULT_SIZE if size is None else parse_size(size)
    chunk = max(1, parse_size(chunk_size))
    records = parse_size(record_size)
    root = parse_uri(prefix, allow_bare=True)
    if not root.key.endswith("/") and root.key:
        root = root.with_key(root.key + "/")
    if should_create_bucket:
        backend = backend_for(root, client)
        if not backend.bucket_exists(root):
            ops.call("CREATE_BUCKET", backend, root, lambda: backend.create_bucket(root))
    name = template or "object_{}_of_{}.dat"

    def target(index: int) -> ObjectURI:
        return root.join(name.format(index, num))

    def one(index: int) -> int:
        uri = target(index)
        obj_seed = None if seed is None else seed + index
        if kind == "raw" and mode == "streaming" and nbytes > chunk:
            _stream_raw(
                uri, nbytes, dedup_factor, compress_factor, obj_seed, max(chunk, MiB), client
            )
            stored = nbytes
        else:
            data = generate_object(
                kind,
                nbytes,
                dedup=dedup_factor,
                compress=compress_factor,
                seed=obj_seed,
                record_size=records,
            )
            ops.put(uri, memoryview(data), client=client)
            stored = len(data)
        if progress is not None:
            progress(stored, 1)
        return stored

    run_batch(one, range(num), max_in_flight, what="PUT", name=lambda i: str(target(i)))
    return num
