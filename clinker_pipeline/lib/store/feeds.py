"""External feed tables in DuckDB: kept history, current snapshots, and each fetch's outcome.

Two storage rules, chosen per table:
- history tables (diesel, FX, indicators, cement prices) are upserted by their natural key, so
  a provider's revision replaces the old figure and the past stays for trends and volatility;
- snapshot tables (weather forecast, road availability, market statistics) are replaced whole,
  but only after a successful fetch: when a source is down, the last good snapshot stays and
  `feed_status` says so, which is how the plan learns its inputs were stale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.lib.calendar import PeriodWindow
from clinker_pipeline.optimization.scenarios import FeedInputs

FEED_STATUS_DDL = """
CREATE TABLE IF NOT EXISTS feed_status (
    checked_at TIMESTAMP NOT NULL,
    feed VARCHAR NOT NULL,
    status VARCHAR NOT NULL,        -- fresh | partial | stale | failed
    sample_mode BOOLEAN,
    rows_fetched INTEGER,
    rows_kept INTEGER,
    rows_quarantined INTEGER,
    data_as_of VARCHAR,             -- newest observation in the data (date or timestamp)
    last_good_at TIMESTAMP,         -- when this feed last fetched successfully
    message VARCHAR,
    dagster_run_id VARCHAR
)
"""

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

FRESH, PARTIAL, STALE, FAILED = "fresh", "partial", "stale", "failed"
#: Outcomes that wrote new data (a partial fetch still replaced what it could).
GOOD = (FRESH, PARTIAL)


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain table/column name: {name!r}")
    return name


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema()",
        [table],
    ).fetchone()
    return bool(row and row[0])


def replace_snapshot(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace `table` with `frame` in one transaction (readers see old or new, never half)."""
    name = _ident(table)
    con.register("_snapshot_frame", frame)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _snapshot_frame")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_snapshot_frame")
    return len(frame)


def upsert_history(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keys: Sequence[str]
) -> dict[str, int]:
    """Insert new keys, replace revised ones; returns counts of inserted and revised rows.

    The table is created from the first frame's columns; later frames must carry the same
    columns (new columns are added as NULL for older rows).
    """
    name = _ident(table)
    for key in keys:
        _ident(key)
    con.register("_history_frame", frame)
    try:
        con.execute("BEGIN TRANSACTION")
        if not table_exists(con, name):
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _history_frame LIMIT 0")
        existing = {r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()}
        for column in frame.columns:
            if column not in existing:
                kind = con.execute(
                    f"SELECT typeof({_ident(column)}) FROM _history_frame LIMIT 1"
                ).fetchone()
                con.execute(
                    f"ALTER TABLE {name} ADD COLUMN {column} {kind[0] if kind else 'VARCHAR'}"
                )
        match = " AND ".join(f"h.{k} IS NOT DISTINCT FROM f.{k}" for k in keys)
        revised = con.execute(
            f"SELECT count(*) FROM {name} h WHERE EXISTS "
            f"(SELECT 1 FROM _history_frame f WHERE {match})"
        ).fetchone()[0]
        con.execute(
            f"DELETE FROM {name} h WHERE EXISTS (SELECT 1 FROM _history_frame f WHERE {match})"
        )
        columns = ", ".join(_ident(c) for c in frame.columns)
        con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM _history_frame")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_history_frame")
    return {"inserted": len(frame) - int(revised), "revised": int(revised)}


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    """The whole table, or None when it was never written (no last good data)."""
    name = _ident(table)
    if not table_exists(con, name):
        return None
    return con.execute(f"SELECT * FROM {name}").df()


@dataclass(frozen=True)
class FeedStatus:
    feed: str
    status: str
    checked_at: datetime
    last_good_at: datetime | None
    data_as_of: str | None
    message: str


def record_status(
    con: duckdb.DuckDBPyConnection,
    feed: str,
    status: str,
    *,
    sample_mode: bool,
    rows_fetched: int = 0,
    rows_kept: int = 0,
    rows_quarantined: int = 0,
    data_as_of: str | None = None,
    message: str = "",
    dagster_run_id: str | None = None,
    now: datetime | None = None,
) -> FeedStatus:
    """Append this fetch's outcome; `last_good_at` carries forward from the last fresh fetch."""
    con.execute(FEED_STATUS_DDL)
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    previous = last_good(con, feed)
    good_at = now if status in GOOD else (previous.last_good_at if previous else None)
    if status not in GOOD and previous is not None and data_as_of is None:
        data_as_of = previous.data_as_of
    con.execute(
        "INSERT INTO feed_status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            now,
            feed,
            status,
            sample_mode,
            rows_fetched,
            rows_kept,
            rows_quarantined,
            data_as_of,
            good_at,
            message,
            dagster_run_id,
        ],
    )
    return FeedStatus(feed, status, now, good_at, data_as_of, message)


