"""Benchmarks of s3dlio against the original s3dlio and the peers (``python -m benchmarks``).

Not part of the test suite: ``make bench`` sets up ``benchmarks/.venv-peers`` and the servers
(``benchmarks/setup.sh``) and runs every suite; see ``benchmarks/harness.py`` for the method.
"""
