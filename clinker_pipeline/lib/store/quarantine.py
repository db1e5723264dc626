"""The quarantine: every row a feed could not use, with the reason and the raw record.

Bad rows are kept here instead of being dropped, so a planner can see what was left out of a
plan and a data owner can fix it at the source.

One row per distinct problem: re-running unchanged input does not append the same rows again;
the existing row moves to the run that saw it last (`dagster_run_id`, `quarantined_at`) and
counts the sightings (`times_seen`, `first_quarantined_at`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.instance.problems import Problem

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    quarantined_at TIMESTAMP NOT NULL,
    dagster_run_id VARCHAR,
    feed VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    source VARCHAR,
    source_row INTEGER,
    column_name VARCHAR,
    severity VARCHAR NOT NULL,
    rule VARCHAR,
    reason VARCHAR NOT NULL,
    raw_record JSON
)
"""
# added after the first release, at the end: older files gain them
ADDED_COLUMNS = (("first_quarantined_at", "TIMESTAMP"), ("times_seen", "INTEGER"))
# what makes two quarantine rows the same problem
IDENTITY = (
    "feed",
    "table_name",
    "source",
    "source_row",
    "column_name",
    "severity",
    "rule",
    "reason",
    "raw_record",
)


def ensure_quarantine(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(QUARANTINE_DDL)
    for column, kind in ADDED_COLUMNS:
        con.execute(f"ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS {column} {kind}")


def quarantine_problems(
    con: duckdb.DuckDBPyConnection,
    problems: Iterable[Problem],
    tables: dict[str, pd.DataFrame],
    *,
    feed: str,
    dagster_run_id: str | None = None,
) -> int:
    """Record problems with the offending row as JSON; returns how many problems were recorded
    (new rows, or known ones seen again)."""
    ensure_quarantine(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    records = []
    for p in problems:
        records.append(
            {
                "quarantined_at": now,
                "dagster_run_id": dagster_run_id,
                "feed": feed,
                "table_name": p.table,
                "source": p.source,
                "source_row": p.row,
                "column_name": p.column,
                "severity": p.severity,
                "rule": p.rule,
                "reason": p.message,
                "raw_record": (
                    json.dumps(p.record, default=str)
                    if p.record is not None
                    else _raw_record(tables.get(p.table), p.row)
                ),
            }
        )
    if not records:
        return 0
    frame = pd.DataFrame(records).assign(first_quarantined_at=now, times_seen=1)
    frame["source_row"] = pd.array(frame["source_row"], dtype="Int64")
    columns = [c[0] for c in con.execute("DESCRIBE quarantine").fetchall()]
    # typed like the table, so that NULLs and numbers compare as stored
    con.execute("CREATE OR REPLACE TEMP TABLE _quarantine_new AS FROM quarantine LIMIT 0")
    try:
        con.from_df(frame.reindex(columns=columns)).insert_into("_quarantine_new")
        same = " AND ".join(f"q.{c} IS NOT DISTINCT FROM n.{c}" for c in IDENTITY)
        con.execute(
            "UPDATE quarantine q SET dagster_run_id = n.dagster_run_id, "
            "quarantined_at = n.quarantined_at, "
            "first_quarantined_at = coalesce(q.first_quarantined_at, q.quarantined_at), "
            "times_seen = coalesce(q.times_seen, 1) + 1 "
            f"FROM (SELECT DISTINCT * FROM _quarantine_new) n WHERE {same}"
        )
        con.execute(
            "INSERT INTO quarantine SELECT * FROM _quarantine_new n "
            f"WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE {same})"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _quarantine_new")
    return len(records)


def _raw_record(table: pd.DataFrame | None, row: int | None) -> str | None:
    if table is None or row is None or "source_row" not in table:
        return None
    hit = table[table["source_row"] == row]
    if hit.empty:
        return None
    record = hit.iloc[0].drop(labels=["source_row"]).to_dict()
    return json.dumps({k: (None if pd.isna(v) else v) for k, v in record.items()}, default=str)
