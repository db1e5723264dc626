"""Thin adapters that run one stage of the model on a solver and report what came back.

The HiGHS adapter keeps one persistent highspy model for both lexicographic stages: the model is
handed over once, and stage 2 only adds the serve-floor row and swaps the objective.

Stage 1's plan is deliberately NOT passed to HiGHS as a MIP start for stage 2: measured on the
120 IU / 500 GU instance (HiGHS 1.16), a MIP start made the root cut loop run 284 s past a 60 s
time limit without improving on it, while without it HiGHS found a better plan in 13 s and
stopped on time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyomo.environ as pyo

from clinker_pipeline.errors import SolverUnavailable
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


def _active_objective(m: pyo.ConcreteModel):
    return next(m.component_data_objects(pyo.Objective, active=True))


class HighsRunner:
    name = "highs"

    def __init__(self, threads: int | None = None) -> None:
        from pyomo.contrib.solver.common.factory import SolverFactory

        self.opt = SolverFactory("highs")
        if not self.opt.available():
            raise SolverUnavailable("HiGHS is not available: install the 'highspy' package")
        self.version = ".".join(map(str, self.opt.version()))
        self.threads = threads

    def load(self, m: pyo.ConcreteModel) -> float:
        t = time.perf_counter()
        self.opt.set_instance(m)
        return time.perf_counter() - t

    def constraint_added(self, m: pyo.ConcreteModel, con) -> None:
        self.opt.add_constraints([con])

    def objective_changed(self, m: pyo.ConcreteModel) -> None:
        self.opt.set_objective(_active_objective(m))

    def solve(
        self,
        m: pyo.ConcreteModel,
        time_limit: float,
        rel_gap: float,
    ) -> StageOutcome:
        from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

        t = time.perf_counter()
        res = self.opt.solve(
            m,
            time_limit=time_limit,
            rel_gap=rel_gap,
            threads=self.threads,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            auto_updates=NO_AUTO_UPDATES,
        )
        seconds = time.perf_counter() - t
        has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        if has:
            res.solution_loader.load_vars()
        tc = res.termination_condition
        return StageOutcome(
            has_solution=has,
            optimal=tc == TerminationCondition.convergenceCriteriaSatisfied,
            infeasible=tc
            in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded),
            incumbent=res.incumbent_objective,
            bound=res.objective_bound,
            seconds=seconds,
            termination=str(tc.name),
        )


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


def make_runner(name: str, threads: int | None = None) -> HighsRunner | LegacyRunner:
    if name == "highs":
        return HighsRunner(threads=threads)
    return LegacyRunner(name, threads=threads)
