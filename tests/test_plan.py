"""Profile -> plan: the vLLM and proxy command lines and environments each arm launches."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from pdpipeline.plan import ArmPlan, format_plan, plan_arm, plan_arms
from pdpipeline.profile import Profile
from pdpipeline.serving.engine import ServerSpec, environment
from tests.support.local import local_profile_data


def flag_values(argv: tuple[str, ...] | list[str], flag: str) -> list[str]:
    """Every value given after `flag` in argv."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def kv_transfer_config(argv: tuple[str, ...]) -> dict:
    (text,) = flag_values(argv, "--kv-transfer-config")
    return json.loads(text)


@pytest.fixture
def cuda_profile(tiny_model: Path) -> Profile:
    data = local_profile_data(tiny_model)
    data["hosts"][0] |= {"device_kind": "cuda", "engine": ["vllm", "serve"], "env": {}}
    return Profile.model_validate(data)


def test_single_is_one_standalone_instance(local_profile: Profile):
    plan = plan_arm(local_profile, "single")
    (instance,) = plan.instances
    assert instance.server.role == "standalone"
    assert instance.service.port == local_profile.vllm.base_port
    assert instance.service.ports == (local_profile.vllm.base_port,)
    assert "--kv-transfer-config" not in instance.service.argv
    assert plan.devices == 1


def test_replicated_is_two_instances_on_consecutive_ports(local_profile: Profile):
    plan = plan_arm(local_profile, "replicated")
    base = local_profile.vllm.base_port
    assert [i.server.role for i in plan.instances] == ["standalone", "standalone"]
    assert [i.service.port for i in plan.instances] == [base, base + 1]
    assert [flag_values(i.service.argv, "--port") for i in plan.instances] == [
        [str(base)],
        [str(base + 1)],
    ]
    assert plan.devices == 2


def test_disaggregated_is_nixl_producer_and_consumer_on_cpu(local_profile: Profile):
    plan = plan_arm(local_profile, "disaggregated")
    assert [i.server.role for i in plan.instances] == ["prefill", "decode"]
    configs = [kv_transfer_config(i.service.argv) for i in plan.instances]
    # Each engine id is pinned to its instance token: unique per launch.
    assert configs == [
        {
            "kv_connector": "NixlConnector",
            "kv_role": role,
            "kv_buffer_device": "cpu",
            "engine_id": i.server.instance_token,
        }
        for role, i in zip(["kv_producer", "kv_consumer"], plan.instances, strict=True)
    ]
    assert plan.devices == 2
    assert plan.variant.name == "pull"
    assert plan.key == "disaggregated-1P1D-pull"


def test_side_channel_ports_are_unique_and_checked_free(local_profile: Profile):
    plan = plan_arm(local_profile, "disaggregated")
    side = local_profile.vllm.side_channel_base_port
    ports = [i.service.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for i in plan.instances]
    assert ports == [str(side), str(side + 1)]
    for instance in plan.instances:
        assert instance.service.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "127.0.0.1"
        # The launcher checks every port in `ports` is free, the side channel included.
        assert int(instance.service.env["VLLM_NIXL_SIDE_CHANNEL_PORT"]) in instance.service.ports


@pytest.mark.parametrize("arm", ["single", "replicated", "disaggregated"])
def test_plan_binds_the_ports_the_profile_checks(local_profile: Profile, arm: str):
    # The profile refuses port clashes using the same slots and arithmetic the plan launches.
    v = local_profile.vllm
    expected = [
        (s.name, (v.http_port(s.index), v.side_channel_port(s.index, s.role)))
        for s in local_profile.instances(arm)
    ]
    plan = plan_arm(local_profile, arm)
    assert [(i.service.name, i.service.ports) for i in plan.instances] == [
        (name, tuple(port for port in ports if port is not None)) for name, ports in expected
    ]


def test_standalone_instances_have_no_side_channel(local_profile: Profile):
    for instance in plan_arm(local_profile, "replicated").instances:
        assert "VLLM_NIXL_SIDE_CHANNEL_PORT" not in instance.service.env
        assert len(instance.service.ports) == 1


