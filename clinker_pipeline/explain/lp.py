"""The plan's LP: the clinker model with every whole-trip variable fixed at the plan's value.

Prices (duals) only exist for a linear program, and a MILP's plan is a point chosen among whole
trips: with those trips fixed, what is left (production, road tonnes, stock, shortfall) is an LP
whose duals answer "what is one more tonne of X worth *around this plan*". It is built straight
into highspy as arrays (no Pyomo objects: re-solves with a changed bound then hot-start from the
previous basis in milliseconds) from the same `ModelData` the MILP was built from, with the
columns and rows of `optimization/model.py` in the same order. A test checks that the LP
reproduces the plan's shortfall and cost, so the two formulations cannot drift apart unnoticed.

Stage 1 minimises unmet tonnes; stage 2 keeps unmet at stage 1's value and minimises cost, as the
lexicographic MILP does.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
from pyomo.common.tee import capture_output

from clinker_pipeline.optimization.data import ModelData

INF = highspy.kHighsInf
SERVE_REL_TOL = 1e-9
SERVE_ABS_TOL = 1e-6


@dataclass
class StageSolution:
    objective: float
    row_dual: np.ndarray
    col_dual: np.ndarray
    col_value: np.ndarray
    row_value: np.ndarray


class PlanLP:
    """Columns: F (lane-periods), P (production keys), I (node*T+t), U (unmet keys).
    Rows: balance (node*T+t), dispatch rows, serve floor (last)."""

    def __init__(self, data: ModelData, trips: np.ndarray, holding_cost: float = 0.0) -> None:
        self.data = data
        n_t = data.n_periods
        mult = data.lane_mult
        self.integral = mult > 1
        self.prod_keys = [
            (int(n), int(t)) for n, t in zip(*np.nonzero(data.capacity > 0), strict=True)
        ]
        self.unmet_keys = [
            (int(n), int(t)) for n, t in zip(*np.nonzero(data.demand > 0), strict=True)
        ]
        n_f, n_p = len(mult), len(self.prod_keys)
        n_i, n_u = data.n_nodes * n_t, len(self.unmet_keys)
        self.f0, self.p0, self.i0, self.u0 = 0, n_f, n_f + n_p, n_f + n_p + n_i
        self.n_cols = n_f + n_p + n_i + n_u
        self.n_balance = n_i
        self.d0 = n_i
        self.floor_row = n_i + len(data.constraints)

        # --- column bounds -------------------------------------------------------------------
        lo = np.zeros(self.n_cols)
        hi = np.full(self.n_cols, INF)
        fixed = np.where(self.integral, trips, 0.0)
        lo[:n_f] = fixed
        hi[:n_f] = np.where(self.integral, trips, INF)
        pk = np.array(self.prod_keys, dtype=int).reshape(-1, 2)
        uk = np.array(self.unmet_keys, dtype=int).reshape(-1, 2)
        hi[self.p0 : self.i0] = data.capacity[pk[:, 0], pk[:, 1]]
        lo[self.i0 : self.u0] = data.min_close.ravel()
        hi[self.i0 : self.u0] = np.where(np.isinf(data.max_close), INF, data.max_close).ravel()
        hi[self.u0 :] = data.unmet_cap[uk[:, 0], uk[:, 1]]
        self.col_lo, self.col_hi = lo, hi

        # --- matrix (triplets, then CSC) ----------------------------------------------------
        rows, cols, vals = [], [], []
        k = np.arange(n_f)
        rows += [data.lane_to * n_t + data.lane_t, data.lane_from * n_t + data.lane_t]
        cols += [k, k]
        vals += [mult, -mult]
        rows.append(pk[:, 0] * n_t + pk[:, 1])
        cols.append(self.p0 + np.arange(n_p))
        vals.append(np.ones(n_p))
        node_t = np.arange(n_i)
        rows.append(node_t)
        cols.append(self.i0 + node_t)
        vals.append(-np.ones(n_i))
        carried = node_t[(node_t % n_t) < n_t - 1]  # I[n,t] enters the balance of t+1
        rows.append(carried + 1)
        cols.append(self.i0 + carried)
        vals.append(np.ones(len(carried)))
        rows.append(uk[:, 0] * n_t + uk[:, 1])
        cols.append(self.u0 + np.arange(n_u))
        vals.append(np.ones(n_u))
        for r, row in enumerate(data.constraints):
            ids = np.asarray(row.lane_ids, dtype=int)
            rows.append(np.full(len(ids), self.d0 + r))
            cols.append(ids)
            vals.append(mult[ids])
        rows.append(np.full(n_u, self.floor_row))
        cols.append(self.u0 + np.arange(n_u))
        vals.append(np.ones(n_u))
        r_all = np.concatenate(rows).astype(np.int32)
        c_all = np.concatenate(cols).astype(np.int32)
        v_all = np.concatenate(vals).astype(float)
        order = np.lexsort((r_all, c_all))
        r_all, c_all, v_all = r_all[order], c_all[order], v_all[order]
        starts = np.searchsorted(c_all, np.arange(self.n_cols)).astype(np.int32)

        rhs = data.demand.ravel().copy()
        rhs[np.arange(data.n_nodes) * n_t] -= data.opening
        row_lo = [rhs]
        row_hi = [rhs.copy()]
        for row in data.constraints:
            row_lo.append(np.array([-INF if row.bound == "L" else row.value]))
            row_hi.append(np.array([INF if row.bound == "G" else row.value]))
        row_lo.append(np.array([-INF]))
        row_hi.append(np.array([INF]))
        self.row_lo = np.concatenate(row_lo)
        self.row_hi = np.concatenate(row_hi)
        self.n_rows = len(self.row_lo)

        self.serve_cost = np.zeros(self.n_cols)
        self.serve_cost[self.u0 :] = 1.0
        self.money_cost = np.zeros(self.n_cols)
        self.money_cost[:n_f] = data.lane_cost * mult
        self.money_cost[self.p0 : self.i0] = data.prod_cost[pk[:, 0], pk[:, 1]]
        if holding_cost:
            self.money_cost[self.i0 : self.u0] = float(holding_cost)

        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n_cols, self.n_rows
        lp.col_cost_ = self.serve_cost
        lp.col_lower_, lp.col_upper_ = self.col_lo, self.col_hi
        lp.row_lower_, lp.row_upper_ = self.row_lo, self.row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.append(starts, len(v_all)).astype(np.int32)
        lp.a_matrix_.index_ = r_all
        lp.a_matrix_.value_ = v_all
        with capture_output(capture_fd=True):  # the first Highs() of a process prints a banner
            self.h = highspy.Highs()
        # no "threads" option: HiGHS has one scheduler per process, and changing it after the
        # plan's own solve makes run() fail
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("log_to_console", False)
        self.h.passModel(lp)
        self.stage = 0
        self.u_star: float | None = None

    # --- solving ------------------------------------------------------------------------------

    def _run(self) -> StageSolution | None:
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = self.h.getSolution()
        return StageSolution(
            objective=float(self.h.getInfo().objective_function_value),
            row_dual=np.asarray(sol.row_dual),
            col_dual=np.asarray(sol.col_dual),
            col_value=np.asarray(sol.col_value),
            row_value=np.asarray(sol.row_value),
        )

    def _set_costs(self, costs: np.ndarray) -> None:
        idx = np.arange(self.n_cols, dtype=np.int32)
        self.h.changeColsCost(self.n_cols, idx, costs)

    def solve_serve(self) -> StageSolution | None:
        """Stage 1: least unmet with the plan's trips."""
        self.h.changeRowBounds(self.floor_row, -INF, INF)
        self._set_costs(self.serve_cost)
        return self._run()

    def solve_cost(self, u_star: float) -> StageSolution | None:
        """Stage 2: least cost keeping unmet at `u_star` (the tolerance of the MILP's floor)."""
        self.h.changeRowBounds(self.floor_row, -INF, u_star * (1 + SERVE_REL_TOL) + SERVE_ABS_TOL)
        self._set_costs(self.money_cost)
        return self._run()

    def solve_both(self) -> tuple[StageSolution | None, StageSolution | None]:
        first = self.solve_serve()
        if first is None:
            return None, None
        return first, self.solve_cost(first.objective)

    # --- what-ifs: change one bound, re-solve both stages, put it back ------------------------

    def what_if_col(
        self, col: int, lo: float, hi: float, hold_unmet: float | None = None
    ) -> tuple[float, float] | None:
        """(unmet, cost) with column `col` in [lo, hi]; None when that is infeasible. With
        `hold_unmet`, stage 1 is skipped and cost is minimised at that unmet (same service)."""
        old = (self.col_lo[col], self.col_hi[col])
        self.h.changeColBounds(col, lo, hi)
        try:
            return self._objectives(hold_unmet)
        finally:
            self.h.changeColBounds(col, *old)

    def what_if_row(
        self, row: int, lo: float, hi: float, hold_unmet: float | None = None
    ) -> tuple[float, float] | None:
        old = (self.row_lo[row], self.row_hi[row])
        self.h.changeRowBounds(row, lo, hi)
        try:
            return self._objectives(hold_unmet)
        finally:
            self.h.changeRowBounds(row, *old)

    def _objectives(self, hold_unmet: float | None) -> tuple[float, float] | None:
        if hold_unmet is not None:
            second = self.solve_cost(hold_unmet)
            return None if second is None else (hold_unmet, second.objective)
        first, second = self.solve_both()
        if first is None or second is None:
            return None
        return first.objective, second.objective
