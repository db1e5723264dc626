"""What one optimizer run produces: status, costs, sizes, timings and the plan tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# The words a run's status can take (the contract's status set).
OPTIMAL = "optimal"
FEASIBLE = "feasible-with-gap"
INFEASIBLE = "infeasible"
ERROR = "error"
PLAN_FOUND = (OPTIMAL, FEASIBLE)


@dataclass
class PlanResult:
    run_id: str
    status: str
    objective: str
    solver: str
    solver_version: str | None
    cost: float | None = None
    production_cost: float | None = None
    transport_cost: float | None = None
    holding_cost: float | None = None
    demand_t: float = 0.0
    unmet_t: float | None = None
    served_pct: float | None = None
    mip_gap: float | None = None
    best_bound: float | None = None
    # the serve stage's lower bound on unmet tonnes, and (incumbent unmet - that bound) / demand:
    # the share of demand a better plan could still serve (0 when stage 1 is proven)
    serve_bound: float | None = None
    serve_gap: float | None = None
    interrupted: bool = False  # stopped by Ctrl-C (the plan, if any, is the best found)
    n_vars: int = 0
    n_int: int = 0
    n_rows: int = 0
    build_s: float = 0.0
    handoff_s: float = 0.0
    solve_s: float = 0.0
    extract_s: float = 0.0
    message: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    production: pd.DataFrame = field(default_factory=pd.DataFrame)
    shipments: pd.DataFrame = field(default_factory=pd.DataFrame)
    inventory: pd.DataFrame = field(default_factory=pd.DataFrame)
    unmet: pd.DataFrame = field(default_factory=pd.DataFrame)
    diagnosis: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the validated tables before feed/scenario adjustments, so what-if runs start from the
    # same data as this plan (not part of the summary or the DuckDB tables)
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    # clinker_pipeline.explain.Explanation of the plan (reasons, marginals, changes), when made
    explanation: Any = field(default=None, repr=False)

    @property
    def plan_found(self) -> bool:
        return self.status in PLAN_FOUND

    def summary(self) -> dict[str, Any]:
        """The flat, JSON-safe record of the run (the CLI's --json object and plan_runs row)."""
        keys = [
            "run_id",
            "status",
            "objective",
            "solver",
            "solver_version",
            "cost",
            "production_cost",
            "transport_cost",
            "holding_cost",
            "demand_t",
            "unmet_t",
            "served_pct",
            "mip_gap",
            "best_bound",
            "serve_gap",
            "serve_bound",
            "n_vars",
            "n_int",
            "n_rows",
            "build_s",
            "handoff_s",
            "solve_s",
            "extract_s",
            "message",
        ]
        return {k: getattr(self, k) for k in keys}

    def cost_by_iu(self) -> pd.DataFrame:
        """Production and outbound transport cost per IU: what planners compare first."""
        if self.production.empty and self.shipments.empty:
            return pd.DataFrame(
                columns=[
                    "iu_code",
                    "production_t",
                    "production_cost_inr",
                    "shipped_t",
                    "transport_cost_inr",
                    "total_cost_inr",
                ]
            )
        prod = self.production.groupby("iu_code")[["production_t", "production_cost_inr"]].sum()
        ship = (
            self.shipments.rename(columns={"from_code": "iu_code"})
            .groupby("iu_code")[["quantity_t", "transport_cost_inr"]]
            .sum()
            .rename(columns={"quantity_t": "shipped_t"})
        )
        out = prod.join(ship, how="outer").fillna(0.0)
        out["total_cost_inr"] = out["production_cost_inr"] + out["transport_cost_inr"]
        return out.sort_values("total_cost_inr", ascending=False).reset_index()
