"""The figure registry: each figure listed once, with its caption, the frontier first."""

from __future__ import annotations

from pdpipeline.report.figures import BY_KEY, FIGURES, MAIN


def test_each_figure_is_listed_once_with_its_caption_and_the_frontier_leads():
    keys = [f.key for f in FIGURES]
    assert len(keys) == len(set(keys)) == len(BY_KEY)
    assert MAIN.key == "frontier" and MAIN is FIGURES[0]
    assert all(f.caption for f in FIGURES)
