"""The benchmarks: ``python -m harness.bench`` and its parts, one module per concern.

The table of modules is in :mod:`harness.bench.cli`.
"""
