"""The reference solution, as the grader starts a student's file: our own server, ``chat.server``.

``python -m harness.grade exercises/reference_server.py`` grades it; it passes
every level. Any arguments go to ``python -m chat.server`` (``--unsafe BUG``
turns it into one of the wrong answers of docs/bugs.md).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chat.server.cli import main  # noqa: E402  (after the path: the file runs from anywhere)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
