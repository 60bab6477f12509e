"""Listing and selection rules, the same on every backend."""

from __future__ import annotations

import s3dlio

KEYS = [
    "data/file.txt",
    "data/file.txt.bak",
    "data/dl/one.npz",
    "data/dl/two.npz",
    "data/dl/deep/three.npz",
    "data/other.log",
]


def _populate(root: str) -> None:
    s3dlio.put_many([(root + k, k.encode()) for k in KEYS])


def test_list_directory(store_root: str) -> None:
    _populate(store_root)
    assert s3dlio.list(store_root + "data/") == [
        store_root + "data/dl/",
        store_root + "data/file.txt",
        store_root + "data/file.txt.bak",
        store_root + "data/other.log",
    ]


def test_list_recursive_is_sorted_and_complete(store_root: str) -> None:
    _populate(store_root)
    assert s3dlio.list(store_root, recursive=True) == sorted(store_root + k for k in KEYS)


def test_exact_key_never_matches_longer_names(store_root: str) -> None:
    _populate(store_root)
    assert s3dlio.list(store_root + "data/file.txt") == [store_root + "data/file.txt"]
    assert s3dlio.list(store_root + "data/file.txt", recursive=True) == [
        store_root + "data/file.txt"
    ]


def test_exact_name_shows_directory(store_root: str) -> None:
    s3dlio.put_many([(store_root + k, b"x") for k in ("data/dl/one.npz", "data/dlx")])
    assert s3dlio.list(store_root + "data/dl") == [store_root + "data/dl/"]
    assert s3dlio.list(store_root + "data/dl", recursive=True) == [store_root + "data/dl/one.npz"]


def test_globs(store_root: str) -> None:
    _populate(store_root)
    assert s3dlio.list(store_root + "data/dl/*.npz") == [
        store_root + "data/dl/one.npz",
        store_root + "data/dl/two.npz",
    ]
    assert s3dlio.list(store_root + "data/**/*.npz") == [
        store_root + "data/dl/deep/three.npz",
        store_root + "data/dl/one.npz",
        store_root + "data/dl/two.npz",
    ]
    assert s3dlio.list(store_root + "data/file.???") == [store_root + "data/file.txt"]
    assert s3dlio.list(store_root + "data/*.l[o]g") == [store_root + "data/other.log"]


def test_pattern_regex_on_relative_key(store_root: str) -> None:
    _populate(store_root)
    assert s3dlio.list(store_root + "data/", recursive=True, pattern=r"^dl/.*\.npz$") == [
        store_root + "data/dl/deep/three.npz",
        store_root + "data/dl/one.npz",
        store_root + "data/dl/two.npz",
    ]
    assert s3dlio.list(store_root + "data/", recursive=True, pattern="bak") == [
        store_root + "data/file.txt.bak"
    ]


def test_thousand_keys(store_root: str) -> None:
    keys = [f"{store_root}k/{i:05d}" for i in range(1000)]
    s3dlio.put_many([(k, b"") for k in keys], max_in_flight=32)
    assert s3dlio.list(store_root + "k/") == keys
    streamed = s3dlio.list_iter(store_root + "k/", recursive=True)
    assert next(streamed) == keys[0]
    assert sum(1 for _ in streamed) == 999


def test_list_missing_prefix_is_empty(store_root: str) -> None:
    assert s3dlio.list(store_root + "nothing/here/") == []
    assert s3dlio.list(store_root + "nothing", recursive=True) == []
