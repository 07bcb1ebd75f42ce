"""The regime map: which setup serves most per GPU at any SLO, recomputed from stored requests.

For each workload shape, a grid of TTFT and TPOT limits at one attainment: in each cell every
setup's goodput per GPU (its best load that meets the cell), the winner over every layout and
engine variant, and the challenger (the best setup that is not replicated) against the baseline
(the best replicated setup on as many devices as the challenger), with a paired bootstrap
interval on the difference. Requests are resampled within runs; every setup's run at
the same point and repeat gets the same draw of request indices, since the campaign sends each
of them the same seeded requests. That pairing takes the requests' own variation out of the
difference. The repeats of a point are resampled first, with one draw for every setup, so the
interval carries the run-to-run spread as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from pdpipeline.profile.slo import meets_limits
from pdpipeline.report.columns import POINT_KEYS, SERIES_KEYS, SHAPE_KEYS, with_current_columns
from pdpipeline.report.series import Series, contenders, rival_devices
from pdpipeline.report.slo import counted, valid_runs
from pdpipeline.warehouse.rows import RegimeMapRow, columns, polars_schema

# Grid limits are powers of 2 ** (1 / LATTICE) ms.
LATTICE = 4
# Requests of a run: its index (shared by every setup at a point) and what the cells need.
REQUEST_COLUMNS = ["run_id", "request_index", "ok", "ttft_s", "tpot_s"]

# A cell's own columns: the table's, less the campaign and shape set around them.
_CELL_COLUMNS = [c for c in columns(RegimeMapRow) if c not in ("campaign_id", *SHAPE_KEYS)]


def limit_grid(values_ms: Sequence[float], cells: int = 8) -> list[float]:
    """`cells` log-spaced limits (ms) over the values' 5th to 95th percentile, around their
    median: from one that few requests meet to one that most do.

    The limits are points of one fixed lattice (quarter powers of two, spaced by a whole number
    of its steps), so campaigns of one profile with similar latencies share their cells and the
    nightly check can see a cell change hands."""
    values = np.asarray([v for v in values_ms if v is not None and v > 0], dtype=float)
    if not values.size:
        return [2.0 ** (k / LATTICE) for k in range(cells)]
    low, high = (math.log2(v) * LATTICE for v in np.percentile(values, [5, 95]))
    # Two cells spare: the first is rounded down onto the stride, the last must still reach.
    stride = max(1, math.ceil((high - low) / max(cells - 2, 1)))
    first = math.floor(low / stride) * stride
    return [2.0 ** ((first + i * stride) / LATTICE) for i in range(cells)]


@dataclass(frozen=True)
class _Run:
    series: Series
    repeat: int
    index: np.ndarray  # request_index of each counted request
    ttft_ms: np.ndarray  # NaN: failed
    tpot_ms: np.ndarray  # NaN: none (one token) or failed
    ok: np.ndarray
    per_gpu_second: float  # 1 / (window_s * gpus)


def regime_map(
    runs: pl.DataFrame,
    requests: pl.DataFrame,
    attainment: float = 0.9,
    ttft_ms: Sequence[float] | None = None,
    tpot_ms: Sequence[float] | None = None,
    cells: int = 8,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """The `regime_map` table's rows: one per shape and cell of the TTFT x TPOT grid.

    Without `ttft_ms` / `tpot_ms`, each shape's grid is `limit_grid` of its requests' values.
    `requests` has `REQUEST_COLUMNS` (and `in_window` where the campaign has a steady
    window)."""
    runs = valid_runs(with_current_columns(runs))
    of_run = runs.select("run_id", *SERIES_KEYS, *POINT_KEYS, "repeat", "gpus", "window_s")
    # The run says which series and point a request is of (older requests lack some parts).
    requests = (
        counted(requests)
        .drop([c for c in of_run.columns if c != "run_id"], strict=False)
        .join(of_run, on="run_id")
    )
    rng = np.random.default_rng(seed)
    frames = []
    for (n_in, n_out), shape in requests.group_by(SHAPE_KEYS, maintain_order=True):
        ok = shape.filter(pl.col("ok"))
        ttft_grid = list(ttft_ms or limit_grid((ok["ttft_s"] * 1000).to_list(), cells))
        tpot_grid = list(tpot_ms or limit_grid((ok["tpot_s"] * 1000).drop_nulls().to_list(), cells))
        frame = _shape_map(shape, ttft_grid, tpot_grid, attainment, resamples, confidence, rng)
        frames.append(frame.with_columns(input_len=pl.lit(n_in), output_len=pl.lit(n_out)))
    schema = polars_schema(RegimeMapRow)
    if not frames:
        return pl.DataFrame(schema=schema)
    campaign = runs["campaign_id"][0]
    return (
        pl.concat(frames)
        .with_columns(campaign_id=pl.lit(campaign))
        .select(columns(RegimeMapRow))
        .cast(schema)
    )


def _shape_map(
    shape: pl.DataFrame,
    ttft_grid: list[float],
    tpot_grid: list[float],
    attainment: float,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """One shape's cells, from its requests joined to their runs."""
    shape = contenders(shape)
    devices = {Series(*r[:-1]): r[-1] for r in shape.select(*SERIES_KEYS, "gpus").unique().rows()}
    ttft_cell, tpot_cell = (a.ravel() for a in np.meshgrid(ttft_grid, tpot_grid, indexing="ij"))
    # Per setup, (1 + resamples, cells): goodput per GPU at its best load meeting the cell;
    # row 0 is the campaign as measured.
    best: dict[Series, np.ndarray] = {}
    for _, point in shape.group_by(POINT_KEYS, maintain_order=True):
        for series, goodput in _point_goodput(
            point, ttft_cell, tpot_cell, attainment, resamples, rng
        ).items():
            best[series] = np.maximum(best[series], goodput) if series in best else goodput
    return _cells(best, devices, ttft_cell, tpot_cell, attainment, confidence)


