"""s3dlio as the storage of other programs, without editing them.

* :mod:`s3dlio.integrations.dlio`: the DLIO benchmark (and MLPerf Storage, which runs it) on
  s3dlio: ``python -m s3dlio.integrations.dlio <DLIO's hydra arguments>`` or ``s3dlio-dlio``.

Each submodule is imported on its own; this package imports nothing.
"""
