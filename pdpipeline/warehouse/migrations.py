"""Schema versions of a warehouse file, recorded in its `schema_version` table.

A new file is created from schema.sql at the latest version. A file of an earlier version is
brought to it once, step by step, in one transaction; after that a write connection only reads
the version. A file from before versions were recorded counts as version 0, whatever columns it
gained on its own: the steps say `IF NOT EXISTS`, so one is harmless where its columns are there.

Views (views.sql) are re-applied on every write connection, after the steps (they read migrated
columns): a changed view reaches every file without a step of its own, for a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "hosts: NVLink links and their rate",
        """
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS nvlink JSON;
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS nvlink_gbit_per_s DOUBLE;
        """,
    ),
    Migration(
        2,
        "handoff variants: the variant of every run, request, metric and comparison row; "
        "the KV link a comparison row sets its transfer rate against",
        """
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS variant VARCHAR;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS variant VARCHAR;
        ALTER TABLE server_metrics ADD COLUMN IF NOT EXISTS variant VARCHAR;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS variant VARCHAR;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS kv_link VARCHAR;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS kv_link_gbyte_per_s DOUBLE;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS kv_link_fraction DOUBLE;
        """,
    ),
    Migration(
        3,
        "requests: the proxy's prefill leg, handoff wait and KV blocks",
        """
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS prefill_s DOUBLE;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS handoff_s DOUBLE;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS kv_blocks INTEGER;
        """,
    ),
    Migration(
        4,
        "steady windows: each run's window, whole-run figures and saturation; each request's "
        "scheduled arrival, queue wait and whether it started inside the window",
        """
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_start DOUBLE;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_end DOUBLE;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_s DOUBLE;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_requests INTEGER;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS window_short BOOLEAN;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS saturated BOOLEAN;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS whole_run_duration_s DOUBLE;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS whole_run_output_throughput DOUBLE;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS whole_run_request_throughput DOUBLE;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS scheduled_at DOUBLE;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS queue_s DOUBLE;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS in_window BOOLEAN;
        """,
    ),
    Migration(
        5,
        "slo_goodput and regime_map: goodput per SLO tier and the regime map",
        # New tables only: schema.sql, run before the steps, creates them in an older file.
        "",
    ),
    Migration(
        6,
        "layouts and engine variants: the layout and engine variant of every run, request, "
        "metric and derived row; runs measured by a rate search; slo_capacity",
        """
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS layout VARCHAR;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS engine_variant VARCHAR;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS engine_args JSON;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS searched_for VARCHAR;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS layout VARCHAR;
        ALTER TABLE requests ADD COLUMN IF NOT EXISTS engine_variant VARCHAR;
        ALTER TABLE server_metrics ADD COLUMN IF NOT EXISTS layout VARCHAR;
        ALTER TABLE server_metrics ADD COLUMN IF NOT EXISTS engine_variant VARCHAR;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS layout VARCHAR;
        ALTER TABLE comparison ADD COLUMN IF NOT EXISTS engine_variant VARCHAR;
        ALTER TABLE slo_goodput ADD COLUMN IF NOT EXISTS layout VARCHAR;
        ALTER TABLE slo_goodput ADD COLUMN IF NOT EXISTS engine_variant VARCHAR;
        ALTER TABLE regime_map ADD COLUMN IF NOT EXISTS winner_layout VARCHAR;
        ALTER TABLE regime_map ADD COLUMN IF NOT EXISTS winner_engine_variant VARCHAR;
        ALTER TABLE regime_map ADD COLUMN IF NOT EXISTS challenger_layout VARCHAR;
        ALTER TABLE regime_map ADD COLUMN IF NOT EXISTS challenger_engine_variant VARCHAR;
        """,
    ),
    Migration(
        7,
        "recommendations and search_rounds",
        # New tables only: schema.sql, run before the steps, creates them in an older file.
        "",
    ),
    Migration(
        8,
        "runs: requests per backend of each role",
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS backend_requests JSON;",
    ),
    Migration(
        9,
        "kv_cost_model and kv_cost_fit: the KV transfer cost model per link and per run",
        # New tables only: schema.sql, run before the steps, creates them in an older file.
        "",
    ),
    Migration(
        10,
        "requests: the proxy's time from arrival to first byte",
        "ALTER TABLE requests ADD COLUMN IF NOT EXISTS proxy_s DOUBLE;",
    ),
    Migration(
        11,
        "launch_servers: each launch's servers as the preflight found them; recommendations: "
        "what dominates the comparison instead of the architecture",
        # launch_servers is a new table: schema.sql, run before the steps, creates it.
        "ALTER TABLE recommendations ADD COLUMN IF NOT EXISTS caveat VARCHAR;",
    ),
)
LATEST = MIGRATIONS[-1].version

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL
)
"""


def _sql(name: str) -> str:
    return Path(__file__).with_name(name).read_text()


def recorded_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The file's schema version; None when it records none (new, or from before versions)."""
    if "schema_version" not in _tables(con):
        return None
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Bring the file to the latest version; the versions recorded (none when it was there)."""
    current = recorded_version(con)
    if current is not None and current >= LATEST:
        con.execute(_sql("views.sql"))
        return []
    new_file = current is None and not _tables(con)
    steps = [] if new_file else [m for m in MIGRATIONS if m.version > (current or 0)]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(VERSION_TABLE)
        # Tables an older file lacks are created at their latest shape; the steps skip them.
        con.execute(_sql("schema.sql"))
        for step in steps:
            con.execute(step.sql)
        con.execute(_sql("views.sql"))
        recorded = [m.version for m in steps] if steps else [LATEST]
        con.executemany(
            "INSERT INTO schema_version VALUES (?, current_timestamp)", [[v] for v in recorded]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return recorded


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    return {name for (name,) in rows}
