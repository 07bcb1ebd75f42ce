"""The DuckDB warehouse: schema on first write, atomic replace-writes, read-only queries.

DuckDB lets one process hold a read-write connection at a time, and that lock blocks readers in
other processes too. So connections are short-lived: a writer opens, writes one transaction and
closes; readers open read_only and retry briefly while a writer holds the file. A write
connection brings the file to the latest schema version first (migrations.py): once per file,
after which it only reads the version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pdpipeline.paths import WAREHOUSE_PATH
from pdpipeline.warehouse.migrations import migrate
from pdpipeline.warehouse.rows import ROW_CLASSES, Row, to_frame


class Warehouse:
    def __init__(self, path: str | Path = WAREHOUSE_PATH) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, read_only: bool, attempts: int = 20) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path} yet: run a campaign first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        delay = 0.05
        for attempt in range(attempts):
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or attempt == attempts - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            if not read_only:
                migrate(con)
            yield con
        finally:
            con.close()

    def replace(
        self,
        tables: Mapping[str, Sequence[Row] | pl.DataFrame],
        where: Mapping[str, str],
    ) -> None:
        """In one transaction, delete the rows matching `where` from each table, then insert.

        Each table's rows come as its row objects (rows.py) or as a frame of its columns.
        Re-materializing an asset therefore replaces its rows; a failure leaves the old ones.
        """
        frames = {table: _frame(table, rows) for table, rows in tables.items()}
        condition = " AND ".join(f'"{column}" = ?' for column in where)
        with self._connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, frame in frames.items():
                    con.execute(f"DELETE FROM {table} WHERE {condition}", list(where.values()))
                    if frame.height:
                        con.register("incoming", frame.to_arrow())
                        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
                        con.unregister("incoming")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence | None = None) -> pl.DataFrame:
        """Run a read-only query and return a polars frame."""
        with self._connect(read_only=True) as con:
            return con.sql(sql, params=list(params or [])).pl()

    def execute_readonly(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Columns and rows of any read-only statement (for the `sql` command)."""
        with self._connect(read_only=True) as con:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return columns, cursor.fetchall()


def _frame(table: str, rows: Sequence[Row] | pl.DataFrame) -> pl.DataFrame:
    if isinstance(rows, pl.DataFrame):
        return rows
    expected = ROW_CLASSES[table]
    if rows and not isinstance(rows[0], expected):
        raise TypeError(f"rows for {table} are {type(rows[0]).__name__}, not {expected.__name__}")
    return to_frame(rows)
