"""Cancellation tokens shared by loaders.

A :class:`CancellationToken` is a one-way switch. Loaders created with the same token stop
together: :meth:`CancellationToken.cancel` stops new requests, abandons the ones in flight
(their results are dropped and their retries stop), and every iterator that is waiting or asks
for the next item gets :class:`~s3dlio.errors.CancelledError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..errors import CancelledError

__all__ = ["CancellationToken"]


class CancellationToken:
    """A thread-safe flag that, once set, stays set, and tells its listeners at once.

    Example::

        token = s3dlio.CancellationToken()
        loader = s3dlio.create_async_loader(uri, opts, cancellation_token=token)
        ...
        token.cancel()      # from any thread; every loader sharing the token stops

    A token does not cross processes: pickling it (a DataLoader worker started with
    ``spawn``) gives a token in the same state that is independent from then on.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], Any]] = {}
        self._next_id = 0
        self._reason = ""

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called."""
        return self._event.is_set()

    def is_cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called (the original's spelling)."""
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """The reason given to :meth:`cancel` (empty if none)."""
        return self._reason

    def cancel(self, reason: str = "") -> None:
        """Cancel every loader sharing this token (idempotent, callable from any thread).

        Args:
            reason: Words to put in the ``CancelledError`` the loaders raise.
        """
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds pass; return whether cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self, what: str = "operation") -> None:
        """Raise :class:`~s3dlio.errors.CancelledError` if the token is cancelled."""
        if self._event.is_set():
            raise CancelledError(self._message(what), op="CANCEL")

    def _message(self, what: str) -> str:
        return f"{what} cancelled" + (f": {self._reason}" if self._reason else "")

    def on_cancel(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` when the token is cancelled (at once if it already is).

        Returns:
            A function that unregisters the callback (safe to call more than once).
        """
        with self._lock:
            if not self._event.is_set():
                handle = self._next_id
                self._next_id += 1
                self._callbacks[handle] = callback

                def remove() -> None:
                    with self._lock:
                        self._callbacks.pop(handle, None)

                return remove
        callback()
        return lambda: None

    def __getstate__(self) -> dict[str, Any]:
        return {"cancelled": self._event.is_set(), "reason": self._reason}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._reason = state.get("reason", "")
        if state.get("cancelled"):
            self._event.set()

    def __repr__(self) -> str:
        return f"CancellationToken(cancelled={self.cancelled})"
