"""Solve the clinker model: serve first, then cost (lexicographic), or one penalised objective.

Stage 1 minimises unmet demand; stage 2 keeps unmet within U*(1+1e-9)+1e-6 and minimises cost.
The MIP gap reported is stage 2's, relative to cost, so a 0.1 % cost gap cannot hide behind a
shortfall penalty. A time-limited run returns its incumbent, bound and gap, never an exception.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from clinker_pipeline.errors import SolverUnavailable
from clinker_pipeline.optimization.data import ModelData, compile_data
from clinker_pipeline.optimization.diagnose import diagnose_infeasibility
from clinker_pipeline.optimization.guard import ProgressHook, SolveGuard
from clinker_pipeline.optimization.model import BuiltModel, build_model
from clinker_pipeline.optimization.result import (
    ERROR,
    FEASIBLE,
    INFEASIBLE,
    OPTIMAL,
    PlanResult,
)
from clinker_pipeline.optimization.runners import HighsRunner, StageOutcome, make_runner

logger = logging.getLogger(__name__)

SERVE_REL_TOL = 1e-9
SERVE_ABS_TOL = 1e-6


@dataclass
class SolveOptions:
    objective: str = "lexicographic"  # or "penalty"
    solver: str = "highs"
    mip_gap: float = 1e-4  # relative gap of the cost stage
    time_limit: float = 300.0  # seconds, for all stages together
    holding_cost: float = 0.0  # INR per tonne per period of closing stock
    penalty: float = 1e5  # INR per tonne unmet, for objective="penalty"
    serve_gap: float = 1e-9  # relative gap of the serve stage (U* must be tight: +/- 1 t)
    # Share of the time limit the serve stage may use, so the cost stage is never starved when
    # U* cannot be proven quickly (large instances with many rake-sized trips).
    serve_time_share: float = 0.5
    relax_trips: bool = False  # LP relaxation of whole trips (for comparison only)
    threads: int | None = None
    diagnose: bool = True  # on infeasibility, re-solve elastically to name the rows that give
    # HiGHS only: a quick start for the serve stage (LP trips rounded down) and a repaired start
    # for the cost stage (serve-stage trips fixed, LP of the cost stage), both under the guard.
    mip_start: bool = True
    # lane bounds implied by supply and need (same optimum, finite trips); off by default until
    # the benchmark shows they help (`bench_optimizer.py --strength --configs old,new,bounds`)
    flow_bounds: bool = False
    # HiGHS only: scale the cost objective inside the solver to about 1e6 per unit (INR outside);
    # measured equal or better on the realistic set (bench_optimizer.py --strength)
    scale_cost: bool = True
    highs_options: dict[str, Any] = field(default_factory=dict)  # passed to HiGHS verbatim

    def __post_init__(self) -> None:
        if self.objective not in ("lexicographic", "penalty"):
            raise ValueError(
                f"objective must be 'lexicographic' or 'penalty', got {self.objective!r}"
            )
        if not 0 <= self.mip_gap < 1:
            raise ValueError(f"mip_gap must be in [0, 1), got {self.mip_gap}")
        if not 0 < self.serve_time_share < 1:
            raise ValueError(f"serve_time_share must be in (0, 1), got {self.serve_time_share}")
        if self.time_limit <= 0:
            raise ValueError(f"time_limit must be positive, got {self.time_limit}")
        if self.holding_cost < 0 or self.penalty < 0:
            raise ValueError("holding_cost and penalty must be non-negative")


def optimize(
    tables: dict[str, pd.DataFrame],
    options: SolveOptions | None = None,
    run_id: str | None = None,
    warnings: list[str] | None = None,
    progress: ProgressHook | None = None,
) -> PlanResult:
    """Build, solve and extract a plan from validated instance tables.

    `progress` receives the solve's state every few seconds (stage, elapsed, incumbent, bound).
    Ctrl-C while solving stops the search and returns the best plan found ("interrupted")."""
    options = options or SolveOptions()
    run_id = run_id or uuid.uuid4().hex
    guard = SolveGuard(progress)
    runner = make_runner(options.solver, threads=options.threads, guard=guard)  # fail fast
    if isinstance(runner, HighsRunner):
        runner.solver_options = dict(options.highs_options)
    starts = options.mip_start and isinstance(runner, HighsRunner) and not options.relax_trips
    scale_cost = options.scale_cost and isinstance(runner, HighsRunner)
    t0 = time.perf_counter()
    data = compile_data(tables)
    built = build_model(
        data,
        holding_cost=options.holding_cost,
        relax_trips=options.relax_trips,
        flow_bounds=options.flow_bounds,
    )
    build_s = time.perf_counter() - t0
    result = PlanResult(
        run_id=run_id,
        status=ERROR,
        objective=options.objective,
        solver=options.solver,
        solver_version=runner.version,
        demand_t=float(data.demand.sum()),
        n_vars=built.n_vars,
        n_int=0 if options.relax_trips else built.n_int,
        n_rows=built.n_rows,
        build_s=build_s,
        options=asdict(options),
        warnings=list(warnings or []),
    )
    m = built.model
    if result.n_vars == 0:  # nothing to decide (an empty instance): the empty plan is optimal
        _extract(built, result)
        result.status, result.mip_gap = OPTIMAL, 0.0
        result.serve_gap, result.serve_bound = 0.0, result.unmet_t
        return result
    result.handoff_s = runner.load(m)
    t_solve = time.perf_counter()
    deadline = t_solve + options.time_limit

    def left() -> float:
        return max(1.0, deadline - time.perf_counter())

    first: StageOutcome | None = None
    if options.objective == "penalty":
        m.obj_serve.deactivate()
        m.obj_penalty = pyo.Objective(expr=m.cost + options.penalty * m.unmet)
        runner.objective_changed(m)
        final = runner.solve(m, time_limit=left(), rel_gap=options.mip_gap, stage="penalty (INR)")
        stages = [final]
    else:
        serve_until = t_solve + max(1.0, options.serve_time_share * options.time_limit)
        quick = None
        if starts and data.lane_mult.max(initial=1) > 1:
            # a quick plan for the serve stage: the LP's trips rounded down, the rest re-solved
            quick = runner.repair_plan(
                None, time_limit=0.25 * (serve_until - time.perf_counter()), stage="serve start"
            )
        first = runner.solve(
            m,
            time_limit=max(1.0, serve_until - time.perf_counter()),
            rel_gap=options.serve_gap,
            stage="serve (unmet t)",
            start=quick,
        )
        first, took_quick = _better_of(runner, m, first, quick)
        stages = [first]
        final = first
        if first.has_solution and not first.interrupted:
            u_star = float(first.incumbent)
            stage1_cols = None
            if starts:
                stage1_cols = quick.col_value if took_quick else runner.solution_values()
            m.serve_floor = pyo.Constraint(
                expr=m.unmet <= u_star * (1 + SERVE_REL_TOL) + SERVE_ABS_TOL
            )
            m.obj_serve.deactivate()
            m.obj_cost.activate()
            runner.constraint_added(m, m.serve_floor)
            runner.objective_changed(m)
            repaired = None
            if stage1_cols is not None:
                # the repaired start: stage 1's trips, the cheapest flows under the serve floor
                repaired = runner.repair_plan(
                    stage1_cols, time_limit=0.5 * left(), stage="cost start"
                )
            final = runner.solve(
                m,
                time_limit=left(),
                rel_gap=options.mip_gap,
                stage="cost (INR)",
                start=repaired,
                **({"objective_scale": _cost_scale(data)} if scale_cost else {}),
            )
            final, _ = _better_of(runner, m, final, repaired)
            stages.append(final)
            if not final.has_solution:
                # stage 2 found nothing in the time left. Solves load a plan only when they
                # find one, so the model still holds the serve-stage plan, which is valid.
                final = StageOutcome(
                    has_solution=True,
                    optimal=False,
                    infeasible=False,
                    incumbent=None,
                    bound=final.bound,
                    seconds=final.seconds,
                    termination=final.termination,
                    interrupted=final.interrupted,
                )
    result.solve_s = time.perf_counter() - t_solve
    interrupted = any(s.interrupted for s in stages)
    result.interrupted = interrupted
    if first is not None and first.has_solution:
        _serve_bound(result, first, data)

    if final.has_solution:
        t1 = time.perf_counter()
        _extract(built, result)
        all_optimal = all(s.optimal for s in stages) and not interrupted
        if first is not None and len(stages) == 1:
            all_optimal = False  # interrupted before the cost stage: cost is not optimised
        result.status = OPTIMAL if all_optimal else FEASIBLE
        objective_value = (
            result.cost
            if options.objective == "lexicographic"
            else (result.cost + options.penalty * result.unmet_t)
        )
        cost_bound = None if (first is not None and final is first) else final.bound
        if cost_bound is not None and not np.isfinite(cost_bound):
            cost_bound = None
        if cost_bound is not None and objective_value is not None:
            result.best_bound = float(cost_bound)
            result.mip_gap = abs(objective_value - cost_bound) / max(1e-9, abs(objective_value))
        elif all_optimal:
            result.mip_gap = 0.0
        if interrupted:
            result.message = "interrupted"
        elif not all_optimal:
            result.message = (
                f"stopped by the time limit ({options.time_limit:g} s): "
                f"best plan found returned ({final.termination})"
            )
        result.extract_s = time.perf_counter() - t1
    elif interrupted:
        result.status = ERROR
        result.message = "interrupted before any plan was found"
    elif any(s.infeasible for s in stages):
        result.status = INFEASIBLE
        result.message = "no plan satisfies the hard constraints"
        if options.diagnose:
            diag = diagnose_infeasibility(data, options, time_limit=max(10.0, left()))
            result.diagnosis = diag
            if len(diag):
                first_row = diag.iloc[0]
                result.message += (
                    f"; {len(diag)} row(s) must give, first {first_row['source_table']} row "
                    f"{first_row['source_row']} by {first_row['violation_t']:,.0f} t"
                )
    else:
        result.status = ERROR
        result.message = (
            f"solver {options.solver} returned no plan ({final.termination}); "
            "try a longer --time-limit"
        )
    return result


def _better_of(runner, m, outcome: StageOutcome, plan) -> tuple[StageOutcome, bool]:
    """The solve's own incumbent, or the repaired plan when the solve found nothing better
    (e.g. the time ran out before HiGHS took it up): that plan is then loaded into the model.
    The flag says whether the plan was taken."""
    if plan is None or outcome.optimal or outcome.infeasible:
        return outcome, False
    own = outcome.incumbent if outcome.has_solution else None
    if own is not None and own <= plan.objective + 1e-9 * abs(plan.objective):
        return outcome, False
    runner.load_plan(m, plan)
    return replace(outcome, has_solution=True, incumbent=plan.objective), True


def _cost_scale(data: ModelData) -> int:
    """The power of 2 that brings the largest cost coefficient (INR per trip or tonne) near 1e6,
    where HiGHS stops warning that the model is badly scaled."""
    coefs = np.concatenate([data.lane_cost * data.lane_mult, data.prod_cost.ravel()])
    top = float(np.abs(coefs).max(initial=0.0))
    return -max(0, int(np.ceil(np.log2(top / 1e6)))) if top > 1e6 else 0


def _serve_bound(result: PlanResult, first: StageOutcome, data: ModelData) -> None:
    """The serve stage's proof: a lower bound on unmet tonnes, and how far (as a share of
    demand) a better plan could still serve more than the one found."""
    u_star = float(first.incumbent)
    bound = first.bound
    if bound is None or not np.isfinite(bound):
        bound = u_star if first.optimal else None
    if bound is None:
        return
    bound = min(u_star, max(0.0, float(bound)))
    demand = float(data.demand.sum())
    result.serve_bound = bound
    result.serve_gap = (u_star - bound) / demand if demand > 0 else 0.0


def _extract(built: BuiltModel, result: PlanResult) -> None:
    data: ModelData = built.data
    m = built.model
    n_t = data.n_periods
    periods = np.asarray(data.periods)
    f = np.array([v.value or 0.0 for v in m.F.values()], dtype=float)
    # whole trips only where the model had integer trips (not in the LP relaxation)
    integral = (data.lane_mult > 1) & (not result.options.get("relax_trips", False))
    f[integral] = np.round(f[integral])
    f[np.abs(f) < 1e-7] = 0.0
    qty = f * data.lane_mult
    p = np.array([v.value or 0.0 for v in m.P.values()], dtype=float)
    stock = np.array([v.value or 0.0 for v in m.I.values()], dtype=float).reshape(data.n_nodes, n_t)
    u = np.array([v.value or 0.0 for v in m.U.values()], dtype=float)

    lanes = data.lanes
    used = qty > 1e-6
    shipments = pd.DataFrame(
        {
            "from_code": lanes["from_code"].to_numpy()[used],
            "to_code": lanes["to_code"].to_numpy()[used],
            "transport_code": lanes["transport_code"].to_numpy()[used],
            "time_period": lanes["time_period"].to_numpy(int)[used],
            "quantity_t": qty[used],
            "trips": np.where(integral, f, np.nan)[used],
            "quantity_multiplier": data.lane_mult[used],
            "freight_cost_inr_per_t": lanes["freight_cost"].to_numpy(float)[used],
            "handling_cost_inr_per_t": lanes["handling_cost"].to_numpy(float)[used],
            "transport_cost_inr": (qty * data.lane_cost)[used],
        }
    )
    shipments["trips"] = shipments["trips"].astype("Int64")

    nodes = np.asarray(data.nodes, dtype=object)
    pk = np.array(built.prod_keys, dtype=int).reshape(-1, 2)
    production = pd.DataFrame(
        {
            "iu_code": nodes[pk[:, 0]],
            "time_period": periods[pk[:, 1]],
            "production_t": p,
            "capacity_t": data.capacity[pk[:, 0], pk[:, 1]],
            "production_cost_inr_per_t": data.prod_cost[pk[:, 0], pk[:, 1]],
        }
    )
    production["production_t"] = production["production_t"].where(
        production["production_t"] > 1e-7, 0.0
    )
    production["utilisation_pct"] = 100 * production["production_t"] / production["capacity_t"]
    production["production_cost_inr"] = (
        production["production_t"] * production["production_cost_inr_per_t"]
    )

    opening = np.concatenate([data.opening[:, None], stock[:, :-1]], axis=1)
    inventory = pd.DataFrame(
        {
            "iugu_code": np.repeat(nodes, n_t),
            "time_period": np.tile(periods, data.n_nodes),
            "opening_t": opening.ravel(),
            "closing_t": stock.ravel(),
            "min_close_t": data.min_close.ravel(),
            "max_close_t": np.where(np.isinf(data.max_close), np.nan, data.max_close).ravel(),
        }
    )

    unmet = np.zeros((data.n_nodes, n_t))
    uk = np.array(built.unmet_keys, dtype=int).reshape(-1, 2)
    unmet[uk[:, 0], uk[:, 1]] = np.where(u > 1e-7, u, 0.0)
    has_demand = data.demand > 0
    nn, tt = np.nonzero(has_demand)
    unmet_frame = pd.DataFrame(
        {
            "iugu_code": nodes[nn],
            "time_period": periods[tt],
            "demand_t": data.demand[nn, tt],
            "served_t": data.demand[nn, tt] - unmet[nn, tt],
            "unmet_t": unmet[nn, tt],
        }
    )

    result.production = production
    result.shipments = shipments
    result.inventory = inventory
    result.unmet = unmet_frame
    result.production_cost = float(production["production_cost_inr"].sum())
    result.transport_cost = float(shipments["transport_cost_inr"].sum())
    result.holding_cost = float(result.options.get("holding_cost", 0.0) * stock.sum())
    result.cost = result.production_cost + result.transport_cost + result.holding_cost
    result.unmet_t = float(unmet.sum())
    total = float(data.demand.sum())
    result.served_pct = 100.0 * (1 - result.unmet_t / total) if total > 0 else 100.0


__all__ = ["SolveOptions", "SolverUnavailable", "optimize"]
