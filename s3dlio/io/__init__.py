"""The storage layer: URIs, backends, the RangeEngine, writers, retries and the op-log."""