@pytest.mark.parametrize("arm", ["single", "replicated", "disaggregated"])
def test_cpu_instances_are_pinned_to_their_core(local_profile: Profile, arm: str):
    plan = plan_arm(local_profile, arm)
    for instance in plan.instances:
        (core,) = instance.server.devices
        argv = instance.service.argv
        assert list(argv[:3]) == ["taskset", "-c", str(core)]
        assert instance.service.env["VLLM_CPU_OMP_THREADS_BIND"] == str(core)
        assert "CUDA_VISIBLE_DEVICES" not in instance.service.env
        # The api_server module takes the model as --model.
        assert flag_values(argv, "--model") == [str(Path(local_profile.model.dir).resolve())]


def test_cpu_replicas_use_different_cores(local_profile: Profile):
    plan = plan_arm(local_profile, "replicated")
    assert [i.service.env["VLLM_CPU_OMP_THREADS_BIND"] for i in plan.instances] == ["0", "1"]


@pytest.mark.parametrize("arm", ["single", "replicated", "disaggregated"])
def test_cuda_instances_see_their_gpu_and_are_not_pinned(cuda_profile: Profile, arm: str):
    model = str(Path(cuda_profile.model.dir).resolve())
    for instance in plan_arm(cuda_profile, arm).instances:
        argv = instance.service.argv
        env = instance.service.env
        (gpu,) = instance.server.devices
        assert env["CUDA_VISIBLE_DEVICES"] == str(gpu)
        assert "VLLM_CPU_OMP_THREADS_BIND" not in env
        assert "taskset" not in argv
        assert list(argv[:3]) == ["vllm", "serve", model]
        assert "--model" not in argv


def test_cuda_disaggregated_buffers_kv_on_the_gpu(cuda_profile: Profile):
    plan = plan_arm(cuda_profile, "disaggregated")
    configs = [kv_transfer_config(i.service.argv) for i in plan.instances]
    assert [c["kv_buffer_device"] for c in configs] == ["cuda", "cuda"]
    assert [c["kv_role"] for c in configs] == ["kv_producer", "kv_consumer"]


def test_kv_connector_extra_config_reaches_both_roles(tiny_model: Path):
    data = local_profile_data(tiny_model)
    data["arms"]["disaggregated"]["kv_connector_extra_config"] = {"kv_lease_duration": 60}
    plan = plan_arm(Profile.model_validate(data), "disaggregated")
    for instance in plan.instances:
        extra = kv_transfer_config(instance.service.argv)["kv_connector_extra_config"]
        assert extra == {"kv_lease_duration": 60}


def test_disaggregated_proxy_gets_prefill_and_decode_urls(local_profile: Profile):
    plan = plan_arm(local_profile, "disaggregated")
    base = local_profile.vllm.base_port
    argv = plan.proxy.argv
    assert flag_values(argv, "--prefill") == [f"http://127.0.0.1:{base}"]
    assert flag_values(argv, "--decode") == [f"http://127.0.0.1:{base + 1}"]
    assert flag_values(argv, "--backend") == []
    assert plan.role_urls("prefill") == [f"http://127.0.0.1:{base}"]
    assert plan.role_urls("decode") == [f"http://127.0.0.1:{base + 1}"]


@pytest.mark.parametrize(("arm", "count"), [("single", 1), ("replicated", 2)])
def test_other_proxies_get_backend_urls(local_profile: Profile, arm: str, count: int):
    plan = plan_arm(local_profile, arm)
    base = local_profile.vllm.base_port
    argv = plan.proxy.argv
    assert flag_values(argv, "--backend") == [f"http://127.0.0.1:{base + i}" for i in range(count)]
    assert flag_values(argv, "--prefill") == flag_values(argv, "--decode") == []
    assert flag_values(argv, "--port") == [str(local_profile.proxy.port)]
    assert plan.proxy_url == f"http://127.0.0.1:{local_profile.proxy.port}"


