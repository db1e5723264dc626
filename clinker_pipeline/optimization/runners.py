"""Thin adapters that run one stage of the model on a solver and report what came back.

The HiGHS adapter keeps one persistent highspy model for both lexicographic stages: the model is
handed over once, and stage 2 only adds the serve-floor row and swaps the objective.

Starts are passed only under the guard (`guard.SolveGuard`), which ends every solve at its
deadline through HiGHS's interrupt callbacks: without it, HiGHS 1.16's root cut loop overran a
60 s limit by 284 s when given a MIP start on the 120 IU / 500 GU instance. The cost stage's start
is *repaired*: the serve stage's whole trips are fixed and the LP of the cost stage (under the
serve floor) re-optimises production, stock and continuous flows, so HiGHS starts from a plan that
is both feasible and cheap, not from the serve stage's arbitrary-cost plan.

No solver call may write to stdout (`--json` prints one object there): every call into HiGHS runs
under a file-descriptor-level capture whose text goes to the debug log.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from clinker_pipeline.errors import SolverUnavailable
from clinker_pipeline.optimization.guard import SolveGuard
from clinker_pipeline.optimization.solvers import LEGACY_OPTIONS

logger = logging.getLogger(__name__)

# We tell the persistent interface what changed, so it need not re-scan the whole model.
NO_AUTO_UPDATES = {
    "check_for_new_or_removed_constraints": False,
    "check_for_new_or_removed_vars": False,
    "check_for_new_or_removed_params": False,
    "check_for_new_objective": False,
    "update_constraints": False,
    "update_vars": False,
    "update_parameters": False,
    "update_named_expressions": False,
    "update_objective": False,
}


@dataclass
class StageOutcome:
    has_solution: bool
    optimal: bool  # proven within the requested gap
    infeasible: bool
    incumbent: float | None
    bound: float | None
    seconds: float
    termination: str
    interrupted: bool = False  # stopped by Ctrl-C (the incumbent, if any, is loaded)


@dataclass
class RepairedPlan:
    """A whole plan in HiGHS's column order, and its objective value."""

    col_value: np.ndarray
    objective: float


def _active_objective(m: pyo.ConcreteModel):
    return next(m.component_data_objects(pyo.Objective, active=True))


@contextmanager
def off_stdout() -> Iterator[None]:
    """Capture whatever a solver prints (at the file-descriptor level) into the debug log."""
    from pyomo.common.tee import capture_output

    buf = io.StringIO()
    try:
        with capture_output(output=buf, capture_fd=True):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            logger.debug("solver output: %s", text)


