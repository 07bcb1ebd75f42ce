"""The regime map's figure: per shape, who serves most at each TTFT and TPOT limit."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from pdpipeline.report.columns import SERIES_KEYS
from pdpipeline.report.figures.figure import Figure
from pdpipeline.report.figures.style import legend_columns, series_looks
from pdpipeline.report.formats import limit, shapes
from pdpipeline.report.series import Series

# The regime map's series: the winner of a cell and the challenger of the baseline.
ROLES = ("winner", "challenger")


def regime_heatmap(regime: pl.DataFrame, path: Path) -> Path:
    """The regime map: a panel per shape, TTFT limit up and TPOT limit across, each cell in the
    colour of the setup serving most requests per GPU within both limits (with that goodput
    written in it), hatched where the interval on its difference from the baseline includes 0,
    grey where no setup meets the cell at any load.

    `regime` is `report.regime.regime_map`'s frame (or the `regime_map` table's rows)."""
    series = pl.concat(
        [regime.select(**{k: f"{role}_{k}" for k in SERIES_KEYS}) for role in ROLES]
    ).drop_nulls("arm")
    looks = series_looks(series) if series.height else {}
    regime_shapes = shapes(regime)
    names = [look["label"] for look in looks.values()]
    names += ["tie: the interval on the difference includes 0", "no setup meets it"]
    # Never narrower than the legend below (constrained layout does not widen for it), and
    # taller by its rows beyond two.
    width = max(5.4 * len(regime_shapes), 9.0)
    columns = legend_columns(names, width, 9)
    fig, axes = plt.subplots(
        1,
        len(regime_shapes),
        figsize=(width, 5.2 + 0.22 * max(-(-len(names) // columns) - 2, 0)),
        squeeze=False,
        layout="constrained",
    )
    attainment = regime["attainment"][0] if regime.height else 0.9
    fig.suptitle(
        f"Who serves most requests/s per GPU with {attainment:.0%} of requests within both limits"
    )
    none_met = mcolors.to_rgb("#e6e6e6")
    for ax, (n_in, n_out) in zip(axes[0], regime_shapes, strict=True):
        cells = regime.filter((pl.col("input_len") == n_in) & (pl.col("output_len") == n_out))
        ttfts = sorted(cells["ttft_ms"].unique().to_list())
        tpots = sorted(cells["tpot_ms"].unique().to_list())
        image = np.ones((len(ttfts), len(tpots), 3))
        for cell in cells.iter_rows(named=True):
            y, x = ttfts.index(cell["ttft_ms"]), tpots.index(cell["tpot_ms"])
            look = looks.get(Series.of(cell, "winner_")) if cell["winner_arm"] else None
            image[y, x] = look["color"] if look else none_met
            if look is None:
                continue
            ax.text(
                x, y, f"{cell['winner_goodput_per_gpu']:.2g}", ha="center", va="center", fontsize=7
            )
            if cell["tie"]:
                ax.add_patch(
                    plt.Rectangle(
                        (x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="white", lw=0
                    )
                )
        ax.imshow(image, origin="lower", aspect="auto")
        ax.set_xticks(range(len(tpots)), [limit(v) for v in tpots], rotation=45)
        ax.set_yticks(range(len(ttfts)), [limit(v) for v in ttfts])
        ax.set(
            title=f"prompt {n_in} / output {n_out}",
            xlabel="TPOT limit (ms)",
            ylabel="TTFT limit (ms)",
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=look["color"]) for look in looks.values()]
    handles += [
        plt.Rectangle((0, 0), 1, 1, facecolor="grey", hatch="///", edgecolor="white"),
        plt.Rectangle((0, 0), 1, 1, color=none_met),
    ]
    fig.legend(handles, names, loc="outside lower center", ncols=columns, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FIGURE = Figure(
    "regime",
    "Regime map: the setup serving most requests/s per GPU at each TTFT and TPOT limit (its "
    "best load within them), hatched where the gap to replicated is within the spread",
    lambda inputs, path: regime_heatmap(inputs.campaign["regime_map"], path),
    when=lambda inputs: inputs.campaign["regime_map"].height > 0,
)
