"""``python -m s3dlio.integrations.dlio <DLIO's hydra arguments>``: DLIO on s3dlio."""

from .install import main

if __name__ == "__main__":
    main()
