"""The recommendation: per SLO tier and workload shape, the setup to deploy and what it buys
over replicas, read off the tier verdicts, with the runs that are its evidence.

The best disaggregated setup (any layout, engine variant and handoff) is set against the best
replicated setup on as many devices (at its own best engine variant); a ratio whose interval
holds 1 is a tie, and a tie, a loss or a tier no disaggregated setup meets says plainly that
nothing beats replicas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl

from pdpipeline.report.formats import limits
from pdpipeline.report.series import Series
from pdpipeline.report.verdict import Ratio, ShapeVerdict, TierVerdict, tier_verdicts
from pdpipeline.warehouse.rows import RecommendationRow, columns, polars_schema


def recommendations(
    goodput: pl.DataFrame,
    campaign_id: str,
    pooled: Sequence[str] = (),
    caveat: str | None = None,
) -> pl.DataFrame:
    """The `recommendations` rows of a campaign from its `slo_goodput` frame; `pooled` names
    every campaign whose runs the frame holds (a search's rounds), default this one. `caveat`
    (report/transport.spin_caveat) marks every row that sets a disaggregated setup against
    replicas: what dominates those comparisons instead of the architecture."""
    rows = [
        _row(tier, shape, goodput, campaign_id, list(pooled) or [campaign_id], caveat)
        for tier in tier_verdicts(goodput)
        for shape in tier.shapes
    ]
    schema = polars_schema(RecommendationRow)
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(
        [{c: getattr(r, c) for c in columns(RecommendationRow)} for r in rows],
        schema=schema,
        orient="row",
    )


def _best_disaggregated(shape: ShapeVerdict) -> tuple[Ratio, str] | None:
    """The disaggregated setup with the highest ratio to its same-device replicas, and those."""
    found = [
        (ratio, rivalry.baseline)
        for rivalry in shape.rivalries
        for ratio in rivalry.ratios
        if ratio.series.startswith("disaggregated")
    ]
    return max(found, key=lambda pair: pair[0].ratio) if found else None


def _row(
    tier: TierVerdict,
    shape: ShapeVerdict,
    goodput: pl.DataFrame,
    campaign_id: str,
    pooled: list[str],
    caveat: str | None,
) -> RecommendationRow:
    where = (
        f"for {shape.input_len}/{shape.output_len} at "
        f"{limits(tier.ttft_ms, tier.tpot_ms, tier.attainment)}"
    )
    best = _best_disaggregated(shape)
    alone = None if best else _unrivalled(goodput, tier.tier, shape)
    verdict, setup, rival, ratio = "none", None, None, None
    if shape.winner is None:
        sentence = f"{where}: no setup meets it at any load measured."
    elif alone is not None:
        verdict, setup = "disaggregated", alone
        sentence = (
            f"{where}: {alone} — it meets the tier and no replicated setup does at any load "
            "measured (no ratio: the replicas' goodput within the tier is 0)."
        )
    elif best is None or best[0].ratio == 0:
        verdict, setup = "replicated", shape.winner
        sentence = f"{where}: {shape.winner}; no disaggregated setup meets it at any load."
    else:
        ratio, rival = best
        setup = ratio.series
        gain = ratio.ratio - 1
        spread = (
            "one repeat: run-to-run spread unknown"
            if ratio.low is None
            else f"{ratio.low:.2f}x to {ratio.high:.2f}x at 95%"
        )
        if ratio.significant is False:
            verdict = "tie"
            sentence = (
                f"{where}: a tie — {setup} serves {ratio.ratio:.2f}x the requests per GPU of "
                f"{rival} ({spread}); nothing beats replicas by more than the spread."
            )
        elif gain > 0:
            verdict = "disaggregated"
            sentence = (
                f"{where}: {setup} — {gain:.0%} more requests per second per GPU within the "
                f"tier than {rival} ({spread})."
            )
        else:
            verdict = "replicated"
            sentence = (
                f"{where}: nothing beats replicas — {rival} serves most; the best "
                f"disaggregated setup, {setup}, serves {ratio.ratio:.2f}x of it ({spread})."
            )
    return RecommendationRow(
        campaign_id=campaign_id,
        tier=tier.tier,
        ttft_ms=tier.ttft_ms,
        tpot_ms=tier.tpot_ms,
        attainment=tier.attainment,
        input_len=shape.input_len,
        output_len=shape.output_len,
        verdict=verdict,
        setup=setup,
        rival=rival,
        ratio=None if ratio is None else ratio.ratio,
        ratio_low=None if ratio is None else ratio.low,
        ratio_high=None if ratio is None else ratio.high,
        sentence=sentence,
        evidence=json.dumps(_evidence(goodput, tier.tier, shape, [setup, rival])),
        campaigns=json.dumps(pooled),
        caveat=caveat if best is not None or alone is not None else None,
    )


def _unrivalled(goodput: pl.DataFrame, tier: str, shape: ShapeVerdict) -> str | None:
    """The disaggregated setup serving most at the shape where it meets the tier and no
    replicated setup does (so no ratio to replicas exists); None otherwise."""
    met = goodput.filter(
        (pl.col("tier") == tier)
        & (pl.col("input_len") == shape.input_len)
        & (pl.col("output_len") == shape.output_len)
        & pl.col("point_met")
    )
    if met.filter(pl.col("arm") == "replicated").height:
        return None
    found = met.filter(pl.col("arm") == "disaggregated").sort("goodput_per_gpu", descending=True)
    return Series.of(found.row(0, named=True)).label if found.height else None


def _evidence(
    goodput: pl.DataFrame, tier: str, shape: ShapeVerdict, labels: list[str | None]
) -> list[str]:
    """The run ids of the named setups at their best load within the tier."""
    rows = goodput.filter(
        (pl.col("tier") == tier)
        & (pl.col("input_len") == shape.input_len)
        & (pl.col("output_len") == shape.output_len)
        & pl.col("best")
    )
    wanted = {label for label in labels if label}
    return [r["run_id"] for r in rows.iter_rows(named=True) if Series.of(r).label in wanted]
