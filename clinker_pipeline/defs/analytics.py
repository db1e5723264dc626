"""Every table and view the README documents for analysts, created before anything is published.

Tables used to appear only when their first rows landed, so a documented query (the
`telemetry_plant_hourly` view, say) failed with "does not exist" on a file without telemetry.
Publishing (the pipeline's plan_tables, `clinker optimize`) calls `ensure_analyst_tables` first:
an empty table answers an empty result.
"""

from __future__ import annotations

import duckdb

from clinker_pipeline.defs.planning.store import LATEST_COMPARISON_VIEW, SCENARIO_COMPARISON_DDL
from clinker_pipeline.defs.quality.store import LATEST_VIEW, REASONS_DDL, REPORT_DDL
from clinker_pipeline.defs.telemetry.readings import FAMILY_TABLE, empty_family_frame
from clinker_pipeline.defs.telemetry.store import (
    ALERTS_DDL,
    DEAD_LETTER_DDL,
    LOADED_DDL,
    append_new,
    ensure_aggregate_views,
)
from clinker_pipeline.lib.store.backend import portable_ddl
from clinker_pipeline.lib.store.feeds import FEED_STATUS_DDL
from clinker_pipeline.lib.store.plan_store import ensure_schema
from clinker_pipeline.lib.store.quarantine import ensure_quarantine


def ensure_analyst_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create (if missing) every documented table and view; never touches existing rows."""
    ensure_schema(con)
    ensure_quarantine(con)
    for ddl in (
        FEED_STATUS_DDL,
        SCENARIO_COMPARISON_DDL,
        LATEST_COMPARISON_VIEW,
        REPORT_DDL,
        REASONS_DDL,
        LATEST_VIEW,
        LOADED_DDL,
        DEAD_LETTER_DDL,
        ALERTS_DDL,
    ):
        con.execute(portable_ddl(con, ddl))
    for family in FAMILY_TABLE:
        # an empty typed frame: append_new creates the table with the family's columns
        append_new(con, FAMILY_TABLE[family], empty_family_frame(family))
    ensure_aggregate_views(con)
