"""A read-only copy of the DuckDB file for analysts, replaced atomically after each plan.

DuckDB allows one writing process per file, and a reader's lock blocks that writer. Analysts
therefore query the snapshot: the pipeline writes the main file, checkpoints it, copies it to a
temporary file and renames that over the snapshot. A reader that has the old snapshot open keeps
reading it undisturbed (the rename does not touch its open file); the next connection sees the
new plan.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb


def snapshot_path(database: str) -> Path | None:
    """`clinker.duckdb` -> `clinker_analytics.duckdb`; None for an in-memory database."""
    if not database or database == ":memory:":
        return None
    configured = os.getenv("CLINKER_ANALYTICS_DUCKDB_PATH", "").strip()
    if configured:
        return Path(configured).expanduser()
    path = Path(database).expanduser()
    return path.with_name(f"{path.stem}_analytics{path.suffix or '.duckdb'}")


def publish_snapshot(con: duckdb.DuckDBPyConnection, database: str) -> Path | None:
    """Checkpoint `con`'s database and atomically replace the analysts' snapshot with a copy.

    Call it while holding the writer connection, so no write lands between checkpoint and copy.
    """
    target = snapshot_path(database)
    if target is None:
        return None
    con.execute("CHECKPOINT")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(Path(database).expanduser(), tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
