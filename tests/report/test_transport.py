"""The preflight as the report says it: which idle CPU dominates a comparison, the caveat of a
comparison it dominates, and the KV transport table."""

from __future__ import annotations

import polars as pl
import pytest

from pdpipeline.report.markdown import preflight as preflight_markdown
from pdpipeline.report.transport import dominating_idle, spin_caveat
from tests.report.constructed import server


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


@pytest.mark.parametrize(
    ("given", "dominated"),
    [
        # A spinning KV server on a CPU core: the core is its device.
        ([server("decode", "cpu", 0.98)], 1),
        # The same spin on a GPU host costs a CPU core, not the device.
        ([server("decode", "cuda", 0.98)], 0),
        # Half of two cores is not dominated at 0.6.
        ([server("prefill", "cpu", 0.6, devices=(0, 1))], 0),
        # A standalone server is never the pair's cost.
        ([server("standalone", "cpu", 0.98)], 0),
    ],
)
def test_idle_cpu_dominates_only_kv_servers_on_cpu_devices(given, dominated):
    assert len(dominating_idle(given)) == dominated
