"""The report's figures, each drawn in one module of this package and listed once here: the HTML
page and the Dagster UI read this list. The page shows them in this order, the frontier first:
it answers which setup to pick for a given interactivity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any figure module imports pyplot: no display

from pdpipeline.report.figures import cdf, frontier, history, kv, regime, sweep
from pdpipeline.report.figures.figure import Figure, Inputs

FIGURES: tuple[Figure, ...] = (
    frontier.FIGURE,
    regime.FIGURE,
    sweep.THROUGHPUT_PER_GPU,
    sweep.THROUGHPUT,
    sweep.LATENCY,
    sweep.GOODPUT,
    cdf.FIGURE,
    kv.TRANSFER,
    kv.COST,
    history.FIGURE,
)
BY_KEY = {figure.key: figure for figure in FIGURES}
# The figure the Dagster UI shows beside the summary, as the page shows it first.
MAIN = FIGURES[0]


def draw(inputs: Inputs, directory: Path) -> dict[str, Path]:
    """Each figure the campaign has, drawn into `directory` as f"{key}.png", in page order."""
    return {
        figure.key: figure.draw(inputs, directory / f"{figure.key}.png")
        for figure in FIGURES
        if figure.when(inputs)
    }
