"""Warehouse rows (one class per table, its fields the table's columns) and schema versions."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from pathlib import Path
from types import NoneType

import duckdb
import polars as pl
import pytest

from pdpipeline.loadgen.bench import BenchResult
from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.matrix import workload_points
from pdpipeline.loadgen.metrics import MetricDelta
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.stats import summarize
from pdpipeline.loadgen.window import Sizing
from pdpipeline.plan import plan_arms
from pdpipeline.profile import Profile
from pdpipeline.report.compare import compare
from pdpipeline.warehouse.measured import ArmResult
from pdpipeline.warehouse.migrations import LATEST, MIGRATIONS, migrate
from pdpipeline.warehouse.rows import (
    ROW_CLASSES,
    ComparisonRow,
    HostRow,
    columns,
    polars_schema,
    to_frame,
)
from pdpipeline.warehouse.store import Warehouse
from tests.support.local import local_profile_data
from tests.support.published import CAMPAIGN, two_variant_campaign

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "pdpipeline" / "warehouse" / "schema.sql"
DUCKDB_TYPES = {
    pl.String: {"VARCHAR", "JSON"},
    pl.Int64: {"INTEGER", "BIGINT"},
    pl.Float64: {"DOUBLE"},
    pl.Boolean: {"BOOLEAN"},
    pl.Datetime: {"TIMESTAMP WITH TIME ZONE"},
}
# Every schema step, in version order; the first three were the first ones written.
STEPS = sorted(m.version for m in MIGRATIONS)
assert STEPS[:3] == [1, 2, 3]
# Columns each table gained after the first release, i.e. through MIGRATIONS.
ADDED_LATER = {
    "hosts": ["nvlink", "nvlink_gbit_per_s"],
    "runs": [
        "variant",
        "window_start",
        "window_end",
        "window_s",
        "window_requests",
        "window_short",
        "saturated",
        "whole_run_duration_s",
        "whole_run_output_throughput",
        "whole_run_request_throughput",
    ],
    "requests": [
        "variant",
        "prefill_s",
        "handoff_s",
        "kv_blocks",
        "scheduled_at",
        "queue_s",
        "in_window",
    ],
    "server_metrics": ["variant"],
    "comparison": ["variant", "kv_link", "kv_link_gbyte_per_s", "kv_link_fraction"],
}


def table_columns(path: Path) -> dict[str, list[tuple[str, str, bool]]]:
    """Each table's (column, type, nullable), in order; views left out."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable "
            "FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, table_name) "
            "WHERE c.database_name = current_database() ORDER BY c.table_name, c.column_index"
        ).fetchall()
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for table, *column in found:
        tables.setdefault(table, []).append(tuple(column))
    return tables


