"""The checker: pure judgement of recorded histories (see docs/checker.md)."""

from harness.checker.core import *  # noqa: F403
