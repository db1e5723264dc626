"""What the plan reads from and writes to the feed side of DuckDB: the feed inputs of the
scenario layer (latest diesel, the weather steps, which feeds are stale) and the scenario
comparison history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.lib.calendar import PeriodWindow
from clinker_pipeline.lib.store.feeds import FRESH, latest_statuses, table_exists
from clinker_pipeline.optimization.scenarios import FeedInputs

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
