"""Structural checks of one MQTT message: land it, or dead-letter it with the reason.

Only what the landing store needs is checked here (a JSON object, a message id to deduplicate
on, a timestamp that is unambiguous in UTC, readings that are numbers or booleans, a topic that
says where the message comes from). Whether a reading is plausible is decided later by the
Pandera checks of the Dagster assets, which can quarantine a row without losing it; a message
that fails here could not be filed at all, so it goes to the dead-letter table with its exact
bytes.

This runs once per message in the ingestor, so it parses the JSON once and allocates little.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from clinker_pipeline.defs.telemetry.topics import parse_topic

#: Oldest and newest year a `ts` may carry: outside this the landing frame's timestamp type
#: cannot hold it, and one such message must not make its whole batch unwritable.
MIN_YEAR, MAX_YEAR = 1900, 2200
_REPR_LIMIT = 60


@dataclass(slots=True)
class LandedMessage:
    """One well-formed message, with the landing columns the ingestor knows up front
    (`batch_id` and `client_id` are added by the landing store when the batch is written)."""

    message_id: str
    topic: str
    family: str
    plant: str | None
    vehicle: str | None
    sensor: str | None
    ts: datetime  # timezone-aware, UTC
    received_at: datetime  # timezone-aware, UTC
    payload: str


@dataclass(slots=True)
class DeadLetter:
    """A message that cannot be landed, kept byte for byte with what is wrong with it."""

    received_at: datetime
    topic: str
    payload: str  # the raw bytes decoded as UTF-8 with errors="replace"
    payload_b64: str  # the exact raw bytes
    reason: str


class _Malformed(Exception):
    pass


_SCAN_ONCE = json.JSONDecoder().scan_once


def _loads(text: str) -> object:
    """json.loads without its Python wrapper for the usual case (one value filling the text);
    anything else (surrounding whitespace, trailing data, an error) goes through json.loads,
    which gives the precise error message."""
    try:
        value, end = _SCAN_ONCE(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def parse_message(topic: str, payload: bytes, received_at: datetime) -> LandedMessage | DeadLetter:
    """Land `payload` received on `topic`, or say precisely why it cannot be landed."""
    info = parse_topic(topic)
    if info is None:
        return dead_letter(
            topic,
            payload,
            received_at,
            "topic does not match the scheme clinker/plants/{plant}/{line|silo|quality|energy}/"
            "{sensor} or clinker/fleet/{vehicle}/telemetry",
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dead_letter(topic, payload, received_at, f"not UTF-8: {exc}")
    try:
        body = _loads(text)
    except ValueError as exc:
        return dead_letter(topic, payload, received_at, f"not JSON: {exc}")
    except RecursionError:
        return dead_letter(topic, payload, received_at, "not JSON: nested too deeply")
    try:
        if type(body) is not dict:
            raise _Malformed(f"not a JSON object (got {_json_type(body)})")
        message_id = body.get("message_id")
        if type(message_id) is not str or not message_id:
            raise _Malformed(
                "missing message_id"
                if message_id is None
                else "message_id is not a non-empty string"
            )
        ts = parse_ts(body.get("ts"))
        _check_values(body.get("values"), info.family == "fleet")
        units = body.get("units")
        if units is not None:
            _check_units(units)
        if info.family == "fleet":
            _check_fleet(body)
    except _Malformed as exc:
        return dead_letter(topic, payload, received_at, str(exc))
    return LandedMessage(
        message_id,
        topic,
        info.family,
        info.plant,
        info.vehicle,
        info.sensor,
        ts,
        received_at,
        text,
    )


def dead_letter(topic: str, payload: bytes, received_at: datetime, reason: str) -> DeadLetter:
    return DeadLetter(
        received_at,
        topic,
        payload.decode("utf-8", errors="replace"),
        base64.b64encode(payload).decode("ascii"),
        reason,
    )


def parse_ts(value: object) -> datetime:
    """An ISO-8601 timestamp with an explicit offset, in UTC. A naive time is refused: plants
    report in local time as often as in UTC, and guessing would shift readings by hours."""
    if value is None:
        raise _Malformed("missing ts")
    if type(value) is not str:
        raise _Malformed(f"ts is not a string (got {_json_type(value)})")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise _Malformed(f"ts is not an ISO-8601 timestamp: {_short(value)}") from None
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise _Malformed(f"ts has no UTC offset: {_short(value)}")
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:
            raise _Malformed(f"ts is out of range: {_short(value)}") from None
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise _Malformed(f"ts is out of range ({MIN_YEAR}-{MAX_YEAR}): {_short(value)}")
    return ts


def _check_values(values: object, fleet: bool) -> None:
    if values is None:
        raise _Malformed("missing values")
    if type(values) is not dict:
        raise _Malformed(f"values is not an object (got {_json_type(values)})")
    for name, value in values.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise _Malformed(f"value {name!r} is not a finite number: {value}")
        elif kind is int or kind is bool or (fleet and kind is str):
            continue
        else:
            expected = "a number, boolean or string" if fleet else "a number or boolean"
            raise _Malformed(f"value {name!r} is not {expected}: {_short(value)}")


def _check_units(units: object) -> None:
    if type(units) is not dict:
        raise _Malformed(f"units is not an object (got {_json_type(units)})")
    for name, unit in units.items():
        if type(unit) is not str:
            raise _Malformed(f"unit of {name!r} is not a string: {_short(unit)}")


def _check_fleet(body: dict) -> None:
    trip = body.get("trip")
    if trip is not None:
        if type(trip) is not dict:
            raise _Malformed(f"trip is not an object (got {_json_type(trip)})")
        for key, value in trip.items():
            if value is not None and type(value) is not str:
                raise _Malformed(f"trip.{key} is not a string: {_short(value)}")
    status = body.get("status")
    if status is not None and type(status) is not str:
        raise _Malformed(f"status is not a string (got {_json_type(status)})")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
