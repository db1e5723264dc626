"""The topic scheme of plant and fleet telemetry, in one place for publisher and ingestor.

The topic carries the routing (family, plant or vehicle, sensor) so the landing store can file a
message without trusting its payload; the payload carries the time and the readings. Segments are
restricted to `[A-Za-z0-9_.-]+` so a plant code or vehicle id can never smuggle an MQTT wildcard
or level separator into a topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

ROOT = "clinker"
PLANT_FAMILIES: tuple[str, ...] = ("line", "silo", "quality", "energy")
FAMILIES: tuple[str, ...] = (*PLANT_FAMILIES, "fleet")
#: What the ingestor subscribes to by default: every family.
DEFAULT_SUBSCRIPTION = f"{ROOT}/#"

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_PLANT_FAMILY_SET = frozenset(PLANT_FAMILIES)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """Routing of one topic: `plant` and `sensor` for plant families, `vehicle` for fleet."""

    family: str
    plant: str | None = None
    sensor: str | None = None
    vehicle: str | None = None


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> TopicInfo | None:
    """The routing of a telemetry topic, or None when it does not follow the scheme.

    Cached: a site publishes from a few thousand sensors at most, so the ingestor parses each
    topic once rather than once per message.
    """
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == ROOT and parts[1] == "plants":
        _, _, plant, family, sensor = parts
        if family in _PLANT_FAMILY_SET and _valid(plant) and _valid(sensor):
            return TopicInfo(family, plant=plant, sensor=sensor)
    elif (
        len(parts) == 4
        and parts[0] == ROOT
        and parts[1] == "fleet"
        and parts[3] == "telemetry"
        and _valid(parts[2])
    ):
        return TopicInfo("fleet", vehicle=parts[2])
    return None


def plant_topic(plant: str, family: str, sensor: str) -> str:
    """`clinker/plants/{plant}/{family}/{sensor}`; refuses segments outside the scheme."""
    if family not in _PLANT_FAMILY_SET:
        raise ValueError(f"unknown plant telemetry family {family!r}: one of {PLANT_FAMILIES}")
    _check(plant, "plant")
    _check(sensor, "sensor")
    return f"{ROOT}/plants/{plant}/{family}/{sensor}"


def fleet_topic(vehicle: str) -> str:
    """`clinker/fleet/{vehicle}/telemetry`; refuses a vehicle id outside the scheme."""
    _check(vehicle, "vehicle")
    return f"{ROOT}/fleet/{vehicle}/telemetry"


def shared_subscription(topic_filter: str, group: str | None) -> str:
    """`$share/{group}/{filter}` (MQTT v5): the broker hands each message to one member of the
    group, so several ingestors split a stream instead of each landing all of it."""
    if not group:
        return topic_filter
    if not _SEGMENT.fullmatch(group):
        raise ValueError(f"share group {group!r} must match [A-Za-z0-9_.-]+")
    return f"$share/{group}/{topic_filter}"


def _valid(segment: str) -> bool:
    return _SEGMENT.fullmatch(segment) is not None


def _check(segment: str, what: str) -> None:
    if not _valid(segment):
        raise ValueError(f"{what} {segment!r} is not a valid topic segment ([A-Za-z0-9_.-]+)")