class HighsRunner:
    name = "highs"

    def __init__(self, threads: int | None = None, guard: SolveGuard | None = None) -> None:
        from pyomo.contrib.solver.common.factory import SolverFactory

        self.opt = SolverFactory("highs")
        if not self.opt.available():
            raise SolverUnavailable("HiGHS is not available: install the 'highspy' package")
        self.version = ".".join(map(str, self.opt.version()))
        self.threads = threads
        self.guard = guard or SolveGuard()
        self.solver_options: dict[str, object] = {}

    @property
    def highs(self):
        """The `highspy.Highs` object behind Pyomo's persistent interface (after `load`)."""
        return self.opt._solver_model

    def load(self, m: pyo.ConcreteModel) -> float:
        t = time.perf_counter()
        with off_stdout():
            self.opt.set_instance(m)
        self.guard.attach(self.highs)
        return time.perf_counter() - t

    def constraint_added(self, m: pyo.ConcreteModel, con) -> None:
        with off_stdout():
            self.opt.add_constraints([con])

    def objective_changed(self, m: pyo.ConcreteModel) -> None:
        with off_stdout():
            self.opt.set_objective(_active_objective(m))

    def solve(
        self,
        m: pyo.ConcreteModel,
        time_limit: float,
        rel_gap: float,
        stage: str = "solve",
        start: RepairedPlan | None = None,
        objective_scale: int = 0,
    ) -> StageOutcome:
        """One MIP solve under the guard. `objective_scale`: HiGHS scales the objective by
        2**objective_scale inside the solver (values it reports are unscaled)."""
        return self._solve(m, time_limit, rel_gap, stage, start, objective_scale)

    def _solve(
        self,
        m: pyo.ConcreteModel,
        time_limit: float,
        rel_gap: float,
        stage: str,
        start: RepairedPlan | None,
        objective_scale: int,
    ) -> StageOutcome:
        """One MIP solve under the guard. `start` is offered to HiGHS once its root node is done
        (not before: with an incumbent at the root, HiGHS 1.16's rounding heuristic propagates
        the objective cutoff for minutes without checking any limit or callback)."""
        from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

        t = time.perf_counter()
        self.guard.begin(stage, time_limit)
        self.guard.offer(None if start is None else start.col_value)
        with self.guard.catch_sigint(), off_stdout():
            res = self.opt.solve(
                m,
                time_limit=time_limit,
                rel_gap=rel_gap,
                threads=self.threads,
                load_solutions=False,
                raise_exception_on_nonoptimal_result=False,
                auto_updates=NO_AUTO_UPDATES,
                solver_options={
                    "user_objective_scale": int(objective_scale),
                    **self.solver_options,
                },
            )
        seconds = time.perf_counter() - t
        self.guard.report(force=True)
        has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        if has:
            res.solution_loader.load_vars()
        tc = res.termination_condition
        interrupted = self.guard.interrupted
        termination = str(tc.name)
        if (
            not interrupted
            and self.guard.expired()
            and tc != TerminationCondition.convergenceCriteriaSatisfied
        ):
            termination = TerminationCondition.maxTimeLimit.name  # stopped by the guard
        elif interrupted:
            termination = TerminationCondition.interrupted.name
        return StageOutcome(
            has_solution=has,
            optimal=tc == TerminationCondition.convergenceCriteriaSatisfied,
            infeasible=tc
            in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded),
            incumbent=res.incumbent_objective,
            bound=res.objective_bound,
            seconds=seconds,
            termination=termination,
            interrupted=interrupted,
        )

    # --- starts ------------------------------------------------------------------------------
    def repair_plan(
        self, from_cols: np.ndarray | None, time_limit: float, stage: str
    ) -> RepairedPlan | None:
        """Fix the integer columns (whole trips) at their values in `from_cols` (None: the LP
        relaxation's trips rounded down), and solve the LP of the active objective for everything else. None when
        that LP has no plan (or the time ran out). The model is restored before returning."""
        import highspy

        h = self.highs
        lp = h.getLp()
        integrality = np.asarray(lp.integrality_, dtype=np.uint8)
        idx = np.flatnonzero(integrality == int(highspy.HighsVarType.kInteger)).astype(np.int32)
        if not len(idx):
            return None
        lo = np.asarray(lp.col_lower_, dtype=float)[idx]
        hi = np.asarray(lp.col_upper_, dtype=float)[idx]
        n = len(idx)
        cont = np.full(n, int(highspy.HighsVarType.kContinuous), dtype=np.uint8)
        plan = None
        self.guard.begin(stage, time_limit)
        try:
            with self.guard.catch_sigint(), off_stdout():
                # HiGHS checks an LP's time_limit against the object's cumulative run time, so
                # the guard alone bounds these LPs
                h.setOptionValue("time_limit", float("inf"))
                h.changeColsIntegrality(n, idx, cont)
                if from_cols is None:  # the LP relaxation's trips, rounded down
                    h.run()
                    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                        return None
                    trips = np.floor(np.asarray(h.getSolution().col_value)[idx] + 1e-6)
                else:
                    trips = np.round(np.asarray(from_cols, dtype=float)[idx])
                fixed = np.clip(trips, lo, hi)
                h.changeColsBounds(n, idx, fixed, fixed)
                h.run()
                if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                    x = np.asarray(h.getSolution().col_value, dtype=float).copy()
                    x[idx] = fixed
                    plan = RepairedPlan(x, float(h.getInfo().objective_function_value))
        finally:
            with off_stdout():
                h.changeColsBounds(n, idx, lo, hi)
                h.changeColsIntegrality(
                    n, idx, np.full(n, int(highspy.HighsVarType.kInteger), dtype=np.uint8)
                )
        logger.debug("%s: %s", stage, "plan" if plan else "no plan")
        return plan

    def load_plan(self, m: pyo.ConcreteModel, plan: RepairedPlan) -> None:
        """Put a plan given by HiGHS column values into the Pyomo variables."""
        col = self.opt._pyomo_var_to_solver_var_map
        for var in m.component_data_objects(pyo.Var, active=True):
            j = col.get(id(var))
            if j is not None:
                var.set_value(float(plan.col_value[j]), skip_validation=True)

    def solution_values(self) -> np.ndarray:
        """The last solve's plan in HiGHS's column order."""
        return np.asarray(self.highs.getSolution().col_value, dtype=float).copy()


