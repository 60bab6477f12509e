"""Many requests at once from one thread: keep-alive connections waited on together.

Reading many small objects with one blocking request per thread costs, per request, a thread
wake-up and two hand-offs of the GIL, about as much CPU as the request itself (measured in
``docs/performance.md``). :func:`exchange` instead sends up to ``width`` requests, each on its
own connection from its pool, and waits for all of them with one ``epoll`` (``poll`` where
there is no ``epoll``): the thread only runs when bytes have arrived, and the number of
requests in flight no longer needs as many threads.

Bodies are read with ``recv_into`` straight into the buffer the caller picks once it has seen
the head (see :class:`Exchange`); a caller that wants to read a body itself (an error answer)
gets the exchange back with the response open, connection attached. Requests are never retried
here: a failed exchange comes back with :attr:`Exchange.error` set and its connection closed.
"""

from __future__ import annotations

import collections
import select
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .connection import Connection, Response, WouldBlock
from .pool import ConnectionPool

__all__ = ["Exchange", "available", "exchange"]

#: Seconds between checks for exchanges whose server went quiet for too long.
_SWEEP = 0.5
_END: Any = object()


def available() -> bool:
    """Whether this platform can wait on many sockets (``epoll`` or ``poll``)."""
    return hasattr(select, "epoll") or hasattr(select, "poll")


class Exchange:
    """One request of :func:`exchange`, and what became of it.

    Attributes:
        pool: Where the request goes (a connection is taken from it and given back).
        method: The HTTP method (``HEAD`` answers carry no body).
        head: The request head, as :meth:`ConnectionPool.format_head` makes it.
        tag: Anything the caller needs to recognise the exchange.
        response: The answer, once its head has arrived (``None`` if it failed before).
        target: The buffer the body is read into (what ``on_head`` returned), or ``None``.
        nbytes: Body bytes read into ``target``.
        error: Why the exchange failed (an ``OSError``), else ``None``. An exchange whose
            error is set before :func:`exchange` gets it is not sent, just handed back.
        start_ns: ``time.time_ns()`` when the request was sent.
        first_byte_ns: When the response head arrived (0 if it never did).
        end_ns: When the exchange finished.
    """

    __slots__ = (
        "_conn",
        "_deadline",
        "end_ns",
        "error",
        "first_byte_ns",
        "head",
        "method",
        "nbytes",
        "pool",
        "response",
        "start_ns",
        "tag",
        "target",
    )

    def __init__(
        self, pool: ConnectionPool | None, method: str, head: bytes, tag: Any = None
    ) -> None:
        self.pool = pool
        self.method = method
        self.head = head
        self.tag = tag
        self.response: Response | None = None
        self.target: memoryview | None = None
        self.nbytes = 0
        self.error: Exception | None = None
        self.start_ns = self.first_byte_ns = self.end_ns = 0
        self._conn: Connection | None = None
        self._deadline = 0.0

    def _start(self) -> Connection:
        self.start_ns = time.time_ns()
        assert self.pool is not None
        conn = self.pool.acquire()
        try:
            conn.send(self.head)
            if conn.tls:
                conn.set_nonblocking(True)  # read every record that has arrived, never wait
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._deadline = time.monotonic() + self.pool.read_timeout
        return conn

    def _step(self, on_head: Callable[[Exchange], memoryview | None]) -> bool:
        """Handle what has arrived; True once the exchange is finished (or failed)."""
        try:
            return self._advance(on_head)
        except WouldBlock:
            return False  # a TLS record not complete yet: wait for the socket

    def _advance(self, on_head: Callable[[Exchange], memoryview | None]) -> bool:
        conn = self._conn
        assert conn is not None
        if self.response is None:
            head = conn.poll_head()
            while head is not None and 100 <= head[1] < 200 and head[1] != 101:
                head = conn.poll_head() if conn.pending() else None  # interim answer
            if head is None:
                return False
            self.first_byte_ns = time.time_ns()
            version, status, reason, headers = head
            self.response = Response(
                self.pool,
                conn,
                version,
                status,
                reason,
                headers,
                head_request=self.method == "HEAD",
            )
            if self.response.complete:
                return True
            self.target = on_head(self)
            if self.target is None:
                conn.set_nonblocking(False)
                return True  # the caller reads the body
            if not len(self.target):
                self.response.close()
                return True
            if not conn.pending():
                return False
        target = self.target
        assert target is not None
        self.nbytes += self.response.readinto(target[self.nbytes :])
        if self.nbytes < len(target):
            return False
        if not self.response.complete:
            self.response.close()  # a body longer than the buffer asked for: drop the rest
        return True

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        if self.response is not None:
            self.response.close()
        elif self._conn is not None:
            self._conn.close()


