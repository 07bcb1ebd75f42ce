"""The `pdpipeline` command as a user sees it: its output, its files, and one-line errors."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from datetime import timedelta

import polars as pl
import pytest
import yaml

from pdpipeline.cli import main
from pdpipeline.warehouse.rows import CampaignRow
from pdpipeline.warehouse.store import Warehouse
from tests.support.local import ROOT, local_profile_data
from tests.support.profiles import MALFORMED
from tests.support.published import CAMPAIGN, two_variant_campaign

LOCAL_PROFILE = ROOT / "profiles" / "local.yaml"
OLDER_CAMPAIGN = "h100x2-20261126T000000Z"
VLLM_SERVER = "vllm.entrypoints.openai.api_server"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `pdpipeline ARGV`."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(capsys, *argv: str) -> str:
    """The single `pdpipeline: ...` line a failing command prints, having checked it exits 2."""
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pdpipeline: ")
    return lines[0]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    """The published pull-vs-push campaign, and an older campaign of the same profile that only
    has its record: the latest is the published one."""
    store = Warehouse(tmp_path_factory.mktemp("warehouse") / "pdpipeline.duckdb")
    tables = two_variant_campaign()
    store.replace(tables, where={"campaign_id": CAMPAIGN})
    published = tables["campaigns"].row(0, named=True)
    older = CampaignRow(
        campaign_id=OLDER_CAMPAIGN,
        started_at=published["started_at"] - timedelta(days=1),
        profile_name=published["profile_name"],
        profile_path=published["profile_path"],
        profile_sha256=published["profile_sha256"],
        profile_text=published["profile_text"],
        git_sha=None,
        versions=None,
    )
    store.replace({"campaigns": [older]}, where={"campaign_id": OLDER_CAMPAIGN})
    return store


def test_module_entry_point_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "pdpipeline", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pdpipeline ")
    for command in (
        "proxy",
        "bench",
        "plan",
        "kv-cache",
        "tiny-model",
        "sql",
        "campaign",
        "report",
        "export",
    ):
        assert re.search(rf"^\s+{command}\s+\S", done.stdout, re.MULTILINE), command


def _arms(plan_text: str) -> dict[str, str]:
    """Each `## arm NAME (...)` section of a plan, by NAME."""
    sections = plan_text.split("\n## arm ")[1:]
    return {section.split(" ", 1)[0]: section for section in sections}


def _vllm_commands(section: str) -> list[list[str]]:
    return [shlex.split(line) for line in section.splitlines() if VLLM_SERVER in line]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_plan_prints_each_arm_launch(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the profile's model dir is relative to the project root
    code, out, err = run_cli(capsys, "plan", str(LOCAL_PROFILE))
    assert (code, err) == (0, "")
    assert out.startswith("# profile local: model models/tiny-llama as tiny\n")
    arms = _arms(out)
    assert list(arms) == [
        "single",
        "replicated-2R",
        "disaggregated-1P1D-pull",
        "disaggregated-1P1D-push",
    ]

    model_dir = str(ROOT / "models" / "tiny-llama")
    ports = {}
    for arm, section in arms.items():
        commands = _vllm_commands(section)
        assert all(_option(argv, "--model") == model_dir for argv in commands), arm
        ports[arm] = [_option(argv, "--port") for argv in commands]
        proxy = [shlex.split(line) for line in section.splitlines() if "pdpipeline proxy" in line]
        assert len(proxy) == 1 and _option(proxy[0], "--port") == "8200", arm
    assert ports == {
        "single": ["8100"],
        "replicated-2R": ["8100", "8101"],
        "disaggregated-1P1D-pull": ["8100", "8101"],
        "disaggregated-1P1D-push": ["8100", "8101"],
    }

    pull, push = arms["disaggregated-1P1D-pull"], arms["disaggregated-1P1D-push"]
    assert "handoff variant pull: NixlConnector, sequential handoff" in pull
    assert "handoff variant push: NixlPushConnector, concurrent handoff" in push
    for section, connector in ((pull, "NixlConnector"), (push, "NixlPushConnector")):
        roles = [
            json.loads(_option(argv, "--kv-transfer-config")) for argv in _vllm_commands(section)
        ]
        assert [(r["kv_connector"], r["kv_role"]) for r in roles] == [
            (connector, "kv_producer"),
            (connector, "kv_consumer"),
        ]
    assert "--handoff concurrent" in push and "--handoff" not in pull


@pytest.mark.parametrize(
    "case", ["unknown-top-level-key", "misspelt-vllm-key", "concurrency-negative"]
)
def test_malformed_profile_is_one_line_naming_the_field(capsys, tmp_path, case):
    mutate, field, complaint = MALFORMED[case]
    data = local_profile_data(tmp_path / "model")
    mutate(data)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    line = one_error_line(capsys, "plan", str(path))
    assert str(path) in line and field in line and complaint in line


def test_unparsable_profile_is_one_line_naming_the_file(capsys, tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("name: [local\n")
    line = one_error_line(capsys, "plan", str(path))
    assert str(path) in line and "YAML" in line


def test_missing_profile_is_one_line_naming_the_path(capsys, tmp_path):
    path = tmp_path / "nowhere" / "profile.yaml"
    assert one_error_line(capsys, "plan", str(path)) == (
        f"pdpipeline: profile {path}: cannot read (No such file or directory)"
    )


def _config_bytes_per_token(config: dict) -> int:
    """K and V, per layer, per KV head, per head element, in bfloat16: the plain GQA layout."""
    assert config["torch_dtype"] == "bfloat16"
    return 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * config["head_dim"] * 2


def test_kv_cache_table_and_json_agree(capsys, tiny_model):
    config = tiny_model / "config.json"
    expected = _config_bytes_per_token(json.loads(config.read_text()))
    tokens = ["128", "1000"]

    code, table, err = run_cli(capsys, "kv-cache", str(config), "--tokens", *tokens)
    assert (code, err) == (0, "")
    first, *rest = table.splitlines()
    assert first.startswith("gqa, 2 layers, ")
    assert int(re.search(r"(\d+) bytes/token$", first).group(1)) == expected
    rows = {line.split()[0]: line.split()[1:] for line in rest if line.strip()}
    assert rows["tokens"] == tokens
    assert rows["bytes"] == [str(int(t) * expected) for t in tokens]

    code, text, err = run_cli(capsys, "kv-cache", str(config), "--tokens", *tokens, "--json")
    assert (code, err) == (0, "")
    data = json.loads(text)
    assert data["bytes_per_token"] == expected
    assert [(r["tokens"], r["bytes"]) for r in data["rows"]] == [
        (int(t), int(b)) for t, b in zip(rows["tokens"], rows["bytes"], strict=True)
    ]


def test_kv_cache_of_a_missing_config_names_it(capsys, tmp_path):
    config = tmp_path / "config.json"
    assert one_error_line(capsys, "kv-cache", str(config)) == (
        f"pdpipeline: model config not found: {config}"
    )


def test_sql_prints_an_aligned_table(capsys, warehouse):
    query = (
        "SELECT arm, variant, count(*) AS runs FROM runs WHERE campaign_id = '" + CAMPAIGN + "' "
        "GROUP BY ALL ORDER BY arm, variant"
    )
    code, out, err = run_cli(capsys, "sql", query, "--warehouse", str(warehouse.path))
    assert (code, err) == (0, "")
    header, rule, *rows, footer = out.splitlines()
    assert footer == "(4 rows)"
    # Every column starts where its rule of dashes starts, and is as wide as its widest cell.
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    assert len(spans) == 3

    def cells(line: str) -> list[str]:
        return [line[start:end].strip() for start, end in spans]

    assert cells(header) == ["arm", "variant", "runs"]
    assert [cells(row) for row in rows] == [
        ["disaggregated", "pull", "12"],
        ["disaggregated", "push", "12"],
        ["replicated", "", "12"],  # NULL variant: an empty cell
        ["single", "", "12"],
    ]
    assert spans[0][1] - spans[0][0] == len("disaggregated")


def test_sql_on_a_missing_warehouse_is_one_line_naming_it(capsys, tmp_path):
    path = tmp_path / "none.duckdb"
    line = one_error_line(capsys, "sql", "SELECT 1", "--warehouse", str(path))
    assert line.startswith(f"pdpipeline: no warehouse at {path}")
    assert not path.exists()  # looking did not create an empty one


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("SELECT nope FROM runs", '"nope" not found'),
        ("DROP TABLE runs", "read-only"),
    ],
)
def test_sql_a_bad_statement_is_one_line(capsys, warehouse, query, complaint):
    line = one_error_line(capsys, "sql", query, "--warehouse", str(warehouse.path))
    assert complaint in line
    assert warehouse.query("SELECT count(*) AS n FROM runs")["n"][0] == 48  # nothing dropped


def test_report_of_a_named_campaign(capsys, warehouse, tmp_path):
    out_dir = tmp_path / "report"
    code, out, err = run_cli(
        capsys, "report", CAMPAIGN, "--warehouse", str(warehouse.path), "--out", str(out_dir)
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"## Campaign {CAMPAIGN}\n")
    assert out.rstrip().endswith(f"report: {out_dir / 'report.html'}")
    html = (out_dir / "report.html").read_text()
    assert CAMPAIGN in html
    assert {"throughput.png", "latency.png", "goodput.png"} <= {p.name for p in out_dir.iterdir()}


def test_export_without_a_campaign_exports_the_latest(capsys, warehouse, tmp_path):
    out_dir = tmp_path / "export"
    code, out, err = run_cli(
        capsys, "export", "--warehouse", str(warehouse.path), "--out", str(out_dir)
    )
    assert (code, err) == (0, "")
    assert out == (
        f"campaign {CAMPAIGN} exported to {out_dir} (report: {out_dir / 'report.html'})\n"
    )
    for name in (
        "campaigns.csv",
        "hosts.csv",
        "kv_cache.csv",
        "runs.csv",
        "comparison.csv",
        "handoff_variants.csv",
        "requests.parquet",
        "profile.yaml",
        "report.html",
    ):
        assert (out_dir / name).is_file(), name

    def stored(table: str) -> int:
        sql = f"SELECT count(*) AS n FROM {table} WHERE campaign_id = ?"
        return warehouse.query(sql, [CAMPAIGN])["n"][0]

    assert pl.read_csv(out_dir / "campaigns.csv")["campaign_id"].to_list() == [CAMPAIGN]
    assert pl.read_csv(out_dir / "runs.csv").height == stored("runs") == 48
    assert pl.read_csv(out_dir / "comparison.csv").height == stored("comparison") > 0
    assert pl.read_parquet(out_dir / "requests.parquet").height == stored("requests")


@pytest.mark.parametrize("command", ["report", "export"])
def test_report_and_export_of_an_unknown_campaign_name_it(capsys, warehouse, tmp_path, command):
    line = one_error_line(
        capsys,
        command,
        "h100x2-nope",
        "--warehouse",
        str(warehouse.path),
        "--out",
        str(tmp_path / "out"),
    )
    assert line == f"pdpipeline: no campaign h100x2-nope in {warehouse.path}"
    assert not (tmp_path / "out").exists()


def test_report_on_a_warehouse_without_campaigns_says_so(capsys, tmp_path):
    empty = Warehouse(tmp_path / "empty.duckdb")
    empty.replace({"campaigns": []}, where={"campaign_id": "none"})  # the schema, no rows
    line = one_error_line(capsys, "report", "--warehouse", str(empty.path))
    assert line == f"pdpipeline: no campaign in {empty.path} yet: run a campaign first"


def test_export_from_a_missing_warehouse_names_it(capsys, tmp_path):
    path = tmp_path / "none.duckdb"
    line = one_error_line(
        capsys, "export", "--warehouse", str(path), "--out", str(tmp_path / "out")
    )
    assert line.startswith(f"pdpipeline: no warehouse at {path}")


def test_tiny_model_already_built_is_left_alone(capsys, tiny_model):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_model.iterdir()}
    code, out, err = run_cli(capsys, "tiny-model", "--out", str(tiny_model))
    assert (code, err) == (0, "")
    assert out == f"tiny model already at {tiny_model}\n"
    assert {p.name: p.stat().st_mtime_ns for p in tiny_model.iterdir()} == before