def test_instance_tokens_are_served_and_differ_between_plans(local_profile: Profile):
    first, second = plan_arm(local_profile, "replicated"), plan_arm(local_profile, "replicated")

    def tokens(plan: ArmPlan) -> list[str]:
        return [i.service.identity_token for i in plan.instances] + [plan.proxy.identity_token]

    assert set(tokens(first)).isdisjoint(tokens(second))
    assert len(set(tokens(first))) == 3
    for instance in first.instances:
        # Served beside the model name, so /v1/models proves which launch answers.
        names = instance.service.argv[instance.service.argv.index("--served-model-name") + 1 :]
        assert names[:2] == ("tiny", instance.service.identity_token)
        assert instance.service.identity_path == "/v1/models"
    assert flag_values(first.proxy.argv, "--instance-token") == [first.proxy.identity_token]


def test_unknown_or_disabled_arm_is_refused(tiny_model: Path):
    data = local_profile_data(tiny_model)
    data["arms"]["replicated"] = None
    profile = Profile.model_validate(data)
    with pytest.raises(ValueError, match="'replicated'"):
        plan_arm(profile, "replicated")
    with pytest.raises(ValueError, match="'pipelined'"):
        plan_arm(profile, "pipelined")


def test_vllm_env_overrides_host_env(tiny_model: Path):
    data = local_profile_data(tiny_model)
    data["vllm"]["env"] = {"VLLM_CPU_KVCACHE_SPACE": "2"}
    (instance,) = plan_arm(Profile.model_validate(data), "single").instances
    assert instance.service.env["VLLM_CPU_KVCACHE_SPACE"] == "2"


def test_format_plan_mentions_every_arm_service_and_env(local_profile: Profile):
    text = format_plan(local_profile)
    for arm, key in (
        ("single", "single"),
        ("replicated", "replicated-2R"),
        ("disaggregated", "disaggregated-1P1D-pull"),
    ):
        assert f"## arm {key} " in text
        plan = plan_arm(local_profile, arm)
        for instance in plan.instances:
            assert f"] {instance.service.name}\n" in text
            for key, value in instance.service.env.items():
                assert f"    {key}={shlex.quote(value)}\n" in text
    for name in ("single-0", "replicated-0", "replicated-1"):
        assert f"] {name}\n" in text
    for name in ("disaggregated-prefill-0", "disaggregated-decode-1", "proxy"):
        assert f"] {name}\n" in text
    assert "VLLM_CPU_KVCACHE_SPACE=1" in text


