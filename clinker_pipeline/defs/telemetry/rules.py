"""Threshold rules as data, and the alerts they raise.

Operations tune limits (a kiln's overheating point, a silo's high mark) more often than code
changes, so rules live in a JSON file (`CLINKER_TELEMETRY_RULES`, default the bundled
`sample_data/telemetry_rules.json`). A rule compares one field of one family with a constant or
with a per-plant figure from the planning instance (the safety stock); the `stopped` rule looks at
a vehicle's run of zero-speed readings. The same file holds the outage and silo-freshness
settings with which telemetry updates the plan.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SAMPLE_RULES = Path(__file__).resolve().parents[2] / "sample_data" / "telemetry_rules.json"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
ALERT_COLUMNS = [
    "alert_id",
    "rule",
    "severity",
    "family",
    "plant",
    "vehicle",
    "sensor",
    "ts",
    "field",
    "value",
    "threshold",
    "message",
    "message_id",
    "batch_id",
]


class RuleError(ValueError):
    """A rules file that cannot be applied (names the rule and the field)."""


@dataclass(frozen=True)
class Rule:
    name: str
    family: str
    severity: str
    message: str
    field: str | None = None
    op: str | None = None
    threshold: float | None = None
    threshold_from: str | None = None
    kind: str = "threshold"  # threshold | stopped
    minutes: float = 30.0


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    outage_minutes: float = 30.0
    outage_assumed_hours: float = 72.0
    silo_fresh_hours: float = 6.0

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        file = Path(path) if path else SAMPLE_RULES
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuleError(f"cannot read telemetry rules {file}: {exc}") from None
        rules = []
        for item in raw.get("rules", ()):
            name = item.get("name") or "?"
            kind = item.get("kind", "threshold")
            severity = str(item.get("severity", "WARN")).upper()
            if severity not in ("WARN", "ERROR"):
                raise RuleError(f"rule {name}: severity must be WARN or ERROR")
            if kind == "threshold":
                if item.get("op") not in OPS:
                    raise RuleError(f"rule {name}: op must be one of {', '.join(OPS)}")
                if "threshold" not in item and item.get("threshold_from") != "safety_stock":
                    raise RuleError(f"rule {name}: needs threshold or threshold_from")
                if not item.get("field"):
                    raise RuleError(f"rule {name}: needs a field")
            elif kind != "stopped":
                raise RuleError(f"rule {name}: unknown kind {kind!r}")
            rules.append(
                Rule(
                    name=name,
                    family=str(item.get("family")),
                    severity=severity,
                    message=str(item.get("message", name)),
                    field=item.get("field"),
                    op=item.get("op"),
                    threshold=None if item.get("threshold") is None else float(item["threshold"]),
                    threshold_from=item.get("threshold_from"),
                    kind=kind,
                    minutes=float(item.get("minutes", 30)),
                )
            )
        outage = raw.get("outage", {})
        return cls(
            tuple(rules),
            outage_minutes=float(outage.get("minutes", 30)),
            outage_assumed_hours=float(outage.get("assumed_hours", 72)),
            silo_fresh_hours=float(raw.get("silo_fresh_hours", 6)),
        )


def evaluate(
    rules: RuleSet,
    tables: Mapping[str, pd.DataFrame],
    safety_stock: Mapping[str, float] | None = None,
    fleet_history: pd.DataFrame | None = None,
    plant_stock: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Alerts raised by the new readings `tables` (family -> typed rows).

    `fleet_history` holds earlier positions, so a vehicle that has been standing since the last
    batch is still seen as standing. A rule against the safety stock compares a plant's whole
    stock, not one silo: `plant_stock` (plant, level_t = sum of each silo's latest reading, ts,
    message_id, batch_id of the newest reading) for the plants with new silo readings.
    """
    safety_stock = safety_stock or {}
    found = []
    for rule in rules.rules:
        frame = tables.get(rule.family)
        if frame is None or frame.empty:
            continue
        if rule.kind == "stopped":
            found.append(_stopped(rule, frame, fleet_history))
            continue
        if rule.threshold_from == "safety_stock":
            if plant_stock is None or plant_stock.empty:
                continue
            frame = plant_stock.assign(sensor=None)
        values = frame[rule.field].astype("float64")
        if rule.threshold_from == "safety_stock":
            limit = frame["plant"].map(lambda p: safety_stock.get(str(p))).astype("float64")
        else:
            limit = pd.Series(rule.threshold, index=frame.index, dtype="float64")
        hit = OPS[rule.op](values, limit) & values.notna() & limit.notna()
        rows = frame[hit]
        if rows.empty:
            continue
        found.append(
            pd.DataFrame(
                {
                    "rule": rule.name,
                    "severity": rule.severity,
                    "family": rule.family,
                    "plant": rows.get("plant"),
                    "vehicle": rows.get("vehicle"),
                    "sensor": rows.get("sensor"),
                    "ts": rows["ts"],
                    "field": rule.field,
                    "value": values[hit],
                    "threshold": limit[hit],
                    "message": rule.message,
                    "message_id": rows["message_id"],
                    "batch_id": rows["batch_id"],
                }
            )
        )
    found = [f for f in found if len(f)]
    if not found:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    alerts = pd.concat(found, ignore_index=True)
    alerts["alert_id"] = alerts["rule"] + ":" + alerts["message_id"].astype(str)
    return alerts.reindex(columns=ALERT_COLUMNS)


def _stopped(rule: Rule, new: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """One alert per vehicle whose latest readings have been at speed 0 for > `minutes`.

    Standing while loading or unloading is work, not a stop (a rake stands hours at a siding).
    """
    frames = [new] if history is None or history.empty else [history, new]
    fleet = pd.concat(frames, ignore_index=True).drop_duplicates("message_id")
    fleet = fleet.sort_values(["vehicle", "ts"])
    working = fleet["status"].isin(["loading", "unloading"]) if "status" in fleet else False
    fleet = fleet.assign(_idle=(fleet["speed_kmh"] <= 0) & ~working)
    rows = []
    for vehicle, readings in fleet.groupby("vehicle", sort=False):
        moving = readings[~readings["_idle"]]
        last = readings.iloc[-1]
        if not last["_idle"]:
            continue
        since = readings[readings["ts"] > moving["ts"].max()] if len(moving) else readings
        standing = (last["ts"] - since["ts"].min()).total_seconds() / 60.0
        if standing > rule.minutes and last["message_id"] in set(new["message_id"]):
            rows.append(
                {
                    "rule": rule.name,
                    "severity": rule.severity,
                    "family": "fleet",
                    "plant": None,
                    "vehicle": vehicle,
                    "sensor": None,
                    "ts": last["ts"],
                    "field": "stopped_minutes",
                    "value": round(standing, 1),
                    "threshold": rule.minutes,
                    "message": rule.message,
                    "message_id": last["message_id"],
                    "batch_id": last["batch_id"],
                }
            )
    return pd.DataFrame(rows)
