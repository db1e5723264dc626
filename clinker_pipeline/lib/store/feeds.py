"""External feed tables in DuckDB: kept history, current snapshots, and each fetch's outcome.

Two storage rules, chosen per table:
- history tables (a feed declares them with their keys) are upserted by their natural key, so
  a provider's revision replaces the old figure and the past stays for trends and volatility;
- snapshot tables (a forecast, derived statistics) are replaced whole,
  but only after a successful fetch: when a source is down, the last good snapshot stays and
  `feed_status` says so, which is how the plan learns its inputs were stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.lib.store.db import ident, replace_table, table_exists, upsert

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

#: The status words of `feed_status.status`, written and matched only through these names.
FRESH, PARTIAL, STALE, FAILED = "fresh", "partial", "stale", "failed"
#: Outcomes that wrote new data (a partial fetch still replaced what it could).
GOOD = (FRESH, PARTIAL)


def replace_snapshot(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace a snapshot table whole (see `lib/store/db.replace_table`)."""
    return replace_table(con, table, frame)


def upsert_history(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keys: Sequence[str]
) -> dict[str, int]:
    """Upsert a history table by its natural key (see `lib/store/db.upsert`)."""
    return upsert(con, table, frame, keys)


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    """The whole table, or None when it was never written (no last good data)."""
    name = ident(table)
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
        "WHERE feed = ? AND list_contains(?, status) ORDER BY checked_at DESC LIMIT 1",
        [feed, list(GOOD)],
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
