"""Solve a set of named scenarios on the same inputs and line them up in one table.

Each scenario is a full solve (its own PlanResult, so its plan can be published like any other);
the comparison row keeps what a planning meeting asks first: cost, served %, rail share, and how
far each moved from the base scenario.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from clinker_pipeline.optimization.result import PlanResult
from clinker_pipeline.optimization.scenarios import (
    Adjusted,
    FeedInputs,
    Scenario,
    ScenarioSet,
    apply_adjustments,
    json_safe,
    mode_shares,
)
from clinker_pipeline.optimization.solve import SolveOptions, optimize

COMPARISON_COLUMNS = [
    "scenario",
    "description",
    "status",
    "cost_inr",
    "production_cost_inr",
    "transport_cost_inr",
    "served_pct",
    "unmet_t",
    "shipped_t",
    "rail_share_pct",
    "road_share_pct",
    "fuel_index",
    "diesel_inr_per_litre",
    "min_road_availability",
    "cost_vs_base_pct",
    "served_vs_base_pts",
    "rail_share_vs_base_pts",
    "plan_run_id",
    "solve_s",
    "message",
]


@dataclass
class ScenarioRun:
    scenario: Scenario
    adjusted: Adjusted
    result: PlanResult


def run_scenarios(
    tables: Mapping[str, pd.DataFrame],
    feeds: FeedInputs,
    scenario_set: ScenarioSet,
    options: SolveOptions | None = None,
    names: Sequence[str] | None = None,
    base: ScenarioRun | None = None,
) -> list[ScenarioRun]:
    """Solve each scenario (all of the set, or `names` in that order; base always first).

    `base` is an already solved base run (the pipeline's own plan): it is reused, not solved
    again, so the comparison's base row is the published plan itself.
    """
    options = options or SolveOptions()
    chosen = [scenario_set.get(n) for n in names] if names else list(scenario_set.scenarios)
    if not any(s.name == "base" for s in chosen):
        chosen.insert(0, scenario_set.get("base"))
    chosen.sort(key=lambda s: s.name != "base")
    runs = []
    for scenario in chosen:
        if base is not None and scenario.name == "base":
            runs.append(base)
            continue
        adjusted = apply_adjustments(tables, feeds, scenario, scenario_set.settings)
        result = optimize(adjusted.tables, replace(options))
        result.options["scenario"] = scenario.name
        result.options["adjustments"] = json_safe(adjusted.applied)
        runs.append(ScenarioRun(scenario, adjusted, result))
    return runs


def comparison_table(runs: Sequence[ScenarioRun]) -> pd.DataFrame:
    """One row per scenario, with deltas against the base scenario's row."""
    rows = []
    for run in runs:
        result, applied = run.result, run.adjusted.applied
        shares = mode_shares(result.shipments)
        rows.append(
            {
                "scenario": run.scenario.name,
                "description": run.scenario.description,
                "status": result.status,
                "cost_inr": result.cost,
                "production_cost_inr": result.production_cost,
                "transport_cost_inr": result.transport_cost,
                "served_pct": result.served_pct,
                "unmet_t": result.unmet_t,
                "shipped_t": shares["shipped_t"],
                "rail_share_pct": shares["rail_share_pct"],
                "road_share_pct": shares["road_share_pct"],
                "fuel_index": applied.get("fuel", {}).get("fuel_index"),
                "diesel_inr_per_litre": applied.get("fuel", {}).get("diesel_inr_per_litre"),
                "min_road_availability": applied.get("weather", {}).get("min_availability"),
                "plan_run_id": result.run_id,
                "solve_s": round(result.solve_s, 3),
                "message": result.message,
            }
        )
    table = pd.DataFrame(rows)
    base = table[table["scenario"] == "base"]
    for column, delta, pct in (
        ("cost_inr", "cost_vs_base_pct", True),
        ("served_pct", "served_vs_base_pts", False),
        ("rail_share_pct", "rail_share_vs_base_pts", False),
    ):
        ref = base[column].iloc[0] if len(base) else None
        table[delta] = [_delta(v, ref, pct) for v in table[column]]
    return table.reindex(columns=COMPARISON_COLUMNS)


def _delta(value: float | None, ref: float | None, pct: bool) -> float | None:
    if value is None or ref is None or _nan(value) or _nan(ref):
        return None
    if pct:
        return None if ref == 0 else (value - ref) / abs(ref) * 100
    return value - ref


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
