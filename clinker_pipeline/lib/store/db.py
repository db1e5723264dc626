"""The DuckDB plumbing every store shares: transactions, names, keyed tables and the upsert.

One `transaction()` instead of hand-written BEGIN/COMMIT/ROLLBACK; history tables carry a
PRIMARY KEY on their natural key so DuckDB's `INSERT OR REPLACE` does the upsert. The upsert is
this one function (`upsert`), so a backend without primary keys (DuckLake) can express it
another way in one place.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd

from clinker_pipeline.lib.store.backend import OPEN_TRANSACTIONS, conflict_retried, is_lake
from clinker_pipeline.lib.store.backend import upsert as insert_relation

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """A plain table or column name, safe to put in SQL text (anything else is refused)."""
    if not _NAME.match(name):
        raise ValueError(f"not a plain table/column name: {name!r}")
    return name


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: readers see the old state or the new one, never half of a write. Store
    functions called inside join this transaction instead of opening their own."""
    con.begin()
    OPEN_TRANSACTIONS.add(id(con))
    try:
        yield con
    except BaseException:
        # a COMMIT that failed (a DuckLake conflict) has ended the transaction already
        with contextlib.suppress(duckdb.TransactionException):
            con.rollback()
        raise
    else:
        con.commit()
    finally:
        OPEN_TRANSACTIONS.discard(id(con))


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema()",
        [table],
    ).fetchall()
    return bool(row and row[0][0])


def primary_key(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY' "
        "AND schema_name = current_schema()",
        [table],
    ).fetchall()  # fetchall: a half-read result would block `register` on this connection
    return tuple(row[0][0]) if row else ()


def _keyed_table(con: duckdb.DuckDBPyConnection, name: str, view: str, keys: Sequence[str]) -> None:
    """Create `name` shaped like `view` with PRIMARY KEY (keys); a table written before keys
    existed is rebuilt with them (its newest row per key kept)."""
    if is_lake(con):  # DuckLake has no keys: `upsert` keeps them unique itself
        if not table_exists(con, name):
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {view} LIMIT 0")
        return
    if table_exists(con, name) and primary_key(con, name) == tuple(keys):
        return
    source = name if table_exists(con, name) else view
    columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    body = ", ".join(f"{ident(c[0])} {c[1]}" for c in columns)
    key = ", ".join(keys)
    con.execute(f"CREATE TABLE _keyed_{name} ({body}, PRIMARY KEY ({key}))")
    if source == name:
        con.execute(
            f"INSERT INTO _keyed_{name} SELECT * FROM {name} "
            f"QUALIFY row_number() OVER (PARTITION BY {key}) = 1"
        )
        con.execute(f"DROP TABLE {name}")
    con.execute(f"ALTER TABLE _keyed_{name} RENAME TO {name}")


@conflict_retried
def upsert(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keys: Sequence[str]
) -> dict[str, int]:
    """Insert new keys, replace revised ones (one transaction); counts of inserted and revised.

    New columns of `frame` are added to the table (NULL for older rows). Rows of `frame` that
    repeat a key keep the last one, as a provider's later revision would.
    """
    name = ident(table)
    keys = [ident(k) for k in keys]
    frame = frame.drop_duplicates(list(keys), keep="last")
    con.register("_upsert_frame", frame)
    try:
        with transaction(con):
            _keyed_table(con, name, "_upsert_frame", keys)
            existing = {r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()}
            for column in frame.columns:
                if column not in existing:
                    kind = con.execute(
                        f"SELECT typeof({ident(column)}) FROM _upsert_frame LIMIT 1"
                    ).fetchall()
                    con.execute(
                        f"ALTER TABLE {name} ADD COLUMN {column} {kind[0][0] if kind else 'VARCHAR'}"
                    )
            match = " AND ".join(f"h.{k} = f.{k}" for k in keys)
            revised = con.execute(
                f"SELECT count(*) FROM {name} h JOIN _upsert_frame f ON {match}"
            ).fetchall()[0][0]
            insert_relation(
                con, name, "_upsert_frame", tuple(keys), columns=[ident(c) for c in frame.columns]
            )
    finally:
        con.unregister("_upsert_frame")
    return {"inserted": len(frame) - int(revised), "revised": int(revised)}


@conflict_retried
def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace `table` with `frame` in one transaction (readers see old or new, never half)."""
    name = ident(table)
    con.register("_snapshot_frame", frame)
    try:
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _snapshot_frame")
    finally:
        con.unregister("_snapshot_frame")
    return len(frame)
