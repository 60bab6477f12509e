"""``python -m s3dlio.cli``: the same as the ``s3-cli`` console script."""

from __future__ import annotations

from .app import main

raise SystemExit(main())
