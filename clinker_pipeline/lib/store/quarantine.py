"""The quarantine: every row a feed could not use, with the reason and the raw record.

Bad rows are kept here instead of being dropped, so a planner can see what was left out of a
plan and a data owner can fix it at the source.
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


def quarantine_problems(
    con: duckdb.DuckDBPyConnection,
    problems: Iterable[Problem],
    tables: dict[str, pd.DataFrame],
    *,
    feed: str,
    dagster_run_id: str | None = None,
) -> int:
    """Record problems with the offending row as JSON; returns how many rows were written."""
    con.execute(QUARANTINE_DDL)
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
    con.from_df(pd.DataFrame(records)).insert_into("quarantine")
    return len(records)


def _raw_record(table: pd.DataFrame | None, row: int | None) -> str | None:
    if table is None or row is None or "source_row" not in table:
        return None
    hit = table[table["source_row"] == row]
    if hit.empty:
        return None
    record = hit.iloc[0].drop(labels=["source_row"]).to_dict()
    return json.dumps({k: (None if pd.isna(v) else v) for k, v in record.items()}, default=str)
