"""An open-loop rate sweep stops at saturation: the bookkeeping."""

from __future__ import annotations

from pdpipeline.loadgen.matrix import Point
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.sweep import RateSweep
from pdpipeline.profile import Lengths


def point(rate: float, output_len: int = 16, repeat: int = 0) -> Point:
    return Point(Lengths(64, 64), Lengths(output_len, output_len), Load(request_rate=rate), repeat)


class Saw:
    """The one field of a run row the sweep reads."""

    def __init__(self, saturated: bool | None) -> None:
        self.saturated = saturated


def test_a_saturated_rate_skips_the_higher_rates_of_its_shape_only():
    said: list[str] = []
    sweep = RateSweep(said.append)
    planned = [
        point(1),
        point(4),
        point(4, repeat=1),
        point(16),
        point(2),  # lower than the saturated rate: still measured
        point(16, output_len=32),  # another shape: its own sweep
    ]
    measured = []
    for p in sweep.points(planned):
        measured.append(p.key)
        sweep.saw(p, Saw(p.load.request_rate == 4 and p.output_len.lo == 16))
    assert measured == [
        "in64-out16-r1-rep0",
        "in64-out16-r4-rep0",
        "in64-out16-r4-rep1",
        "in64-out16-r2-rep0",
        "in64-out32-r16-rep0",
    ]
    assert said == [
        "in64-out16-r4-rep0: saturated (completions fell behind arrivals); "
        "in64-out16 is not measured above 4 req/s",
        "in64-out16-r16-rep0: skipped, in64-out16 saturated at 4 req/s",
    ]
