"""One store over N endpoints holding the same data: load balancing, statistics and failover.

A :class:`MultiEndpointStore` (the original's name and methods) spreads requests over up to 32
endpoints of one scheme, ``round_robin`` or ``least_connections``, each endpoint served by its
own :class:`s3dlio.Client` (``s3://host:port/bucket/`` endpoints get
``Client(endpoint_url="http://host:port")``). Beyond the original, an endpoint that refuses
connections, times out or answers 5xx leaves the rotation for a back-off period (doubling per
consecutive failure) and the request goes to the next endpoint at once; when the period ends the
endpoint is tried again and stays in the rotation once it answers. The data is assumed to be
replicated on every endpoint, as with the original.

Keys are mapped between endpoints by the part of the URI after an endpoint's base URI:
``get("s3://h1:9000/bucket/a/x")`` on a store over ``s3://h1:9000/bucket/`` and
``s3://h2:9000/bucket/`` reads ``a/x`` from whichever endpoint the strategy picks; a bare key
(``"a/x"``) works too.

The store's data methods are coroutines, as in the original (``await store.get(uri)``).
Synchronous code uses :attr:`MultiEndpointStore.client` (a :class:`s3dlio.Client` whose every
call is balanced), ``LoaderOptions(endpoints=[...], strategy=...)`` for loaders and datasets,
or ``s3-cli --endpoints``.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..client import Client, default_client
from ..errors import (
    InvalidArgumentError,
    InvalidURIError,
    NotFoundError,
    OperationTimeoutError,
    TransientError,
)
from .buffers import BytesView
from .store import ObjectMeta, ObjectStore, PartRead, ReadStream, StoreSet, Upload
from .uri import ObjectURI, parse_uri

__all__ = [
    "MAX_ENDPOINTS",
    "STRATEGIES",
    "EndpointsUnavailableError",
    "MultiEndpointClient",
    "MultiEndpointStore",
    "create_multi_endpoint_store",
    "create_multi_endpoint_store_from_env",
    "create_multi_endpoint_store_from_file",
    "create_multi_endpoint_store_from_template",
    "expand_template",
    "split_s3_endpoint",
]

#: Most endpoints one store may have (the original's ``MAX_ENDPOINTS``).
MAX_ENDPOINTS = 32
#: The load-balancing strategies.
STRATEGIES = ("round_robin", "least_connections")
#: The environment variable :func:`create_multi_endpoint_store_from_env` reads.
ENV_VAR = "S3_ENDPOINT_URIS"

R = TypeVar("R")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BRACES = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^\s*(\d+)\s*\.\.\.\s*(\d+)\s*$")


class EndpointsUnavailableError(TransientError):
    """Every endpoint of a :class:`MultiEndpointStore` failed the request.

    Attributes:
        failures: ``(endpoint URI, its last error)`` for each endpoint.
    """

    def __init__(self, failures: Sequence[tuple[str, BaseException]], *, uri: str, op: str):
        self.failures = builtins.list(failures)
        shown = "; ".join(f"{ep}: {exc}" for ep, exc in self.failures)
        super().__init__(f"all {len(self.failures)} endpoints failed: {shown}", uri=uri, op=op)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_unavailable, (self.failures, self.uri, self.op, self.attempts))


def _rebuild_unavailable(
    failures: builtins.list[tuple[str, BaseException]], uri: str, op: str, attempts: int | None
) -> EndpointsUnavailableError:
    err = EndpointsUnavailableError(failures, uri=uri, op=op)
    err.attempts = attempts
    return err


# -- parsing -----------------------------------------------------------------------------------


def split_s3_endpoint(uri: str) -> tuple[str | None, str, str]:
    """``(endpoint, bucket, key)`` of ``s3://[host:port/]bucket/key`` (the original's rules).

    The first path segment names a server when it is ``host:port`` (``[v6]:port`` too); an IP
    address without a port is refused (it cannot be a bucket name).

    Raises:
        InvalidURIError: not an ``s3://`` URI, no ``/`` after the bucket, or a bare IP address.
    """
    if not uri.startswith("s3://"):
        raise InvalidURIError("URI must start with s3://", uri=uri, op="PARSE")
    rest = uri[len("s3://") :]
    first, slash, tail = rest.partition("/")
    endpoint = None
    if _HOST_PORT.match(first):
        endpoint = first
        first, slash, tail = tail.partition("/")
    elif _IPV4.match(first):
        raise InvalidURIError(
            f"{first!r} is an IP address with no port; add :port to name a server, "
            "e.g. s3://10.0.0.1:9000/bucket/key",
            uri=uri,
            op="PARSE",
        )
    if not first or not slash:
        raise InvalidURIError("URI must contain '/' after the bucket", uri=uri, op="PARSE")
    return endpoint, first, tail


def expand_template(template: str) -> builtins.list[str]:
    """The URIs of ``"s3://bucket-{1...10}/data"`` (every ``{a...b}`` range, combined).

    Raises:
        InvalidArgumentError: a brace group that is not a valid ``{start...end}`` range
            (non-numbers, ``..``, start > end), naming the template.
    """
    pieces: builtins.list[builtins.list[str]] = []
    last = 0
    for match in _BRACES.finditer(template):
        inner = match.group(1)
        found = _RANGE.match(inner)
        if found is None:
            if "." not in inner:
                continue  # a literal brace group, not a range
            raise InvalidArgumentError(
                f"bad range {{{inner}}} in template {template!r}: use {{start...end}} "
                "with whole numbers",
                op="CONFIGURE",
            )
        start, end = int(found.group(1)), int(found.group(2))
        if start > end:
            raise InvalidArgumentError(
                f"bad range {{{inner}}} in template {template!r}: start {start} > end {end}",
                op="CONFIGURE",
            )
        if end - start >= MAX_ENDPOINTS:
            raise InvalidArgumentError(
                f"template {template!r} expands to {end - start + 1} endpoints; "
                f"at most {MAX_ENDPOINTS}",
                op="CONFIGURE",
            )
        width = len(found.group(1)) if found.group(1).startswith("0") else 0
        pieces.append([template[last : match.start()]])
        pieces.append([str(n).zfill(width) for n in range(start, end + 1)])
        last = match.end()
    pieces.append([template[last:]])
    return ["".join(parts) for parts in itertools.product(*pieces)]


# -- one endpoint ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Endpoint:
    """One endpoint: its client, where its data lives, its counters and its health."""

    index: int
    uri: str  # as the user wrote it
    base: ObjectURI  # where this endpoint's data lives (host kept in ``endpoint`` for s3)
    client: Client
    total_requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    error_count: int = 0
    active_requests: int = 0
    down_until: float = 0.0
    strikes: int = 0
    last_failure: BaseException | None = None
    prefix: str = field(init=False)
    bare: str | None = field(init=False)  # the base without its host (``s3://bucket/...``)

    def __post_init__(self) -> None:
        self.prefix = str(self.base)
        b = self.base
        self.bare = str(ObjectURI(b.scheme, b.bucket, b.key, b.account)) if b.endpoint else None

    def target(self, rel: str) -> ObjectURI:
        """This endpoint's URI for a key relative to the endpoints' bases."""
        b = self.base
        return ObjectURI(b.scheme, b.bucket, b.key + rel, b.account, b.endpoint, b.alias)

    def stats(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "total_requests": self.total_requests,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "error_count": self.error_count,
            "active_requests": self.active_requests,
        }


def _is_outage(exc: BaseException) -> bool:
    """Whether an error says the endpoint is unreachable or failing (not about the object)."""
    return isinstance(exc, (TransientError, OperationTimeoutError, ConnectionError))


# -- the ObjectStore ---------------------------------------------------------------------------


class MultiBackend(ObjectStore):
    """The :class:`~s3dlio.ObjectStore` that routes each request to one endpoint's backend.

    It is what :attr:`MultiEndpointStore.client` and loaders with ``endpoints=`` read through;
    it counts every request per endpoint and takes failing endpoints out of the rotation.
    """

    def __init__(
        self,
        endpoints: builtins.list[_Endpoint],
        strategy: str,
        *,
        backoff: float,
        max_backoff: float,
    ) -> None:
        first = endpoints[0]
        super().__init__(first.client.config)
        self.endpoints = endpoints
        self.strategy = strategy
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.scheme = first.base.scheme  # type: ignore[misc]
        sample = first.client.backend(first.base)
        self._sample = sample
        self.local = sample.local  # type: ignore[misc]
        self.min_part_size = sample.min_part_size  # type: ignore[misc]
        self.part_multiple = sample.part_multiple  # type: ignore[misc]
        self.max_parallel_parts = sample.max_parallel_parts  # type: ignore[misc]
        # An s3 store routes each request by the host in its URI, so one multiplexed read
        # loop serves every endpoint (the targets carry their host).
        self.multiplexed = bool(sample.multiplexed and self.scheme == "s3")  # type: ignore[misc]
        self._lock = threading.Lock()
        self._turn = itertools.count()
        # longest base first: the most specific endpoint claims a URI
        self._by_prefix = sorted(endpoints, key=lambda e: len(e.prefix), reverse=True)

    # -- routing -----------------------------------------------------------------------------
    def relative(self, uri: ObjectURI | str) -> str | None:
        """The part of ``uri`` after the base of the endpoint it falls under (``None``: none)."""
        text = str(uri)
        for ep in self._by_prefix:
            if text.startswith(ep.prefix):
                return text[len(ep.prefix) :]
        for ep in self._by_prefix:  # the same data named without a host
            if ep.bare is not None and text.startswith(ep.bare):
                return text[len(ep.bare) :]
        return None

    def _order(self, exclude: Iterable[_Endpoint] = ()) -> builtins.list[_Endpoint]:
        """Endpoints to try, best first: the strategy's pick among the healthy ones, the other
        healthy ones, then those backing off (soonest back first)."""
        now = time.monotonic()
        skip = set(map(id, exclude))
        eps = [e for e in self.endpoints if id(e) not in skip]
        if not eps:
            return []
        start = next(self._turn) % len(self.endpoints)
        rotated = sorted(eps, key=lambda e: (e.index - start) % len(self.endpoints))
        healthy = [e for e in rotated if e.down_until <= now]
        if self.strategy == "least_connections":
            healthy.sort(key=lambda e: e.active_requests)  # stable: rotation breaks ties
        waiting = sorted((e for e in rotated if e.down_until > now), key=lambda e: e.down_until)
        return healthy + waiting

    def _pick(self) -> _Endpoint:
        """The strategy's endpoint for one request (the fast path of :meth:`_order`)."""
        eps = self.endpoints
        n = len(eps)
        start = next(self._turn) % n
        now = time.monotonic()
        if self.strategy == "round_robin":
            for step in range(n):
                ep = eps[(start + step) % n]
                if ep.down_until <= now:
                    return ep
        else:
            best: _Endpoint | None = None
            for step in range(n):
                ep = eps[(start + step) % n]
                if ep.down_until <= now and (
                    best is None or ep.active_requests < best.active_requests
                ):
                    best = ep
            if best is not None:
                return best
        return min(eps, key=lambda e: e.down_until)  # all backing off: the soonest back

    def _begin(self, ep: _Endpoint) -> None:
        with self._lock:
            ep.total_requests += 1
            ep.active_requests += 1

    def _end(
        self, ep: _Endpoint, error: BaseException | None = None, *, read: int = 0, wrote: int = 0
    ) -> None:
        with self._lock:
            ep.active_requests -= 1
            ep.bytes_read += read
            ep.bytes_written += wrote
            if error is None:
                ep.strikes = 0
                ep.down_until = 0.0
                return
            ep.error_count += 1
            if _is_outage(error):
                self._strike(ep, error)

    def _strike(self, ep: _Endpoint, error: BaseException) -> None:
        ep.last_failure = error
        ep.strikes += 1
        pause = min(self.max_backoff, self.backoff * 2 ** (ep.strikes - 1))
        ep.down_until = time.monotonic() + pause

    def route(
        self,
        uri: ObjectURI,
        op: str,
        fn: Callable[[ObjectStore, ObjectURI], R],
        *,
        measure: Callable[[R], tuple[int, int]] | None = None,
    ) -> R:
        """Run ``fn(backend, target)`` on the best endpoint, failing over to the next ones.

        Raises:
            EndpointsUnavailableError: every endpoint failed with an outage.
            S3DlioError: an error about the request itself (not found, denied, ...).
        """
        rel = self.relative(uri)
        if rel is None:  # not under any endpoint: used as it is, on the first endpoint
            ep = self.endpoints[0]
            return fn(ep.client.backend(uri), uri)
        failures: builtins.list[tuple[str, BaseException]] = []
        for ep in self._order():
            target = ep.target(rel)
            self._begin(ep)
            try:
                result = fn(ep.client.backend(target), target)
            except BaseException as exc:
                self._end(ep, exc)
                if _is_outage(exc):
                    failures.append((ep.uri, exc))
                    continue
                raise
            read, wrote = measure(result) if measure else (0, 0)
            self._end(ep, read=read, wrote=wrote)
            return result
        order = {e.uri: e.index for e in self.endpoints}
        failures.sort(key=lambda f: order[f[0]])
        raise EndpointsUnavailableError(failures, uri=str(uri), op=op)

    # -- ObjectStore -------------------------------------------------------------------------
    def endpoint(self, uri: ObjectURI) -> str:
        return f"multi:{len(self.endpoints)}"

    def local_path(self, uri: ObjectURI) -> str | None:
        return None  # which replica serves a read is decided per request

    def allocate(self, size: int) -> BytesView:
        return self._sample.allocate(size)

    def close(self) -> None:
        for ep in self.endpoints:
            ep.client.close()

    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ) -> ReadStream:
        holder: builtins.list[_Endpoint] = []

        def opened(backend: ObjectStore, target: ObjectURI) -> ReadStream:
            holder.append(self._endpoint_of(target))
            return backend.open_read(target, offset, length, if_match=if_match)

        stream = self.route(uri, "GET", opened)
        return _CountingStream(stream, self, holder[-1]) if holder else stream

    def _endpoint_of(self, target: ObjectURI) -> _Endpoint:
        text = str(target)
        for ep in self._by_prefix:
            if text.startswith(ep.prefix):
                return ep
        return self.endpoints[0]

    def read_parts(self, parts: Iterator[PartRead | None], width: int) -> Iterator[PartRead]:
        """Spread the reads over the endpoints in one multiplexed loop (``s3://``); a read
        that meets an outage is sent again, at once, to the next endpoint."""
        again: collections.deque[PartRead] = collections.deque()
        origin: dict[int, tuple[ObjectURI, _Endpoint, builtins.list[_Endpoint]]] = {}
        src = iter(parts)

        def feed() -> Iterator[PartRead | None]:
            while True:
                if again:
                    yield again.popleft()
                    continue
                part = next(src, _END)
                if part is _END:
                    if not origin:
                        return
                    yield None
                    continue
                if part is None:
                    yield None
                    continue
                assert isinstance(part, PartRead)
                rel = self.relative(part.uri)
                if rel is None:
                    ep = self.endpoints[0]
                    origin[id(part)] = (part.uri, ep, [ep])
                else:
                    ep = self._pick()
                    origin[id(part)] = (part.uri, ep, [ep])
                    part.uri = ep.target(rel)
                self._begin(ep)
                yield part

        for part in self._sample.read_parts(feed(), width):
            uri, ep, tried = origin.pop(id(part))
            error = part.error
            self._end(ep, error, read=part.nbytes if error is None else 0)
            rel = self.relative(uri)
            if error is not None and _is_outage(error) and rel is not None:
                left = self._order(tried)
                if left:
                    nxt = left[0]
                    part.error, part.nbytes = None, 0
                    if part.into is None:
                        part.data = None
                    part.uri = nxt.target(rel)
                    origin[id(part)] = (uri, nxt, [*tried, nxt])
                    self._begin(nxt)
                    again.append(part)
                    continue
                part.error = EndpointsUnavailableError(
                    [(e.uri, e.last_failure or error) for e in sorted(tried, key=_index)],
                    uri=str(uri),
                    op=part.op,
                )
            part.uri = uri
            yield part

    def put(
        self,
        uri: ObjectURI,
        data: memoryview,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        size = len(data)
        return self.route(
            uri,
            "PUT",
            lambda b, t: b.put(t, data, content_type=content_type, metadata=metadata),
            measure=lambda _: (0, size),
        )

    def begin_upload(
        self,
        uri: ObjectURI,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        holder: builtins.list[_Endpoint] = []

        def begin(backend: ObjectStore, target: ObjectURI) -> Upload:
            holder.append(self._endpoint_of(target))
            return backend.begin_upload(target, content_type=content_type, metadata=metadata)

        upload = self.route(uri, "PUT_START", begin)
        return _CountingUpload(upload, self, holder[-1]) if holder else upload

    def stat(self, uri: ObjectURI) -> ObjectMeta:
        meta = self.route(uri, "HEAD", lambda b, t: b.stat(t))
        return _rebase(meta, uri)

    def list_pages(
        self, prefix: ObjectURI, *, recursive: bool
    ) -> Iterator[builtins.list[ObjectMeta]]:
        pages = self.route(
            prefix, "LIST", lambda b, t: _first_page(b.list_pages(t, recursive=recursive))
        )
        yield from pages

    def delete(self, uri: ObjectURI) -> None:
        self.route(uri, "DELETE", lambda b, t: b.delete(t))

    def create_bucket(self, uri: ObjectURI) -> None:
        self.route(uri, "CREATE_BUCKET", lambda b, t: b.create_bucket(t))

    def bucket_exists(self, uri: ObjectURI) -> bool:
        return self.route(uri, "HEAD", lambda b, t: b.bucket_exists(t))

    def mkdir(self, uri: ObjectURI) -> None:
        self.route(uri, "MKDIR", lambda b, t: b.mkdir(t))


_END: Any = object()


def _index(ep: _Endpoint) -> int:
    return ep.index


def _first_page(pages: Iterator[builtins.list[ObjectMeta]]) -> Iterator[builtins.list[ObjectMeta]]:
    """Reads the first page now (so an outage fails over before anything is yielded)."""
    first = next(pages, None)
    if first is None:
        return iter(())
    return itertools.chain([first], pages)


def _rebase(meta: ObjectMeta, uri: ObjectURI) -> ObjectMeta:
    """``meta`` of a replica, named by the URI that was asked for."""
    if meta.uri == uri:
        return meta
    return ObjectMeta(
        uri,
        meta.size,
        meta.last_modified,
        meta.etag,
        meta.content_type,
        meta.metadata,
        meta.is_prefix,
        meta.extra,
    )


class _CountingStream(ReadStream):
    """A replica's read stream that counts bytes read and reports a broken body."""

    def __init__(self, inner: ReadStream, owner: MultiBackend, ep: _Endpoint) -> None:
        self.inner, self.owner, self.ep = inner, owner, ep
        self.size, self.etag = inner.size, inner.etag
        self.offset, self.length = inner.offset, inner.length

    def readinto(self, buf: memoryview) -> int:
        try:
            n = self.inner.readinto(buf)
        except BaseException as exc:
            if _is_outage(exc):
                with self.owner._lock:
                    self.ep.error_count += 1
                    self.owner._strike(self.ep, exc)
            raise
        if n:
            with self.owner._lock:
                self.ep.bytes_read += n
        return n

    def close(self) -> None:
        self.inner.close()


class _CountingUpload(Upload):
    """A replica's multi-part upload that counts bytes written."""

    def __init__(self, inner: Upload, owner: MultiBackend, ep: _Endpoint) -> None:
        self.inner, self.owner, self.ep = inner, owner, ep

    def write_part(self, number: int, offset: int, data: memoryview, last: bool) -> None:
        self.owner._begin(self.ep)
        try:
            self.inner.write_part(number, offset, data, last)
        except BaseException as exc:
            self.owner._end(self.ep, exc)
            raise
        self.owner._end(self.ep, wrote=len(data))

    def commit(self) -> str | None:
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


class _MultiStoreSet(StoreSet):
    """A store set whose backend for the endpoints' scheme is the balancing store."""

    def __init__(self, backend: MultiBackend) -> None:
        super().__init__(backend.config)
        self.multi = backend

    def backend(self, uri: str | ObjectURI) -> ObjectStore:
        parsed = parse_uri(uri) if isinstance(uri, str) else uri
        if parsed.scheme == self.multi.scheme:
            return self.multi
        return super().backend(parsed)

    def close(self) -> None:
        super().close()
        self.multi.close()


class MultiEndpointClient(Client):
    """A :class:`s3dlio.Client` whose every request is balanced over a store's endpoints
    (other schemes go to a client with the first endpoint's options). It pickles as the
    endpoint list, so DataLoader workers rebuild the same balancing."""

    def __init__(self, store: MultiEndpointStore) -> None:
        self._store = store
        self._init(_MultiStoreSet(store.backend))

    def __reduce__(self) -> tuple[Any, ...]:
        s = self._store
        return (_rebuild_client, (s.uris(), s.strategy(), s._options, s._backoff))

    def __repr__(self) -> str:
        return f"<s3dlio.MultiEndpointClient {len(self._store.uris())} endpoints>"


def _rebuild_client(
    uris: builtins.list[str], strategy: str, options: dict[str, Any], backoff: tuple[float, float]
) -> MultiEndpointClient:
    store = MultiEndpointStore(
        uris, strategy, backoff=backoff[0], max_backoff=backoff[1], **options
    )
    return store.client


# -- the public store --------------------------------------------------------------------------


class MultiEndpointStore:
    """Requests spread over N endpoints holding the same data (the original's class).

    Build one with :func:`create_multi_endpoint_store` (or ``_from_env``, ``_from_file``,
    ``_from_template``). Data methods are coroutines; :attr:`client` is the synchronous
    :class:`s3dlio.Client` over the same endpoints and counters.

    Args:
        uris: 1-32 base URIs of one scheme (``s3://host:port/bucket/`` names a server).
        strategy: ``"round_robin"`` (default) or ``"least_connections"``.
        backoff: Seconds an endpoint stays out of the rotation after an outage (doubled per
            consecutive failure, up to ``max_backoff``).
        max_backoff: Longest back-off, in seconds.
        client: Whose options (credentials, timeouts, retries) every endpoint's client takes
            (default: the default client's).
        **options: More :class:`s3dlio.Client` options for every endpoint's client.

    Raises:
        InvalidArgumentError: no URIs or more than 32, mixed schemes, an unknown strategy.
        InvalidURIError: a URI that cannot be parsed.
    """

    def __init__(
        self,
        uris: Iterable[str],
        strategy: str | None = None,
        *,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        client: Client | None = None,
        **options: Any,
    ) -> None:
        strategy = "round_robin" if strategy is None else strategy
        if strategy not in STRATEGIES:
            raise InvalidArgumentError(
                f"unknown strategy {strategy!r}; use 'round_robin' or 'least_connections'",
                op="CONFIGURE",
            )
        if isinstance(uris, str):
            uris = [uris]
        given = [str(u).strip() for u in uris]
        if not given:
            raise InvalidArgumentError(
                "a multi-endpoint store needs at least one endpoint URI", op="CONFIGURE"
            )
        if len(given) > MAX_ENDPOINTS:
            raise InvalidArgumentError(
                f"too many endpoints: {len(given)} (at most {MAX_ENDPOINTS})", op="CONFIGURE"
            )
        if not backoff > 0 or max_backoff < backoff:
            raise InvalidArgumentError(
                f"backoff must be > 0 and <= max_backoff, got {backoff} and {max_backoff}",
                op="CONFIGURE",
            )
        base_options = dict((client or default_client()).config.options())
        base_options.update(options)
        self._options = base_options
        self._backoff = (backoff, max_backoff)
        self._strategy = strategy
        endpoints = [self._endpoint(i, u, base_options) for i, u in enumerate(given)]
        schemes = sorted({e.base.scheme for e in endpoints})
        if len(schemes) > 1:
            raise InvalidArgumentError(
                f"all endpoints must use the same scheme; found {', '.join(schemes)} in {given}",
                op="CONFIGURE",
            )
        self._uris = given
        self.backend = MultiBackend(endpoints, strategy, backoff=backoff, max_backoff=max_backoff)
        self.client: MultiEndpointClient = MultiEndpointClient(self)

    @staticmethod
    def _endpoint(index: int, uri: str, options: dict[str, Any]) -> _Endpoint:
        opts = dict(options)
        host = None
        if uri.startswith("s3://"):
            host, bucket, key = split_s3_endpoint(uri)
            if host is not None:
                opts["endpoint_url"] = f"http://{host}"
            base = ObjectURI("s3", bucket, key, endpoint=host)
        else:
            base = parse_uri(uri)
        return _Endpoint(index, uri, base, Client(**opts))

    # -- about the store ---------------------------------------------------------------------
    def endpoint_count(self) -> int:
        """How many endpoints the store has."""
        return len(self._uris)

    def strategy(self) -> str:
        """``"round_robin"`` or ``"least_connections"``."""
        return self._strategy

    def uris(self) -> builtins.list[str]:
        """The endpoint URIs, as given."""
        return builtins.list(self._uris)

    def get_endpoint_stats(self) -> builtins.list[dict[str, Any]]:
        """Per endpoint: ``uri``, ``total_requests``, ``bytes_read``, ``bytes_written``,
        ``error_count``, ``active_requests`` (the original's keys)."""
        with self.backend._lock:
            return [ep.stats() for ep in self.backend.endpoints]

    def get_total_stats(self) -> dict[str, int]:
        """The per-endpoint counters summed (without ``uri``)."""
        total = dict.fromkeys(
            ("total_requests", "bytes_read", "bytes_written", "error_count", "active_requests"), 0
        )
        for stats in self.get_endpoint_stats():
            for name in total:
                total[name] += stats[name]
        return total

    def endpoint_health(self) -> builtins.list[dict[str, Any]]:
        """Per endpoint: ``uri``, ``available`` (in the rotation), ``retry_in`` (seconds left
        of its back-off) and ``last_failure`` (text of its last outage, or ``None``)."""
        now = time.monotonic()
        with self.backend._lock:
            return [
                {
                    "uri": ep.uri,
                    "available": ep.down_until <= now,
                    "retry_in": max(0.0, ep.down_until - now),
                    "last_failure": None if ep.last_failure is None else str(ep.last_failure),
                }
                for ep in self.backend.endpoints
            ]

    def close(self) -> None:
        """Close every endpoint's connections."""
        self.backend.close()

    def __repr__(self) -> str:
        return f"MultiEndpointStore({self._uris!r}, strategy={self._strategy!r})"

    # -- URIs --------------------------------------------------------------------------------
    def localize(self, uri: str | ObjectURI) -> ObjectURI:
        """``uri`` as the store's backend names it: an endpoint URI as written
        (``s3://h1:9000/bucket/k``) or a bare key (``k``, relative to the first endpoint)."""
        if isinstance(uri, ObjectURI):
            return uri
        text = str(uri)
        for ep in sorted(self.backend.endpoints, key=lambda e: len(e.uri), reverse=True):
            if text.startswith(ep.uri):
                return ep.target(text[len(ep.uri) :])
        if "://" not in text:
            return self.backend.endpoints[0].target(text)
        if text.startswith("s3://"):
            host, bucket, key = split_s3_endpoint(text)
            return ObjectURI("s3", bucket, key, endpoint=host)
        return parse_uri(text)

    def _pinned(self, index: int) -> _Endpoint:
        if not isinstance(index, int) or not 0 <= index < len(self._uris):
            raise InvalidArgumentError(
                f"endpoint index {index!r} out of range: {len(self._uris)} endpoint(s)",
                op="CONFIGURE",
            )
        return self.backend.endpoints[index]

    def _pinned_target(self, index: int, uri: str) -> tuple[_Endpoint, ObjectURI]:
        ep = self._pinned(index)
        local = self.localize(uri)
        rel = self.backend.relative(local)
        return ep, (local if rel is None else ep.target(rel))

    def _on(
        self,
        ep: _Endpoint,
        fn: Callable[[], R],
        *,
        read: Callable[[R], int] | None = None,
        wrote: int = 0,
    ) -> R:
        self.backend._begin(ep)
        try:
            result = fn()
        except BaseException as exc:
            self.backend._end(ep, exc)
            raise
        self.backend._end(ep, read=read(result) if read else 0, wrote=wrote)
        return result

    # -- synchronous forms (the coroutines run these on a thread) -----------------------------
    def get_sync(self, uri: str) -> BytesView:
        """:meth:`get`, blocking."""
        return self.client.get(self.localize(uri))

    def get_range_sync(self, uri: str, offset: int, length: int | None = None) -> BytesView:
        """:meth:`get_range`, blocking."""
        return self.client.get_range(self.localize(uri), offset, length)

    def put_sync(self, uri: str, data: Any) -> None:
        """:meth:`put`, blocking."""
        self.client.put_bytes(self.localize(uri), data)

    def list_sync(self, uri: str, recursive: bool = False) -> builtins.list[str]:
        """:meth:`list`, blocking."""
        return self.client.list(self.localize(uri), recursive)

    def delete_sync(self, uri: str) -> None:
        """:meth:`delete`, blocking."""
        self.client.delete(self.localize(uri))

    def get_from_endpoint_sync(self, index: int, uri: str) -> BytesView:
        """:meth:`get_from_endpoint`, blocking."""
        ep, target = self._pinned_target(index, uri)
        return self._on(ep, lambda: ep.client.get(target), read=len)

    def put_to_endpoint_sync(self, index: int, uri: str, data: Any) -> None:
        """:meth:`put_to_endpoint`, blocking."""
        ep, target = self._pinned_target(index, uri)
        size = memoryview(data).nbytes
        self._on(ep, lambda: ep.client.put_bytes(target, data), wrote=size)

    def delete_from_endpoint_sync(self, index: int, uri: str) -> None:
        """:meth:`delete_from_endpoint`, blocking."""
        ep, target = self._pinned_target(index, uri)
        self._on(ep, lambda: ep.client.delete(target))

    def put_all_endpoints_sync(self, uri: str, data: Any) -> None:
        """:meth:`put_all_endpoints`, blocking."""
        for index in range(len(self._uris)):
            self.put_to_endpoint_sync(index, uri, data)

    def list_all_endpoints_sync(self, uri: str, recursive: bool = False) -> builtins.list[str]:
        """:meth:`list_all_endpoints`, blocking."""
        found: set[str] = set()
        for index in range(len(self._uris)):
            ep, target = self._pinned_target(index, uri)
            try:
                found.update(self._on(ep, lambda: ep.client.list(target, recursive)))  # noqa: B023
            except NotFoundError:
                continue
        return sorted(found)

    # -- the original's coroutines -----------------------------------------------------------
    async def get(self, uri: str) -> BytesView:
        """The object (a :class:`~s3dlio.BytesView`) from the endpoint the strategy picks."""
        return await asyncio.to_thread(self.get_sync, uri)

    async def get_range(self, uri: str, offset: int, length: int | None = None) -> BytesView:
        """``length`` bytes from ``offset`` (to the end when ``None``)."""
        return await asyncio.to_thread(self.get_range_sync, uri, offset, length)

    async def put(self, uri: str, data: Any, *, borrow: bool = True) -> None:
        """Store ``data`` on the endpoint the strategy picks (``borrow`` is accepted)."""
        await asyncio.to_thread(self.put_sync, uri, data)

    async def list(self, uri: str, recursive: bool = False) -> builtins.list[str]:
        """The URIs ``uri`` selects on the endpoint the strategy picks."""
        return await asyncio.to_thread(self.list_sync, uri, recursive)

    async def delete(self, uri: str) -> None:
        """Delete the object on the endpoint the strategy picks."""
        await asyncio.to_thread(self.delete_sync, uri)

    async def get_from_endpoint(self, index: int, uri: str) -> BytesView:
        """The object from endpoint ``index`` (no balancing, no failover)."""
        return await asyncio.to_thread(self.get_from_endpoint_sync, index, uri)

    async def put_to_endpoint(
        self, index: int, uri: str, data: Any, *, borrow: bool = True
    ) -> None:
        """Store ``data`` on endpoint ``index``."""
        await asyncio.to_thread(self.put_to_endpoint_sync, index, uri, data)

    async def delete_from_endpoint(self, index: int, uri: str) -> None:
        """Delete the object on endpoint ``index``."""
        await asyncio.to_thread(self.delete_from_endpoint_sync, index, uri)

    async def put_all_endpoints(self, uri: str, data: Any, *, borrow: bool = True) -> None:
        """Store ``data`` on every endpoint (replication)."""
        await asyncio.to_thread(self.put_all_endpoints_sync, uri, data)

    async def list_all_endpoints(self, uri: str, recursive: bool = False) -> builtins.list[str]:
        """The union of every endpoint's listing of ``uri``, sorted, without duplicates."""
        return await asyncio.to_thread(self.list_all_endpoints_sync, uri, recursive)


# -- constructors (the original's functions) ---------------------------------------------------


def create_multi_endpoint_store(
    uris: Iterable[str], strategy: str | None = "round_robin", **options: Any
) -> MultiEndpointStore:
    """A :class:`MultiEndpointStore` over ``uris`` (1-32 base URIs of one scheme).

    Args:
        uris: Endpoint base URIs, e.g. ``["s3://10.0.0.1:9000/bucket/", ...]``.
        strategy: ``"round_robin"`` (default) or ``"least_connections"``.
        **options: ``backoff``, ``max_backoff``, ``client`` and :class:`s3dlio.Client` options.

    Raises:
        InvalidArgumentError: see :class:`MultiEndpointStore`.
    """
    return MultiEndpointStore(uris, strategy, **options)


def create_multi_endpoint_store_from_env(
    strategy: str | None = None, **options: Any
) -> MultiEndpointStore:
    """A store over the comma-separated URIs of ``S3_ENDPOINT_URIS`` (1-32 entries).

    Raises:
        InvalidArgumentError: the variable is unset or empty, or as :class:`MultiEndpointStore`.
    """
    raw = os.environ.get(ENV_VAR, "")
    uris = [u.strip() for u in raw.split(",") if u.strip()]
    if not uris:
        raise InvalidArgumentError(
            f"{ENV_VAR} is {'empty' if ENV_VAR in os.environ else 'not set'}: "
            "set it to comma-separated endpoint URIs",
            op="CONFIGURE",
        )
    return MultiEndpointStore(uris, strategy, **options)


def create_multi_endpoint_store_from_file(
    file_path: str | os.PathLike[str], strategy: str | None = None, **options: Any
) -> MultiEndpointStore:
    """A store over the URIs in a local text file: one a line; blank lines and ``#``
    comments (whole lines, or after whitespace) are ignored.

    Raises:
        NotFoundError: no such file.
        InvalidArgumentError: no URIs in it, or as :class:`MultiEndpointStore`.
    """
    path = os.fspath(file_path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise NotFoundError("no endpoint list file", uri=path, op="CONFIGURE") from None
    uris = []
    for line in lines:
        text = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if text:
            uris.append(text)
    if not uris:
        raise InvalidArgumentError(f"no endpoint URIs in {path}", op="CONFIGURE")
    return MultiEndpointStore(uris, strategy, **options)


def create_multi_endpoint_store_from_template(
    uri_template: str, strategy: str | None = None, **options: Any
) -> MultiEndpointStore:
    """A store over the URIs of a template: ``"s3://10.0.0.{1...8}:9000/bucket/"`` gives 8.

    Raises:
        InvalidArgumentError: a bad ``{start...end}`` range, or as :class:`MultiEndpointStore`.
    """
    return MultiEndpointStore(expand_template(uri_template), strategy, **options)


def store_for_endpoints(
    endpoints: Sequence[str], strategy: str | None = None, client: Client | None = None
) -> MultiEndpointStore:
    """The store of a loader's ``endpoints=`` option (cached per endpoint list and strategy,
    so every dataset and pass of a loader shares its counters and health)."""
    key = (tuple(endpoints), strategy, id(client) if client is not None else None)
    with _cache_lock:
        store = _cache.get(key)
        if store is None:
            store = MultiEndpointStore(endpoints, strategy, client=client)
            _cache[key] = store
    return store


_cache: dict[tuple[Any, ...], MultiEndpointStore] = {}
_cache_lock = threading.Lock()
