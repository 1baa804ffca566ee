"""The chat server: :class:`ChatServer` (chat/server/core.py) and its command line (chat/server/cli.py)."""

from chat.server.core import ChatServer

__all__ = ["ChatServer"]