def versions(path: Path) -> list[int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [
            v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        ]


def touch(warehouse: Warehouse) -> None:
    """One write connection, writing nothing."""
    warehouse.replace({}, where={"campaign_id": "none"})


def sample_row(row_class: type, campaign_id: str, nullable_value: bool):
    """A row of `row_class` with a value in every column, or None wherever a column may be."""
    values = {
        str: '["x"]',  # JSON text, so JSON columns take it too
        int: 1,
        float: 1.5,
        bool: True,
        datetime: datetime(2026, 1, 2, tzinfo=UTC),
    }
    fields = {}
    for name, hint in typing.get_type_hints(row_class).items():
        (kind,) = (t for t in typing.get_args(hint) or (hint,) if t is not NoneType)
        optional = NoneType in typing.get_args(hint)
        fields[name] = None if optional and not nullable_value else values[kind]
    fields["campaign_id"] = campaign_id
    if "arm" in fields:
        fields["arm"] = "single"  # runs take only the three arms
    if "bound" in fields:
        fields["bound"] = "found"  # slo_capacity takes only its three bounds
    return row_class(**fields)


def test_each_table_has_a_row_class_whose_fields_are_its_columns(tmp_path):
    path = tmp_path / "w.duckdb"
    touch(Warehouse(path))
    tables = table_columns(path)
    assert set(tables) == set(ROW_CLASSES) | {"schema_version"}
    for table, row_class in ROW_CLASSES.items():
        assert columns(row_class) == [name for name, _, _ in tables[table]], table
        hints = typing.get_type_hints(row_class)
        for name, sql_type, nullable in tables[table]:
            assert sql_type in DUCKDB_TYPES[polars_schema(row_class)[name].base_type()], name
            assert (NoneType in typing.get_args(hints[name])) == nullable, f"{table}.{name}"


@pytest.mark.parametrize("filled", [True, False], ids=["every-column", "nulls-where-allowed"])
def test_rows_of_every_table_are_stored_as_given(tmp_path, filled):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    rows = {table: sample_row(cls, "c1", filled) for table, cls in ROW_CLASSES.items()}
    for row in rows.values():
        assert to_frame([row]).schema == polars_schema(type(row))
    warehouse.replace({table: [row] for table, row in rows.items()}, where={"campaign_id": "c1"})
    for table, row in rows.items():
        stored = warehouse.query(f"SELECT * FROM {table}").rows(named=True)
        assert stored == [dataclasses.asdict(row)], table


def test_rows_of_another_table_are_refused(tmp_path):
    host = sample_row(HostRow, "c1", True)
    with pytest.raises(TypeError, match="rows for runs are HostRow, not RunRow"):
        Warehouse(tmp_path / "w.duckdb").replace({"runs": [host]}, where={"campaign_id": "c1"})


def test_an_arm_result_is_stored_as_collected(tmp_path, tiny_model):
    profile = Profile.model_validate(local_profile_data(tiny_model))
    plan = plan_arms(profile, "disaggregated")[0]
    point = next(workload_points(profile.workload))
    records = [
        RequestRecord(
            index=i,
            request_id=f"r{i}",
            served_by="prefill=a,decode=b",
            sent_at=1_700_000_000.0 + i,
            ttft_s=0.1,
            e2e_s=0.1 + 0.01 * 15,
            itl_s=[0.01] * 15,
            prompt_tokens=256,
            output_tokens=16,
            expected_prompt_tokens=256,
            expected_output_tokens=16,
            status=200,
            prefill_s=0.05,
            handoff_s=0.02,
            kv_blocks=16,
        )
        for i in range(4)
    ]
    decode = next(i.server.name for i in plan.instances if i.server.role == "decode")
    metrics = [
        MetricDelta(decode, "vllm:nixl_bytes_transferred_sum", "{}", 0.0, 4096.0, 4096.0),
        MetricDelta(decode, "vllm:nixl_bytes_transferred_count", "{}", 0.0, 4.0, 4.0),
        MetricDelta(decode, "vllm:num_requests_running", "{}", None, 0.0, 0.0),
    ]
    # At concurrency 2 the window runs from the 2nd completion (1.25 s) to the last start (3 s).
    summary = summarize(records, plan.devices, load=Load(concurrency=2), sizing=Sizing(1.0, 2))
    result = ArmResult("disaggregated")
    result.add_point("c1", point, BenchResult(records, summary, metrics, 0), plan)
    assert result.valid and result.runs[0].kv_bytes == 4096.0
    assert [r.request_index for r in result.requests] == [0, 1, 2, 3]
    run = result.runs[0]
    assert (run.window_s, run.window_requests, run.window_short) == (1.75, 2, False)
    assert [r.in_window for r in result.requests] == [False, False, True, True]

    warehouse = Warehouse(tmp_path / "w.duckdb")
    tables = {
        "runs": result.runs,
        "requests": result.requests,
        "server_metrics": result.server_metrics,
    }
    warehouse.replace(tables, where={"campaign_id": "c1"})
    for table, rows in tables.items():
        stored = warehouse.query(f"SELECT * FROM {table}").rows(named=True)
        assert stored == [dataclasses.asdict(r) for r in rows], table


def test_a_comparison_has_exactly_the_comparison_tables_columns(tmp_path):
    table = compare(two_variant_campaign()["runs"])
    assert table.columns == columns(ComparisonRow)
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace({"comparison": table}, where={"campaign_id": CAMPAIGN})
    stored = warehouse.query("SELECT * FROM comparison")
    assert stored.columns == columns(ComparisonRow) and stored.height == table.height


def first_release_warehouse(path: Path) -> None:
    """A file as the first release left it: no schema_version, no handoff_variants, and none of
    the columns added since."""
    with duckdb.connect(str(path)) as con:
        con.execute(SCHEMA_SQL.read_text())
        con.execute("DROP TABLE handoff_variants")
        for table, added in ADDED_LATER.items():
            for column in added:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("INSERT INTO hosts (campaign_id, host) VALUES ('old', 'gpu-a')")


def test_an_old_warehouse_gains_the_new_columns_once_on_its_first_write(tmp_path):
    path = tmp_path / "old.duckdb"
    first_release_warehouse(path)
    assert "variant" not in [c for c, _, _ in table_columns(path)["runs"]]
    warehouse = Warehouse(path)

    host = dataclasses.replace(sample_row(HostRow, "new", True), nvlink='[{"links": 18}]')
    warehouse.replace({"hosts": [host]}, where={"campaign_id": "new"})

    tables = table_columns(path)
    for table, row_class in ROW_CLASSES.items():
        assert set(columns(row_class)) == {c for c, _, _ in tables[table]}, table
    assert versions(path) == STEPS
    stored = warehouse.query("SELECT campaign_id, host, nvlink FROM hosts ORDER BY campaign_id")
    assert stored.rows() == [("new", '["x"]', '[{"links": 18}]'), ("old", "gpu-a", None)]
    # The views read migrated columns.
    assert warehouse.query("SELECT variant FROM request_kv").height == 0

    with duckdb.connect(str(path)) as con:
        assert migrate(con) == []
    touch(warehouse)
    assert versions(path) == STEPS


def test_a_warehouse_part_way_gets_only_the_later_steps(tmp_path):
    path = tmp_path / "part-way.duckdb"
    first_release_warehouse(path)
    with duckdb.connect(str(path)) as con:
        con.execute(MIGRATIONS[0].sql)
        con.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO schema_version VALUES (1, now())")
        assert sorted(migrate(con)) == STEPS[1:]
    assert versions(path) == STEPS


def test_a_new_warehouse_starts_at_the_latest_version(tmp_path):
    path = tmp_path / "new.duckdb"
    warehouse = Warehouse(path)
    touch(warehouse)
    assert versions(path) == [LATEST]
    touch(warehouse)
    assert versions(path) == [LATEST]
