"""Data generation: GB/s of ``generate_data`` / ``generate_into_buffer`` vs the original's.

``generate_data`` allocates a new buffer per call (so page faults are part of the figure, for
both); ``generate_into_buffer`` refills one reused buffer, which isolates the generator.
"""

from __future__ import annotations

from collections.abc import Iterator

from .data import MiB
from .harness import Case, Context, limit, ours, peer

FILE = "datagen.py"


def suite(ctx: Context) -> Iterator[Case]:
    """New buffers, then a reused buffer, then compressible + deduplicated data."""
    size = 128 * MiB
    calls = ctx.scale(8, 2)
    total = size * calls
    yield Case(
        f"generate_data({size // MiB} MiB) x {calls}, a new buffer per call",
        "GB/s",
        [
            ours("ours generate_data", FILE, "generate_data", size=size, calls=calls),
            peer(
                "original generate_data",
                FILE,
                "generate_data",
                size=size,
                calls=calls,
                needs=("s3dlio",),
            ),
        ],
        bytes=total,
        objects=calls,
    )
    yield Case(
        f"generate_into_buffer({size // MiB} MiB reused buffer) x {calls}",
        "GB/s",
        [
            ours("ours generate_into_buffer", FILE, "generate_into_buffer", size=size, calls=calls),
            peer(
                "original generate_into_buffer",
                FILE,
                "generate_into_buffer",
                size=size,
                calls=calls,
                needs=("s3dlio",),
            ),
            limit("memory fill (numpy)", FILE, "memory_fill", size=size, calls=calls),
        ],
        bytes=total,
        objects=calls,
    )
    yield Case(
        f"generate_into_buffer, dedup=4 compress=4, x {calls}",
        "GB/s",
        [
            ours("ours", FILE, "generate_into_buffer", size=size, calls=calls, dedup=4, compress=4),
            peer(
                "original",
                FILE,
                "generate_into_buffer",
                size=size,
                calls=calls,
                dedup=4,
                compress=4,
                needs=("s3dlio",),
            ),
        ],
        bytes=total,
        objects=calls,
    )
