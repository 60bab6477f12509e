"""Small HTTP header helpers shared by the HTTP backends."""

from __future__ import annotations

__all__ = ["content_range_total"]


def content_range_total(value: str | None) -> int | None:
    """The object size in a ``Content-Range`` header (``bytes 0-99/1234`` -> 1234), if known."""
    if value and "/" in value:
        total = value.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    return None
