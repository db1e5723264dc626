"""The clinker allocation model (pure Pyomo; no Dagster here)."""

from clinker_pipeline.optimization.result import PlanResult
from clinker_pipeline.optimization.solve import SolveOptions, optimize

__all__ = ["PlanResult", "SolveOptions", "optimize"]
