"""``slowfile://``: the real file backend behind a service with latency and limited capacity.

Every read request waits ``latency`` seconds inside one of ``capacity`` service slots (a
semaphore: like a server that works on at most that many requests at once and queues the
rest), then really reads the file. Throughput therefore grows with concurrency up to
``capacity`` and no further, which is what the adaptive tuner has to discover.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from s3dlio.io.backends.file import FileStore
from s3dlio.io.store import ReadStream
from s3dlio.io.uri import ObjectURI


class SlowFileStore(FileStore):
    """The file backend with per-request latency and a bounded number of service slots."""

    scheme = "slowfile"
    local = True

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.latency = 0.0
        self._capacity: threading.BoundedSemaphore | None = None
        self._lock = threading.Lock()
        self.requests = 0
        self.active = 0
        self.peak_active = 0
        self.first_request = threading.Event()

    def configure(self, *, latency: float, capacity: int | None) -> None:
        """Set the per-request latency (seconds) and the service slots (``None``: unlimited)."""
        self.latency = latency
        self._capacity = None if capacity is None else threading.BoundedSemaphore(capacity)
        self.requests = self.peak_active = 0
        self.first_request = threading.Event()

    def local_path(self, uri: ObjectURI) -> str | None:
        """None: a slow *service*; every read must go through :meth:`open_read`."""
        return None

    def open_read(
        self,
        uri: ObjectURI,
        offset: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
    ) -> ReadStream:
        with self._lock:
            self.requests += 1
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
        self.first_request.set()
        try:
            if self._capacity is not None:
                with self._capacity:
                    self._serve()
            else:
                self._serve()
            return super().open_read(uri, offset, length, if_match=if_match)
        finally:
            with self._lock:
                self.active -= 1

    def _serve(self) -> None:
        if self.latency:
            time.sleep(self.latency)  # the service's latency (not synchronisation)
