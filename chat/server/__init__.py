"""The chat server: the acceptor (:mod:`chat.server.acceptor`) and its command line (:mod:`chat.server.cli`).

``python -m chat.server`` runs :func:`chat.server.cli.main`; the package itself
imports only the acceptor, so that the command line (and anything it loads on
demand) is imported once, under its own name.
"""

from chat.server.acceptor import ChatServer

__all__ = ["ChatServer"]
