"""The bug catalogue in-process: its names, its parts, how it plugs into the safe classes, and its tools.

The catalogue end to end (``--unsafe`` on the command line, every bug caught by a
short swarm, what the server imports) is in ``test_bugs_e2e.py``.
"""

from __future__ import annotations

import ast
import inspect
import threading
from pathlib import Path

import pytest

from chat import bugs
from chat.bugs import BUGS, LockWatchdog, UnknownBug, get_bug, race, rooms
from chat.config import ServerConfig
from chat.delivery import BatchedOutbox, Delivery, DirectOutbox
from chat.lockstat import InstrumentedLock
from chat.protocol import LeaveReason
from chat.room import Connection, Room
from chat.session import Session
from tests.chat.kit import FakeOutbox, Sockets, connect, lines

CHAT = Path(__file__).resolve().parents[2] / "chat"

#: The public methods of Room that a catalogue room may wrap around ``super()``,
#: as its docstring and docs/bugs.md say; every other change is a step override.
PUBLIC_OVERRIDES = {
    "iterate-while-mutating": {"join", "leave"},
    "double-leave": {"leave"},
    "join-before-register": {"join"},
    "lock-order-deadlock": {"leave", "locks"},
}


def test_get_bug() -> None:
    assert get_bug("no-lock").name == "no-lock"
    with pytest.raises(UnknownBug, match=r"^unknown --unsafe bug 'x'; valid: no-lock, "):
        get_bug("x")
    assert bugs.bug_names() == list(BUGS)
    assert len(BUGS) == 11


# -- how the catalogue plugs in -----------------------------------------------------------


