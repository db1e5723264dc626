"""A telemetry simulator: realistic plant and fleet readings for the planning instance, over MQTT.

Nobody can point a test, a demo or a load benchmark at a real cement plant, so this publishes what
the plants and the fleet of a planning instance would send, on the topics and in the envelope the
ingestor expects (`topics.py`): kiln lines producing around capacity/720 t/h, clinker
silos whose levels start at the instance's opening stock and move with production, consumption
and the vehicles loading and unloading, quality and energy readings, and trucks (T1) and rakes
(T2) running loaded from origin to destination along the great circle between the plants and
back empty. Occasional breaches (an overheating kiln, a silo above 95 % or below the plant's
safety stock, high free lime, a vehicle standing en route) and malformed messages (each kind the
ingestor must dead-letter) exercise the alerting and the dead-letter path.

Two layers, so tests and benchmarks can use the messages without a broker:
- `iter_messages(...)`: a pure, deterministic generator of `SimMessage(topic, payload, kind)`;
- `publish(...)`: paces the messages (token bucket), publishes them QoS 1 over MQTT v5 and waits
  for every PUBACK, so "published" means "the broker has it".

Timestamps are simulated time: every sensor and vehicle reports once per `interval_s` (default
60 s) at its own phase within the interval. For a run of known length the first timestamp is put
in the past so the stream ends now (no reading lies in the future); an open-ended run starts now
and advances one interval per round of readings at the requested rate, which is real time (only
a flat-out run, `--rate 0`, without `--count` runs ahead of the clock).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from clinker_pipeline.argtypes import non_negative_float, positive_int, share
from clinker_pipeline.errors import InvalidInstance, SourceUnavailable

log = logging.getLogger(__name__)

KIND_OK, KIND_MALFORMED, KIND_BREACH = "ok", "malformed", "breach"
#: The malformed messages the ingestor must dead-letter, one of each in turn.
MALFORMED_KINDS: tuple[str, ...] = (
    "invalid_json",
    "missing_message_id",
    "naive_ts",
    "non_numeric",
    "bad_topic",
)
DEFAULT_PREFIX = "clinker"
DEFAULT_INTERVAL_S = 60.0
PERIOD_HOURS = 720.0  # a planning period is a month: capacity / 720 = t/h at full load
EARTH_RADIUS_KM = 6371.0088
ROUTE_FACTOR = 1.25  # road and track are longer than the great circle
STOP_MINUTES = 35.0  # a breach stop lasts past the 30 min of the vehicle_stopped rule
MAX_STOP_READINGS = 120
# Where plants without coordinates are placed (public dataset): India's bounding box.
_LAT_RANGE, _LON_RANGE = (8.5, 29.5), (70.0, 88.0)

#: family -> units of its values (sent in every envelope so a reader never guesses)
UNITS: dict[str, dict[str, str]] = {
    "line": {"production_tph": "t/h", "kiln_temp_c": "degC"},
    "silo": {"level_pct": "%", "level_t": "t", "capacity_t": "t"},
    "quality": {"free_lime_pct": "%", "lsf": "ratio", "c3s_pct": "%"},
    "energy": {"power_kw": "kW", "interval_s": "s", "thermal_kcal_per_kg": "kcal/kg"},
    "fleet": {
        "lat": "deg",
        "lon": "deg",
        "speed_kmh": "km/h",
        "fuel_l": "l",
        "load_t": "t",
        "capacity_t": "t",
        "heading_deg": "deg",
    },
}


class SimMessage(NamedTuple):
    """One message as published: unpacks as (topic, payload, kind)."""

    topic: str
    payload: bytes
    kind: str  # ok | malformed | breach

    @property
    def message_id(self) -> str | None:
        """The id of a well-formed message (None for malformed ones, which may carry none)."""
        if self.kind == KIND_MALFORMED:
            return None
        return json.loads(self.payload)["message_id"]


# --------------------------------------------------------------------------------------------
# Geometry


def _unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = math.radians(lat), math.radians(lon)
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance in km between two (lat, lon) points (haversine)."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def interpolate(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    """The point a fraction `f` of the way from `a` to `b` along the great circle (slerp)."""
    va, vb = _unit_vector(*a), _unit_vector(*b)
    dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(va, vb, strict=True))))
    omega = math.acos(dot)
    if omega < 1e-12:
        return a
    s = math.sin(omega)
    wa, wb = math.sin((1 - f) * omega) / s, math.sin(f * omega) / s
    x, y, z = (wa * p + wb * q for p, q in zip(va, vb, strict=True))
    return (math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Initial compass bearing from `a` to `b`, 0-360."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    y = math.sin(lo2 - lo1) * math.cos(la2)
    x = math.cos(la1) * math.sin(la2) - math.sin(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return math.degrees(math.atan2(y, x)) % 360.0


# --------------------------------------------------------------------------------------------
# The simulated world


def _walk(rng: random.Random, x: float, mean: float, sigma: float, lo: float, hi: float) -> float:
    """One step of a mean-reverting random walk: readings wander but stay plausible."""
    return min(hi, max(lo, x + 0.15 * (mean - x) + rng.gauss(0.0, sigma)))


@dataclass
class _Silo:
    sensor: str
    capacity_t: float
    level_t: float
    low: float  # the normal band: never below the safety stock, never above 93 %
    high: float


@dataclass
class _Plant:
    code: str
    is_iu: bool
    coords: tuple[float, float]
    safety_t: float
    silos: list[_Silo]
    nominal_tph: float  # kiln output (IU) or clinker consumption (GU), t/h
    consumption_tph: float  # clinker ground on site, t/h
    line_tph: float = 0.0
    mean_tph: float = 0.0

    def add(self, tonnes: float) -> None:
        """Clinker into (tonnes > 0) or out of the silos: fill the emptiest, draw the fullest."""
        pick = min if tonnes > 0 else max
        silo = pick(self.silos, key=lambda s: s.level_t / s.capacity_t)
        silo.level_t = min(silo.high, max(silo.low, silo.level_t + tonnes))


@dataclass
class _Source:
    """One sensor of one plant: it reads the plant's state and keeps its own walk state."""

    plant: _Plant
    family: str
    sensor: str
    offset_s: float
    state: dict[str, float] = field(default_factory=dict)
    silo: _Silo | None = None

    @property
    def breachable(self) -> bool:
        kiln = self.family == "line" and self.plant.is_iu
        return kiln or self.family in ("silo", "quality")

    @property
    def breach_weight(self) -> float:
        return 0.3 if self.family == "silo" else 1.0


