"""The load generator's pure parts: the generator-bound rule, its CPU window, the publishers' lines."""

from __future__ import annotations

from chat import protocol
from harness.bench.loadgen import CpuWindow, LoadSpec, is_generator_bound
from harness.bench.loadgen.run import SERVER
from harness.bench.loadgen.wire import ChatWire
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
