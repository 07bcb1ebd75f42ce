"""A figure of the report: its key, its caption, how it is drawn and when a campaign has it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pdpipeline.report.load import Campaign


@dataclass(frozen=True)
class Inputs:
    """What a figure is drawn from: the campaign as read, and what counts as a regression."""

    campaign: Campaign
    regression_threshold: float = 0.10


def always(_: Inputs) -> bool:
    return True


@dataclass(frozen=True)
class Figure:
    key: str  # its file is f"{key}.png"; on the page its id is f"figure-{key}"
    caption: str  # also its alt text
    draw: Callable[[Inputs, Path], Path]
    when: Callable[[Inputs], bool] = always
