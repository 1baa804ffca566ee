"""The load generator's parts, without a server: the generator-bound rule, its CPU window, the publishers'
lines, the window's wake-up."""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
from multiprocessing import Pipe

from chat import protocol
from harness.bench.loadgen import CpuWindow, LoadSpec, is_generator_bound
from harness.bench.loadgen.run import SERVER
from harness.bench.loadgen.spec import GO, NOT_WAITING, Shared
from harness.bench.loadgen.wire import ChatWire
from harness.bench.loadgen.worker import _Member, _Worker
from harness.common.procstat import CpuUse
from harness.record.payload import decode_payload, due_text


def test_generator_bound_rule() -> None:
    def cpu(server: float | None, gen: float, gen_max: float, machine: float) -> CpuWindow:
        return CpuWindow(server=server, generator=gen, generator_max=gen_max, machine=machine, cores=2)

    assert is_generator_bound(cpu(100, 95, 95, 98))  # one worker pegged
    assert is_generator_bound(cpu(60, 120, 60, 99))  # machine full, generator took more than the server
    assert not is_generator_bound(cpu(110, 40, 20, 75))  # room to spare: the server is the limit
    assert not is_generator_bound(cpu(None, 40, 20, 99))


def test_cpu_window_sums_the_workers_and_keeps_the_server_apart() -> None:
    use = CpuUse(
        wall_s=2.0,
        percent={SERVER: 93.0, "loadgen-0": 48.0, "loadgen-1": 20.0, "loadgen-2": None},
        machine_percent=70.0,
        cores=2,
    )
    window = CpuWindow.from_use(use)
    assert window == CpuWindow(server=93.0, generator=68.0, generator_max=48.0, machine=70.0, cores=2)
    unseen = CpuWindow.from_use(use._replace(percent={"loadgen-0": 10.0}))
    assert unseen.server is None and unseen.generator == 10.0


def test_a_publishers_line_is_a_padded_payload_of_exactly_the_text_bytes() -> None:
    line = ChatWire("t0k3").template("p0", 64) % (41, due_text(1700000000.25))
    assert line.endswith(b"\n") and len(line) == 64 + 1
    payload = decode_payload(protocol.decode_line(line[:-1]))
    assert payload is not None and (payload.bot, payload.n, payload.due) == ("p0", 41, 1700000000.25)


def test_spec_names_are_unique_per_run_and_publishers_come_first() -> None:
    spec = LoadSpec("127.0.0.1", 1, members=4, publishers=2)
    names = spec.names()
    assert len(names) == 4 and names[:2] == [f"p0-{spec.token}", f"p1-{spec.token}"]
    assert ChatWire(spec.token).marker(own=True) == f" p0-{spec.token} bench-start\n".encode()
    assert [spec.bot_id(n) for n in names] == ["p0", "p1", "m2", "m3"]


def test_a_counting_worker_wakes_the_waiting_publisher_once_its_slowest_member_gets_there() -> None:
    shared = Shared.create(multiprocessing.get_context("spawn"), 2, phase=GO)
    spec = LoadSpec("127.0.0.1", 1, members=2, publishers=1)
    ours, theirs = socket.socketpair()
    reports = [Pipe(duplex=False) for _ in range(2)]  # what the workers would tell the parent: unused
    publisher = _Worker(0, spec, [], shared, reports[0][1])
    counter = _Worker(1, spec, [], shared, reports[1][1])
    try:
        member = _Member("m1", ours, parses=False, marker=b"")
        counter.members.append(member)

        def woken() -> bool:
            ready = select.select([shared.wake_r.fileno()], [], [], 0)[0]
            publisher.receive(0)  # drains the wake-ups, as in the publisher's wait
            return bool(ready)

        member.count = 3
        counter.publish_counts()  # the publisher is not waiting: no wake-up, whatever moved
        assert shared.mins[1] == 3 and not woken()
        shared.wake_at.value = 10
        member.count = 9
        counter.publish_counts()  # waiting, moved, but not far enough
        assert shared.mins[1] == 9 and shared.wake_at.value == 10 and not woken()
        member.count = 12
        counter.publish_counts()
        assert shared.mins[1] == 12 and shared.wake_at.value == NOT_WAITING and woken()
        assert not woken()  # drained: one wake-up per wait
        member.count = 13
        counter.publish_counts()  # nobody waits any more
        assert not woken()
        # Waiting for a count this worker had already passed: the publisher's own second look saw it,
        # and the worker's later moves do not wake it (the worker that crosses the count will).
        shared.wake_at.value = 11
        member.count = 20
        counter.publish_counts()
        assert shared.wake_at.value == 11 and not woken()
        shared.wake_at.value = NOT_WAITING
        # A pipe full of wake-ups does not block the counting worker.
        os.set_blocking(shared.wake_w.fileno(), False)
        while True:
            try:
                os.write(shared.wake_w.fileno(), b"x" * 4096)
            except BlockingIOError:
                break
        shared.wake_at.value = 21
        member.count = 21
        counter.publish_counts()
        assert shared.mins[1] == 21 and woken() and not woken()
    finally:
        publisher.poller.close()
        counter.poller.close()
        for sock in (ours, theirs):
            sock.close()
        shared.close()
        for conn in (end for pair in reports for end in pair):
            conn.close()
