"""Which objects a URI selects: prefixes, exact keys, ``*``/``**`` globs and regex patterns.

The rules, the same on every backend:

* ``scheme://b/dir/`` (or the bucket root) lists what is under ``dir/``: its objects and, when
  not recursive, its sub-"directories" with a trailing ``/``.
* ``scheme://b/name`` (no trailing ``/``) selects the object ``name`` exactly, never
  ``name.bak``; non-recursive it also shows ``name/`` when objects exist below it, recursive it
  adds everything below ``name/``.
* ``*`` and ``?`` match within one path segment, ``**`` crosses ``/``; ``[...]`` is a class.
* ``pattern`` is a regular expression searched in each key relative to the listed directory.

Listings are streamed page by page, so a million keys use bounded memory and the first results
appear as soon as the first page arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from . import ops
from .store import HasStores, ObjectMeta
from .uri import ObjectURI

__all__ = ["Selection", "glob_to_regex", "has_glob", "select"]

_GLOB_CHARS = "*?["


def has_glob(text: str) -> bool:
    """Whether ``text`` contains a glob metacharacter."""
    return any(ch in text for ch in _GLOB_CHARS)


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile a glob (``*``, ``**``, ``?``, ``[...]``) into an anchored regex."""
    out = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = glob[i + 1 : close]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = close
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


@dataclass(frozen=True)
class Selection:
    """A parsed selection: where to list, how deep, and what to keep.

    Attributes:
        base: The directory keys are taken relative to (ends with ``/`` or is ``""``).
        list_prefix: The prefix handed to the backend.
        recursive: Whether the backend listing is recursive.
        exact: The key of an exact-name selection, else ``None``.
        glob: Compiled glob over the relative key, else ``None``.
    """

    base: str
    list_prefix: str
    recursive: bool
    exact: str | None = None
    glob: re.Pattern[str] | None = None

    @classmethod
    def of(cls, key: str, recursive: bool) -> Selection:
        """The selection ``key`` makes."""
        first_glob = min((key.find(c) for c in _GLOB_CHARS if c in key), default=-1)
        if first_glob >= 0:
            base = key[: key.rfind("/", 0, first_glob) + 1]
            rest = key[len(base) :]
            deep = recursive or "**" in rest or "/" in rest
            return cls(base, base, deep, glob=glob_to_regex(rest))
        if key == "" or key.endswith("/"):
            return cls(key, key, recursive)
        return cls(key[: key.rfind("/") + 1], key, recursive, exact=key)

    def keep(self, meta: ObjectMeta) -> bool:
        """Whether a listed entry belongs to the selection."""
        key = meta.key
        if self.exact is not None:
            if key == self.exact:
                return True
            return key.startswith(self.exact + "/")
        if self.glob is not None:
            relative = key[len(self.base) :]
            if meta.is_prefix:
                relative = relative.rstrip("/")
            return self.glob.match(relative) is not None
        return True

    def relative(self, key: str) -> str:
        """``key`` relative to the selection's base directory."""
        return key[len(self.base) :] if key.startswith(self.base) else key


def select(
    uri: ObjectURI,
    *,
    recursive: bool = False,
    pattern: str | re.Pattern[str] | None = None,
    client: HasStores | None = None,
) -> Iterator[ObjectMeta]:
    """Stream the entries ``uri`` selects (see the module rules), in key order."""
    selection = Selection.of(uri.key, recursive)
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    prefix = uri.with_key(selection.list_prefix)
    for page in ops.list_pages(prefix, recursive=selection.recursive, client=client):
        for meta in page:
            if not selection.keep(meta):
                continue
            if regex is not None and regex.search(selection.relative(meta.key)) is None:
                continue
            yield meta
