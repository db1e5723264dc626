"""What one more tonne (or one more rake) is worth around the plan.

With the plan's trips fixed, the rest of the plan is an LP (`lp.PlanLP`); its duals in stage 1
(least unmet) say how many more tonnes one more unit of a limit serves, and in stage 2 (least cost
at that service) how many rupees it saves at the same service. Every value is "per unit of
loosening": one more tonne of capacity, one tonne more room under an L row (less under a G row),
one tonne lower stock floor, one more trip. They are local: they hold for small changes around
this plan's trips, and an LP with ties may have other, equally valid prices (see README).

A rake trip is thousands of tonnes, too big a step for a derivative, so its value is the
difference of two re-solves (trips + 1, both stages), for the lanes that matter most within a
time budget.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from clinker_pipeline.explain.lp import PlanLP, StageSolution
from clinker_pipeline.explain.plan_arrays import PlanArrays
from clinker_pipeline.optimization.data import ModelData

MARGINAL_COLUMNS = [
    "kind",  # capacity, dispatch_row, stock_min, stock_max, demand, rake_trip, serve_floor
    "iugu_code",
    "to_code",
    "transport_code",
    "time_period",
    "source_row",
    "description",
    "unit",
    "activity",
    "bound",
    "slack",
    "binding",
    "serve_t_per_unit",  # tonnes more served per unit of loosening (stage 1)
    "saving_inr_per_unit",  # INR saved per unit of loosening at the same service (stage 2)
    "method",  # dual or resolve
]
BIND_TOL = 1e-4


def compute_marginals(
    data: ModelData,
    plan: PlanArrays,
    holding_cost: float = 0.0,
    trip_budget_s: float = 5.0,
    max_trip_lanes: int = 200,
) -> pd.DataFrame:
    lp = PlanLP(data, plan.trips, holding_cost)
    first, second = lp.solve_both()
    if first is None or second is None:
        raise RuntimeError("the plan's LP with fixed trips has no optimum")
    frames = [
        _capacity(data, plan, lp, first, second),
        _rows(data, plan, lp, first, second),
        _stock(data, plan, lp, first, second),
        _demand(data, lp, first, second),
        _rake_trips(data, plan, lp, first, second, trip_budget_s, max_trip_lanes),
    ]
    floor = pd.DataFrame(
        [
            {
                "kind": "serve_floor",
                "description": "total unmet allowed by the serve stage (the last tonne served)",
                "unit": "t",
                "activity": first.objective,
                "bound": first.objective,
                "slack": 0.0,
                "binding": True,
                "serve_t_per_unit": -1.0,
                "saving_inr_per_unit": -float(second.row_dual[lp.floor_row]),
                "method": "dual",
            }
        ]
    )
    out = pd.concat([f for f in [*frames, floor] if len(f)], ignore_index=True)
    return out.reindex(columns=MARGINAL_COLUMNS)


def _capacity(data, plan, lp: PlanLP, first: StageSolution, second: StageSolution) -> pd.DataFrame:
    cols = lp.p0 + np.arange(len(lp.prod_keys))
    pk = np.array(lp.prod_keys, dtype=int).reshape(-1, 2)
    cap = data.capacity[pk[:, 0], pk[:, 1]]
    made = plan.production[pk[:, 0], pk[:, 1]]
    return pd.DataFrame(
        {
            "kind": "capacity",
            "iugu_code": np.asarray(data.nodes, dtype=object)[pk[:, 0]],
            "time_period": np.asarray(data.periods)[pk[:, 1]],
            "description": "one more tonne of clinker capacity",
            "unit": "t",
            "activity": made,
            "bound": cap,
            "slack": cap - made,
            "binding": cap - made <= BIND_TOL * np.maximum(1.0, cap),
            "serve_t_per_unit": -first.col_dual[cols],
            "saving_inr_per_unit": -second.col_dual[cols],
            "method": "dual",
        }
    )


def _rows(data, plan, lp: PlanLP, first: StageSolution, second: StageSolution) -> pd.DataFrame:
    out = []
    for r, row in enumerate(data.constraints):
        y1 = float(first.row_dual[lp.d0 + r])
        y2 = float(second.row_dual[lp.d0 + r])
        act = float(plan.row_activity[r])
        # loosening: +1 t of room under L (and E), -1 t of floor under G
        sign = -1.0 if row.bound == "G" else 1.0
        slack = {"L": row.value - act, "G": act - row.value}.get(row.bound, 0.0)
        out.append(
            {
                "kind": "dispatch_row",
                "iugu_code": row.iu_code,
                "to_code": row.iugu_code,
                "transport_code": row.transport_code,
                "time_period": row.period,
                "source_row": row.source_row,
                "description": row.describe(),
                "unit": "t",
                "activity": act,
                "bound": row.value,
                "slack": slack,
                "binding": slack <= BIND_TOL * max(1.0, abs(row.value)),
                "serve_t_per_unit": -sign * y1,
                "saving_inr_per_unit": -sign * y2,
                "method": "dual",
            }
        )
    return pd.DataFrame(out)


def _stock(data, plan, lp: PlanLP, first: StageSolution, second: StageSolution) -> pd.DataFrame:
    lo, hi = data.min_close.ravel(), data.max_close.ravel()
    stock = plan.stock.ravel()
    nodes = np.repeat(np.asarray(data.nodes, dtype=object), data.n_periods)
    periods = np.tile(np.asarray(data.periods), data.n_nodes)
    rc1 = first.col_dual[lp.i0 : lp.u0]
    rc2 = second.col_dual[lp.i0 : lp.u0]
    frames = []
    for kind, mask, bound, sign, what in (
        ("stock_min", lo > 0, lo, 1.0, "one tonne lower closing-stock floor"),
        ("stock_max", np.isfinite(hi), hi, -1.0, "one tonne more closing-stock room"),
    ):
        if not mask.any():
            continue
        slack = np.abs(stock - bound)[mask]
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "iugu_code": nodes[mask],
                    "time_period": periods[mask],
                    "description": what,
                    "unit": "t",
                    "activity": stock[mask],
                    "bound": bound[mask],
                    "slack": slack,
                    "binding": slack <= BIND_TOL * np.maximum(1.0, np.abs(bound[mask])),
                    # a floor's reduced cost is what lowering it by a tonne saves; a ceiling's,
                    # with the sign turned, what raising it saves
                    "serve_t_per_unit": sign * rc1[mask],
                    "saving_inr_per_unit": sign * rc2[mask],
                    "method": "dual",
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _demand(data, lp: PlanLP, first: StageSolution, second: StageSolution) -> pd.DataFrame:
    """Per node-period with demand: what one more tonne of demand there costs (INR, at the same
    total unmet) and how much of it would go unmet (stage 1 price, 0..1)."""
    n, t = np.nonzero(data.demand > 0)
    rows = n * data.n_periods + t
    return pd.DataFrame(
        {
            "kind": "demand",
            "iugu_code": np.asarray(data.nodes, dtype=object)[n],
            "time_period": np.asarray(data.periods)[t],
            "description": "serving one more tonne of demand here",
            "unit": "t",
            "activity": data.demand[n, t],
            "bound": data.demand[n, t],
            "slack": 0.0,
            "binding": False,
            # one more tonne of demand: stage 1 says how much more goes unmet, stage 2 what the
            # plan pays to serve it (its marginal cost), both as the balance row's price
            "serve_t_per_unit": -first.row_dual[rows],
            "saving_inr_per_unit": -second.row_dual[rows],
            "method": "dual",
        }
    )


def _rake_trips(
    data, plan, lp: PlanLP, first: StageSolution, second: StageSolution, budget_s, max_lanes
) -> pd.DataFrame:
    rake = np.flatnonzero(data.lane_mult > 1)
    if len(rake) == 0:
        return pd.DataFrame()
    # lanes into a node-period with unmet first, then the busiest lanes
    unmet_into = plan.unmet[data.lane_to[rake], data.lane_t[rake]]
    order = np.lexsort((-plan.flow[rake], -unmet_into))
    chosen = rake[order][:max_lanes]
    base_u, base_c = first.objective, second.objective
    deadline = time.perf_counter() + budget_s
    out = []
    for k in chosen:
        if time.perf_counter() > deadline:
            break
        n_trips = float(plan.trips[k])
        got = lp.what_if_col(lp.f0 + int(k), n_trips + 1, n_trips + 1)
        out.append(
            {
                "kind": "rake_trip",
                "iugu_code": data.nodes[data.lane_from[k]],
                "to_code": data.nodes[data.lane_to[k]],
                "transport_code": str(data.lanes["transport_code"].iat[k]),
                "time_period": int(data.periods[data.lane_t[k]]),
                "description": f"one more trip of {data.lane_mult[k]:,.0f} t"
                + ("" if got else " (no feasible plan with it)"),
                "unit": "trip",
                "activity": n_trips,
                "bound": n_trips,
                "slack": 0.0,
                "binding": True,
                "serve_t_per_unit": (base_u - got[0]) if got else np.nan,
                "saving_inr_per_unit": (base_c - got[1]) if got else np.nan,
                "method": "resolve",
            }
        )
    return pd.DataFrame(out)


def bottlenecks(marginals: pd.DataFrame) -> pd.DataFrame:
    """Binding limits ranked by what loosening them is worth: tonnes served first, then INR
    (the same ranking as the DuckDB view `plan_bottlenecks`)."""
    if marginals is None or marginals.empty:
        return pd.DataFrame(columns=MARGINAL_COLUMNS)
    m = marginals[
        marginals["binding"].astype(bool)
        & (marginals["kind"] != "demand")
        & (marginals["kind"] != "serve_floor")
        & (
            (marginals["serve_t_per_unit"].fillna(0) > 1e-6)
            | (marginals["saving_inr_per_unit"].fillna(0) > 1e-3)
        )
    ]
    return m.sort_values(
        ["serve_t_per_unit", "saving_inr_per_unit"], ascending=False, na_position="last"
    ).reset_index(drop=True)