def last_good(con: duckdb.DuckDBPyConnection, feed: str) -> FeedStatus | None:
    """The last fetch of `feed` that wrote data, or None if it never succeeded."""
    if not table_exists(con, "feed_status"):
        return None
    row = con.execute(
        "SELECT checked_at, data_as_of, message FROM feed_status "
        "WHERE feed = ? AND status IN ('fresh', 'partial') ORDER BY checked_at DESC LIMIT 1",
        [feed],
    ).fetchone()
    if row is None:
        return None
    return FeedStatus(feed, FRESH, row[0], row[0], row[1], row[2])


def latest_statuses(con: duckdb.DuckDBPyConnection) -> dict[str, FeedStatus]:
    """The most recent outcome per feed (what the plan reports as stale or fresh)."""
    if not table_exists(con, "feed_status"):
        return {}
    rows = con.execute(
        "SELECT feed, status, checked_at, last_good_at, data_as_of, message FROM feed_status "
        "QUALIFY row_number() OVER (PARTITION BY feed ORDER BY checked_at DESC) = 1"
    ).fetchall()
    return {r[0]: FeedStatus(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}


SCENARIO_COMPARISON_DDL = """
CREATE TABLE IF NOT EXISTS scenario_comparison (
    comparison_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    scenario VARCHAR NOT NULL,
    description VARCHAR,
    status VARCHAR NOT NULL,
    cost_inr DOUBLE,
    production_cost_inr DOUBLE,
    transport_cost_inr DOUBLE,
    served_pct DOUBLE,
    unmet_t DOUBLE,
    shipped_t DOUBLE,
    rail_share_pct DOUBLE,
    road_share_pct DOUBLE,
    fuel_index DOUBLE,
    diesel_inr_per_litre DOUBLE,
    min_road_availability DOUBLE,
    cost_vs_base_pct DOUBLE,
    served_vs_base_pts DOUBLE,
    rail_share_vs_base_pts DOUBLE,
    plan_run_id VARCHAR,
    solve_s DOUBLE,
    message VARCHAR,
    stale_inputs JSON,
    dagster_run_id VARCHAR
)
"""

LATEST_COMPARISON_VIEW = """
CREATE OR REPLACE VIEW latest_scenario_comparison AS
SELECT * FROM scenario_comparison
WHERE comparison_id = (
    SELECT comparison_id FROM scenario_comparison ORDER BY created_at DESC LIMIT 1
)
"""


def write_comparison(
    con: duckdb.DuckDBPyConnection,
    table: pd.DataFrame,
    *,
    comparison_id: str,
    stale_inputs: dict[str, str] | None = None,
    dagster_run_id: str | None = None,
) -> int:
    """Append one scenario set's rows (one per scenario) under a single comparison_id."""
    con.execute(SCENARIO_COMPARISON_DDL)
    frame = table.copy()
    frame.insert(0, "created_at", datetime.now(UTC).replace(tzinfo=None))
    frame.insert(0, "comparison_id", comparison_id)
    frame["stale_inputs"] = json.dumps(stale_inputs or {})
    frame["dagster_run_id"] = dagster_run_id
    columns = [r[0] for r in con.execute("DESCRIBE scenario_comparison").fetchall()]
    frame = frame.reindex(columns=columns)
    con.register("_comparison_frame", frame)
    try:
        con.execute("INSERT INTO scenario_comparison SELECT * FROM _comparison_frame")
    finally:
        con.unregister("_comparison_frame")
    con.execute(LATEST_COMPARISON_VIEW)
    return len(frame)


def load_feed_inputs(con: duckdb.DuckDBPyConnection, periods: Sequence[PeriodWindow]) -> FeedInputs:
    """What the stored feeds say now, for the scenario layer, and which of them are stale.

    A feed whose latest fetch fell back to earlier data (stale), failed, or came back partial is
    named with the reason; the plan carries that list so nobody mistakes it for a fresh plan.
    """
    feeds = FeedInputs(periods=list(periods))
    if table_exists(con, "diesel_prices"):
        row = con.execute(
            "SELECT week, inr_per_litre FROM diesel_prices WHERE inr_per_litre IS NOT NULL "
            "ORDER BY week DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            feeds.diesel_week, feeds.diesel_inr_per_litre = str(row[0]), float(row[1])
    if table_exists(con, "weather_forecast"):
        steps = con.execute("SELECT * FROM weather_forecast").df()
        if len(steps):
            steps["step_start_utc"] = pd.to_datetime(steps["step_start_utc"], utc=True)
            feeds.weather_steps = steps
    for feed, status in latest_statuses(con).items():
        if status.status not in (FRESH,):
            since = (
                f"last good data from {status.last_good_at:%Y-%m-%d %H:%M} UTC"
                if (status.last_good_at)
                else "no good data"
            )
            feeds.stale[feed] = f"{status.status}: {since}; {status.message}"[:500]
    return feeds