def test_launching_env_passes_transport_variables_only(
    local_profile: Profile, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("UCX_TLS", "tcp,self")
    monkeypatch.setenv("UCX_NET_DEVICES", "lo")
    monkeypatch.setenv("PDPIPELINE_TEST_UNRELATED", "1")
    for instance in plan_arm(local_profile, "disaggregated").instances:
        env = instance.service.env
        assert env["UCX_TLS"] == "tcp,self"
        assert env["UCX_NET_DEVICES"] == "lo"
        assert "PDPIPELINE_TEST_UNRELATED" not in env


def test_engine_environment_filters_host_env():
    spec = ServerSpec(name="s", model_dir="/m", served_model_name="m", port=8100)
    env = environment(
        spec,
        {"UCX_TLS": "rc", "NIXL_LOG_LEVEL": "debug", "NCCL_DEBUG": "INFO", "PATH": "/x", "X": "1"},
    )
    assert {k: env[k] for k in ("UCX_TLS", "NIXL_LOG_LEVEL", "NCCL_DEBUG")} == {
        "UCX_TLS": "rc",
        "NIXL_LOG_LEVEL": "debug",
        "NCCL_DEBUG": "INFO",
    }
    assert "PATH" not in env and "X" not in env
    assert environment(spec) == environment(spec, {})


@pytest.fixture
def variants_profile(tiny_model: Path) -> Profile:
    data = local_profile_data(tiny_model)
    data["arms"]["disaggregated"] |= {
        "kv_connector_extra_config": {"kv_lease_duration": 60},
        "env": {"UCX_TLS": "tcp"},
        "variants": [
            {"name": "pull"},
            {"kv_connector": "NixlPushConnector", "env": {"UCX_TLS": "shm"}},
            {
                "name": "push-serial",
                "kv_connector": "NixlPushConnector",
                "handoff": "sequential",
                "kv_connector_extra_config": {"backends": ["UCX"]},
            },
        ],
    }
    return Profile.model_validate(data)


def test_each_handoff_variant_is_its_own_launch(variants_profile: Profile):
    plans = plan_arms(variants_profile, "disaggregated")
    assert [p.key for p in plans] == [
        "disaggregated-1P1D-pull",
        "disaggregated-1P1D-push",
        "disaggregated-1P1D-push-serial",
    ]
    connectors = [
        {kv_transfer_config(i.service.argv)["kv_connector"] for i in p.instances} for p in plans
    ]
    assert connectors == [{"NixlConnector"}, {"NixlPushConnector"}, {"NixlPushConnector"}]
    assert [p.variant.handoff for p in plans] == ["sequential", "concurrent", "sequential"]
    assert [p.key for p in plan_arms(variants_profile, "replicated")] == ["replicated-2R"]


def test_variant_settings_merge_over_the_arm(variants_profile: Profile):
    pull, push, push_serial = plan_arms(variants_profile, "disaggregated")
    for plan, ucx_tls in ((pull, "tcp"), (push, "shm"), (push_serial, "tcp")):
        assert {i.service.env["UCX_TLS"] for i in plan.instances} == {ucx_tls}
    extra = kv_transfer_config(push_serial.instances[0].service.argv)["kv_connector_extra_config"]
    assert extra == {"kv_lease_duration": 60, "backends": ["UCX"]}


def test_concurrent_handoff_names_the_prefill_nixl_identity(variants_profile: Profile):
    pull, push, push_serial = plan_arms(variants_profile, "disaggregated")
    prefill = push.instances[0].server
    side = variants_profile.vllm.side_channel_base_port
    assert flag_values(push.proxy.argv, "--handoff") == ["concurrent"]
    assert flag_values(push.proxy.argv, "--prefill-peer") == [
        f"{prefill.instance_token}@127.0.0.1:{side}"
    ]
    assert kv_transfer_config(push.instances[0].service.argv)["engine_id"] == (
        prefill.instance_token
    )
    for sequential in (pull, push_serial):
        assert flag_values(sequential.proxy.argv, "--handoff") == []
        assert flag_values(sequential.proxy.argv, "--prefill-peer") == []
    assert flag_values(push.proxy.argv, "--leg-timeout-s") == ["300"]


def test_plan_shows_every_variant(variants_profile: Profile):
    text = format_plan(variants_profile)
    assert "handoff variant push: NixlPushConnector, concurrent handoff" in text
    assert "handoff variant push-serial: NixlPushConnector, sequential handoff" in text
    assert "UCX_TLS=shm" in text


def test_variant_vllm_args_follow_the_shared_ones(tiny_model: Path):
    data = local_profile_data(tiny_model)
    data["vllm"]["extra_args"] = ["--max-num-seqs", "64"]
    data["arms"]["disaggregated"]["variants"] = [
        {"name": "pull"},
        {"name": "pull-block-64", "vllm_args": ["--block-size", "64"]},
    ]
    pull, bigger_blocks = plan_arms(Profile.model_validate(data), "disaggregated")
    for instance in pull.instances:
        assert flag_values(instance.service.argv, "--block-size") == []
    for instance in bigger_blocks.instances:
        argv = instance.service.argv
        assert list(argv[-4:]) == ["--max-num-seqs", "64", "--block-size", "64"]
    assert "--block-size 64" in format_plan(Profile.model_validate(data))


@pytest.fixture
def layouts_profile(tiny_model: Path) -> Profile:
    """Four GPUs: the four-GPU layouts, replicas sized by them, two KV block sizes."""
    data = local_profile_data(tiny_model)
    data["hosts"][0] |= {
        "device_kind": "cuda",
        "engine": ["vllm", "serve"],
        "env": {},
        "devices": [0, 1, 2, 3],
    }
    data["arms"]["replicated"] = {}
    data["arms"]["disaggregated"] = {"layouts": ["1P1D", "3P1D", "2P2D", "1P3D"]}
    data["engine_variants"] = [
        {"name": "block16", "vllm_args": ["--block-size", "16"]},
        {
            "name": "block128",
            "vllm_args": ["--block-size", "128"],
            "env": {"UCX_TLS": "cuda_ipc"},
            "kv_connector_extra_config": {"enable_cross_layers_blocks": True},
        },
    ]
    return Profile.model_validate(data)


def _gpus(plan: ArmPlan) -> list[tuple[str, str]]:
    return [(i.server.role, i.service.env["CUDA_VISIBLE_DEVICES"]) for i in plan.instances]


def test_each_layout_takes_its_roles_from_the_pool_in_order(layouts_profile: Profile):
    plans = {p.key: p for p in plan_arms(layouts_profile, "disaggregated")}
    assert list(plans) == [
        f"disaggregated-{layout}-{engine}-pull"
        for engine in ("block16", "block128")
        for layout in ("1P1D", "3P1D", "2P2D", "1P3D")
    ]
    assert _gpus(plans["disaggregated-1P1D-block16-pull"]) == [("prefill", "0"), ("decode", "1")]
    assert _gpus(plans["disaggregated-3P1D-block16-pull"]) == [
        ("prefill", "0"),
        ("prefill", "1"),
        ("prefill", "2"),
        ("decode", "3"),
    ]
    assert _gpus(plans["disaggregated-1P3D-block128-pull"]) == [
        ("prefill", "0"),
        ("decode", "1"),
        ("decode", "2"),
        ("decode", "3"),
    ]
    plan = plans["disaggregated-2P2D-block128-pull"]
    assert (plan.layout, plan.devices) == ("2P2D", 4)
    base = layouts_profile.vllm.base_port
    assert [i.service.port for i in plan.instances] == [base, base + 1, base + 2, base + 3]
    proxy = plan.proxy.argv
    assert flag_values(proxy, "--prefill") == [i.server.url for i in plan.instances[:2]]
    assert flag_values(proxy, "--decode") == [i.server.url for i in plan.instances[2:]]


def test_engine_variants_apply_to_every_arm_alike(layouts_profile: Profile):
    for arm in ("single", "replicated", "disaggregated"):
        for plan in plan_arms(layouts_profile, arm):
            block = "16" if plan.engine.name == "block16" else "128"
            for instance in plan.instances:
                argv = instance.service.argv
                assert flag_values(argv, "--block-size") == [block], plan.key
                assert ("UCX_TLS" in instance.service.env) == (block == "128"), plan.key
                if arm == "disaggregated":
                    extra = kv_transfer_config(argv).get("kv_connector_extra_config", {})
                    assert extra.get("enable_cross_layers_blocks", False) == (block == "128")
    # Connector settings reach only the arm that has a connector.
    (single, *_) = plan_arms(layouts_profile, "single")
    assert "--kv-transfer-config" not in single.instances[0].service.argv


def test_replicas_are_sized_by_each_layout(layouts_profile: Profile):
    plans = plan_arms(layouts_profile, "replicated")
    assert [p.key for p in plans] == [
        "replicated-2R-block16",
        "replicated-4R-block16",
        "replicated-2R-block128",
        "replicated-4R-block128",
    ]
    assert _gpus(plans[1]) == [("standalone", str(d)) for d in range(4)]
    assert [p.devices for p in plans] == [2, 4, 2, 4]
    assert [p.key for p in plan_arms(layouts_profile, "single")] == [
        "single-block16",
        "single-block128",
    ]


def test_format_plan_names_layout_and_engine_variant(layouts_profile: Profile):
    text = format_plan(layouts_profile)
    assert "## arm disaggregated-3P1D-block128-pull (4 device(s)" in text
    assert "engine variant block128: --block-size 128" in text
    assert text.count("## arm ") == 2 * (1 + 2 + 4)
