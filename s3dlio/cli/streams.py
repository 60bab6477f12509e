"""Objects to and from byte streams: ``get -o -``, ``cp URI -`` and ``cp - URI``.

Both directions are streamed in bounded memory. Reading keeps a few range GETs in flight
ahead of the writer; writing goes through a streaming writer, so an interrupted or failed
read of the input stream leaves no object behind.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from s3dlio.client import Client

from ..errors import IntegrityError
from ..io.executor import bounded_map
from .progress import Progress

__all__ = ["CHUNK", "object_to_stream", "stream_to_object"]

#: Bytes per range GET (reading) or per read of the input stream (writing).
CHUNK = 16 * 1024 * 1024
#: Range GETs kept in flight ahead of the output when reading.
READ_AHEAD = 4


def object_to_stream(uri: str, out: BinaryIO, progress: Progress, client: Client) -> int:
    """Write the object at ``uri`` to ``out``; returns the bytes written.

    Objects larger than :data:`CHUNK` are read in ranges, a few ahead of the output. The
    object's etag is checked again at the end, so a replacement mid-read is reported
    (``IntegrityError``) rather than passing silently.
    """
    meta = client.stat(uri)
    size = int(meta["size"])
    if size <= CHUNK:
        data = client.get(uri)
        out.write(data)
        progress(len(data), 1)
        return len(data)
    offsets = range(0, size, CHUNK)
    for _, fut in bounded_map(lambda off: client.get_range(uri, off, CHUNK), offsets, READ_AHEAD):
        piece = fut.result()
        out.write(piece)
        progress(len(piece))
    if meta.get("etag") and client.stat(uri).get("etag") != meta["etag"]:
        raise IntegrityError("the object changed while it was read", uri=uri, op="GET")
    progress(0, 1)
    return size


def stream_to_object(src: Any, uri: str, progress: Progress, client: Client) -> int:
    """Store everything read from ``src`` (a binary file) as ``uri``; returns the bytes stored.

    Nothing is visible until the input ends; an exception (Ctrl-C included) aborts the upload.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    read = getattr(src, "readinto1", src.readinto)  # what has arrived, not a full buffer
    with client.open_writer(uri) as writer:
        while True:
            n = read(view)
            if not n:
                break
            writer.write(view[:n])
            total += n
            progress(n)
    progress(0, 1)
    return total
