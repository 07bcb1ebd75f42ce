"""A campaign's series: an arm, in one layout, with one engine variant and (the disaggregated
arm) one handoff variant. Every row, line, cell and verdict of the report is about one.

Campaigns from before layouts and engine variants have null for both, and read as they did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from pdpipeline.report.columns import SERIES_KEYS

ARM_ORDER = {"single": 0, "replicated": 1, "disaggregated": 2}


def series_label(
    arm: str,
    layout: str | None = None,
    engine_variant: str | None = None,
    variant: str | None = None,
) -> str:
    """How a series is named to a reader: 'disaggregated 3P1D (pull) [block128]', 'replicated
    4R [block128]', 'single'; parts a campaign lacks are left out."""
    text = f"{arm} {layout}" if layout else arm
    if variant:
        text += f" ({variant})"
    if engine_variant:
        text += f" [{engine_variant}]"
    return text


def arm_label(arm: str, variant: str | None) -> str:
    """`series_label` of an arm and handoff variant (for callers that know no layout)."""
    return series_label(arm, variant=variant)


@dataclass(frozen=True)
class Series:
    arm: str
    layout: str | None = None
    engine_variant: str | None = None
    variant: str | None = None

    @classmethod
    def of(cls, row: Mapping, prefix: str = "", suffix: str = "") -> Series:
        """The series a row names: its SERIES_KEYS columns, each as f'{prefix}{key}{suffix}'
        ('winner_layout', 'arm_before'); a column the row lacks is null."""
        return cls(*(row.get(f"{prefix}{key}{suffix}") for key in SERIES_KEYS))

    @property
    def label(self) -> str:
        return series_label(self.arm, self.layout, self.engine_variant, self.variant)

    @property
    def order(self) -> tuple:
        """Arm order, then layout, engine variant and handoff variant, numbers in them by value
        ('2R' before '12R', 'block16' before 'block128'); a missing part first."""
        return (
            ARM_ORDER.get(self.arm, len(ARM_ORDER)),
            *(_natural(getattr(self, key)) for key in SERIES_KEYS[1:]),
        )

    def rows(self) -> pl.Expr:
        """A filter for this series' rows; a null part matches null."""
        expr = pl.col("arm") == self.arm
        for key in SERIES_KEYS[1:]:
            expr &= pl.col(key).eq_missing(pl.lit(getattr(self, key), dtype=pl.Utf8))
        return expr

    def with_engine(self, engine_variant: str | None) -> Series:
        return Series(self.arm, self.layout, engine_variant, self.variant)


def _natural(text: str | None) -> tuple:
    if text is None:
        return ()
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|\D+", text)
    )


def in_order(frame: pl.DataFrame, *first: str | pl.Expr) -> pl.DataFrame:
    """The frame sorted by `first`, then by its series' order."""
    rank = {s: i for i, s in enumerate(series_of(frame))}
    key = pl.struct(SERIES_KEYS).map_elements(
        lambda row: rank[Series.of(row)], return_dtype=pl.Int64
    )
    return frame.sort([*first, key], nulls_last=True, maintain_order=True)


def series_of(frame: pl.DataFrame) -> list[Series]:
    """The series of a frame (with SERIES_KEYS), in order."""
    found = frame.select(SERIES_KEYS).unique().rows()
    return sorted((Series(*row) for row in found), key=lambda s: s.order)


def has_new_dimensions(frame: pl.DataFrame) -> bool:
    """Whether the frame's series have a layout or an engine variant (campaigns from before
    them have neither)."""
    return any(frame[c].drop_nulls().len() for c in ("layout", "engine_variant"))


def contenders(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of the series that compete for a lead: those on at least as many devices as the
    smallest replicated or disaggregated series, when at least two series are.

    At the same offered load one instance batches more per device than several, which says
    nothing of the architecture: single does not compete. Every layout does: per device, a
    layout on four devices is set against one on two as it would be chosen."""
    several = frame.filter(pl.col("arm") != "single")
    if not several.height:
        return frame
    fair = frame.filter(pl.col("gpus") >= several["gpus"].min())
    return fair if fair.select(SERIES_KEYS).unique().height >= 2 else frame


def rival_devices(arm: str, gpus: int, replicated_gpus: Iterable[int]) -> int | None:
    """The device count of the replicated series a series is judged against: its own (a layout
    against replicas on as many devices); for single, which has no layout, the smallest
    replicated series, as before layouts. None: no replicated series on those devices."""
    counts = set(replicated_gpus)
    if gpus in counts:
        return gpus
    if arm == "single" and counts:
        return min(counts)
    return None