@dataclass
class _Vehicle:
    vehicle: str
    mode: str  # road | rail
    origin: _Plant
    destination: _Plant
    capacity_t: float
    mean_kmh: float
    tank_l: float
    burn_loaded: float  # l/km
    burn_empty: float
    handling_tph: float  # loading / unloading speed
    distance_km: float
    offset_s: float
    trip_id: str = ""
    phase: str = "loading"  # loading | loaded | unloading | empty
    progress: float = 0.0  # along the current leg, 0-1
    load_t: float = 0.0
    target_t: float = 0.0
    fuel_l: float = 0.0
    speed_kmh: float = 0.0
    heading: float = 0.0
    stop_left: int = 0

    @property
    def in_transit(self) -> bool:
        return self.phase in ("loaded", "empty")

    def position(self) -> tuple[float, float]:
        a, b = self.origin.coords, self.destination.coords
        if self.phase == "loading":
            return a
        if self.phase == "unloading":
            return b
        return (
            interpolate(a, b, self.progress)
            if self.phase == "loaded"
            else interpolate(b, a, self.progress)
        )


class _World:
    """The plants, their sensors and the fleet of one instance, advanced one reading at a time."""

    def __init__(
        self, tables: Mapping[str, pd.DataFrame], rng: random.Random, interval_s: float
    ) -> None:
        self.rng = rng
        self.dt_h = interval_s / 3600.0
        self.interval_s = interval_s
        # readings of one breach stop: past the vehicle_stopped rule's 30 min when it can be
        self.stop_readings = min(MAX_STOP_READINGS, math.ceil(STOP_MINUTES * 60.0 / interval_s) + 1)
        self.trip_seq = itertools.count(1)
        self.plants = _plants(tables, rng)
        self.sources: list[_Source] = []
        for plant in self.plants.values():
            self.sources.extend(self._plant_sources(plant, interval_s))
        self.vehicles = self._fleet(tables, interval_s)
        # Everybody reports once per interval at a fixed phase: order the round by that phase.
        self.round: list[_Source | _Vehicle] = sorted(
            [*self.sources, *self.vehicles], key=lambda s: s.offset_s
        )

    # -- construction -------------------------------------------------------------------------

    def _plant_sources(self, plant: _Plant, interval_s: float) -> list[_Source]:
        rng = self.rng

        def src(family: str, sensor: str, **kw: Any) -> _Source:
            return _Source(plant, family, sensor, rng.uniform(0, interval_s), **kw)

        sources = [src("line", "kiln1" if plant.is_iu else "mill1")]
        sources += [src("silo", s.sensor, silo=s) for s in plant.silos]
        if plant.is_iu:
            sources.append(src("quality", "xrf1"))
            sources[0].state["temp"] = rng.uniform(1420, 1460)
            sources[-1].state.update(
                free_lime=rng.uniform(1.0, 1.4),
                lsf=rng.uniform(0.94, 0.96),
                c3s=rng.uniform(56, 60),
            )
        energy = src("energy", "main_meter")
        energy.state["thermal"] = rng.uniform(710, 750)
        sources.append(energy)
        return sources

    def _fleet(self, tables: Mapping[str, pd.DataFrame], interval_s: float) -> list[_Vehicle]:
        lanes = tables.get("logistics_lanes")
        if lanes is None or lanes.empty:
            return []
        lanes = lanes.sort_values(["from_code", "to_code", "transport_code", "time_period"])
        lanes = lanes.drop_duplicates(["from_code", "to_code", "transport_code"])
        vehicles: list[_Vehicle] = []
        trucks = rakes = 0
        rng = self.rng
        for lane in lanes.itertuples(index=False):
            origin, destination = self.plants.get(lane.from_code), self.plants.get(lane.to_code)
            if origin is None or destination is None or origin is destination:
                continue
            rail = str(lane.transport_code).upper() == "T2"
            distance = great_circle_km(origin.coords, destination.coords)
            if distance < 1.0:
                continue
            for _ in range(1 if rail else 2):
                if rail:
                    rakes += 1
                    multiplier = float(lane.quantity_multiplier or 0)
                    vehicle = _Vehicle(
                        f"RAKE-{rakes:02d}",
                        "rail",
                        origin,
                        destination,
                        capacity_t=multiplier if multiplier > 1 else 3800.0,
                        mean_kmh=30.0,
                        tank_l=5000.0,
                        burn_loaded=6.5,
                        burn_empty=3.5,
                        handling_tph=700.0,
                        distance_km=distance,
                        offset_s=rng.uniform(0, interval_s),
                    )
                else:
                    trucks += 1
                    vehicle = _Vehicle(
                        f"TRK-{trucks:04d}",
                        "road",
                        origin,
                        destination,
                        capacity_t=float(rng.choice((25.0, 30.0, 30.0, 35.0))),
                        mean_kmh=40.0,
                        tank_l=400.0,
                        burn_loaded=0.38,
                        burn_empty=0.26,
                        handling_tph=90.0,
                        distance_km=distance,
                        offset_s=rng.uniform(0, interval_s),
                    )
                self._place(vehicle)
                vehicles.append(vehicle)
        return vehicles

    def _place(self, v: _Vehicle) -> None:
        """Start a vehicle somewhere in its cycle, so a short run already shows a moving fleet."""
        rng = self.rng
        v.trip_id = f"T-{next(self.trip_seq):06d}"
        handling_h = v.capacity_t / v.handling_tph
        transit_h = v.distance_km * ROUTE_FACTOR / v.mean_kmh
        t = rng.uniform(0, 2 * handling_h + 2 * transit_h)
        v.fuel_l = v.tank_l * rng.uniform(0.4, 0.95)
        v.target_t = v.capacity_t * rng.uniform(0.96, 1.0)
        v.speed_kmh = v.mean_kmh * rng.uniform(0.8, 1.1)
        if t < handling_h:
            v.phase, v.load_t = "loading", v.target_t * t / handling_h
        elif t < handling_h + transit_h:
            v.phase, v.load_t = "loaded", v.target_t
            v.progress = (t - handling_h) / transit_h
        elif t < 2 * handling_h + transit_h:
            v.phase = "unloading"
            v.load_t = v.target_t * (1 - (t - handling_h - transit_h) / handling_h)
        else:
            v.phase, v.load_t = "empty", 0.0
            v.progress = (t - 2 * handling_h - transit_h) / transit_h
        if v.phase == "loaded":
            v.heading = bearing_deg(v.position(), v.destination.coords)
        elif v.phase == "empty":
            v.heading = bearing_deg(v.position(), v.origin.coords)
        if v.phase in ("loading", "unloading"):
            v.speed_kmh = 0.0

    # -- one round ----------------------------------------------------------------------------

    def plant_flows(self) -> None:
        """Clinker made and ground on site during one interval moves the silo levels."""
        for plant in self.plants.values():
            made = plant.line_tph if plant.is_iu else 0.0
            plant.add((made - plant.consumption_tph) * self.dt_h)

    def plant_reading(self, source: _Source, breach: bool) -> tuple[dict[str, Any], bool]:
        """Values of one plant sensor; `breach` asks for a rule-breaking reading (if it can)."""
        rng, plant, st = self.rng, source.plant, source.state
        family = source.family
        if family == "line":
            plant.line_tph = _walk(
                rng,
                plant.line_tph,
                plant.mean_tph,
                0.01 * plant.nominal_tph,
                0.0,
                1.03 * plant.nominal_tph,
            )
            values: dict[str, Any] = {"production_tph": round(plant.line_tph, 1), "running": True}
            if plant.is_iu:
                st["temp"] = _walk(rng, st["temp"], 1440.0, 6.0, 1365.0, 1495.0)
                temp = rng.uniform(1505.0, 1560.0) if breach else st["temp"]
                values["kiln_temp_c"] = round(temp, 1)
            return values, breach and plant.is_iu
        if family == "silo":
            silo = source.silo
            assert silo is not None
            level = silo.level_t
            if breach:
                if rng.random() < 0.5:
                    level = silo.capacity_t * rng.uniform(0.955, 0.99)
                else:
                    level = plant.safety_t * rng.uniform(0.55, 0.95)
            return {
                "level_pct": round(100.0 * level / silo.capacity_t, 2),
                "level_t": round(level, 1),
                "capacity_t": round(silo.capacity_t, 1),
            }, breach
        if family == "quality":
            st["free_lime"] = _walk(rng, st["free_lime"], 1.2, 0.08, 0.6, 1.9)
            st["lsf"] = _walk(rng, st["lsf"], 0.95, 0.004, 0.91, 0.99)
            st["c3s"] = _walk(rng, st["c3s"], 58.0, 0.6, 52.0, 63.0)
            lime = rng.uniform(2.6, 3.6) if breach else st["free_lime"]
            return {
                "free_lime_pct": round(lime, 2),
                "lsf": round(st["lsf"], 3),
                "c3s_pct": round(st["c3s"], 1),
            }, breach
        # energy: a kiln line draws ~38 kWh per t of clinker, a cement mill ~32 kWh per t
        specific = 38.0 if plant.is_iu else 32.0
        power = max(0.0, plant.line_tph * specific * (1 + rng.gauss(0.0, 0.02)) + 400.0)
        values = {"power_kw": round(power, 1), "interval_s": round(self.interval_s, 3)}
        if plant.is_iu:
            st["thermal"] = _walk(rng, st["thermal"], 730.0, 4.0, 690.0, 790.0)
            values["thermal_kcal_per_kg"] = round(st["thermal"], 1)
        return values, False

    def vehicle_reading(self, v: _Vehicle, breach: bool) -> tuple[dict[str, Any], bool, int]:
        """Advance a vehicle one interval; returns values, whether this reading is a breach and
        the length of a stop episode started now (its later readings are breaches too)."""
        rng, dt = self.rng, self.dt_h
        started = 0
        if breach and v.in_transit and v.stop_left == 0:
            started = v.stop_left = self.stop_readings
        stopped = v.stop_left > 0
        if stopped:
            v.stop_left -= 1
            v.speed_kmh = 0.0
        elif v.phase == "loading":
            step = min(v.handling_tph * dt, v.target_t - v.load_t)
            v.load_t += step
            v.origin.add(-step)
            if v.load_t >= v.target_t - 1e-9:
                v.phase, v.progress = "loaded", 0.0
                v.speed_kmh = v.mean_kmh * 0.5
        elif v.phase == "unloading":
            step = min(v.handling_tph * dt, v.load_t)
            v.load_t -= step
            v.destination.add(step)
            if v.load_t <= 1e-9:
                v.phase, v.progress, v.load_t = "empty", 0.0, 0.0
                v.speed_kmh = v.mean_kmh * 0.5
        else:
            v.speed_kmh = _walk(
                rng, v.speed_kmh, v.mean_kmh, 0.08 * v.mean_kmh, 5.0, 1.75 * v.mean_kmh
            )
            km = v.speed_kmh * dt
            v.progress += km / (v.distance_km * ROUTE_FACTOR)
            burn = v.burn_loaded if v.phase == "loaded" else v.burn_empty
            v.fuel_l -= burn * km * ROUTE_FACTOR
            if v.fuel_l < 0.12 * v.tank_l:  # a fuel stop on the way
                v.fuel_l = v.tank_l * rng.uniform(0.85, 1.0)
            if v.progress >= 1.0:
                v.speed_kmh, v.progress = 0.0, 1.0
                if v.phase == "loaded":
                    v.phase = "unloading"
                else:  # back at the origin: refuel, new trip
                    v.phase, v.load_t = "loading", 0.0
                    v.trip_id = f"T-{next(self.trip_seq):06d}"
                    v.target_t = v.capacity_t * rng.uniform(0.96, 1.0)
                    v.fuel_l = v.tank_l * rng.uniform(0.9, 1.0)
        lat, lon = v.position()
        if v.in_transit and not stopped:
            target = v.destination.coords if v.phase == "loaded" else v.origin.coords
            v.heading = bearing_deg((lat, lon), target)
        values = {
            "lat": round(lat, 5),
            "lon": round(lon, 5),
            "speed_kmh": round(v.speed_kmh, 1),
            "fuel_l": round(v.fuel_l, 1),
            "load_t": round(v.load_t, 2),
            "capacity_t": round(v.capacity_t, 1),
            "heading_deg": round(v.heading, 1),
        }
        return values, stopped, started


