"""URI parsing: every scheme, the Azure account forms, and round-trips (hypothesis)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3dlio import InvalidURIError, ObjectURI, parse_uri


def test_s3_forms() -> None:
    u = parse_uri("s3://bucket/a/b.bin")
    assert (u.scheme, u.bucket, u.key, u.endpoint) == ("s3", "bucket", "a/b.bin", None)
    e = parse_uri("s3://127.0.0.1:9000/bucket/key")
    assert (e.endpoint, e.bucket, e.key) == ("127.0.0.1:9000", "bucket", "key")
    assert str(e) == "s3://127.0.0.1:9000/bucket/key"
    assert parse_uri("s3://my.dotted.bucket/k").bucket == "my.dotted.bucket"
    assert parse_uri("s3://bucket").key == ""


def test_gcs_alias_kept_for_display() -> None:
    u = parse_uri("gcs://b/k")
    assert u.scheme == "gs" and str(u) == "gcs://b/k"
    assert str(parse_uri("gs://b/k")) == "gs://b/k"


def test_azure_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    full = parse_uri("az://acct/cont/k/x")
    assert (full.account, full.bucket, full.key) == ("acct", "cont", "k/x")
    short = parse_uri("az://cont/k/x")
    assert (short.account, short.bucket, short.key) == (None, "cont", "k/x")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=dev;AccountKey=x")
    assert parse_uri("az://dev/c/k").account == "dev"
    assert parse_uri("az://c/k").bucket == "c"


def test_local_forms(tmp_path: os.PathLike[str]) -> None:
    assert parse_uri("file:///tmp/x").key == "/tmp/x"
    assert parse_uri("direct:///tmp/x/").key == "/tmp/x/"
    assert parse_uri("/tmp/y", allow_bare=True) == ObjectURI("file", "", "/tmp/y")
    assert parse_uri("rel/z", allow_bare=True).key == os.path.abspath("rel/z")
    assert parse_uri(tmp_path).key == os.fspath(tmp_path)


@pytest.mark.parametrize("bad", ["", "bucket/key", "http://x/y", "s3://", "s3:///k", "file://"])
def test_bad(bad: str) -> None:
    with pytest.raises(InvalidURIError):
        parse_uri(bad)


def test_not_a_string() -> None:
    with pytest.raises(InvalidURIError):
        parse_uri(42)  # type: ignore[arg-type]


_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=12,
)
_key = st.lists(_segment, max_size=4).map("/".join)
_bucket = st.from_regex(r"[a-z0-9][a-z0-9.\-]{1,20}[a-z0-9]", fullmatch=True)


@given(scheme=st.sampled_from(["s3", "gs", "gcs"]), bucket=_bucket, key=_key)
def test_object_store_roundtrip(scheme: str, bucket: str, key: str) -> None:
    text = f"{scheme}://{bucket}/{key}"
    parsed = parse_uri(text)
    assert str(parsed) == text
    assert parse_uri(str(parsed)) == parsed
    assert parsed.key == key


@given(port=st.integers(1, 65535), bucket=_bucket, key=_key)
def test_endpoint_roundtrip(port: int, bucket: str, key: str) -> None:
    text = f"s3://localhost:{port}/{bucket}/{key}"
    parsed = parse_uri(text)
    assert parsed.endpoint == f"localhost:{port}" and parsed.key == key
    assert str(parsed) == text


@given(parts=st.lists(_segment.filter(lambda s: s not in (".", "..")), min_size=1, max_size=4))
def test_local_roundtrip(parts: list[str]) -> None:
    text = "file:///" + "/".join(parts)
    parsed = parse_uri(text)
    assert parse_uri(str(parsed)) == parsed


@given(base=_key, rel=_key)
def test_join(base: str, rel: str) -> None:
    joined = parse_uri("s3://b/" + base).join(rel)
    assert joined.key.endswith(rel)
    assert joined.key.startswith(base)
