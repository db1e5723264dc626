"""Landed telemetry messages -> one typed table per family (the Dagster assets' data).

The ingestor lands raw JSON next to a few routing columns, so a payload change never loses a
message; the typing happens here, where a message whose values do not fit its family (a missing
production figure, a string where a number belongs) becomes a Problem with the raw payload, and
the rest of the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from clinker_pipeline.instance.problems import Problem

#: family -> (key column: plant or vehicle, numeric fields (required ones first), required count)
NUMERIC_FIELDS: dict[str, tuple[tuple[str, ...], int]] = {
    "line": (("production_tph", "kiln_temp_c"), 1),
    "silo": (("level_pct", "level_t", "capacity_t"), 2),
    "quality": (("free_lime_pct", "lsf", "c3s_pct"), 1),
    "energy": (("power_kw", "interval_s", "thermal_kcal_per_kg"), 2),
    "fleet": (
        ("lat", "lon", "speed_kmh", "fuel_l", "load_t", "capacity_t", "heading_deg"),
        3,
    ),
}
#: DuckDB table (and Dagster asset) of each family
FAMILY_TABLE = {
    "line": "production_telemetry",
    "silo": "silo_levels",
    "quality": "quality_results",
    "energy": "energy_use",
    "fleet": "fleet_positions",
}
BASE_COLUMNS = ("message_id", "ts", "batch_id")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def family_rows(family: str, landed: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Typed rows of one family from landed messages (all families may be mixed in `landed`)."""
    numeric, required = NUMERIC_FIELDS[family]
    table = FAMILY_TABLE[family]
    rows: list[dict] = []
    problems: list[Problem] = []
    subset = landed[landed["family"] == family]
    for record in subset.itertuples(index=False):
        raw = record.payload
        source = f"MQTT {record.topic}"
        try:
            body = json.loads(raw)
            values: Mapping = body.get("values") or {}
            row = {
                "message_id": record.message_id,
                "ts": record.ts,
                "batch_id": record.batch_id,
            }
            if family == "fleet":
                row["vehicle"] = record.vehicle
            else:
                row["plant"], row["sensor"] = record.plant, record.sensor
            for name in numeric:
                row[name] = _number(values.get(name))
            missing = [n for n in numeric[:required] if row[n] is None]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            if family == "line":
                running = values.get("running")
                if not isinstance(running, bool):
                    raise ValueError("running must be true or false")
                row["running"] = running
            if family == "energy":
                row["energy_kwh"] = row["power_kw"] * row["interval_s"] / 3600.0
            if family == "fleet":
                trip = body.get("trip") or {}
                row["trip_id"] = trip.get("trip_id")
                row["origin"] = trip.get("origin")
                row["destination"] = trip.get("destination")
                row["mode"] = trip.get("mode")
                row["status"] = body.get("status")
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(
                Problem(
                    table,
                    source,
                    None,
                    None,
                    f"message {record.message_id}: {exc}",
                    record={"message_id": record.message_id, "topic": record.topic, "payload": raw},
                )
            )
            continue
        rows.append(row)
    return _frame(family, rows), problems


def empty_family_frame(family: str) -> pd.DataFrame:
    """The family's typed columns with no rows (to create its table before any telemetry)."""
    return _frame(family, [])


def _frame(family: str, rows: list[dict]) -> pd.DataFrame:
    numeric, _ = NUMERIC_FIELDS[family]
    key = ["vehicle"] if family == "fleet" else ["plant", "sensor"]
    extra = {
        "line": ["running"],
        "energy": ["energy_kwh"],
        "fleet": ["trip_id", "origin", "destination", "mode", "status"],
    }.get(family, [])
    columns = ["message_id", "ts", *key, *numeric, *extra, "batch_id"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for name in [*numeric, *(["energy_kwh"] if family == "energy" else [])]:
        frame[name] = frame[name].astype("float64")
    if family == "line":
        frame["running"] = frame["running"].astype("boolean")
    for name in [
        "message_id",
        *key,
        "batch_id",
        *(c for c in extra if c not in ("running", "energy_kwh")),
    ]:
        frame[name] = frame[name].astype("string")
    return frame


def unknown_plants(
    family: str, frame: pd.DataFrame, known: set[str]
) -> tuple[pd.DataFrame, list[Problem]]:
    """Rows naming a plant (or, for fleet, an origin/destination) the instance does not know are
    quarantined: a reading from a plant the planner has never heard of cannot move a plan."""
    table = FAMILY_TABLE[family]
    if frame.empty:
        return frame, []
    if family == "fleet":
        bad = ~(
            (frame["origin"].isna() | frame["origin"].isin(known))
            & (frame["destination"].isna() | frame["destination"].isin(known))
        )
        what = "trip origin/destination"
    else:
        bad = ~frame["plant"].isin(known)
        what = "plant"
    problems = [
        Problem(
            table,
            f"MQTT {family}",
            None,
            "plant" if family != "fleet" else "trip",
            f"message {r.message_id}: unknown {what} "
            f"{getattr(r, 'plant', None) or f'{r.origin} -> {r.destination}'}",
            severity="WARN",
            rule="reference",
            record={k: (None if pd.isna(v) else str(v)) for k, v in r._asdict().items()},
        )
        for r in frame[bad].itertuples(index=False)
    ]
    return frame[~bad].reset_index(drop=True), problems
