"""How the report writes numbers and labels: every figure, load and shape a reader sees is
written here, once."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.columns import SHAPE_KEYS

MISSING = "–"  # a figure not measured


def num(value: float | None, unit: str = "") -> str:
    """Three significant figures at most, never in exponent form: what a reader compares."""
    if value is None:
        return MISSING
    size = abs(value)
    text = (
        f"{value:,.0f}"
        if size >= 100
        else f"{value:.1f}"
        if size >= 10
        else f"{value:.2f}"
        if size >= 0.1 or size == 0
        else f"{value:.2g}"
    )
    return f"{text}{unit}"


def spread(mean: float | None, sd: float | None) -> str:
    """'565.3 ± 3.5': the spread to the mean's decimals (more would claim a precision the mean
    does not show)."""
    text = num(mean)
    if mean is None or sd is None:
        return text
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{text} ± {sd:,.{decimals}f}"


def pair(a: float | None, b: float | None) -> str:
    """'12.3 / 45.6': two figures read together (p50 / p99)."""
    return f"{num(a)} / {num(b)}"


def fixed(value: float | None, pattern: str = "{:.1f}", missing: str = MISSING) -> str:
    """`value` in a fixed `pattern`, for tables whose columns line up by decimals."""
    return missing if value is None else pattern.format(value)


def rate(value: float | str | None) -> str:
    """A link rate as hosts store it (a number, or text from an older export)."""
    if value is None or value == "":
        return MISSING
    return num(float(value))


def rough(value: float) -> str:
    """'150', '4.2': a level on an axis a sentence names (tokens/s per user)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def limit(ms: float) -> str:
    """A grid limit as an axis label: whole milliseconds from 100 up, never in exponent form."""
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def load_label(concurrency: int | None, request_rate: float | None, unit: str = "/s") -> str:
    """A point's load: 'c=8' (requests in flight), or '4/s' (an open loop's rate)."""
    return f"c={concurrency}" if concurrency is not None else f"{request_rate:g}{unit}"


def limits(ttft_ms: float | None, tpot_ms: float | None, attainment: float) -> str:
    """A tier's limits as a reader sees them: 'TTFT ≤ 300 ms, TPOT ≤ 20 ms at 90%'."""
    named = (("TTFT", ttft_ms), ("TPOT", tpot_ms))
    given = [f"{name} ≤ {ms:g} ms" for name, ms in named if ms is not None]
    return f"{', '.join(given)} at {attainment:.0%}"


def length_order(length: str) -> int:
    """Where a length sorts: its tokens; a range ('256:1024') by its lower end."""
    return int(length.split(":")[0])


def shape_order(input_len: str, output_len: str) -> tuple[int, int]:
    """Shapes sorted by their lengths, the shortest prompt first ('512' before '2048')."""
    return length_order(input_len), length_order(output_len)


def by_shape() -> list[pl.Expr]:
    """Sort keys that put a frame's rows in `shape_order`."""
    return [pl.col(c).map_elements(length_order, return_dtype=pl.Int64) for c in SHAPE_KEYS]


def shapes(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """The (input_len, output_len) pairs of a frame, in `shape_order`."""
    return sorted(frame.select(SHAPE_KEYS).unique().rows(), key=lambda s: shape_order(*s))