class LegacyRunner:
    """Any solver Pyomo's classic SolverFactory knows (CBC, GLPK, Gurobi, ...)."""

    def __init__(self, name: str, threads: int | None = None) -> None:
        self.name = name
        try:
            self.opt = pyo.SolverFactory(name)
            ok = bool(self.opt.available(exception_flag=False))
        except Exception:
            ok = False
        if not ok:
            raise SolverUnavailable(
                f"solver '{name}' is not available here; run `clinker solvers` to see which are"
            )
        try:
            v = self.opt.version()
            self.version = (
                ".".join(map(str, v)) if isinstance(v, tuple) else (str(v) if v else None)
            )
        except Exception:
            self.version = None
        self.threads = threads

    def load(self, m: pyo.ConcreteModel) -> float:
        return 0.0  # classic interfaces hand the model over inside every solve

    def constraint_added(self, m: pyo.ConcreteModel, con) -> None:
        pass

    def objective_changed(self, m: pyo.ConcreteModel) -> None:
        pass

    def solve(
        self,
        m: pyo.ConcreteModel,
        time_limit: float,
        rel_gap: float,
        stage: str = "solve",
        start: RepairedPlan | None = None,  # HiGHS only
    ) -> StageOutcome:
        from pyomo.opt import SolutionStatus, TerminationCondition

        tl_key, gap_key = LEGACY_OPTIONS.get(self.name, ("time_limit", "mip_rel_gap"))
        t = time.perf_counter()
        res = self.opt.solve(
            m, options={tl_key: time_limit, gap_key: rel_gap}, load_solutions=False
        )
        seconds = time.perf_counter() - t
        tc = res.solver.termination_condition
        has = len(res.solution) > 0 and res.solution(0).status in (
            SolutionStatus.optimal,
            SolutionStatus.feasible,
            SolutionStatus.stoppedByLimit,
            SolutionStatus.bestSoFar,
        )
        incumbent = None
        if has:
            m.solutions.load_from(res)
            incumbent = pyo.value(_active_objective(m))
        bound = res.problem.lower_bound
        bound = None if bound is None or abs(bound) == float("inf") else float(bound)
        return StageOutcome(
            has_solution=has,
            optimal=tc == TerminationCondition.optimal,
            infeasible=tc
            in (TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded),
            incumbent=incumbent,
            bound=bound,
            seconds=seconds,
            termination=str(tc),
        )


def make_runner(
    name: str, threads: int | None = None, guard: SolveGuard | None = None
) -> HighsRunner | LegacyRunner:
    if name == "highs":
        return HighsRunner(threads=threads, guard=guard)
    return LegacyRunner(name, threads=threads)
