"""Telemetry in the analysts' DuckDB: typed readings, dead letters, alerts, aggregates.

Readings are appended with an anti-join on message_id, so a batch loaded twice (a re-run, or a
message the broker redelivered into a later batch) never counts twice. Aggregates are views over
the readings: they are always consistent with what has been loaded, with nothing to refresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.lib.store.feeds import table_exists

LOADED_DDL = """
CREATE TABLE IF NOT EXISTS telemetry_batches_loaded (
    batch_id VARCHAR PRIMARY KEY,
    loaded_at TIMESTAMP NOT NULL,
    messages INTEGER,
    new_messages INTEGER,
    duplicates INTEGER,
    dead_letters INTEGER,
    quarantined INTEGER,
    dagster_run_id VARCHAR
)
"""

DEAD_LETTER_DDL = """
CREATE TABLE IF NOT EXISTS telemetry_dead_letter (
    received_at TIMESTAMP,
    topic VARCHAR,
    payload VARCHAR,
    payload_b64 VARCHAR,
    reason VARCHAR,
    batch_id VARCHAR,
    client_id VARCHAR
)
"""

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR PRIMARY KEY,
    raised_at TIMESTAMP NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    family VARCHAR,
    plant VARCHAR,
    vehicle VARCHAR,
    sensor VARCHAR,
    ts TIMESTAMP,
    field VARCHAR,
    value DOUBLE,
    threshold DOUBLE,
    message VARCHAR,
    message_id VARCHAR,
    batch_id VARCHAR,
    dagster_run_id VARCHAR
)
"""

# Per plant and hour: production, uptime (share of line readings running: the efficiency an
# operator reads first), energy and energy per tonne. Per vehicle and trip: distance (haversine
# over consecutive fixes), duration and load utilisation while loaded.
AGGREGATE_VIEWS = {
    "telemetry_plant_hourly": """
        WITH prod AS (
            SELECT plant, date_trunc('hour', ts) AS hour,
                   avg(production_tph) AS production_rate_tph,
                   100 * avg(CASE WHEN running THEN 1 ELSE 0 END) AS uptime_pct,
                   avg(kiln_temp_c) AS avg_kiln_temp_c,
                   count(*) AS line_readings
            FROM production_telemetry GROUP BY ALL
        ), energy AS (
            SELECT plant, date_trunc('hour', ts) AS hour, sum(energy_kwh) AS energy_kwh,
                   avg(thermal_kcal_per_kg) AS thermal_kcal_per_kg
            FROM energy_use GROUP BY ALL
        )
        SELECT coalesce(p.plant, e.plant) AS plant, coalesce(p.hour, e.hour) AS hour,
               p.production_rate_tph, p.uptime_pct, p.avg_kiln_temp_c, p.line_readings,
               e.energy_kwh, e.thermal_kcal_per_kg,
               CASE WHEN p.production_rate_tph > 0
                    THEN e.energy_kwh / p.production_rate_tph END AS energy_kwh_per_t
        FROM prod p FULL OUTER JOIN energy e ON p.plant = e.plant AND p.hour = e.hour
    """,
    "telemetry_fleet_trips": """
        WITH fixes AS (
            SELECT vehicle, trip_id, mode, origin, destination, ts, lat, lon, load_t,
                   capacity_t, status,
                   lag(lat) OVER w AS lat0, lag(lon) OVER w AS lon0
            FROM fleet_positions
            WHERE trip_id IS NOT NULL
            WINDOW w AS (PARTITION BY vehicle, trip_id ORDER BY ts)
        )
        SELECT vehicle, trip_id, any_value(mode) AS mode, any_value(origin) AS origin,
               any_value(destination) AS destination, min(ts) AS started, max(ts) AS last_fix,
               date_diff('second', min(ts), max(ts)) / 3600.0 AS duration_h,
               coalesce(sum(
                   2 * 6371.0 * asin(sqrt(
                       pow(sin(radians(lat - lat0) / 2), 2)
                       + cos(radians(lat0)) * cos(radians(lat)) * pow(sin(radians(lon - lon0) / 2), 2)
                   ))
               ), 0) AS distance_km,
               max(capacity_t) AS capacity_t,
               100 * avg(load_t / nullif(capacity_t, 0)) FILTER (WHERE status = 'loaded')
                   AS utilisation_pct,
               count(*) AS fixes
        FROM fixes GROUP BY vehicle, trip_id
    """,
}