def _first_period(frame: pd.DataFrame | None, key: str, value: str) -> dict[str, float]:
    """key -> value of the first planning period (the one a live reading belongs to)."""
    if frame is None or frame.empty or value not in frame:
        return {}
    first = frame.sort_values("time_period").drop_duplicates(key)
    return {str(k): float(v) for k, v in zip(first[key], first[value], strict=True) if pd.notna(v)}


def _column_max(frame: pd.DataFrame | None, key: str, value: str) -> dict[str, float]:
    if frame is None or frame.empty or value not in frame:
        return {}
    series = frame.groupby(key)[value].max().dropna()
    return {str(k): float(v) for k, v in series.items()}


def _pseudo_coords(code: str) -> tuple[float, float]:
    """A stable made-up location for a plant without coordinates (the public dataset has none),
    so the fleet can still move between its plants."""
    h = zlib.crc32(code.encode())
    f1, f2 = (h & 0xFFFF) / 0xFFFF, (h >> 16) / 0xFFFF
    return (
        _LAT_RANGE[0] + f1 * (_LAT_RANGE[1] - _LAT_RANGE[0]),
        _LON_RANGE[0] + f2 * (_LON_RANGE[1] - _LON_RANGE[0]),
    )


def _plants(tables: Mapping[str, pd.DataFrame], rng: random.Random) -> dict[str, _Plant]:
    plants = tables["plants"]
    capacity = _first_period(tables.get("clinker_capacity"), "iu_code", "capacity")
    demand = _first_period(tables.get("clinker_demand"), "iugu_code", "demand")
    safety = _first_period(tables.get("closing_stock_bounds"), "iugu_code", "min_close_stock")
    max_close = _column_max(tables.get("closing_stock_bounds"), "iugu_code", "max_close_stock")
    opening_frame = tables.get("opening_stock")
    opening: dict[str, float] = {}
    if opening_frame is not None and not opening_frame.empty:
        opening = {
            str(k): float(v)
            for k, v in zip(opening_frame["iugu_code"], opening_frame["opening_stock"], strict=True)
            if pd.notna(v)
        }
    result: dict[str, _Plant] = {}
    for row in plants.sort_values("iugu_code").itertuples(index=False):
        code = str(row.iugu_code)
        is_iu = str(row.plant_type).upper() == "IU"
        lat, lon = getattr(row, "latitude", None), getattr(row, "longitude", None)
        coords = (
            (float(lat), float(lon)) if pd.notna(lat) and pd.notna(lon) else _pseudo_coords(code)
        )
        stock = opening.get(code, 20000.0)
        safety_t = safety.get(code, 0.15 * stock)
        total_cap = max_close.get(code) or max(1.6 * stock, 4.0 * safety_t)
        total_cap = max(total_cap, stock / 0.85, 2.0 * safety_t, 1000.0)
        # Two clinker silos at a kiln site when each can stay well above the plant's safety
        # stock (the silo rule compares one silo's level with the plant's safety stock).
        n = 2 if is_iu and 0.93 * total_cap / 2 > 1.6 * safety_t else 1
        silos = []
        for i in range(n):
            cap = total_cap / n
            low, high = min(1.05 * safety_t, 0.5 * cap), 0.93 * cap
            level = min(high, max(low, stock / n))
            silos.append(_Silo(f"clinker_silo{i + 1}", cap, level, low, high))
        consumption = demand.get(code, 0.0) / PERIOD_HOURS
        if is_iu:
            nominal = capacity.get(code, 288000.0) / PERIOD_HOURS
        else:
            nominal = consumption or 100.0
            consumption = nominal
        plant = _Plant(code, is_iu, coords, safety_t, silos, nominal, consumption)
        # kilns run at 92-98 % of rated output; a mill grinds the clinker it is planned to get
        plant.mean_tph = nominal * (rng.uniform(0.92, 0.98) if is_iu else rng.uniform(0.9, 1.1))
        plant.line_tph = plant.mean_tph
        if not is_iu:
            plant.mean_tph /= 0.75  # cement out of the mill: clinker is ~75 % of it
            plant.line_tph = plant.mean_tph
        result[code] = plant
    return result


