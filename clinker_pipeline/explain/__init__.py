"""Explanations of a solved plan: why demand goes unserved, what a tonne or a rake is worth, what
changed since the last plan, and pictures of it. Pure code (no Dagster): it reads the instance
tables the plan was solved on and the `PlanResult`.

An explanation never costs a plan: `explain_plan` catches its own failures and records them on
the `Explanation`, and publishing writes the plan whether or not there is one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from clinker_pipeline.optimization.result import PlanResult

logger = logging.getLogger(__name__)


@dataclass
class Explanation:
    reasons: pd.DataFrame = field(default_factory=pd.DataFrame)
    marginals: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # filled when the plan is published (against the newest earlier plan in the same file)
    previous_run_id: str | None = None
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def top_bottleneck(self) -> str | None:
        """The binding limit worth most: serving first, then rupees."""
        from clinker_pipeline.explain.marginals import bottlenecks

        top = bottlenecks(self.marginals).head(1)
        if top.empty:
            return None
        r = top.iloc[0]
        return bottleneck_text(r)


def bottleneck_text(r) -> str:
    where = (
        r["description"]
        if r["kind"] == "dispatch_row"
        else (
            f"{r['kind'].replace('_', ' ')} {r['iugu_code']}"
            + (f" -> {r['to_code']} by {r['transport_code']}" if r["kind"] == "rake_trip" else "")
            + f" (period {int(r['time_period'])})"
        )
    )
    return (
        f"{where}: +1 {r['unit']} serves {r['serve_t_per_unit']:,.2f} t more, "
        f"saves INR {r['saving_inr_per_unit']:,.0f}"
    )


def explain_plan(
    tables: dict[str, pd.DataFrame], result: PlanResult, trip_budget_s: float | None = None
) -> Explanation:
    """Reasons and marginal values of a found plan; failures are recorded, never raised."""
    if not result.plan_found:
        return Explanation()
    from clinker_pipeline.explain.marginals import compute_marginals
    from clinker_pipeline.explain.plan_arrays import plan_arrays
    from clinker_pipeline.explain.reasons import explain_unmet
    from clinker_pipeline.optimization.data import compile_data

    t0 = time.perf_counter()
    out = Explanation()
    try:
        data = compile_data(tables)
        plan = plan_arrays(data, result)
        t1 = time.perf_counter()
        out.reasons = explain_unmet(data, plan)
        t2 = time.perf_counter()
        budget = trip_budget_s if trip_budget_s is not None else max(1.0, 0.05 * result.solve_s)
        out.marginals = compute_marginals(
            data,
            plan,
            holding_cost=float(result.options.get("holding_cost", 0.0) or 0.0),
            trip_budget_s=budget,
        )
        out.timings = {
            "prepare_s": t1 - t0,
            "reasons_s": t2 - t1,
            "marginals_s": time.perf_counter() - t2,
        }
    except Exception as exc:  # an explanation must never cost the plan
        logger.exception("explaining plan %s failed", result.run_id)
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    return out


__all__ = ["Explanation", "explain_plan"]
