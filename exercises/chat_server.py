"""A threaded chat server: the starter of the exercises (exercises/README.md).

One thread per client, and one lock around everything the threads share, as
in the original design. As it is, it passes the grader's first level,
``handshake``: ``python -m harness.grade exercises/chat_server.py``. Each TODO
below belongs to a later level; the protocol is docs/protocol.md.

Run it by hand: ``python exercises/chat_server.py --port 9999``, then
``python -m chat.client`` (or ``nc localhost 9999``) in other terminals.
"""

from __future__ import annotations

import argparse
import re
import socket
import threading

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,20}")


class ChatServer:
    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        # Everything below is shared by the client threads: touch it only with the lock held.
        self.lock = threading.Lock()
        self.members: dict[str, socket.socket] = {}  # lower-cased name -> that member's socket
        self.seq = 0  # the number of the last broadcast (JOIN, MSG, LEAVE)

    def serve(self, host: str, port: int) -> None:
        with socket.create_server((host, port)) as listener:
            print(f"listening on {host}:{port}", flush=True)
            while True:
                conn, _ = listener.accept()
                # TODO (limits): count open connections; past --max-clients, send
                # "ERR full <text>" instead of HELLO and close the connection.
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        """One client, from its connect to its close (runs in its own thread)."""
        name = None
        with conn, conn.makefile("rb") as lines:
            send(conn, "HELLO welcome; send your username")
            for raw in lines:
                # TODO (limits): a line longer than 4096 bytes gets "ERR line-too-long <text>",
                # and one that is not UTF-8 "ERR bad-encoding <text>"; the connection stays usable.
                line = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
                if name is None:
                    name = self.handshake(conn, line)
                    continue
                # TODO (broadcast): a chat line becomes "MSG <seq> <name> <text>" to every member,
                # the sender included; "/who" gets "USERS <names>"; "/quit" or "exit" gets
                # "BYE <text>", closes the connection, and "LEAVE <seq> <name> quit" to the others.
                # TODO (ordering): take the seq and send to every member in ONE critical section.
                # TODO (slow-consumer): a member that stops reading must not block the others.
        # TODO (broadcast): the connection is gone: if it was a member, remove it and send
        # "LEAVE <seq> <name> disconnected" to the others.
        # TODO (shutdown): on SIGTERM, "BYE server shutting down" to every connection, then exit 0.

    def handshake(self, conn: socket.socket, line: str) -> str | None:
        """One name attempt; returns the name once it is accepted."""
        if not NAME_RE.fullmatch(line):
            send(conn, "ERR invalid-name a name is 1-20 letters, digits, _ or -")
            return None
        with self.lock:  # the check and the registration: one critical section (name-race)
            if line.lower() in self.members:
                taken = True
            else:
                taken = False
                self.members[line.lower()] = conn
        if taken:
            send(conn, f"ERR name-taken the name {line} is taken, choose another")
            return None
        send(conn, f"OK {line}")
        # TODO (broadcast): announce "JOIN <seq> <name>" to every member, the newcomer included.
        return line


def send(conn: socket.socket, line: str) -> None:
    conn.sendall(line.encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="A threaded chat server (the exercises' starter).")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--max-clients", type=int, default=5)
    args = parser.parse_args()
    try:
        ChatServer(args.max_clients).serve(args.host, args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
