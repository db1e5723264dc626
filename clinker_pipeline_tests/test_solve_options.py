"""Solver options are validated up front, and degenerate instances still give a clear result."""

import pytest

from clinker_pipeline.errors import SolverUnavailable
from clinker_pipeline.instance import TABLES, validate_instance
from clinker_pipeline.instance.parse import empty_table
from clinker_pipeline.optimization import SolveOptions, optimize


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "fastest"}, "objective must be"),
        ({"mip_gap": 1.5}, "mip_gap must be in [0, 1)"),
        ({"time_limit": 0}, "time_limit must be positive"),
        ({"holding_cost": -1}, "must be non-negative"),
        ({"serve_time_share": 1.0}, "serve_time_share must be in (0, 1)"),
    ],
)
def test_bad_options_are_rejected_with_a_reason(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        SolveOptions(**kwargs)


def test_empty_instance_gives_the_empty_optimal_plan():
    tables = {t.name: empty_table(t) for t in TABLES}
    # validation refuses it ("no plants", "no demand"); the optimizer itself still copes
    assert not validate_instance(tables).valid
    result = optimize(tables)
    assert (result.status, result.cost, result.served_pct, result.n_vars) == (
        "optimal",
        0.0,
        100.0,
        0,
    )
    assert result.shipments.empty and result.production.empty


def test_unknown_solver_fails_before_any_work():
    tables = {t.name: empty_table(t) for t in TABLES}
    with pytest.raises(SolverUnavailable, match="not available here"):
        optimize(tables, SolveOptions(solver="no_such_solver"))