def append_new(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Append rows whose message_id is not stored yet; returns how many were new."""
    con.register("_telemetry_frame", frame)
    try:
        if not table_exists(con, table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _telemetry_frame LIMIT 0")
        before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        columns = ", ".join(frame.columns)
        con.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _telemetry_frame f "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.message_id = f.message_id)"
        ).fetchall()
        # fetchall, not fetchone: DuckDB 2 keeps a half-read result open, and unregister
        # refuses to run while one is
        after = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.unregister("_telemetry_frame")
    return int(after - before)


def loaded_batches(con: duckdb.DuckDBPyConnection) -> set[str]:
    con.execute(LOADED_DDL)
    return {r[0] for r in con.execute("SELECT batch_id FROM telemetry_batches_loaded").fetchall()}


def record_batch(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    *,
    messages: int,
    new_messages: int,
    dead_letters: int,
    quarantined: int,
    dagster_run_id: str | None,
) -> None:
    con.execute(LOADED_DDL)
    con.execute(
        "INSERT OR REPLACE INTO telemetry_batches_loaded VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id,
            datetime.now(UTC).replace(tzinfo=None),
            messages,
            new_messages,
            messages - new_messages,
            dead_letters,
            quarantined,
            dagster_run_id,
        ],
    )


def append_dead_letters(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    con.execute(DEAD_LETTER_DDL)
    if frame.empty:
        return 0
    columns = [r[0] for r in con.execute("DESCRIBE telemetry_dead_letter").fetchall()]
    con.from_df(frame.reindex(columns=columns)).insert_into("telemetry_dead_letter")
    return len(frame)


def append_alerts(
    con: duckdb.DuckDBPyConnection, alerts: pd.DataFrame, dagster_run_id: str | None
) -> int:
    """Store alerts once each (alert_id = rule + message id): a re-run raises nothing twice."""
    con.execute(ALERTS_DDL)
    if alerts.empty:
        return 0
    frame = alerts.copy()
    frame.insert(1, "raised_at", datetime.now(UTC).replace(tzinfo=None))
    frame["dagster_run_id"] = dagster_run_id
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None)
    columns = [r[0] for r in con.execute("DESCRIBE alerts").fetchall()]
    con.register("_alerts_frame", frame.reindex(columns=columns))
    try:
        before = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        con.execute("INSERT OR IGNORE INTO alerts SELECT * FROM _alerts_frame").fetchall()
        return int(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0] - before)
    finally:
        con.unregister("_alerts_frame")


def ensure_aggregate_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create the aggregate views once their source tables exist; returns the views made."""
    made = []
    needs = {
        "telemetry_plant_hourly": ("production_telemetry", "energy_use"),
        "telemetry_fleet_trips": ("fleet_positions",),
    }
    for view, sql in AGGREGATE_VIEWS.items():
        if all(table_exists(con, t) for t in needs[view]):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")
            made.append(view)
    return made


def fleet_history(con: duckdb.DuckDBPyConnection, vehicles: Sequence[str]) -> pd.DataFrame:
    """The last day of positions of these vehicles (for the stopped-vehicle rule)."""
    if not vehicles or not table_exists(con, "fleet_positions"):
        return pd.DataFrame()
    frame = con.execute(
        "SELECT * FROM fleet_positions WHERE vehicle IN (SELECT unnest(?)) "
        "AND ts > (SELECT max(ts) FROM fleet_positions) - INTERVAL 1 DAY",
        [list(vehicles)],
    ).df()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def plant_stock(con: duckdb.DuckDBPyConnection, plants: Sequence[str]) -> pd.DataFrame:
    """Per plant: the sum of each silo's latest level_t, stamped with the newest reading."""
    if not plants or not table_exists(con, "silo_levels"):
        return pd.DataFrame()
    frame = con.execute(
        """
        WITH latest AS (
            SELECT plant, sensor, arg_max(level_t, ts) AS level_t, max(ts) AS ts,
                   arg_max(message_id, ts) AS message_id, arg_max(batch_id, ts) AS batch_id
            FROM silo_levels WHERE plant IN (SELECT unnest(?)) GROUP BY plant, sensor
        )
        SELECT plant, sum(level_t) AS level_t, max(ts) AS ts,
               arg_max(message_id, ts) AS message_id, arg_max(batch_id, ts) AS batch_id
        FROM latest GROUP BY plant
        """,
        [list(plants)],
    ).df()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def telemetry_overrides(
    con: duckdb.DuckDBPyConnection,
    capacity: pd.DataFrame,
    period: int | None,
    period_hours: float,
    *,
    silo_fresh_hours: float,
    outage_minutes: float,
    outage_assumed_hours: float,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Opening stock from fresh silo readings, capacity of `period` cut for plants that are down.

    - Opening stock of a plant = the sum over its silos of each silo's latest `level_t`, when
      every one of those readings is younger than `silo_fresh_hours`.
    - A plant is down when every line reading of its last `outage_minutes` says running=false;
      its capacity in `period` (the current period) loses `outage_assumed_hours` of
      `period_hours`, the restart time assumed until a reading says otherwise.
    """
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    stock = pd.DataFrame(columns=["iugu_code", "opening_stock", "reason"])
    caps = pd.DataFrame(columns=["iu_code", "time_period", "capacity", "reason"])
    if table_exists(con, "silo_levels"):
        stock = con.execute(
            """
            WITH latest AS (
                SELECT plant, sensor, arg_max(level_t, ts) AS level_t, max(ts) AS ts
                FROM silo_levels GROUP BY plant, sensor
            )
            SELECT plant AS iugu_code, sum(level_t) AS opening_stock,
                   'silo telemetry ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' AS reason
            FROM latest GROUP BY plant
            HAVING min(ts) >= ?::TIMESTAMP - to_seconds(?::DOUBLE * 3600)
            """,
            [now, silo_fresh_hours],
        ).df()
    if period is not None and table_exists(con, "production_telemetry"):
        down = con.execute(
            """
            SELECT plant, max(ts) AS last_ts FROM production_telemetry
            WHERE ts >= (SELECT max(ts) FROM production_telemetry) - to_seconds(?::DOUBLE * 60)
              AND ts >= ?::TIMESTAMP - to_seconds(?::DOUBLE * 60 + 3600)
            GROUP BY plant HAVING bool_and(NOT running)
            """,
            [outage_minutes, now, outage_minutes],
        ).fetchall()
        factor = max(0.0, 1 - outage_assumed_hours / period_hours) if period_hours else 0.0
        cap = capacity.set_index(["iu_code", "time_period"])["capacity"]
        rows = [
            {
                "iu_code": plant,
                "time_period": period,
                "capacity": float(cap[(plant, period)]) * factor,
                "reason": f"all lines stopped since telemetry at {last:%Y-%m-%d %H:%M} UTC; "
                f"{outage_assumed_hours:g} h restart assumed",
            }
            for plant, last in down
            if (plant, period) in cap.index
        ]
        if rows:
            caps = pd.DataFrame(rows)
    return caps, stock


def outage_summary(overrides: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    return {name: len(frame) for name, frame in overrides.items()}
