"""The clinker allocation MILP of `spec/model.md`, as a Pyomo model.

Variables are flat integer-indexed arrays (numpy positions from `ModelData`) and constraints are
built as `LinearExpression`s from precomputed incidence lists: on large instances this keeps
model building a small fraction of the solver's own time.

Lane flow is `mult * F[k]`: F is whole trips (integer) where a lane's QUANTITY MULTIPLIER > 1
and tonnes (continuous) where it is 1, so full-load trips need no extra linking rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from clinker_pipeline.optimization.data import ModelData, lane_flow_bounds


@dataclass
class BuiltModel:
    model: pyo.ConcreteModel
    data: ModelData
    prod_keys: list[tuple[int, int]]  # (node, period) of each P variable
    unmet_keys: list[tuple[int, int]]  # (node, period) of each U variable
    elastic: bool = False
    elastic_terms: list[tuple[str, object, object]] = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return sum(len(v) for v in self.model.component_objects(pyo.Var, active=True))

    @property
    def n_int(self) -> int:
        return int((self.data.lane_mult > 1).sum())

    @property
    def n_rows(self) -> int:
        return sum(len(c) for c in self.model.component_objects(pyo.Constraint, active=True))


def build_model(
    data: ModelData,
    holding_cost: float = 0.0,
    elastic: bool = False,
    relax_trips: bool = False,
    flow_bounds: bool = False,
) -> BuiltModel:
    """Build the model. With `elastic`, constraint rows, stock bounds and fulfilment floors get
    slack variables and the only objective is their sum: used to explain infeasibility.
    `flow_bounds` adds the lane bounds the balance rows imply (`lane_flow_bounds`); never in the
    elastic model, whose stock bounds may give."""
    m = pyo.ConcreteModel(name="clinker_allocation")
    n_nodes, n_t = data.n_nodes, data.n_periods
    mult = data.lane_mult
    integral = (mult > 1) & (not relax_trips)
    f_hi = np.full(len(mult), np.inf)
    if flow_bounds and not elastic:
        f_hi = lane_flow_bounds(data) / mult
        f_hi = np.where(integral, np.floor(f_hi + 1e-9), f_hi)

    # --- variables --------------------------------------------------------------------------
    m.F = pyo.Var(
        range(len(mult)),
        domain=lambda _m, k: pyo.NonNegativeIntegers if integral[k] else pyo.NonNegativeReals,
        bounds=lambda _m, k: (0, None if np.isinf(f_hi[k]) else float(f_hi[k])),
    )
    prod_keys = [(int(n), int(t)) for n, t in zip(*np.nonzero(data.capacity > 0), strict=True)]
    cap = [float(data.capacity[n, t]) for n, t in prod_keys]
    m.P = pyo.Var(range(len(prod_keys)), bounds=lambda _m, k: (0.0, cap[k]))

    if elastic:
        stock_lo = np.zeros((n_nodes, n_t))
        stock_hi = np.full((n_nodes, n_t), np.inf)
        unmet_hi = data.demand
    else:
        stock_lo, stock_hi, unmet_hi = data.min_close, data.max_close, data.unmet_cap
    m.I = pyo.Var(
        range(n_nodes * n_t),
        bounds=lambda _m, k: (
            float(stock_lo.flat[k]),
            None if np.isinf(stock_hi.flat[k]) else float(stock_hi.flat[k]),
        ),
    )
    unmet_keys = [(int(n), int(t)) for n, t in zip(*np.nonzero(data.demand > 0), strict=True)]
    m.U = pyo.Var(
        range(len(unmet_keys)), bounds=lambda _m, k: (0.0, float(unmet_hi[unmet_keys[k]]))
    )

    # --- balance: I[t-1] + P + in - out + U - I[t] = D ----------------------------------------
    terms: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for k in range(len(mult)):
        coef = float(mult[k])
        t = int(data.lane_t[k])
        c_in, v_in = terms[int(data.lane_to[k]) * n_t + t]
        c_in.append(coef)
        v_in.append(m.F[k])
        c_out, v_out = terms[int(data.lane_from[k]) * n_t + t]
        c_out.append(-coef)
        v_out.append(m.F[k])
    for j, (n, t) in enumerate(prod_keys):
        c, v = terms[n * n_t + t]
        c.append(1.0)
        v.append(m.P[j])
    for j, (n, t) in enumerate(unmet_keys):
        c, v = terms[n * n_t + t]
        c.append(1.0)
        v.append(m.U[j])

    def balance_rule(_m, k):
        n, t = divmod(k, n_t)
        coefs, vars_ = terms[k]
        coefs = [*coefs, -1.0]
        vars_ = [*vars_, m.I[k]]
        constant = float(data.opening[n]) if t == 0 else 0.0
        if t > 0:
            coefs.append(1.0)
            vars_.append(m.I[k - 1])
        expr = LinearExpression(constant=constant, linear_coefs=coefs, linear_vars=vars_)
        rhs = float(data.demand[n, t])
        return (rhs, expr, rhs)

    m.balance = pyo.Constraint(range(n_nodes * n_t), rule=balance_rule)

    # --- IUGUConstraint rows ---------------------------------------------------------------
    rows = data.constraints
    elastic_terms: list[tuple[str, object, object]] = []
    if elastic:
        m.s_row_up = pyo.Var(range(len(rows)), domain=pyo.NonNegativeReals)
        m.s_row_dn = pyo.Var(range(len(rows)), domain=pyo.NonNegativeReals)

    def row_rule(_m, r):
        row = rows[r]
        coefs = [float(mult[k]) for k in row.lane_ids]
        vars_ = [m.F[int(k)] for k in row.lane_ids]
        if (
            elastic
        ):  # flow - up + dn within the bound: up = excess over L/E, dn = shortfall below G/E
            coefs += [-1.0, 1.0]
            vars_ += [m.s_row_up[r], m.s_row_dn[r]]
        expr = LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=vars_)
        if row.bound == "L":
            return (None, expr, row.value)
        if row.bound == "G":
            return (row.value, expr, None)
        return (row.value, expr, row.value)

    m.dispatch = pyo.Constraint(range(len(rows)), rule=row_rule)

    # --- objectives --------------------------------------------------------------------------
    lane_coef = (data.lane_cost * mult).tolist()
    prod_coef = [float(data.prod_cost[n, t]) for n, t in prod_keys]
    cost_coefs = lane_coef + prod_coef
    cost_vars = [m.F[k] for k in range(len(mult))] + [m.P[j] for j in range(len(prod_keys))]
    if holding_cost:
        cost_coefs += [float(holding_cost)] * (n_nodes * n_t)
        cost_vars += [m.I[k] for k in range(n_nodes * n_t)]
    m.cost = pyo.Expression(
        expr=LinearExpression(constant=0.0, linear_coefs=cost_coefs, linear_vars=cost_vars)
    )
    m.unmet = pyo.Expression(
        expr=LinearExpression(
            constant=0.0,
            linear_coefs=[1.0] * len(unmet_keys),
            linear_vars=[m.U[j] for j in range(len(unmet_keys))],
        )
    )

    if elastic:
        _add_stock_and_floor_slacks(m, data, unmet_keys, elastic_terms)
        slack = [m.s_row_up[r] for r in range(len(rows))] + [
            m.s_row_dn[r] for r in range(len(rows))
        ]
        slack += [v for _, v, _ in elastic_terms]
        m.obj_violation = pyo.Objective(
            expr=LinearExpression(constant=0.0, linear_coefs=[1.0] * len(slack), linear_vars=slack)
        )
    else:
        m.obj_serve = pyo.Objective(expr=m.unmet, sense=pyo.minimize)
        m.obj_cost = pyo.Objective(expr=m.cost, sense=pyo.minimize)
        m.obj_cost.deactivate()
    return BuiltModel(m, data, prod_keys, unmet_keys, elastic, elastic_terms)


def _add_stock_and_floor_slacks(m, data: ModelData, unmet_keys, out: list) -> None:
    """Soft versions of the stock bounds and fulfilment floors for the elastic model."""
    n_t = data.n_periods
    lo_keys = [k for k in range(data.n_nodes * n_t) if data.min_close.flat[k] > 0]
    hi_keys = [k for k in range(data.n_nodes * n_t) if np.isfinite(data.max_close.flat[k])]
    floor_keys = [j for j, key in enumerate(unmet_keys) if data.unmet_cap[key] < data.demand[key]]
    m.s_min = pyo.Var(range(len(lo_keys)), domain=pyo.NonNegativeReals)
    m.s_max = pyo.Var(range(len(hi_keys)), domain=pyo.NonNegativeReals)
    m.s_floor = pyo.Var(range(len(floor_keys)), domain=pyo.NonNegativeReals)
    m.soft_min = pyo.Constraint(
        range(len(lo_keys)),
        rule=lambda _m, j: m.I[lo_keys[j]] + m.s_min[j] >= float(data.min_close.flat[lo_keys[j]]),
    )
    m.soft_max = pyo.Constraint(
        range(len(hi_keys)),
        rule=lambda _m, j: m.I[hi_keys[j]] - m.s_max[j] <= float(data.max_close.flat[hi_keys[j]]),
    )
    m.soft_floor = pyo.Constraint(
        range(len(floor_keys)),
        rule=lambda _m, j: (
            m.U[floor_keys[j]] - m.s_floor[j] <= float(data.unmet_cap[unmet_keys[floor_keys[j]]])
        ),
    )
    for j, k in enumerate(lo_keys):
        out.append(("min_close", m.s_min[j], divmod(k, n_t)))
    for j, k in enumerate(hi_keys):
        out.append(("max_close", m.s_max[j], divmod(k, n_t)))
    for j, uj in enumerate(floor_keys):
        out.append(("fulfilment", m.s_floor[j], unmet_keys[uj]))
