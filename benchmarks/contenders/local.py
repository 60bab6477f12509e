"""Local reads: our file:// and direct:// against plain Python and the original s3dlio.

Factories take ``dir`` (the data directory) and ``scheme``; each round reads every file once.
``import s3dlio`` is ours in our venv and the original in the peers' venv.
"""

from __future__ import annotations

import mmap
import os
import resource

from _common import check, files_in, result, total, uris


def s3dlio_get_many(params: dict) -> object:
    """``s3dlio.get_many`` of every file (ours or the original's, by venv)."""
    import s3dlio

    targets = uris(params["dir"], params["scheme"])
    inflight = params.get("max_in_flight", 64)

    def run() -> dict:
        faults = _minor_faults()
        size, count = total(s3dlio.get_many(targets, max_in_flight=inflight))
        check(size, params["case_bytes"], "get_many")
        return result(size, count, minor_faults=_minor_faults() - faults)

    return run


def ours_get_into(params: dict) -> object:
    """Our ``get_into`` of each file into one reused buffer, one file after another."""
    import s3dlio

    targets = uris(params["dir"], params["scheme"])
    size = max(os.path.getsize(p) for p in files_in(params["dir"]))
    buf = mmap.mmap(-1, size)  # page aligned, for direct:// too

    def run() -> dict:
        moved = sum(s3dlio.get_into(u, buf) for u in targets)
        check(moved, params["case_bytes"], "get_into")
        return result(moved, len(targets))

    return run


def s3dlio_loader(params: dict) -> object:
    """``create_async_loader`` over the directory (ours or the original's bytes loader)."""
    import s3dlio

    uri = f"{params['scheme']}://{params['dir'].rstrip('/')}/"
    opts = {"batch_size": params.get("batch_size", 32), "prefetch": params.get("prefetch", 64)}

    def run() -> dict:
        size, count = total(s3dlio.create_async_loader(uri, opts))
        check(size, params["case_bytes"], "create_async_loader")
        return result(size, count)

    return run


def python_readinto(params: dict) -> object:
    """Plain Python: ``open(path, "rb", buffering=0).readinto`` a preallocated buffer."""
    paths = files_in(params["dir"])
    buf = bytearray(max(os.path.getsize(p) for p in paths))
    direct = params.get("direct", False)
    if direct:
        buf = mmap.mmap(-1, len(buf))  # O_DIRECT needs an aligned buffer

    def run() -> dict:
        moved = 0
        for path in paths:
            if direct:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                try:
                    n = os.fstat(fd).st_size
                    moved += os.preadv(fd, [memoryview(buf)[: -(-n // 4096) * 4096]], 0)
                finally:
                    os.close(fd)
            else:
                with open(path, "rb", buffering=0) as f:
                    moved += f.readinto(buf)
        check(moved, params["case_bytes"], "readinto")
        return result(moved, len(paths))

    return run


def bare_read_each(params: dict) -> object:
    """The bare loop for ``get_many``'s result shape: ``(uri, buffer)`` for every file, all kept
    until the round ends, each file opened, ``fstat``-ed, read with ``preadv`` into a new buffer
    from our allocator (``BytesView.allocate``: page-aligned from 256 KiB, glibc keeping freed
    memory) and closed: no URI parsing, no backend, no error handling. The fastest a
    Python-callable loop returns the same objects."""
    from s3dlio.io.buffers import BytesView

    paths = files_in(params["dir"])
    names = uris(params["dir"], "file")

    def run() -> dict:
        faults = _minor_faults()
        out = []
        for name, path in zip(names, paths, strict=True):
            fd = os.open(path, os.O_RDONLY)
            try:
                data = BytesView.allocate(os.fstat(fd).st_size)
                os.preadv(fd, [data], 0)
            finally:
                os.close(fd)
            out.append((name, data))
        size, count = total(out)
        check(size, params["case_bytes"], "bare loop")
        return result(size, count, minor_faults=_minor_faults() - faults)

    return run


def _minor_faults() -> int:
    """This process's minor page faults so far (first touches of new memory), kept per round in
    the results' JSON: fresh buffers faulted in again each round show there."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
