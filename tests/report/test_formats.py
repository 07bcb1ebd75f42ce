"""The report's labels, written once: a load, a shape's order."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.formats import load_label, shape_order, shapes


def test_a_load_and_a_shape_read_one_way():
    assert load_label(8, None) == "c=8"
    assert load_label(None, 4.0) == "4/s"
    assert load_label(None, 2.5, " req/s") == "2.5 req/s"
    assert shape_order("2048", "64") > shape_order("512", "1024")
    assert shape_order("256:1024", "64") < shape_order("512", "64")
    frame = pl.DataFrame({"input_len": ["2048", "512", "512"], "output_len": ["64", "128", "64"]})
    assert shapes(frame) == [("512", "64"), ("512", "128"), ("2048", "64")]
