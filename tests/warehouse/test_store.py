"""The DuckDB store on a real file: atomic replace-writes, read-only reads, a writer in another
process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import duckdb
import pytest

from pdpipeline.warehouse.rows import CampaignRow, KvCacheRow
from pdpipeline.warehouse.store import Warehouse


def campaign(campaign_id: str) -> CampaignRow:
    return CampaignRow(
        campaign_id=campaign_id,
        started_at=datetime(2026, 11, 28, tzinfo=UTC),
        profile_name="p",
        profile_path="p.yaml",
        profile_sha256="0" * 64,
        profile_text="name: p",
        git_sha=None,
        versions="{}",
    )


def kv(campaign_id: str, tokens: int) -> KvCacheRow:
    return KvCacheRow(
        campaign_id=campaign_id,
        tokens=tokens,
        bytes=tokens * 1024,
        bytes_per_token=1024,
        architecture="mha",
        kv_dtype="bfloat16",
        link="NVLink",
        link_source="catalogue",
        link_gbit_per_s=100.0,
        predicted_seconds=0.001,
    )


def test_replace_swaps_only_the_rows_matching_where(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"kv_cache": [kv("a", 128), kv("a", 256), kv("b", 128)]}, {"campaign_id": "a"})
    store.replace({"kv_cache": [kv("b", 128)]}, {"campaign_id": "b"})
    store.replace({"kv_cache": [kv("a", 512)]}, {"campaign_id": "a"})
    rows = store.query("SELECT campaign_id, tokens FROM kv_cache ORDER BY ALL").rows()
    assert rows == [("a", 512), ("b", 128)]


def test_a_failed_replace_leaves_the_earlier_rows(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"campaigns": [campaign("a")], "kv_cache": [kv("a", 128)]}, {"campaign_id": "a"})
    # The second table's insert breaks a NOT NULL column: the first table's delete is undone too.
    broken = dataclasses.replace(campaign("a"), profile_name=None)
    with pytest.raises(duckdb.ConstraintException):
        store.replace({"kv_cache": [kv("a", 512)], "campaigns": [broken]}, {"campaign_id": "a"})
    assert store.query("SELECT tokens FROM kv_cache")["tokens"].to_list() == [128]
    assert store.query("SELECT campaign_id FROM campaigns")["campaign_id"].to_list() == ["a"]


def test_reads_are_read_only_and_name_a_missing_file(tmp_path):
    missing = Warehouse(tmp_path / "none.duckdb")
    with pytest.raises(FileNotFoundError, match=r"none\.duckdb"):
        missing.query("SELECT 1")
    assert not missing.path.exists()
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"kv_cache": [kv("a", 128)]}, {"campaign_id": "a"})
    with pytest.raises(duckdb.Error, match="read-only"):
        store.execute_readonly("DELETE FROM kv_cache")
    columns, rows = store.execute_readonly("SELECT campaign_id, tokens FROM kv_cache")
    assert (columns, rows) == (["campaign_id", "tokens"], [("a", 128)])


def test_a_reader_waits_while_another_process_writes(tmp_path):
    store = Warehouse(tmp_path / "w.duckdb")
    store.replace({"kv_cache": [kv("a", 128)]}, {"campaign_id": "a"})
    # A writer in another process holds DuckDB's file lock for a moment, as a campaign does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time, duckdb
                con = duckdb.connect({str(store.path)!r})
                print("locked", flush=True)
                time.sleep(1.5)
                con.close()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        tokens = store.query("SELECT tokens FROM kv_cache")["tokens"].to_list()
        waited = time.monotonic() - started
    finally:
        holder.wait(30)
    assert tokens == [128]
    assert waited > 0.2  # it retried while the lock was held, rather than failing
