"""The s3dlio calls of MLPerf Storage's DLIO fork (``storage_library: s3dlio``), made its way.

Its ``ObjStoreLibStorage`` builds ``<uri_scheme>://<bucket>/<key>`` URIs and calls
``s3dlio.put_bytes(uri, BytesIO.getbuffer())`` (below 16 MiB) or
``with s3dlio.MultipartUploadWriter.from_uri(uri) as w: w.write(view)`` (from 16 MiB),
``s3dlio.get(uri)`` / ``s3dlio.get_range(uri, offset=, length=)`` (and takes ``len()`` of the
result or wraps it in ``io.BytesIO`` for ``numpy.load``), ``s3dlio.list(dir_uri + "/",
recursive=True)`` (full URIs, from which it strips the listed prefix), and its readers
``s3dlio.get_many(uris, max_in_flight=...)`` (``(uri, data)`` pairs) and
``s3dlio.exists(uri)``. The same calls here, on s3:// (moto) and file://.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import s3dlio

BACKENDS = ["s3", "file"]


@pytest.fixture(params=BACKENDS)
def root(request: pytest.FixtureRequest) -> str:
    """A fresh prefix ending in ``/``."""
    return request.getfixturevalue(f"{request.param}_root")


def _npz(seed: int) -> io.BytesIO:
    data = io.BytesIO()
    rng = np.random.default_rng(seed)
    np.savez(data, x=rng.integers(0, 255, (32, 32, 1), dtype=np.uint8), y=[0])
    return data


def _relative(listed: list[str], list_uri: str) -> list[str]:
    """The fork's prefix strip (it re-derives the prefix when the scheme comes back changed)."""
    if listed and not listed[0].startswith(list_uri):
        scheme = listed[0].split("://")[0]
        list_uri = scheme + "://" + list_uri.split("://", 1)[1]
    return sorted(u[len(list_uri) :] for u in listed if u.startswith(list_uri))


def test_put_get_list_exists_get_many_as_the_fork_calls_them(root: str) -> None:
    names = ["train/img_0_of_3.npz", "train/img_1_of_3.npz", "train/sub/img_2_of_3.npz"]
    sources = {name: _npz(i) for i, name in enumerate(names)}
    for name, data in sources.items():
        s3dlio.put_bytes(root + name, data.getbuffer())  # a memoryview of the BytesIO

    list_uri = (root + "train").rstrip("/") + "/"
    assert _relative(s3dlio.list(list_uri, recursive=True), list_uri) == sorted(
        n[len("train/") :] for n in names
    )

    first = root + names[0]
    whole = s3dlio.get(first)
    assert len(whole) == sources[names[0]].getbuffer().nbytes
    loaded = np.load(io.BytesIO(whole), allow_pickle=True)["x"]  # NPZReaderS3's way
    expected = np.load(io.BytesIO(sources[names[0]].getvalue()))["x"]
    np.testing.assert_array_equal(loaded, expected)

    part = s3dlio.get_range(first, offset=10, length=100)
    assert bytes(part) == sources[names[0]].getvalue()[10:110]

    assert s3dlio.exists(first)
    assert not s3dlio.exists(root + "train/img_9_of_3.npz")

    uris = [root + n for n in names]
    results = s3dlio.get_many(uris, max_in_flight=min(64, len(uris)))
    assert [uri for uri, _ in results] == uris
    assert [len(data) for _, data in results] == [sources[n].getbuffer().nbytes for n in names]


def test_missing_object_is_a_typed_not_found(root: str) -> None:
    with pytest.raises(s3dlio.errors.NotFoundError) as info:
        s3dlio.get(root + "nothing-here.npz")
    assert "nothing-here.npz" in str(info.value)


def test_large_payload_through_multipart_upload_writer(root: str) -> None:
    writer_class = getattr(s3dlio, "MultipartUploadWriter", None)
    if writer_class is None:
        pytest.skip("s3dlio.MultipartUploadWriter is not exported yet (s3dlio.compat.original)")
    payload = memoryview(os.urandom(17 << 20))  # above the fork's 16 MiB threshold
    uri = root + "big/img_0_of_1.npz"
    with writer_class.from_uri(uri) as writer:
        writer.write(payload)
    assert s3dlio.stat(uri)["size"] == payload.nbytes
    assert bytes(s3dlio.get_range(uri, offset=(16 << 20) - 5, length=10)) == bytes(
        payload[(16 << 20) - 5 : (16 << 20) + 5]
    )
