"""The scenario layer: what the feeds (and a planner's what-ifs) change before the model is built.

The contract (spec "Feed-driven adjustments") keeps the model itself fixed and moves its data:
- fuel: road (T1) freight scales by `1 + fuel_share * (diesel_now / diesel_base - 1)`;
- weather: a road-availability factor per origin plant and period multiplies that plant's T1
  dispatch rows (caps L, and the committed flows G and E, which a shut road cannot carry either),
  and adds a cap of `availability * capacity` where the plant has none;
- telemetry: a live plant outage or silo reading replaces CAPACITY or OPENING STOCK of the
  current period: in period 1 the reading is the opening stock, in a later period it fixes the
  closing stock of the period before; outside the horizon it is refused (recorded, not applied);
- named scenarios (base, demand +x %, plant outage, fuel shock, monsoon) are data, read from a
  JSON file, so adding one is an edit, not a release.

Everything here is pure: tables in, adjusted tables plus a JSON-safe record of what was applied
out. The record travels with the plan (plan_runs.adjustments) so a planner can see why a plan
moved, and which feeds were stale when it was made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinker_pipeline.defs.feeds.diesel.parse import fuel_index
from clinker_pipeline.lib.calendar import PeriodWindow

ROAD = "T1"
RAIL = "T2"
SAMPLE_SCENARIOS = Path(__file__).resolve().parent.parent / "sample_data" / "scenarios.json"


class ScenarioError(ValueError):
    """A scenario file or entry that cannot be applied (names the scenario and the field)."""


@dataclass(frozen=True)
class Outage:
    """Capacity of `plant` multiplied by `capacity_factor` (0: kiln down) in `periods` (all if
    empty)."""

    plant: str
    periods: tuple[int, ...] = ()
    capacity_factor: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    demand_change_pct: float = 0.0  # +10: every demand row 10 % higher
    demand_plants: tuple[str, ...] = ()  # empty: every plant
    outages: tuple[Outage, ...] = ()
    diesel_factor: float = 1.0  # fuel shock: 1.3 = diesel 30 % above the feed
    road_closure_share: float = 0.0  # share of hours roads are shut beyond the forecast
    road_closure_states: tuple[str, ...] = ()  # plants' STATE it applies to; empty: all

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Scenario:
        name = str(raw.get("name") or "").strip()
        if not name:
            raise ScenarioError("every scenario needs a non-empty 'name'")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - {"_comment"})
        if unknown:
            raise ScenarioError(
                f"scenario {name!r}: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            outages = tuple(
                Outage(
                    plant=str(o["plant"]),
                    periods=tuple(int(p) for p in o.get("periods", ())),
                    capacity_factor=float(o.get("capacity_factor", 0.0)),
                )
                for o in raw.get("outages", ())
            )
            scenario = cls(
                name=name,
                description=str(raw.get("description", "")),
                demand_change_pct=float(raw.get("demand_change_pct", 0.0)),
                demand_plants=tuple(str(p) for p in raw.get("demand_plants", ())),
                outages=outages,
                diesel_factor=float(raw.get("diesel_factor", 1.0)),
                road_closure_share=float(raw.get("road_closure_share", 0.0)),
                road_closure_states=tuple(str(s) for s in raw.get("road_closure_states", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScenarioError(f"scenario {name!r}: {exc}") from None
        scenario.check()
        return scenario

    def check(self) -> None:
        where = f"scenario {self.name!r}"
        if self.demand_change_pct <= -100:
            raise ScenarioError(f"{where}: demand_change_pct must be > -100")
        if self.diesel_factor <= 0:
            raise ScenarioError(f"{where}: diesel_factor must be > 0")
        if not 0 <= self.road_closure_share <= 1:
            raise ScenarioError(f"{where}: road_closure_share must be within 0..1")
        for outage in self.outages:
            if not 0 <= outage.capacity_factor <= 1:
                raise ScenarioError(f"{where}: outage capacity_factor must be within 0..1")


@dataclass(frozen=True)
class AdjustmentSettings:
    """Constants of the feed adjustments (the freight contracts' reference diesel price)."""

    fuel_share: float = 0.35  # share of road freight that is fuel
    diesel_base_inr_per_litre: float = 90.0  # diesel price the lane freight rates were set at

    def check(self) -> None:
        if not 0 <= self.fuel_share <= 1:
            raise ScenarioError("fuel_share must be within 0..1")
        if self.diesel_base_inr_per_litre <= 0:
            raise ScenarioError("diesel_base_inr_per_litre must be > 0")


@dataclass(frozen=True)
class ScenarioSet:
    settings: AdjustmentSettings
    scenarios: tuple[Scenario, ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> ScenarioSet:
        file = Path(path) if path else SAMPLE_SCENARIOS
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario file {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ScenarioError(f"scenario file {file} is not valid JSON: {exc}") from None
        return cls.from_dict(raw, origin=str(file))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], origin: str = "scenarios") -> ScenarioSet:
        adj = raw.get("adjustments", {})
        try:
            settings = AdjustmentSettings(
                fuel_share=float(adj.get("fuel_share", 0.35)),
                diesel_base_inr_per_litre=float(adj.get("diesel_base_inr_per_litre", 90.0)),
            )
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{origin}: adjustments: {exc}") from None
        settings.check()
        scenarios = tuple(Scenario.from_dict(s) for s in raw.get("scenarios", ()))
        names = [s.name for s in scenarios]
        if len(set(names)) != len(names):
            raise ScenarioError(f"{origin}: scenario names must be unique: {names}")
        if not scenarios:
            scenarios = (Scenario("base", "feeds as they are"),)
        return cls(settings, scenarios)

    def get(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        if name == "base":
            return Scenario("base", "feeds as they are")
        raise ScenarioError(
            f"no scenario named {name!r}; known: {', '.join(s.name for s in self.scenarios)}"
        )


@dataclass
class FeedInputs:
    """What the feeds say now; None leaves that adjustment off (the plain dataset run)."""

    diesel_inr_per_litre: float | None = None
    diesel_week: str | None = None
    weather_steps: pd.DataFrame | None = None  # external.weather.parse_forecast rows
    periods: Sequence[PeriodWindow] | None = None  # the planning calendar
    capacity_overrides: pd.DataFrame | None = None  # iu_code, time_period, capacity, reason
    opening_stock_overrides: pd.DataFrame | None = None  # iugu_code, opening_stock, reason
    # the planning period "now" falls in, which live readings describe; None: outside the horizon
    current_period: int | None = 1
    stale: dict[str, str] = field(default_factory=dict)  # feed -> why its data is old


@dataclass
class Adjusted:
    tables: dict[str, pd.DataFrame]
    applied: dict[str, Any]  # JSON-safe record of every change
    road_availability: pd.DataFrame


def apply_adjustments(
    tables: Mapping[str, pd.DataFrame],
    feeds: FeedInputs,
    scenario: Scenario | None = None,
    settings: AdjustmentSettings | None = None,
) -> Adjusted:
    """Validated instance tables -> the tables the model sees under `scenario` and the feeds.

    Order matters and is fixed: telemetry overrides (facts) first, then the scenario's what-ifs
    on demand and capacity, then freight (fuel) and road caps (weather), which depend on
    capacity.
    """
    scenario = scenario or Scenario("base")
    settings = settings or AdjustmentSettings()
    scenario.check()
    settings.check()
    out = {name: table.copy() for name, table in tables.items()}
    applied: dict[str, Any] = {"scenario": scenario.name}
    # feed -> why it cannot apply to this instance (no coordinates, no road lanes, a plant the
    # instance does not have): the plan goes on without it and says so
    not_applied: dict[str, str] = {}
    _telemetry(out, feeds, applied, not_applied)
    _demand(out, scenario, applied)
    _outages(out, scenario, applied, not_applied)
    _fuel(out, feeds, scenario, settings, applied, not_applied)
    availability = _weather(out, feeds, scenario, applied, not_applied)
    # a feed that does not apply to this instance is not "stale" for its plan
    stale = {k: v for k, v in feeds.stale.items() if k not in not_applied}
    if stale:
        applied["stale_inputs"] = dict(sorted(stale.items()))
    if not_applied:
        applied["not_applied"] = dict(sorted(not_applied.items()))
    return Adjusted(out, applied, availability)


def _road_lanes(out: dict[str, pd.DataFrame]) -> pd.Series:
    lanes = out["logistics_lanes"]
    return (lanes["transport_code"] == ROAD) & (lanes["from_code"] != lanes["to_code"])


def _unknown(codes: pd.Series, known: pd.Series) -> list[str]:
    return sorted(set(codes.dropna().astype(str)) - set(known.dropna().astype(str)))


def _telemetry(
    out: dict[str, pd.DataFrame], feeds: FeedInputs, applied: dict, not_applied: dict
) -> None:
    strangers = []
    for frame, column in (
        (feeds.capacity_overrides, "iu_code"),
        (feeds.opening_stock_overrides, "iugu_code"),
    ):
        if frame is not None and len(frame):
            strangers += _unknown(frame[column], out["plants"]["iugu_code"])
    if strangers:
        not_applied["telemetry"] = "readings of plants this instance does not have: " + ", ".join(
            sorted(set(strangers))
        )
    cap = feeds.capacity_overrides
    if cap is not None and len(cap):
        table = out["clinker_capacity"]
        changed = []
        for row in cap.itertuples(index=False):
            mask = (table["iu_code"] == row.iu_code) & (table["time_period"] == row.time_period)
            if mask.any():
                before = float(table.loc[mask, "capacity"].iloc[0])
                table.loc[mask, "capacity"] = float(row.capacity)
                changed.append(
                    {
                        "iu_code": row.iu_code,
                        "time_period": int(row.time_period),
                        "from_t": before,
                        "to_t": float(row.capacity),
                        "reason": str(getattr(row, "reason", "telemetry")),
                    }
                )
        applied["capacity_overrides"] = changed
    stock = feeds.opening_stock_overrides
    if stock is not None and len(stock):
        applied["opening_stock_overrides"] = _silo_stock(out, stock, feeds.current_period)


def _silo_stock(out: dict[str, pd.DataFrame], stock: pd.DataFrame, period: int | None) -> list:
    """A silo reading is the stock at the start of the current period (contract: "for the
    current period"). In period 1 that is OPENING STOCK; in period p > 1 the stock carried out of
    p - 1, so the reading fixes that period's closing stock (MIN = MAX = reading). Outside the
    horizon no period starts from it: the reading is recorded as refused."""
    horizon = set(out["clinker_demand"]["time_period"].dropna().astype(int)) | set(
        out["clinker_capacity"]["time_period"].dropna().astype(int)
    )
    changed = []
    for row in stock.itertuples(index=False):
        reason = str(getattr(row, "reason", "telemetry"))
        entry = {"iugu_code": row.iugu_code, "to_t": float(row.opening_stock), "reason": reason}
        if period is None or (horizon and period not in horizon):
            changed.append({**entry, "refused": "the current time is outside the plan horizon"})
            continue
        if period == 1:
            table = out["opening_stock"]
            mask = table["iugu_code"] == row.iugu_code
            if mask.any():
                before = float(table.loc[mask, "opening_stock"].iloc[0])
                table.loc[mask, "opening_stock"] = float(row.opening_stock)
                changed.append({**entry, "time_period": 1, "from_t": before})
            continue
        bounds = out["closing_stock_bounds"]
        mask = (bounds["iugu_code"] == row.iugu_code) & (bounds["time_period"] == period - 1)
        value = float(row.opening_stock)
        if mask.any():
            before = float(bounds.loc[mask, "min_close_stock"].iloc[0])
            bounds.loc[mask, ["min_close_stock", "max_close_stock"]] = value
        else:
            before = None
            extra = pd.DataFrame(
                [
                    {
                        "iugu_code": row.iugu_code,
                        "time_period": period - 1,
                        "min_close_stock": value,
                        "max_close_stock": value,
                    }
                ]
            ).astype({c: bounds[c].dtype for c in ("iugu_code", "time_period")})
            out["closing_stock_bounds"] = bounds = pd.concat([bounds, extra], ignore_index=True)
        changed.append(
            {
                **entry,
                "time_period": period,
                "from_t": before,
                "fixes": f"closing stock of period {period - 1}",
            }
        )
    return changed


def _demand(out: dict[str, pd.DataFrame], scenario: Scenario, applied: dict) -> None:
    if not scenario.demand_change_pct:
        return
    demand = out["clinker_demand"]
    mask = (
        demand["iugu_code"].isin(scenario.demand_plants)
        if scenario.demand_plants
        else pd.Series(True, index=demand.index)
    )
    factor = 1 + scenario.demand_change_pct / 100
    before = float(demand["demand"].sum())
    demand.loc[mask, "demand"] = demand.loc[mask, "demand"].astype(float) * factor
    applied["demand"] = {
        "change_pct": scenario.demand_change_pct,
        "rows": int(mask.sum()),
        "from_t": before,
        "to_t": float(demand["demand"].sum()),
    }


def _outages(
    out: dict[str, pd.DataFrame], scenario: Scenario, applied: dict, not_applied: dict
) -> None:
    if not scenario.outages:
        return
    capacity = out["clinker_capacity"]
    known = set(capacity["iu_code"])
    record = []
    for outage in scenario.outages:
        if outage.plant not in known:
            # a scenario set is shared by every instance the pipeline plans
            not_applied[f"outage {outage.plant}"] = (
                f"scenario {scenario.name!r}: this instance has no capacity rows for {outage.plant}"
            )
            continue
        mask = capacity["iu_code"] == outage.plant
        if outage.periods:
            mask &= capacity["time_period"].isin(outage.periods)
        lost = float(capacity.loc[mask, "capacity"].sum()) * (1 - outage.capacity_factor)
        capacity.loc[mask, "capacity"] = (
            capacity.loc[mask, "capacity"].astype(float) * outage.capacity_factor
        )
        record.append({**asdict(outage), "lost_t": lost})
    applied["outages"] = record


def _fuel(
    out: dict[str, pd.DataFrame],
    feeds: FeedInputs,
    scenario: Scenario,
    settings: AdjustmentSettings,
    applied: dict,
    not_applied: dict,
) -> None:
    if feeds.diesel_inr_per_litre is None:
        if scenario.diesel_factor != 1.0:
            raise ScenarioError(
                f"scenario {scenario.name!r} shocks diesel, but no diesel price is available"
            )
        return
    diesel_now = feeds.diesel_inr_per_litre * scenario.diesel_factor
    index = fuel_index(diesel_now, settings.diesel_base_inr_per_litre, settings.fuel_share)
    lanes = out["logistics_lanes"]
    road = lanes["transport_code"] == ROAD
    if not _road_lanes(out).any():
        not_applied["fuel"] = "the instance has no road (T1) lanes: diesel changes no freight"
    lanes.loc[road, "freight_cost"] = lanes.loc[road, "freight_cost"].astype(float) * index
    applied["fuel"] = {
        "diesel_inr_per_litre": round(diesel_now, 4),
        "diesel_week": feeds.diesel_week,
        "diesel_factor": scenario.diesel_factor,
        "diesel_base_inr_per_litre": settings.diesel_base_inr_per_litre,
        "fuel_share": settings.fuel_share,
        "fuel_index": round(index, 6),
        "road_lane_rows": int(road.sum()),
    }


def _closure_by_plant(plants: pd.DataFrame, scenario: Scenario) -> dict[str, float]:
    if not scenario.road_closure_share:
        return {}
    if not scenario.road_closure_states:
        return dict.fromkeys(plants["iugu_code"], scenario.road_closure_share)
    if "state" not in plants.columns:
        raise ScenarioError(
            f"scenario {scenario.name!r} closes roads by state, but the plants table has no STATE"
        )
    wanted = {s.casefold() for s in scenario.road_closure_states}
    hit = plants["state"].fillna("").map(lambda s: s.casefold() in wanted)
    return dict.fromkeys(plants.loc[hit, "iugu_code"], scenario.road_closure_share)


def road_availability_table(
    plants: pd.DataFrame,
    periods: Sequence[PeriodWindow],
    steps: pd.DataFrame | None,
    closure: Mapping[str, float],
) -> pd.DataFrame:
    """Availability per plant and period from the forecast steps and the beyond-forecast closure.

    With no forecast at all, a plant is open `1 - closure` of every period.
    """
    columns = ["plant_code", "time_period", "availability", "closed_hours", "forecast_hours"]
    if steps is not None and len(steps):
        from clinker_pipeline.defs.feeds.weather.parse import road_availability

        table = road_availability(steps, periods, beyond_forecast_closure=dict(closure))
        covered = set(table["plant_code"])
    else:
        table, covered = pd.DataFrame(columns=columns), set()
    missing = [
        {
            "plant_code": code,
            "time_period": w.period,
            "availability": 1 - closure.get(code, 0.0),
            "closed_hours": 0.0,
            "forecast_hours": 0.0,
        }
        for code in plants["iugu_code"]
        if code not in covered
        for w in periods
    ]
    if missing:
        extra = pd.DataFrame(missing)
        table = pd.concat([table, extra], ignore_index=True) if len(table) else extra
    return table


def _forecast_for_instance(
    plants: pd.DataFrame, feeds: FeedInputs, not_applied: dict
) -> pd.DataFrame | None:
    """The stored forecast steps of this instance's located plants only: the forecast table may
    hold another instance's plants under the same codes (IU_001 is in every dataset)."""
    steps = feeds.weather_steps
    if feeds.periods is None:  # feeds off: nothing to apply, nothing to report
        return steps
    has_xy = {"latitude", "longitude"} <= set(plants.columns)
    located = plants.dropna(subset=["latitude", "longitude"]) if has_xy else plants.iloc[0:0]
    if located.empty:
        not_applied["weather"] = (
            "no plant of this instance has coordinates (LATITUDE/LONGITUDE); "
            "road availability not applied"
        )
        return None
    if steps is None or not len(steps):
        return steps
    mine = steps[steps["plant_code"].isin(set(located["iugu_code"]))]
    if mine.empty:
        not_applied["weather"] = (
            "the forecast covers none of this instance's plants; road availability not applied"
        )
        return None
    return mine


def _weather(
    out: dict[str, pd.DataFrame],
    feeds: FeedInputs,
    scenario: Scenario,
    applied: dict,
    not_applied: dict,
) -> pd.DataFrame:
    closure = _closure_by_plant(out["plants"], scenario)
    steps = _forecast_for_instance(out["plants"], feeds, not_applied)
    if feeds.periods is None or (steps is None and not closure):
        return pd.DataFrame()
    if not _road_lanes(out).any():
        not_applied["weather"] = "the instance has no road (T1) lanes: nothing to cap"
        return pd.DataFrame()
    table = road_availability_table(out["plants"], feeds.periods, steps, closure)
    ius = set(out["clinker_capacity"]["iu_code"])
    shut = table[(table["availability"] < 1 - 1e-9) & table["plant_code"].isin(ius)]
    constraints = out["flow_constraints"]
    capacity = out["clinker_capacity"].set_index(["iu_code", "time_period"])["capacity"]
    scaled = added = commitments_scaled = 0
    new_rows = []
    for row in shut.itertuples(index=False):
        plant, period, factor = row.plant_code, int(row.time_period), float(row.availability)
        road_rows = (
            (constraints["iu_code"] == plant)
            & (constraints["transport_code"] == ROAD)
            & (constraints["time_period"] == period)
        )
        road_caps = road_rows & (constraints["bound_typeid"] == "L")
        if road_caps.any():
            constraints.loc[road_caps, "value"] = (
                constraints.loc[road_caps, "value"].astype(float) * factor
            )
            scaled += int(road_caps.sum())
        # A committed road flow (E: exactly, G: at least) cannot exceed what the open road
        # carries: scaled like the caps, the monsoon serves less instead of turning infeasible.
        commitments = road_rows & constraints["bound_typeid"].isin(["E", "G"])
        if commitments.any():
            constraints.loc[commitments, "value"] = (
                constraints.loc[commitments, "value"].astype(float) * factor
            )
            commitments_scaled += int(commitments.sum())
        plant_cap = road_caps & constraints["iugu_code"].isna()
        if not plant_cap.any() and (plant, period) in capacity.index:
            new_rows.append(
                {
                    "iu_code": plant,
                    "transport_code": ROAD,
                    "iugu_code": pd.NA,
                    "time_period": period,
                    "bound_typeid": "L",
                    "value_typeid": "C",
                    "value": factor * float(capacity.loc[(plant, period)]),
                }
            )
    if new_rows:
        extra = pd.DataFrame(new_rows).astype(
            {c: constraints[c].dtype for c in new_rows[0] if c in constraints.columns}
        )
        out["flow_constraints"] = pd.concat([constraints, extra], ignore_index=True)
        added = len(new_rows)
    applied["weather"] = {
        "plants_with_reduced_road": int(shut["plant_code"].nunique()),
        "min_availability": round(float(table["availability"].min()), 6) if len(table) else 1.0,
        "mean_availability_ius": round(
            float(table[table["plant_code"].isin(ius)]["availability"].mean()), 6
        )
        if len(table)
        else 1.0,
        "road_caps_scaled": scaled,
        "road_caps_added": added,
        "road_commitments_scaled": commitments_scaled,
        "closure_beyond_forecast": {k: v for k, v in sorted(closure.items())},
    }
    return table


def mode_shares(shipments: pd.DataFrame) -> dict[str, float]:
    """Tonnes shipped and the rail/road shares of them (self-lanes are never shipments)."""
    if shipments is None or shipments.empty:
        return {"shipped_t": 0.0, "rail_share_pct": float("nan"), "road_share_pct": float("nan")}
    moved = shipments[shipments["from_code"] != shipments["to_code"]]
    total = float(moved["quantity_t"].sum())
    by_mode = moved.groupby("transport_code")["quantity_t"].sum()
    share = (lambda m: float(by_mode.get(m, 0.0)) / total * 100) if total > 0 else None
    return {
        "shipped_t": total,
        "rail_share_pct": share(RAIL) if share else float("nan"),
        "road_share_pct": share(ROAD) if share else float("nan"),
    }


def json_safe(value: Any) -> Any:
    """The `applied` record with numpy/pandas scalars turned into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