def _point_goodput(
    point: pl.DataFrame,
    ttft_cell: np.ndarray,
    tpot_cell: np.ndarray,
    attainment: float,
    resamples: int,
    rng: np.random.Generator,
) -> dict[Series, np.ndarray]:
    """Each setup's goodput per GPU at one load, per cell, 0 where the load misses the cell:
    as measured (row 0), then resampled, its repeats first and each repeat's requests next.

    Every setup gets the same draws: the pairing."""
    repeats = sorted(point["repeat"].unique().to_list())
    size = int(point["request_index"].max()) + 1

    def draws(n: int) -> np.ndarray:
        return np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1 / n), size=resamples)])

    repeat_weights = draws(len(repeats))  # (1 + resamples, repeats)
    request_weights = {r: draws(size) for r in repeats}  # each (1 + resamples, size)
    sums: dict[Series, list[np.ndarray]] = {}
    for run in _runs(point):
        w = request_weights[run.repeat][:, run.index]
        met = w @ _meets(run, ttft_cell, tpot_cell)  # (1 + resamples, cells)
        k = repeat_weights[:, [repeats.index(run.repeat)]]
        counted = w.sum(axis=1, keepdims=True)
        parts = (k * met, k * counted, k * met * run.per_gpu_second, k)
        total = sums.setdefault(run.series, [np.zeros(1)] * 4)
        sums[run.series] = [t + p for t, p in zip(total, parts, strict=True)]
    out = {}
    for series, (met, counted, goodput, k) in sums.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            # Drawn repeats a setup lacks (an invalid run) leave it fewer, or none: not met.
            share, mean = met / counted, goodput / k
        out[series] = np.where(share >= attainment, np.nan_to_num(mean), 0.0)
    return out