def own_methods(cls: type) -> set[str]:
    """Names of the functions ``cls`` and its catalogue bases define (not Room's, not object's)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in (Room, object) or not klass.__module__.startswith("chat.bugs"):
            continue
        names |= {n for n, v in vars(klass).items() if inspect.isfunction(v) and n != "__init__"}
    return names


@pytest.mark.parametrize("name", list(BUGS))
def test_a_catalogue_room_overrides_no_public_method_except_where_documented(name: str) -> None:
    room_class = BUGS[name].room
    public = {n for n in own_methods(room_class) if not n.startswith("_")}
    assert public == PUBLIC_OVERRIDES.get(name, set())
    for method in public:
        assert method in vars(Room), f"{method} is not a method of Room"
        assert method in (room_class.__doc__ or ""), f"{room_class.__name__} does not say it wraps {method}"


@pytest.mark.parametrize("name", list(BUGS))
def test_every_private_method_of_a_catalogue_room_overrides_a_step_of_room(name: str) -> None:
    """A misspelt step would silently override nothing: the bug would vanish."""
    helpers = {"_register_locked"}  # join-before-register's own second section
    for method in own_methods(BUGS[name].room):
        if method.startswith("_") and method not in helpers:
            assert method in vars(Room), f"{method} is not a step of Room"


@pytest.mark.parametrize("name", list(BUGS))
def test_no_catalogue_room_combines(name: str) -> None:
    """A bug that lets the lock go mid-round would leave another reader waiting on a round that is
    not over, lock in hand (docs/bugs.md, "Adding a bug"); the safe room does combine."""
    assert not BUGS[name].room.combines
    assert Room.combines


@pytest.mark.parametrize("name", list(BUGS))
def test_a_catalogue_session_overrides_only_the_outbox_step(name: str) -> None:
    session = BUGS[name].session
    if session is None:
        return
    assert issubclass(session, Session)
    assert own_methods(session) - {"_writer_saw_drop"} == {"_make_outbox"}


def test_the_safe_server_never_imports_the_catalogue_and_the_catalogue_never_imports_the_server() -> None:
    """Statically, over every module of chat/: the plugin's one importer is the command line."""
    importers: dict[str, set[str]] = {}
    for path in CHAT.rglob("*.py"):
        module = ".".join(path.relative_to(CHAT.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for imported in names:
                importers.setdefault(imported, set()).add(module)
            if module.startswith("chat.bugs"):
                assert not any(n == "chat.server" or n.startswith("chat.server.") for n in names), module
            assert not any(n.split(".")[0] == "harness" for n in names), module
    of_bugs = {m for imported, ms in importers.items() if imported.startswith("chat.bugs") for m in ms}
    assert {m for m in of_bugs if not m.startswith("chat.bugs")} == {"chat.server.cli"}


def test_chat_server_main_defines_nothing_and_runs_the_command_line() -> None:
    """``python -m chat.server`` runs this file as ``__main__``: no second ChatServer can live there."""
    tree = ast.parse((CHAT / "server" / "__main__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [("chat.server.cli", ["main"])]


# -- the parts of a server with a bug ------------------------------------------------------


@pytest.mark.parametrize("name", list(BUGS))
def test_inject_builds_the_parts_the_command_line_needs(name: str) -> None:
    bug = BUGS[name]
    lock = InstrumentedLock("registry")
    parts = bug.inject(ServerConfig(max_clients=7, max_backlog=80), lock=lock)
    assert parts.bug is bug
    assert parts.race_window == bug.window
    assert isinstance(parts.room, bug.room)
    assert (parts.room.max_clients, parts.room.max_backlog) == (7, 80)
    assert parts.room.race_window == bug.window
    assert parts.watchdog.lock is parts.room.lock
    assert parts.room.lock is (lock if name != "no-lock" else parts.room.lock)
    assert f"UNSAFE SERVER: bug '{name}' injected on purpose." in parts.banner()
    if bug.session is None:
        assert parts.session_factory is Session


def test_inject_applies_the_race_window_and_the_config_change() -> None:
    parts = get_bug("send-under-lock").inject(ServerConfig(sndbuf=1 << 20), race_window=0.25)
    assert parts.config.delivery is Delivery.DIRECT and parts.config.sndbuf == 4096
    assert parts.race_window == 0.25 and parts.room.race_window == 0.25
    assert "race window 0.25 s" in parts.banner()


def test_a_session_factory_gives_the_bugs_outbox_with_the_window(sockets: Sockets) -> None:
    parts = get_bug("lost-wakeup").inject(ServerConfig(), race_window=0.125)
    ours, _ = sockets.pair()
    session = parts.session_factory(parts.room, ours, "p", parts.config)
    assert type(session.outbox).__name__ == "LostWakeupOutbox"
    assert session.conn.outbox is session.outbox
    assert session.outbox.window == 0.125  # type: ignore[attr-defined]
    torn = get_bug("torn-writes").inject(ServerConfig())
    session = torn.session_factory(torn.room, sockets.pair()[0], "q", torn.config)
    assert isinstance(session.outbox, DirectOutbox)  # no writer thread: the senders write
    doubled = get_bug("double-leave").inject(ServerConfig())
    session = doubled.session_factory(doubled.room, sockets.pair()[0], "r", doubled.config)
    assert isinstance(session.outbox, BatchedOutbox)


def test_the_deadlock_rooms_second_lock_is_among_its_locks() -> None:
    """The metrics and the docs show the ``stats`` lock because the room says it takes it."""
    room = get_bug("lock-order-deadlock").inject(ServerConfig(), lock=InstrumentedLock("registry")).room
    assert [lock.name for lock in room.locks()] == ["registry", "stats"]  # type: ignore[attr-defined]
    plain = get_bug("lock-order-deadlock").inject(ServerConfig()).room
    assert len(plain.locks()) == 2 and plain.locks()[0] is plain.lock


# -- a few bugs, deterministically -----------------------------------------------------------


def test_lost_leave_announces_a_quit_but_not_a_drop(sockets: Sockets) -> None:
    room = rooms.LostLeaveRoom(max_clients=5, max_backlog=100)
    alice, bob, carol = (connect(room, sockets, n) for n in ("alice", "bob", "carol"))
    assert room.leave(bob, LeaveReason.DISCONNECTED) is True
    assert room.leave(carol, LeaveReason.QUIT) is True
    assert [line for line in lines(alice) if line.startswith("LEAVE")] == ["LEAVE 4 carol quit"]
    assert "bob" not in room.members and bob.outbox.is_aborted


@pytest.mark.parametrize("name", ["name-check-race", "seq-outside-lock"])
def test_the_bugs_that_split_a_section_let_go_of_the_lock_in_the_window(
    name: str, sockets: Sockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = InstrumentedLock("registry")
    room = BUGS[name].room(max_clients=5, max_backlog=100, lock=lock, race_window=0.01)
    free_in_window: list[bool] = []

    def window(seconds: float) -> None:  # instead of the sleep: is the lock free right now?
        free_in_window.append(not lock.locked())

    monkeypatch.setattr(rooms, "pause", window)
    alice = connect(room, sockets, "alice")  # name-check-race: its window is in join
    assert room.say(alice, ["hi"]) == (1, None)  # seq-outside-lock: in say
    assert lines(alice) == ["OK alice", "JOIN 1 alice", "MSG 2 alice hi"]
    assert free_in_window == [True]
    assert not lock.locked()
    # Taken back under the site that held it: one section with a hole, no new site.
    assert {s.site for s in lock.statistics().sites} == {"admit", "join", "say"}


class LockWatchingOutbox(FakeOutbox):
    """Notes, at each put, whether the room's lock was held."""

    lock: threading.Lock | InstrumentedLock
    held: list[bool]

    def put(self, line: bytes) -> int:
        self.held.append(self.lock.locked())
        return super().put(line)


def test_torn_writes_writes_broadcasts_with_the_lock_let_go(sockets: Sockets) -> None:
    room = rooms.TornRoom(max_clients=5, max_backlog=100)
    outbox = LockWatchingOutbox(sockets.pair()[0], "alice")
    outbox.lock, outbox.held = room.lock, []
    alice = Connection(outbox, "alice")
    assert room.admit(alice) and room.join(alice, "alice") is None
    assert room.say(alice, ["hi", "there"]) == (2, None)
    assert lines(alice) == ["OK alice", "JOIN 1 alice", "MSG 2 alice hi", "MSG 3 alice there"]
    assert outbox.held == [True, False, False, False]  # OK is a reply; every broadcast went out unlocked
    assert not room.lock.locked()


def test_iterate_while_mutating_breaks_a_broadcast_that_a_join_lands_in(
    sockets: Sockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = rooms.IterateWhileMutatingRoom(max_clients=5, max_backlog=100, race_window=0.01)
    alice, _bob = connect(room, sockets, "alice"), connect(room, sockets, "bob")
    newcomer = Connection(FakeOutbox(sockets.pair()[0], "carol"), peer="carol")
    assert room.admit(newcomer)
    # The window opens after the first recipient: a joiner registers there, without the lock.
    monkeypatch.setattr(rooms, "pause", lambda seconds: room._claim_locked(newcomer, "carol"))
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        room.say(alice, ["hi"])


def test_no_lock_room_has_a_lock_that_excludes_nothing() -> None:
    room = rooms.NoLockRoom(max_clients=5, max_backlog=100, lock=InstrumentedLock("registry"))
    assert isinstance(room.lock, race.NoLock)
    with room.lock, room.lock:  # both "acquire" at once
        assert not room.lock.locked()


def test_released_lets_go_and_takes_back_a_plain_lock() -> None:
    lock = threading.Lock()
    with lock:
        with race.released(lock):
            assert not lock.locked()
        assert lock.locked()
    assert not lock.locked()


# -- the watchdog ------------------------------------------------------------------------


def test_watchdog_dumps_stacks_when_the_lock_is_stuck(capfd: pytest.CaptureFixture[str]) -> None:
    lock = InstrumentedLock("registry")
    dog = LockWatchdog(lock, limit=0.2)
    held = threading.Event()
    let_go = threading.Event()

    def leave() -> None:
        with lock:
            held.set()
            assert let_go.wait(10.0)

    holder = threading.Thread(target=leave)
    holder.start()
    assert held.wait(10.0)
    dog.start()
    try:
        assert dog.stalled.wait(10.0)
        assert dog.stalls == 1
    finally:
        let_go.set()
        holder.join(10.0)
        dog.stop()
    err = capfd.readouterr().err
    assert "most recent call first" in err  # faulthandler's dump
    assert "in leave" in err


def test_a_watchdog_never_started_stops_at_once() -> None:
    LockWatchdog(threading.Lock()).stop()


def test_name_check_race_banner_names_the_name_race_scenario() -> None:
    from chat.bugs.catalogue import get_bug

    assert get_bug("name-check-race").scenario == "name-race"
