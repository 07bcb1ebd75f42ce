"""The report's tables as data: one table, rendered alike by the summary and the page."""

from __future__ import annotations

from html.parser import HTMLParser

from pdpipeline.report import markdown, page
from pdpipeline.report.tables import Column, table


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