def _runs(point: pl.DataFrame) -> list[_Run]:
    out = []
    for _, rows in point.group_by("run_id", maintain_order=True):
        first = rows.row(0, named=True)
        ttft = rows["ttft_s"].fill_null(float("nan")).to_numpy() * 1000
        tpot = rows["tpot_s"].fill_null(float("nan")).to_numpy() * 1000
        out.append(
            _Run(
                series=Series.of(first),
                repeat=first["repeat"],
                index=rows["request_index"].to_numpy(),
                ttft_ms=ttft,
                tpot_ms=tpot,
                ok=rows["ok"].fill_null(False).to_numpy(),
                per_gpu_second=1.0 / (first["window_s"] * first["gpus"]),
            )
        )
    return out


def _meets(run: _Run, ttft_cell: np.ndarray, tpot_cell: np.ndarray) -> np.ndarray:
    """(requests, cells): whether each request meets each cell's limits (the tiers' one rule)."""
    requests = run.ok[:, None], run.ttft_ms[:, None], run.tpot_ms[:, None]
    return meets_limits(*requests, ttft_cell[None, :], tpot_cell[None, :]).astype(float)


def _cells(
    best: dict[Series, np.ndarray],
    devices: dict[Series, int],
    ttft_cell: np.ndarray,
    tpot_cell: np.ndarray,
    attainment: float,
    confidence: float,
) -> pl.DataFrame:
    """Winner, challenger and the interval on its difference from the baseline, per cell."""
    # Replicated first, so it keeps a cell it shares at equal goodput.
    order = sorted(best, key=lambda s: (s.arm != "replicated", s.order))
    measured = np.vstack([best[s][0] for s in order])  # (series, cells)
    top = measured.argmax(axis=0)
    replicated = [s for s in order if s.arm == "replicated"]
    others = [s for s in order if s.arm != "replicated"]
    tail = (1 - confidence) / 2 * 100
    rows = []
    for cell in range(len(ttft_cell)):
        winner = order[top[cell]] if measured[top[cell], cell] > 0 else None
        challenger = max(others, key=lambda s: best[s][0, cell]) if others else None
        baseline = _baseline(best, devices, replicated, challenger, cell)
        row = dict.fromkeys(_CELL_COLUMNS) | {
            "ttft_ms": float(ttft_cell[cell]),
            "tpot_ms": float(tpot_cell[cell]),
            "attainment": attainment,
            **_named("winner", winner),
            "winner_goodput_per_gpu": float(measured[top[cell], cell]) if winner else None,
            "baseline_goodput_per_gpu": None if baseline is None else float(baseline[0, cell]),
        }
        if baseline is not None and challenger is not None:
            difference = best[challenger][:, cell] - baseline[:, cell]
            low, high = np.percentile(difference[1:], [tail, 100 - tail])
            row |= {
                **_named("challenger", challenger),
                "challenger_goodput_per_gpu": float(best[challenger][0, cell]),
                "difference": float(difference[0]),
                "difference_low": float(low),
                "difference_high": float(high),
                # No setup meeting the cell is no contest, not a tie.
                "tie": bool(low <= 0 <= high) if winner else None,
            }
        rows.append(row)
    schema = polars_schema(RegimeMapRow)
    return pl.DataFrame(rows, schema={c: schema[c] for c in _CELL_COLUMNS})


def _baseline(
    best: dict[Series, np.ndarray],
    devices: dict[Series, int],
    replicated: list[Series],
    challenger: Series | None,
    cell: int,
) -> np.ndarray | None:
    """The goodput of the replicated setup serving most in the cell on as many devices as the
    challenger (without one, of any replicated setup); None where there is none."""
    if challenger is not None:
        on = rival_devices(challenger.arm, devices[challenger], (devices[s] for s in replicated))
        replicated = [s for s in replicated if devices[s] == on]
    if not replicated:
        return None
    return best[max(replicated, key=lambda s: best[s][0, cell])]


def _named(role: str, series: Series | None) -> dict[str, str | None]:
    """A cell's columns naming the winner or the challenger."""
    return {f"{role}_{key}": series and getattr(series, key) for key in SERIES_KEYS}


def winner_label(row: dict) -> str | None:
    """A cell's winner as tables and figures name it; None where no setup meets the cell."""
    return Series.of(row, "winner_").label if row["winner_arm"] else None
