"""Which MILP solvers Pyomo can drive on this machine, and how to talk to each.

HiGHS goes through the persistent `pyomo.contrib.solver` interface (in memory via highspy, and
incremental between the two lexicographic stages). Others go through the classic SolverFactory,
whose option names differ per solver, hence the table below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CONTRIB = {"highs"}
# classic solver name -> (time-limit option, relative-gap option)
LEGACY_OPTIONS: dict[str, tuple[str, str]] = {
    "cbc": ("seconds", "ratioGap"),
    "glpk": ("tmlim", "mipgap"),
    "gurobi": ("TimeLimit", "MIPGap"),
    "gurobi_direct": ("TimeLimit", "MIPGap"),
    "cplex": ("timelimit", "mipgap"),
    "scip": ("limits/time", "limits/gap"),
    "appsi_highs": ("time_limit", "mip_rel_gap"),
}


@dataclass(frozen=True)
class SolverInfo:
    name: str
    available: bool
    version: str | None
    interface: str


def solver_info(name: str) -> SolverInfo:
    if name in CONTRIB:
        from pyomo.contrib.solver.common.factory import SolverFactory

        try:
            opt = SolverFactory(name)
            ok = bool(opt.available())
            version = ".".join(map(str, opt.version())) if ok else None
        except Exception as exc:  # a broken install must not break the listing
            logger.debug("solver %s unavailable: %s", name, exc)
            ok, version = False, None
        return SolverInfo(name, ok, version, "pyomo.contrib.solver (persistent)")
    import pyomo.environ as pyo
    from pyomo.common.log import LoggingIntercept

    try:
        # Pyomo logs an unknown name with a full traceback before returning an unusable solver;
        # the caller reports "not available" in one line, so keep that log at debug level.
        with LoggingIntercept(level=logging.WARNING, module="pyomo.opt") as captured:
            opt = pyo.SolverFactory(name)
        if captured.getvalue():
            logger.debug("solver %s: %s", name, captured.getvalue())
        ok = bool(opt.available(exception_flag=False))
        version = None
        if ok:
            try:
                v = opt.version()
                version = ".".join(map(str, v)) if isinstance(v, tuple) else (str(v) if v else None)
            except Exception:
                version = None
    except Exception as exc:
        logger.debug("solver %s unavailable: %s", name, exc)
        ok, version = False, None
    return SolverInfo(name, ok, version, "pyomo SolverFactory")


def list_solvers() -> list[SolverInfo]:
    return [solver_info(n) for n in ("highs", *LEGACY_OPTIONS)]
