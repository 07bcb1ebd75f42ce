"""The report's vocabulary and its one structure: the figure registry, the tables as data that
the summary and the page render alike, and the labels written once."""

from __future__ import annotations

from html.parser import HTMLParser

import polars as pl

from pdpipeline.report import markdown, page
from pdpipeline.report.figures import BY_KEY, FIGURES, MAIN
from pdpipeline.report.formats import load_label, shape_order, shapes
from pdpipeline.report.tables import Column, table


def test_each_figure_is_listed_once_with_its_caption_and_the_frontier_leads():
    keys = [f.key for f in FIGURES]
    assert len(keys) == len(set(keys)) == len(BY_KEY)
    assert MAIN.key == "frontier" and MAIN is FIGURES[0]
    assert all(f.caption for f in FIGURES)


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.cells.append(data.strip())


def test_the_summary_and_the_page_render_one_table_alike():
    columns = (
        Column("Point", lambda r: f"{r['input_len']} / {r['output_len']}", "point"),
        Column("Setup", lambda r: r["setup"], "setup"),
        Column("tok/s", lambda r: f"{r['tok_s']:.1f}"),
    )
    rows = [
        {"input_len": "512", "output_len": "128", "setup": "replicated", "tok_s": 1.0},
        {"input_len": "512", "output_len": "128", "setup": "disaggregated", "tok_s": 2.0},
    ]
    shown = table(columns, rows, "t", spans=[2])
    assert markdown.table(shown).splitlines() == [
        "| Point | Setup | tok/s |",
        "|---|---|---|",
        "| 512 / 128 | replicated | 1.0 |",
        "| 512 / 128 | disaggregated | 2.0 |",
    ]
    html = page.table(shown)
    assert html.count('rowspan="2"') == 1  # the point once for its two rows
    parsed = _Cells()
    parsed.feed(html)
    head, first, second = parsed.cells[:3], parsed.cells[3:6], parsed.cells[6:]
    assert head == ["Point", "Setup", "tok/s"]
    assert first == ["512 / 128", "replicated", "1.0"] and second == ["disaggregated", "2.0"]


def test_a_load_and_a_shape_read_one_way():
    assert load_label(8, None) == "c=8"
    assert load_label(None, 4.0) == "4/s"
    assert load_label(None, 2.5, " req/s") == "2.5 req/s"
    assert shape_order("2048", "64") > shape_order("512", "1024")
    assert shape_order("256:1024", "64") < shape_order("512", "64")
    frame = pl.DataFrame({"input_len": ["2048", "512", "512"], "output_len": ["64", "128", "64"]})
    assert shapes(frame) == [("512", "64"), ("512", "128"), ("2048", "64")]
