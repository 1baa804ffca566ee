"""Make ``import chat`` mean the project's package inside a locust run; no other effect.

locust imports a locustfile under its file's stem and puts the file's folder
first on ``sys.path``. While ``locustfiles/chat.py`` runs, ``sys.modules["chat"]``
is that file, and ``import chat`` would find it again instead of the
project's ``chat/`` package (which :mod:`harness` imports too). Importing this
module first imports the real package with the locustfiles folder out of the
way; locust keeps its own reference to the locustfile module, so nothing is
lost. Every module here imports it before anything from ``chat`` or ``harness``.
"""

from __future__ import annotations

import importlib
import os
import sys


def import_chat_package() -> None:
    """Import the project's ``chat`` package (and ``chat.protocol``) unless it is already in place."""
    current = sys.modules.get("chat")
    if current is not None and hasattr(current, "__path__"):
        return  # already the package
    here = os.path.dirname(os.path.abspath(__file__))
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, os.path.dirname(here))  # the repository root, for a checkout
    sys.modules.pop("chat", None)
    try:
        importlib.import_module("chat.protocol")
        importlib.import_module("harness")  # from the same place: a checkout or an installed wheel
    finally:
        sys.path[:] = saved_path


import_chat_package()
