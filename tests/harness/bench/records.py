"""Hand-made run records, as the bench's cases store them, for the pure tests."""

from __future__ import annotations

from typing import Any


def saturation_run(design: str, members: int, rep: int, rate: float, **kw: Any) -> dict[str, Any]:
    r = {
        "case": "saturation",
        "design": design,
        "members": members,
        "rep": rep,
        "deliveries_per_s": rate,
        "server_cpu": 100.0,
        "generator_cpu": 40.0,
        "machine_cpu": 80.0,
        "generator_bound": False,
        "clean": True,
        "lost": 0,
        "extra": 0,
        "drops": 0,
        "order_violations": 0,
        "error": None,
    }
    r.update(kw)
    return r


def a_generator_bound_peer_at_10() -> list[dict[str, Any]]:
    """Saturation at 10 members: batched 10x direct, 0.8x redis, and an ngircd run the generator bounded."""
    return [
        saturation_run("direct", 10, 0, 2.0e5),
        saturation_run("batched", 10, 0, 2.0e6),
        saturation_run("ngircd", 10, 0, 1.0e6, generator_bound=True),
        saturation_run("redis", 10, 0, 2.5e6),
    ]
