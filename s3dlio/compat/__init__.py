"""Other libraries' names over s3dlio, so that code written for them runs unchanged.

Each submodule is imported on its own (this package imports nothing):

* :mod:`s3dlio.compat.s3torchconnector`: the classes of AWS's ``s3torchconnector``
  (datasets, ``S3Checkpoint``, ``S3Client``, and ``.dcp``'s ``S3StorageWriter`` /
  ``S3StorageReader``), on every URI scheme s3dlio serves.
"""