def exchange(
    requests: Iterable[Exchange | None],
    width: int,
    on_head: Callable[[Exchange], memoryview | None],
) -> Iterator[Exchange]:
    """Send every request, at most ``width`` at a time, and yield each once it is finished.

    Args:
        requests: Exchanges to run, pulled as slots free up. ``None`` means "nothing more for
            now": the iterator is asked again after the next exchange finishes (so it may only
            say so while exchanges are in flight).
        width: Requests in flight at once (one connection each).
        on_head: Called with an exchange whose ``response`` head has arrived (and has a body);
            returns the buffer for the body, at most the body's length (``response.length``;
            only ``Content-Length`` bodies can be read here), or ``None`` to get the exchange
            back with the body unread and the response open, for the caller to read or close.
            It runs in the calling thread; an exception it raises fails the exchange if it is an
            ``OSError`` and ends the whole call otherwise.

    Yields:
        Finished exchanges, in the order they finish: the body read into ``target`` (the
        connection back in its pool), or ``response`` open with its body unread, or ``error``
        set. A response without a body (``HEAD``, ``204``, ``Content-Length: 0``) comes back
        complete with ``target`` ``None``.

    Each request may wait ``pool.read_timeout`` seconds for the server to send anything (else
    it fails with ``TimeoutError``). Closing the generator early closes the connections of the
    requests still in flight and of finished ones not yet handed out with their body unread.
    """
    source = iter(requests)
    poller = _Poller()
    flying: dict[int, Exchange] = {}
    sweep_at = time.monotonic() + _SWEEP
    more = True
    finished: collections.deque[Exchange] = collections.deque()
    try:
        while True:
            while more and len(flying) < width:
                ex = next(source, _END)
                if ex is None:
                    break
                if ex is _END:
                    more = False
                    break
                if ex.error is not None:  # failed before it could be sent
                    ex.end_ns = time.time_ns()
                    finished.append(ex)
                    continue
                try:
                    conn = ex._start()
                except OSError as exc:
                    ex._fail(exc)
                    ex.end_ns = time.time_ns()
                    finished.append(ex)
                    continue
                fd = conn.fileno()
                flying[fd] = ex
                poller.register(fd)
            if not flying and not finished:
                return
            if flying:
                ready = poller.poll(_SWEEP if not finished else 0.0)
                now = time.monotonic()
                for fd in ready:
                    ex = flying[fd]
                    try:
                        done = ex._step(on_head)
                        while not done and ex.target is not None and ex._conn.pending():  # type: ignore[union-attr]
                            done = ex._step(on_head)
                    except OSError as exc:
                        ex._fail(exc)
                        done = True
                    if done:
                        poller.unregister(fd)
                        del flying[fd]
                        ex.end_ns = time.time_ns()
                        finished.append(ex)
                    else:
                        ex._conn.before_wait()  # type: ignore[union-attr]
                        ex._deadline = now + ex.pool.read_timeout  # type: ignore[union-attr]
                if now >= sweep_at:
                    sweep_at = now + _SWEEP
                    finished += _expire(flying, poller, now)
            while finished:
                yield finished.popleft()
    finally:
        for ex in flying.values():
            ex._fail(ConnectionAbortedError("exchange abandoned"))
        for ex in finished:  # finished, never handed out: close the answers left open
            if ex.response is not None:
                ex.response.close()
        poller.close()


def _expire(flying: dict[int, Exchange], poller: _Poller, now: float) -> list[Exchange]:
    """Fail the exchanges whose server sent nothing for ``read_timeout`` seconds."""
    expired = [fd for fd, ex in flying.items() if now >= ex._deadline]
    out = []
    for fd in expired:
        ex = flying.pop(fd)
        poller.unregister(fd)
        ex._fail(TimeoutError("timed out waiting for the server"))
        ex.end_ns = time.time_ns()
        out.append(ex)
    return out


class _Poller:
    """Readiness of many sockets: ``epoll`` where there is one, else ``poll``."""

    def __init__(self) -> None:
        self._epoll = hasattr(select, "epoll")
        if self._epoll:
            self._poll: Any = select.epoll()
            self._mask = select.EPOLLIN
        else:  # pragma: no cover - not Linux
            self._poll = select.poll()
            self._mask = select.POLLIN

    def register(self, fd: int) -> None:
        self._poll.register(fd, self._mask)

    def unregister(self, fd: int) -> None:
        try:
            self._poll.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass  # closed already: epoll forgets closed descriptors by itself

    def poll(self, timeout: float) -> list[int]:
        """Descriptors ready to read, waiting up to ``timeout`` seconds for one."""
        if self._epoll:
            return [fd for fd, _ in self._poll.poll(timeout)]
        return [fd for fd, _ in self._poll.poll(timeout * 1000)]  # pragma: no cover

    def close(self) -> None:
        if self._epoll:
            self._poll.close()
