"""The host probe, run for real on this machine, and its parsers on captured tool output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pdpipeline.hostprobe import parse_nvlink

# `nvidia-smi nvlink -s` on a two-GPU Hopper host (GPU 1's 18 links cut to 4 for brevity).
NVLINK_OUTPUT = (
    "GPU 0: NVIDIA H200 (UUID: GPU-7b3f9af5)\n"
    + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(18))
    + "GPU 1: NVIDIA H200 (UUID: GPU-5d65d25b)\n"
    + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(4))
    + "\t Link 4: <inactive>\n"
)


def test_nvlink_links_are_summed_per_gpu():
    gpus = parse_nvlink(NVLINK_OUTPUT)
    assert [(g["gpu"], g["links"]) for g in gpus] == [(0, 18), (1, 4)]
    assert abs(gpus[0]["gbyte_per_s"] - 18 * 26.562) < 1e-9
    assert parse_nvlink("") == []


def test_probe_runs_as_a_standalone_script(tiny_model):
    # The way hardware_check runs it on a host: its source on stdin, the model dir as argument.
    source = Path(__file__).resolve().parent.parent / "pdpipeline" / "hostprobe.py"
    out = subprocess.run(
        [sys.executable, "-", str(tiny_model)],
        input=source.read_bytes(),
        capture_output=True,
        check=True,
    ).stdout
    facts = json.loads(out)
    assert facts["model_present"] and facts["model_bytes"] > 0
    assert facts["cpu_count"] >= 1 and facts["memory_bytes"] > 0
    assert facts["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["nvlink"] == [] and facts["gpus"] == []  # no GPU on this machine