# --------------------------------------------------------------------------------------------
# Messages


def _iso(ts: datetime, naive: bool = False) -> str:
    text = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    return text if naive else text + "Z"


def _corrupt(
    kind: str,
    prefix: str,
    topic: str,
    body: dict[str, Any],
    family: str,
    rng: random.Random,
) -> tuple[str, bytes]:
    """A malformed variant of a well-formed message: what a faulty device or gateway sends."""
    if kind == "missing_message_id":
        body = {k: v for k, v in body.items() if k != "message_id"}
    elif kind == "naive_ts":
        body = {**body, "ts": body["ts"].rstrip("Z")}
    elif kind == "non_numeric":
        values = dict(body["values"])
        name = rng.choice([k for k, v in values.items() if not isinstance(v, bool)])
        # fleet values may be strings, so a dead fleet sensor sends null; plant ones send "n/a"
        values[name] = None if family == "fleet" else rng.choice(("n/a", "ERR", "---"))
        body = {**body, "values": values}
    elif kind == "bad_topic":
        parts = topic.split("/")
        if family == "fleet":
            topic = f"{prefix}/fleet/{parts[-2]}/gps"
        else:
            topic = rng.choice(
                (
                    f"{prefix}/plants/{parts[-3]}/vibration/{parts[-1]}",
                    f"{prefix}/plants/{parts[-3]}/{parts[-2]}",
                    f"{prefix}/plants/{parts[-3]}/{parts[-2]}/{parts[-1]} 2",
                )
            )
    text = json.dumps(body, separators=(",", ":"))
    if kind == "invalid_json":  # a frame cut short by a flaky gateway
        return topic, text[: rng.randint(len(text) // 3, len(text) - 2)].encode()
    return topic, text.encode()


def iter_messages(
    instance_tables: Mapping[str, pd.DataFrame],
    seed: int,
    malformed_share: float = 0.01,
    breach_share: float = 0.02,
    start_ts: datetime | None = None,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    topic_prefix: str = DEFAULT_PREFIX,
) -> Iterator[SimMessage]:
    """Endless, deterministic stream of the plants' and the fleet's messages.

    The same `seed` and `start_ts` give the same bytes (message ids included), so a test can
    predict exactly what the ingestor must land. Shares are kept on budget rather than drawn
    independently: over any long stretch the malformed and breach shares are what was asked,
    however few sensors can break a rule; a vehicle stop is one breach decision but all its
    readings (at least `STOP_MINUTES` of them) count against the breach budget.
    """
    if not 0 <= malformed_share <= 1 or not 0 <= breach_share <= 1:
        raise ValueError("malformed_share and breach_share must be between 0 and 1")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    if any(not part for part in topic_prefix.split("/")):
        raise ValueError(f"topic prefix {topic_prefix!r} has an empty level")
    if "plants" not in instance_tables or instance_tables["plants"].empty:
        raise ValueError("the instance has no plants to simulate")
    start = (start_ts or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    id_rng = random.Random(f"{seed}|{start.isoformat()}")
    world = _World(instance_tables, rng, interval_s)
    malformed_order = list(MALFORMED_KINDS)
    rng.shuffle(malformed_order)
    malformed_cycle = itertools.cycle(malformed_order)
    owed_malformed = owed_breach = 0.0
    plant_topics = {
        id(s): f"{topic_prefix}/plants/{s.plant.code}/{s.family}/{s.sensor}" for s in world.sources
    }
    for tick in itertools.count():
        world.plant_flows()
        base = start + timedelta(seconds=tick * interval_s)
        for source in world.round:
            owed_malformed += malformed_share
            owed_breach += breach_share
            malformed = owed_malformed >= 2 or (owed_malformed >= 1 and rng.random() < 0.5)
            if malformed:
                owed_malformed -= 1
            if isinstance(source, _Vehicle):
                # a stop costs `stop_readings` breaches: offer it rarely, so that about a quarter
                # of the breach budget goes to stops and the rest to the plants' readings
                can_breach = (
                    not malformed
                    and source.in_transit
                    and source.stop_left == 0
                    and rng.random() < 0.2 / world.stop_readings
                )
            else:
                # silos outnumber kilns and labs: weigh them so each rule gets its share
                can_breach = (
                    not malformed and source.breachable and rng.random() < source.breach_weight
                )
            want = can_breach and (owed_breach >= 2 or (owed_breach >= 1 and rng.random() < 0.5))
            ts = base + timedelta(seconds=source.offset_s)
            body: dict[str, Any] = {
                "message_id": str(uuid.UUID(int=id_rng.getrandbits(128), version=4)),
                "ts": _iso(ts),
                "source": "sim",
            }
            if isinstance(source, _Vehicle):
                values, breach, started = world.vehicle_reading(source, want)
                owed_breach -= started
                family = "fleet"
                topic = f"{topic_prefix}/fleet/{source.vehicle}/telemetry"
                body["units"] = UNITS["fleet"]
                body["values"] = values
                body["trip"] = {
                    "trip_id": source.trip_id,
                    "origin": source.origin.code,
                    "destination": source.destination.code,
                    "mode": source.mode,
                }
                body["status"] = "stopped" if breach else source.phase
            else:
                values, breach = world.plant_reading(source, want)
                if breach:
                    owed_breach -= 1
                family = source.family
                topic = plant_topics[id(source)]
                body["units"] = {k: u for k, u in UNITS[family].items() if k in values}
                body["values"] = values
            if malformed:
                kind = next(malformed_cycle)
                bad_topic, payload = _corrupt(kind, topic_prefix, topic, body, family, rng)
                yield SimMessage(bad_topic, payload, KIND_MALFORMED)
            else:
                payload = json.dumps(body, separators=(",", ":")).encode()
                yield SimMessage(topic, payload, KIND_BREACH if breach else KIND_OK)


def sources_per_round(instance_tables: Mapping[str, pd.DataFrame]) -> int:
    """How many messages one round (one reading of every sensor and vehicle) holds."""
    return len(_World(instance_tables, random.Random(0), DEFAULT_INTERVAL_S).round)


# --------------------------------------------------------------------------------------------
# Publishing


@dataclass
class PublishStats:
    """What a run published; `acked` counts PUBACKs, `failed` PUBACKs with an error code."""

    published: int = 0
    ok: int = 0
    malformed: int = 0
    breaches: int = 0
    acked: int = 0
    failed: int = 0
    seconds: float = 0.0
    ids: list[str] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0

    @property
    def unacked(self) -> int:
        return self.published - self.acked

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "ok": self.ok,
            "malformed": self.malformed,
            "breaches": self.breaches,
            "acked": self.acked,
            "failed": self.failed,
            "unacked": self.unacked,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
        }


class _Acks:
    """PUBACK bookkeeping shared with paho's network thread."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.acked = 0
        self.failed = 0
        self.last_ack = 0.0

    def on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, props: Any
    ) -> None:
        with self.cond:
            self.acked += 1
            if getattr(reason_code, "is_failure", False):
                self.failed += 1
            self.last_ack = time.perf_counter()
            self.cond.notify_all()


def connect_publisher(
    settings: Any, client_id: str, *, max_inflight: int = 20, timeout_s: float = 10.0
) -> Any:
    """A connected MQTT v5 client with its network loop running; raises SourceUnavailable.

    `max_inflight` caps the QoS 1 messages awaiting a PUBACK: MQTT v5 brokers announce their own
    limit (ReceiveMaximum, 20 on a default Mosquitto) and may drop a client that exceeds it.
    """
    from clinker_pipeline.defs.telemetry.mqtt import make_client

    client = make_client(settings, client_id=client_id, protocol=5)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        outcome["reason"] = reason_code
        receive_max = getattr(props, "ReceiveMaximum", None)
        if receive_max is not None and receive_max < max_inflight:
            log.warning(
                "broker accepts %s unacknowledged messages, %s configured",
                receive_max,
                max_inflight,
            )
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise SourceUnavailable(f"cannot reach MQTT broker {settings.url}: {exc}") from None
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        raise SourceUnavailable(f"MQTT broker {settings.url} did not answer within {timeout_s} s")
    reason = outcome["reason"]
    if reason.is_failure:
        client.loop_stop()
        raise SourceUnavailable(f"MQTT broker {settings.url} refused the connection: {reason}")
    return client


def publish(
    messages: Iterable[SimMessage],
    client: Any,
    *,
    rate: float = 0.0,
    count: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    ack_timeout_s: float = 60.0,
    collect_ids: bool = False,
    max_pending: int = 10_000,
) -> PublishStats:
    """Publish QoS 1 at `rate` messages/s (0: as fast as the broker acknowledges) until `count`
    messages, `duration_s` seconds or `stop`; then wait up to `ack_timeout_s` for the PUBACKs.

    Pacing is a token bucket with a burst of 0.1 s: a publisher that falls behind (a slow broker,
    a GC pause) catches up at most one burst rather than flooding the broker afterwards. At most
    `max_pending` messages wait for their PUBACK, so an endless run cannot fill memory.
    """
    acks = _Acks()
    client.on_publish = acks.on_publish
    stats = PublishStats()
    stop = stop or threading.Event()
    burst_s = 0.1
    interval = 1.0 / rate if rate > 0 else 0.0
    t0 = time.perf_counter()
    next_at = t0
    deadline = t0 + duration_s if duration_s is not None and count is None else None
    stream = iter(messages) if count is None else itertools.islice(messages, count)
    for message in stream:
        now = time.perf_counter()
        if stop.is_set() or (deadline is not None and now >= deadline):
            break
        if interval:
            if next_at - now > 0.001:
                if stop.wait(next_at - now):
                    break
            elif now - next_at > burst_s:
                next_at = now - burst_s
            next_at += interval
        if stats.published - acks.acked >= max_pending:
            with acks.cond:
                acks.cond.wait_for(lambda: stats.published - acks.acked < max_pending, 1.0)
        client.publish(message.topic, message.payload, qos=1)
        stats.published += 1
        if message.kind == KIND_MALFORMED:
            stats.malformed += 1
        else:
            stats.ok += message.kind == KIND_OK
            stats.breaches += message.kind == KIND_BREACH
            if collect_ids:
                stats.ids.append(message.message_id or "")
    with acks.cond:
        acks.cond.wait_for(lambda: acks.acked >= stats.published, ack_timeout_s)
        stats.acked, stats.failed = acks.acked, acks.failed
        end = acks.last_ack if stats.published else time.perf_counter()
    stats.seconds = max(end - t0, 1e-9)
    return stats


# --------------------------------------------------------------------------------------------
# Command line


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset (Z or +00:00): {text}")
    return value


def add_simulate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `clinker simulate-telemetry` (and of `python -m ...simulate`)."""
    parser.add_argument(
        "--rate",
        type=non_negative_float,
        default=100.0,
        help="messages/s, total (0: as fast as acknowledged)",
    )
    parser.add_argument(
        "--duration",
        type=non_negative_float,
        default=None,
        help="seconds to run (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--count",
        type=positive_int,
        default=None,
        help="exact number of messages (overrides --duration)",
    )
    parser.add_argument(
        "--broker", default=None, help="mqtt[s]://host[:port] (default: IOT_BROKER_URL)"
    )
    parser.add_argument("--input", default=None, help="planning instance (default: bundled sample)")
    parser.add_argument(
        "--seed", type=int, default=None, help="same seed, same readings (default: random)"
    )
    parser.add_argument(
        "--malformed-share",
        type=share,
        default=0.01,
        help="share of messages the ingestor must dead-letter (bad JSON, no message_id, naive "
        "ts, non-numeric value, topic outside the scheme)",
    )
    parser.add_argument(
        "--breach-share",
        type=share,
        default=0.02,
        help="share of readings that break a threshold rule (kiln > 1500 degC, silo > 95 %% or "
        "below safety stock, free lime > 2.5 %%, vehicle stopped)",
    )
    parser.add_argument(
        "--client-id", default=None, help="default: IOT_CLIENT_ID, else clinker-sim-<host>-<pid>"
    )
    parser.add_argument(
        "--topic-prefix",
        default=DEFAULT_PREFIX,
        help="first topic level; the ingestor files only 'clinker' (tests use a private one)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="simulated seconds between two readings of a sensor "
        "(default: 60; open-ended runs: real time)",
    )
    parser.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="first timestamp, ISO-8601 with offset (default: so the run ends now)",
    )
    parser.add_argument(
        "--max-inflight",
        type=positive_int,
        default=20,
        help="QoS 1 messages awaiting PUBACK (the broker's ReceiveMaximum)",
    )
    parser.add_argument(
        "--ack-timeout",
        type=non_negative_float,
        default=60.0,
        help="seconds to wait for the last PUBACKs",
    )
    parser.add_argument(
        "--ids-file",
        default=None,
        help="write the ids of the well-formed messages here, one a line",
    )
    parser.add_argument("--json", action="store_true", help="print the stats as one JSON object")
    return parser


def _load_tables(path: str | None) -> dict[str, pd.DataFrame]:
    from clinker_pipeline.instance import load_instance, sample_instance_path

    instance = load_instance(path or sample_instance_path())
    if instance.errors:
        raise InvalidInstance(
            f"instance {instance.origin} has {len(instance.errors)} error(s); nothing published",
            instance.errors,
        )
    return instance.tables


def simulate_command(args: argparse.Namespace) -> int:
    """Run the simulator from parsed options; exit 0 when every message was acknowledged,
    1 when the broker could not be reached or some PUBACKs are missing or failed."""
    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings

    tables = _load_tables(args.input)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    total = args.count
    if total is None and args.duration is not None and args.rate > 0:
        total = math.ceil(args.rate * args.duration)
    per_round = sources_per_round(tables)
    interval = args.interval
    if interval is None:
        interval = (
            DEFAULT_INTERVAL_S
            if total is not None or args.rate <= 0
            else max(per_round / args.rate, 0.001)
        )
    if interval <= 0:
        raise ValueError(f"--interval must be > 0, got {interval}")
    start = args.start
    if start is None:
        start = datetime.now(UTC)
        if total is not None:  # back-date so the last round is stamped about now
            start -= timedelta(seconds=math.ceil(total / per_round) * interval)
    settings = BrokerSettings.from_env(url=args.broker)
    client_id = (
        args.client_id or settings.client_id or f"clinker-sim-{socket.gethostname()}-{os.getpid()}"
    )
    messages = iter_messages(
        tables,
        seed,
        args.malformed_share,
        args.breach_share,
        start,
        interval_s=interval,
        topic_prefix=args.topic_prefix,
    )
    try:
        client = connect_publisher(settings, client_id, max_inflight=args.max_inflight)
    except SourceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        stats = publish(
            messages,
            client,
            rate=args.rate,
            count=args.count,
            duration_s=args.duration,
            stop=stop,
            ack_timeout_s=args.ack_timeout,
            collect_ids=args.ids_file is not None,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.disconnect()
        client.loop_stop()
    if args.ids_file:
        Path(args.ids_file).write_text("".join(f"{i}\n" for i in stats.ids), encoding="utf-8")
    result = {
        **stats.as_dict(),
        "seed": seed,
        "broker": settings.url,
        "topic_prefix": args.topic_prefix,
        "interval_s": interval,
        "first_ts": _iso(start),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"published {stats.published} messages ({stats.malformed} malformed, "
            f"{stats.breaches} breaches) to {settings.url} in {stats.seconds:.1f} s "
            f"({stats.rate:.0f} msg/s), seed {seed}"
        )
    if stats.unacked or stats.failed:
        print(
            f"error: {stats.unacked} message(s) not acknowledged, {stats.failed} refused by the "
            "broker",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_simulate_arguments(
        argparse.ArgumentParser(
            prog="python -m clinker_pipeline.defs.telemetry.simulate",
            description="Publish realistic plant and fleet telemetry to MQTT.",
        )
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return simulate_command(args)
    except (InvalidInstance, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
