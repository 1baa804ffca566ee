"""The teaching notebooks' kit: servers, swarms and run records as pandas tables (see docs/notebooks.md)."""

from harness.lab.core import *  # noqa: F403
