"""Where a disaggregated request's time goes: the handoff_breakdown view and its table, on
constructed rows of a real DuckDB file."""

from __future__ import annotations

import dataclasses
import typing
from types import NoneType

import pytest

from pdpipeline.report.breakdown import breakdown
from pdpipeline.report.markdown import breakdown as markdown
from pdpipeline.warehouse.rows import RequestRow, RunRow, ServerMetricRow
from pdpipeline.warehouse.store import Warehouse


def row(row_class, **given):
    """A row with `given` and None (or a neutral value) in every other column."""
    neutral = {str: "", int: 0, float: 0.0, bool: False}
    fields = {}
    for field in dataclasses.fields(row_class):
        hint = typing.get_type_hints(row_class)[field.name]
        optional = NoneType in typing.get_args(hint)
        fields[field.name] = None if optional else neutral.get(hint, None)
    return row_class(**(fields | given))


def metric(run_id: str, server: str, name: str, delta: float) -> ServerMetricRow:
    return row(
        ServerMetricRow,
        run_id=run_id,
        campaign_id="c",
        arm="disaggregated",
        server=server,
        name=name,
        delta=delta,
        variant="pull",
        layout="1P1D",
    )


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    runs, requests, metrics = [], [], []
    for repeat in (0, 1):
        run_id = f"c/disaggregated-1P1D-pull/in512-out64-c8-rep{repeat}"
        runs.append(
            row(
                RunRow,
                run_id=run_id,
                campaign_id="c",
                arm="disaggregated",
                point="p",
                input_len="512",
                output_len="64",
                concurrency=8,
                repeat=repeat,
                instances=2,
                gpus=2,
                valid=True,
                variant="pull",
                layout="1P1D",
                kv_transfers=4.0,
                kv_xfer_time_s=0.04 * (repeat + 1),  # 10 ms, then 20 ms per transfer
            )
        )
        # Three requests in the window (medians: the middle one), one before it (left out).
        for i, (ttft, prefill, handoff, proxy, window) in enumerate(
            [
                (0.100, 0.050, 0.030, 0.090, True),
                (0.120, 0.060, 0.040, 0.110, True),
                (0.140, 0.070, 0.050, 0.130, True),
                (9.000, 9.000, 9.000, 9.000, False),
            ]
        ):
            requests.append(
                row(
                    RequestRow,
                    run_id=run_id,
                    campaign_id="c",
                    arm="disaggregated",
                    request_index=i,
                    request_id=str(i),
                    ok=True,
                    ttft_s=ttft,
                    e2e_s=ttft + 0.5,
                    prefill_s=prefill,
                    handoff_s=handoff,
                    proxy_s=proxy,
                    in_window=window,
                    variant="pull",
                    layout="1P1D",
                )
            )
        prefill, decode = "disaggregated-prefill-0", "disaggregated-decode-1"
        metrics += [
            metric(run_id, prefill, "vllm:request_queue_time_seconds_sum", 0.004 * 4),
            metric(run_id, prefill, "vllm:request_queue_time_seconds_count", 4),
            metric(run_id, prefill, "vllm:request_prefill_time_seconds_sum", 0.045 * 4),
            metric(run_id, prefill, "vllm:request_prefill_time_seconds_count", 4),
            metric(run_id, decode, "vllm:request_queue_time_seconds_sum", 0.002 * 4),
            metric(run_id, decode, "vllm:request_queue_time_seconds_count", 4),
            metric(run_id, decode, "vllm:nixl_post_time_seconds_sum", 0.003 * 4),
            metric(run_id, decode, "vllm:nixl_post_time_seconds_count", 4),
        ]
    warehouse.replace(
        {"runs": runs, "requests": requests, "server_metrics": metrics}, where={"campaign_id": "c"}
    )
    return warehouse


def test_each_part_is_the_runs_median_or_engine_mean_over_repeats(warehouse):
    (part,) = breakdown(warehouse, "c").iter_rows(named=True)
    expected = {
        "ttft_s": 120.0,  # the median of the window's requests
        "prefill_leg_s": 60.0,
        "handoff_s": 40.0,
        "prefill_queue_s": 4.0,  # the prefill engine's mean
        "prefill_compute_s": 45.0,
        "decode_queue_s": 2.0,  # the decode engine's, not the prefill's
        "kv_post_s": 3.0,
        "kv_transfer_s": 15.0,  # 10 and 20 ms per transfer over the two repeats
        "decode_s": 500.0,
        "beyond_kv": 40.0 - 3.0 - 15.0,
    }
    assert {k: pytest.approx(part[k]) for k in expected} == expected


def test_the_table_names_the_setup_and_the_parts_in_ms(warehouse):
    text = markdown(breakdown(warehouse, "c"))
    header, _, line = text.splitlines()
    assert header.startswith("| point | setup | TTFT ms | prefill queue ms |")
    assert line.startswith("| 512/64 c=8 | disaggregated 1P1D (pull) | 120.0 | 4.0 | 45.0 |")
    assert line.endswith("| 22.0 |")
