"""Retention for the analysts' DuckDB tables: drop old plan runs and old quarantine rows.

Plan runs are only ever appended, so without pruning the database grows with every solve. A run
is deleted only when it is older than the age limit AND it is neither one of the newest
`keep_latest_runs` runs nor the newest successful base-scenario run (the one the `latest_plan_*`
views point at), so dashboards never lose their plan however long the planner has been idle.
A run's rows go from `plan_runs` and every detail table in one transaction: no orphans, no
half-deleted run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from clinker_pipeline.lib.store.db import transaction
from clinker_pipeline.lib.store.plan_store import DETAIL_TABLES, ensure_schema
from clinker_pipeline.lib.store.quarantine import QUARANTINE_DDL


def runs_to_delete(
    con: duckdb.DuckDBPyConnection,
    *,
    plan_runs_keep_days: int,
    keep_latest_runs: int,
    now: datetime,
) -> list[str]:
    """Run ids older than the cutoff that are not protected (newest N, newest good base run)."""
    cutoff = now - timedelta(days=plan_runs_keep_days)
    rows = con.execute(
        "SELECT run_id FROM plan_runs ORDER BY created_at DESC, run_id DESC LIMIT ?",
        [keep_latest_runs],
    ).fetchall()
    keep = {r[0] for r in rows}
    # the run the latest_plan_* views show (ensure_schema has created them)
    newest_good = con.execute("SELECT run_id FROM latest_plan_run").fetchone()
    if newest_good is not None:
        keep.add(newest_good[0])
    old = con.execute(
        "SELECT run_id FROM plan_runs WHERE created_at < ? ORDER BY created_at", [cutoff]
    ).fetchall()
    return [r[0] for r in old if r[0] not in keep]


def apply_retention(
    con: duckdb.DuckDBPyConnection,
    *,
    plan_runs_keep_days: int,
    keep_latest_runs: int,
    quarantine_keep_days: int,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete expired plan runs (all tables, one transaction) and quarantine rows.

    `now` is naive UTC like the stored timestamps (defaults to the current time). Returns the
    number of rows deleted per table, every table present even when nothing was deleted.
    """
    for name, value in (
        ("plan_runs_keep_days", plan_runs_keep_days),
        ("keep_latest_runs", keep_latest_runs),
        ("quarantine_keep_days", quarantine_keep_days),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if now is None:
        now = datetime.now(UTC).replace(tzinfo=None)
    elif now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)

    ensure_schema(con)
    con.execute(QUARANTINE_DDL)
    doomed = runs_to_delete(
        con, plan_runs_keep_days=plan_runs_keep_days, keep_latest_runs=keep_latest_runs, now=now
    )
    counts: dict[str, int] = {name: 0 for name in ("plan_runs", *DETAIL_TABLES)}
    if doomed:
        with transaction(con):
            for table in (*DETAIL_TABLES, "plan_runs"):
                counts[table] = _delete(con, table, "list_contains(?, run_id)", [doomed])
    counts["quarantine"] = _delete(
        con,
        "quarantine",
        "quarantined_at < ?",
        [now - timedelta(days=quarantine_keep_days)],
    )
    return counts


def _delete(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list) -> int:
    row = con.execute(f"DELETE FROM {table} WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0
