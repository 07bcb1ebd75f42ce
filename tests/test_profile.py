"""Profile loading: the shipped profiles load, and every bad field is one line naming it."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pdpipeline.errors import ProfileError
from pdpipeline.profile import load_profile
from tests.conftest import ROOT, local_profile_data

PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


def write_profile(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_lines(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    return str(caught.value).splitlines()


@pytest.fixture
def valid(tmp_path: Path) -> dict:
    return local_profile_data(tmp_path / "model")


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_repository_profiles_load(path: Path):
    loaded = load_profile(path)
    assert loaded.profile.name
    assert loaded.profile.enabled_arms
    assert loaded.text == path.read_text()
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_profile_is_the_three_arm_cpu_campaign():
    profile = load_profile(ROOT / "profiles" / "local.yaml").profile
    assert profile.enabled_arms == ["single", "replicated", "disaggregated"]
    assert [h.name for h in profile.hosts] == ["local"]
    assert profile.host("local").device_kind == "cpu"
    assert profile.proxy.host == "local"
    # Each disaggregated instance on its own core, so prefill and decode never share one.
    d = profile.arms.disaggregated
    assert d is not None and d.prefill[0].devices != d.decode[0].devices


def test_conftest_profile_data_is_valid(tmp_path: Path, valid: dict):
    loaded = load_profile(write_profile(tmp_path, valid))
    assert loaded.profile.name == "test-local"
    assert loaded.path == str(tmp_path / "profile.yaml")


def _set(*keys: str | int, value) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(key: str) -> Callable[[dict], None]:
    return lambda data: data.pop(key)


def _add_host(host: dict) -> Callable[[dict], None]:
    return lambda data: data["hosts"].append(host)


def _duplicate_first_host(data: dict) -> None:
    data["hosts"].append(copy.deepcopy(data["hosts"][0]))


def _no_load(data: dict) -> None:
    data["workload"]["concurrency"] = []
    data["workload"].pop("request_rates", None)


# (mutation of a valid profile, text naming the field, text of the complaint)
MALFORMED = {
    "concurrency-not-int": (
        _set("workload", "concurrency", value=["many"]),
        "workload.concurrency.0:",
        "valid integer",
    ),
    "concurrency-fractional": (
        _set("workload", "concurrency", value=[1.5]),
        "workload.concurrency.0:",
        "fractional",
    ),
    "base-port-not-int": (
        _set("vllm", "base_port", value="http"),
        "vllm.base_port:",
        "valid integer",
    ),
    "devices-not-list": (
        _set("hosts", 0, "devices", value="zero"),
        "hosts.0.devices:",
        "valid list",
    ),
    "device-kind-unknown": (
        _set("hosts", 0, "device_kind", value="tpu"),
        "hosts.0.device_kind:",
        "'cuda' or 'cpu'",
    ),
    "misspelt-vllm-key": (
        _set("vllm", "gpu_memory_utilisation", value=0.5),
        "vllm.gpu_memory_utilisation:",
        "Extra inputs are not permitted",
    ),
    "misspelt-placement-key": (
        _set("arms", "single", "instance", "device", value=[0]),
        "arms.single.instance.device:",
        "Extra inputs are not permitted",
    ),
    "unknown-top-level-key": (
        _set("workloads", value={}),
        "workloads:",
        "Extra inputs are not permitted",
    ),
    "missing-model": (_delete("model"), "model:", "Field required"),
    "placement-host-unknown": (
        _set("arms", "disaggregated", "decode", 0, "host", value="gpu9"),
        "arms.disaggregated",
        "'gpu9' is not in hosts",
    ),
    "proxy-host-unknown": (
        _set("proxy", "host", value="controller"),
        "proxy.host",
        "'controller' is not a host",
    ),
    "duplicate-host-names": (_duplicate_first_host, "host names", "must be unique"),
    "no-load": (_no_load, "workload:", "concurrency levels and/or request_rates"),
    "gpu-memory-utilization-above-1": (
        _set("vllm", "gpu_memory_utilization", value=1.5),
        "vllm.gpu_memory_utilization:",
        "less than or equal to 1",
    ),
    "gpu-memory-utilization-zero": (
        _set("vllm", "gpu_memory_utilization", value=0),
        "vllm.gpu_memory_utilization:",
        "greater than 0",
    ),
    "variant-names-repeat": (
        _set("arms", "disaggregated", "variants", value=[{}, {"kv_connector": "NixlConnector"}]),
        "arms.disaggregated:",
        "names must be unique, got ['pull', 'pull']",
    ),
    "concurrent-handoff-with-pull": (
        _set("arms", "disaggregated", "variants", value=[{"handoff": "concurrent"}]),
        "arms.disaggregated:",
        "pull: the concurrent handoff needs kv_connector NixlPushConnector",
    ),
    "variant-name-with-space": (
        _set("arms", "disaggregated", "variants", value=[{"name": "push fast"}]),
        "arms.disaggregated.variants.0.name:",
        "should match pattern",
    ),
    "leg-timeout-zero": (
        _set("proxy", "leg_timeout_s", value=0),
        "proxy.leg_timeout_s:",
        "greater than 0",
    ),
    "ssh-without-settings": (
        _add_host({"name": "remote", "address": "10.0.0.2", "reach": "ssh"}),
        "hosts.remote",
        "reach ssh needs ssh settings",
    ),
}


@pytest.mark.parametrize(("mutate", "field", "complaint"), MALFORMED.values(), ids=MALFORMED)
def test_malformed_field_is_one_line_naming_it(
    tmp_path: Path, valid: dict, mutate, field: str, complaint: str
):
    mutate(valid)
    path = write_profile(tmp_path, valid)
    lines = error_lines(path)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"profile {path}: ")
    assert field in lines[0]
    assert complaint in lines[0]


def test_gpu_memory_utilization_in_range_loads(tmp_path: Path, valid: dict):
    valid["vllm"]["gpu_memory_utilization"] = 0.3
    assert load_profile(write_profile(tmp_path, valid)).profile.vllm.gpu_memory_utilization == 0.3


def test_request_rates_alone_are_a_load(tmp_path: Path, valid: dict):
    valid["workload"]["concurrency"] = []
    valid["workload"]["request_rates"] = [2.5]
    assert load_profile(write_profile(tmp_path, valid)).profile.workload.request_rates == [2.5]


def test_ssh_host_with_settings_loads(tmp_path: Path, valid: dict):
    valid["hosts"].append(
        {"name": "remote", "address": "10.0.0.2", "reach": "ssh", "ssh": {"user": "bench"}}
    )
    profile = load_profile(write_profile(tmp_path, valid)).profile
    assert profile.host("remote").ssh.user == "bench"


def test_each_malformed_field_has_its_own_line(tmp_path: Path, valid: dict):
    valid["workload"]["concurrency"] = ["many"]
    valid["vllm"]["gpu_memory_utilisation"] = 0.5
    path = write_profile(tmp_path, valid)
    lines = error_lines(path)
    assert len(lines) == 2, lines
    assert all(line.startswith(f"profile {path}: ") for line in lines)
    assert any("workload.concurrency.0:" in line for line in lines)
    assert any("vllm.gpu_memory_utilisation:" in line for line in lines)


def test_each_bad_reference_has_its_own_line(tmp_path: Path, valid: dict):
    valid["proxy"]["host"] = "controller"
    valid["arms"]["single"]["instance"]["host"] = "gpu9"
    lines = error_lines(write_profile(tmp_path, valid))
    assert len(lines) == 2, lines


@pytest.mark.parametrize("bad", ["abc", 0, "5:2"])
def test_bad_workload_length_is_a_profile_error(tmp_path: Path, valid: dict, bad):
    valid["workload"]["points"][0]["input_len"] = bad
    lines = error_lines(write_profile(tmp_path, valid))
    assert len(lines) == 1 and "workload.points.0.input_len" in lines[0]


def test_missing_file_is_one_line_naming_it(tmp_path: Path):
    path = tmp_path / "absent.yaml"
    lines = error_lines(path)
    assert lines == [f"profile {path}: cannot read (No such file or directory)"]


def test_directory_is_one_line_naming_it(tmp_path: Path):
    lines = error_lines(tmp_path)
    assert len(lines) == 1
    assert lines[0].startswith(f"profile {tmp_path}: cannot read")


def test_invalid_yaml_is_one_line_naming_it(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nhosts: [\n  {name: a\n")
    lines = error_lines(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"profile {path}: not valid YAML")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_non_mapping_is_one_line_naming_it(tmp_path: Path, text: str):
    path = tmp_path / "flat.yaml"
    path.write_text(text)
    assert error_lines(path) == [f"profile {path}: expected a mapping at the top level"]
