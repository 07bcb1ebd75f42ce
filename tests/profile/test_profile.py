"""Profile loading: the shipped profiles load, and every bad field is one line naming it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from pdpipeline.errors import ProfileError
from pdpipeline.profile import load_profile, stored_profile
from tests.support.local import ROOT, local_profile_data
from tests.support.profiles import MALFORMED

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


def test_lengths_that_fill_max_model_len_exactly_load(tmp_path: Path, valid: dict):
    valid["workload"]["points"] = [{"input_len": "256:1000", "output_len": 24}]
    assert load_profile(write_profile(tmp_path, valid)).profile.vllm.max_model_len == 1024


def test_lengths_are_unchecked_without_max_model_len(tmp_path: Path, valid: dict):
    del valid["vllm"]["max_model_len"]
    valid["workload"]["points"] = [{"input_len": 100_000, "output_len": 64}]
    assert load_profile(write_profile(tmp_path, valid)).profile.vllm.max_model_len is None


def test_devices_are_unchecked_on_a_host_that_lists_none(tmp_path: Path, valid: dict):
    # Not declared: hardware_check checks the placement against the devices the host has.
    valid["hosts"][0]["devices"] = []
    valid["arms"]["single"]["instance"]["devices"] = [7]
    assert load_profile(write_profile(tmp_path, valid)).profile.host("local").devices == []


def test_prefill_and_decode_may_share_a_device_when_allowed(tmp_path: Path, valid: dict):
    valid["arms"]["disaggregated"]["decode"][0]["devices"] = [0]
    valid["arms"]["disaggregated"]["allow_shared_devices"] = True
    d = load_profile(write_profile(tmp_path, valid)).profile.arms.disaggregated
    assert d is not None and d.prefill[0].devices == d.decode[0].devices == [0]


def test_arms_reuse_each_others_devices_and_ports(tmp_path: Path, valid: dict):
    # Arms run one at a time: single-0, replicated-0 and disaggregated-prefill-0 all take
    # device 0 and the first HTTP port.
    profile = load_profile(write_profile(tmp_path, valid)).profile
    first = [profile.instances(arm)[0] for arm in profile.enabled_arms]
    assert {(s.placement.devices[0], profile.vllm.http_port(s.index)) for s in first} == {
        (0, profile.vllm.base_port)
    }


def test_cpu_placement_without_devices_loads(tmp_path: Path, valid: dict):
    valid["arms"]["single"]["instance"]["devices"] = []
    assert load_profile(write_profile(tmp_path, valid)).profile.arms.single.instance.devices == []


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


def test_a_stored_profile_is_read_back_or_is_one_profile_error(tmp_path: Path, valid: dict):
    text = yaml.safe_dump(valid, sort_keys=False)
    assert stored_profile(text) == load_profile(write_profile(tmp_path, valid)).profile
    # A profile of an older format: the reader that falls back catches one error.
    with pytest.raises(ProfileError, match=r"^stored profile: hosts: "):
        stored_profile("name: old\nhosts: 3\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        stored_profile("name: [")
