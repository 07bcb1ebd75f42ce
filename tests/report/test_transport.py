"""The preflight as the report says it: the caveat of a comparison dominated by idle CPU, and
the KV transport table."""

from __future__ import annotations

import polars as pl

from pdpipeline.report.transport import preflight_markdown, spin_caveat
from tests.test_preflight import server


def test_a_spinning_pair_on_cpu_cores_is_the_caveat_with_both_figures():
    caveat = spin_caveat(
        pl.DataFrame(
            [
                server("prefill", "cpu", 0.98),
                server("decode", "cpu", 1.0),
                server("standalone", "cpu", 0.02),
            ]
        )
    )
    assert caveat.startswith("dominated by NIXL's progress thread, not by disaggregation")
    assert "0.99 core(s) while idle; a standalone server 0.02" in caveat


def test_no_caveat_on_gpus_or_without_preflight():
    assert spin_caveat(pl.DataFrame([server("decode", "cuda", 0.98)])) is None
    assert spin_caveat(pl.DataFrame()) is None


def test_the_preflight_table_lists_the_kv_servers_only():
    table = preflight_markdown(
        pl.DataFrame([server("prefill", "cpu", 0.98), server("standalone", "cpu", 0.02)])
    )
    header, _, row = table.splitlines()
    assert "KV lanes" in header and "Descriptors/block" in header
    assert "prefill prefill-0" in row and "cma/memory (intra-node get)" in row
    assert "| LBHNC | no | 0.7 | 1.5.1 | 0.98 |" in row
    assert preflight_markdown(pl.DataFrame([server("standalone", "cpu", 0.0)])) == ""
