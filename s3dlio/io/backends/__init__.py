"""One module per storage service; each implements :class:`s3dlio.io.store.ObjectStore`."""
