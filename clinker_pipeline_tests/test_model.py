"""The clinker allocation model against the contract in ../shared/spec/model.md.

Each constraint family is proven on a hand-made instance small enough that the optimum can be
worked out on paper (the working is in the comments); then the public dataset's contract facts.
Instances are built as the internal tables (the dtypes `parse` produces) and go through
`validate_instance` before they are solved, as every feed does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyomo.environ import Var

from clinker_pipeline.instance import load_instance, validate_instance
from clinker_pipeline.instance.parse import empty_table
from clinker_pipeline.instance.tables import TABLES_BY_NAME
from clinker_pipeline.optimization import PlanResult, SolveOptions, optimize
from clinker_pipeline.optimization.data import compile_data
from clinker_pipeline.optimization.model import build_model

# Stage 2 may leave up to U* * 1e-9 + 1e-6 t more unmet than stage 1 found (model.md).
TOL = 1e-5

# --- building instances by hand -------------------------------------------------------------

_DTYPES = {"code": "string", "text": "string", "int": "Int64", "float": "float64"}


def _frame(name: str, rows: Sequence[tuple]) -> pd.DataFrame:
    """Rows given in the table's column order (trailing optional columns may be left out)."""
    spec = TABLES_BY_NAME[name]
    data = {
        c.name: pd.Series([r[i] if i < len(r) else None for r in rows], dtype=_DTYPES[c.kind])
        for i, c in enumerate(spec.columns)
    }
    data["source_row"] = pd.Series(range(2, 2 + len(rows)), dtype="Int64")  # line 1 = header
    return pd.DataFrame(data)


def lane(
    frm: str,
    to: str,
    freight: float,
    *,
    mode: str = "T1",
    mult: float = 1,
    handling: float = 0,
    periods: Iterable[int] = (1,),
) -> list[tuple]:
    """One LogisticsIUGU row per period for lane (frm, to, mode)."""
    return [(frm, to, mode, t, float(freight), float(handling), float(mult)) for t in periods]


def row(iu: str, mode: str | None, dest: str | None, bound: str, value: float, t: int = 1) -> tuple:
    """One IUGUConstraint row."""
    return (iu, mode, dest, t, bound, "C", float(value))


def instance(
    plants: dict[str, str],
    *,
    demand: Sequence[tuple] = (),  # (node, t, demand[, min fulfilment %])
    capacity: Sequence[tuple] = (),  # (iu, t, capacity)
    cost: Sequence[tuple] = (),  # (iu, t, INR/t)
    lanes: Sequence[tuple] = (),
    constraints: Sequence[tuple] = (),
    opening: Sequence[tuple] = (),  # (node, t)
    closing: Sequence[tuple] = (),  # (node, t, min, max or None)
    warnings: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Validated internal tables; fails the test if the instance is not valid."""
    tables = {
        "plants": _frame("plants", [(code, kind) for code, kind in plants.items()]),
        "clinker_demand": _frame("clinker_demand", demand),
        "clinker_capacity": _frame("clinker_capacity", capacity),
        "production_cost": _frame("production_cost", cost),
        "logistics_lanes": _frame("logistics_lanes", lanes),
        "flow_constraints": _frame("flow_constraints", constraints),
        "opening_stock": _frame("opening_stock", opening),
        "closing_stock_bounds": _frame("closing_stock_bounds", closing),
        "hub_opening_stock": _frame("hub_opening_stock", []),
    }
    for name, frame in tables.items():  # the same dtypes as a parsed file
        assert frame.dtypes.to_dict() == empty_table(TABLES_BY_NAME[name]).dtypes.to_dict(), name
    inst = validate_instance(tables)
    assert inst.valid, "\n".join(map(str, inst.errors))
    if warnings is not None:
        assert len(inst.warnings) == warnings, "\n".join(map(str, inst.warnings))
    return inst.tables


def solve(tables: dict[str, pd.DataFrame], status: str = "optimal", **options) -> PlanResult:
    res = optimize(tables, SolveOptions(**{"mip_gap": 0.0, **options}))
    assert res.status == status, res.message
    if res.plan_found:
        assert_balanced(res, tables)
        parts = res.production_cost + res.transport_cost + res.holding_cost
        assert res.cost == pytest.approx(parts)
    return res


def shipped(res: PlanResult, frm: str, to: str | None = None, t: int = 1) -> float:
    s = res.shipments
    mask = (s["from_code"] == frm) & (s["time_period"] == t)
    if to is not None:
        mask &= s["to_code"] == to
    return float(s.loc[mask, "quantity_t"].sum())


def produced(res: PlanResult, iu: str, t: int = 1) -> float:
    p = res.production
    return float(p.loc[(p["iu_code"] == iu) & (p["time_period"] == t), "production_t"].sum())


def unmet(res: PlanResult, node: str, t: int = 1) -> float:
    u = res.unmet
    return float(u.loc[(u["iugu_code"] == node) & (u["time_period"] == t), "unmet_t"].sum())


def closing(res: PlanResult, node: str, t: int = 1) -> float:
    i = res.inventory
    return float(i.loc[(i["iugu_code"] == node) & (i["time_period"] == t), "closing_t"].iloc[0])


# --- capacity ---------------------------------------------------------------------------------


def test_capacity_binds_and_the_shortfall_is_unmet() -> None:
    # A makes at most 100 t in period 1 at 10 INR/t; G needs 150 t; road A->G at 1 INR/t.
    # Period 2 has spare capacity but no demand, and stock cannot flow back in time.
    # Best: P = 100, ship 100, unmet 50; cost 100 * (10 + 1) = 1,100; served 100/150.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 150), ("G", 2, 0)],
        capacity=[("A", 1, 100), ("A", 2, 100)],
        cost=[("A", 1, 10), ("A", 2, 10)],
        lanes=lane("A", "G", 1, periods=(1, 2)),
    )
    res = solve(tables)
    assert produced(res, "A", 1) == pytest.approx(100)
    assert produced(res, "A", 2) == pytest.approx(0, abs=TOL)
    assert (res.production["production_t"] <= res.production["capacity_t"] + TOL).all()
    assert shipped(res, "A", "G") == pytest.approx(100)
    assert unmet(res, "G") == pytest.approx(50)
    assert res.unmet_t == pytest.approx(50)
    assert res.served_pct == pytest.approx(100 * 100 / 150)
    assert res.cost == pytest.approx(1_100)
    assert res.production_cost == pytest.approx(1_000)
    assert res.transport_cost == pytest.approx(100)


def test_missing_capacity_row_means_no_production() -> None:
    # B has a lane and a cost but no capacity row: capacity 0, so G is served by A only.
    tables = instance(
        {"A": "IU", "B": "IU", "G": "GU"},
        demand=[("G", 1, 80)],
        capacity=[("A", 1, 50)],
        cost=[("A", 1, 10), ("B", 1, 1)],
        lanes=lane("A", "G", 1) + lane("B", "G", 1),
    )
    res = solve(tables)
    assert produced(res, "B") == 0 and shipped(res, "B") == 0
    assert unmet(res, "G") == pytest.approx(30)


# --- whole trips ------------------------------------------------------------------------------


def _rail_instance(max_close_g: float | None = None) -> dict[str, pd.DataFrame]:
    # A (cap 10,000 t at 10 INR/t) -> G by rail, 3,000 t per trip at 2 INR/t; G needs 4,000 t.
    closing = [("G", 1, 0, max_close_g)] if max_close_g is not None else []
    return instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 4_000)],
        capacity=[("A", 1, 10_000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 2, mode="T2", mult=3_000),
        closing=closing,
    )


def test_whole_trips_pay_for_a_full_load() -> None:
    # Serving all 4,000 t takes 2 full trips = 6,000 t; the 2,000 t extra stays at G.
    # cost = 6,000 * (10 + 2) = 72,000.
    res = solve(_rail_instance())
    assert res.n_int == 1
    assert shipped(res, "A", "G") == pytest.approx(6_000)
    assert res.shipments["trips"].tolist() == [2]
    assert unmet(res, "G") == pytest.approx(0, abs=TOL)
    assert closing(res, "G") == pytest.approx(2_000)
    assert res.cost == pytest.approx(72_000)


def test_whole_trips_serve_less_when_a_full_load_does_not_fit() -> None:
    # G may hold at most 1,000 t: 2 trips would leave 2,000 t, so only 1 trip (3,000 t) fits
    # and 1,000 t stays unmet. cost = 3,000 * 12 = 36,000.
    res = solve(_rail_instance(max_close_g=1_000))
    assert shipped(res, "A", "G") == pytest.approx(3_000)
    assert res.shipments["trips"].tolist() == [1]
    assert unmet(res, "G") == pytest.approx(1_000)
    assert res.cost == pytest.approx(36_000)


def test_relaxed_trips_ship_exactly_the_need() -> None:
    # LP relaxation: 4,000 t exactly, cost 4,000 * 12 = 48,000, no integer variables.
    res = solve(_rail_instance(), relax_trips=True)
    assert res.n_int == 0
    assert shipped(res, "A", "G") == pytest.approx(4_000)
    assert res.cost == pytest.approx(48_000)
    assert closing(res, "G") == pytest.approx(0, abs=TOL)


# --- IUGUConstraint rows ----------------------------------------------------------------------


def _two_sources(*rows: tuple, warnings: int = 1) -> dict[str, pd.DataFrame]:
    """A (10 INR/t) and B (20 INR/t), 2,000 t each; A uses 300 t itself (through its self-lane);
    G1 and G2 need 500 t each. Every lane costs 1 INR/t; A->G2 is rail (T2, 1 t trips), the rest
    road. Unconstrained optimum: A makes 1,300 t and serves everyone, cost 300 * 10 + 1,000 * 11
    = 14,000 (the self-lane is dropped with a warning)."""
    return instance(
        {"A": "IU", "B": "IU", "G1": "GU", "G2": "GU"},
        demand=[("A", 1, 300), ("G1", 1, 500), ("G2", 1, 500)],
        capacity=[("A", 1, 2_000), ("B", 1, 2_000)],
        cost=[("A", 1, 10), ("B", 1, 20)],
        lanes=lane("A", "A", 0)
        + lane("A", "G1", 1)
        + lane("A", "G2", 1, mode="T2")
        + lane("B", "G1", 1)
        + lane("B", "G2", 1),
        constraints=list(rows),
        warnings=warnings,
    )


def test_two_sources_baseline() -> None:
    res = solve(_two_sources())
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert shipped(res, "B") == pytest.approx(0, abs=TOL)
    assert produced(res, "A") == pytest.approx(1_300)
    assert res.cost == pytest.approx(14_000)
    assert not (res.shipments["from_code"] == res.shipments["to_code"]).any()


def test_l_caps_dispatch_to_one_destination() -> None:
    # A->G1 <= 200: B sends the other 300 t to G1; G2 still gets all 500 t from A.
    # cost = 3,000 + (200 + 500) * 11 + 300 * 21 = 17,000
    res = solve(_two_sources(row("A", None, "G1", "L", 200)))
    assert shipped(res, "A", "G1") == pytest.approx(200)
    assert shipped(res, "B", "G1") == pytest.approx(300)
    assert shipped(res, "A", "G2") == pytest.approx(500)
    assert res.cost == pytest.approx(17_000)


def test_g_forces_a_costlier_dispatch() -> None:
    # B->G1 >= 200 although B is dearer: B sends exactly 200 t, A the other 800 t.
    # cost = 3,000 + 800 * 11 + 200 * 21 = 16,000 (> 14,000 without the row)
    res = solve(_two_sources(row("B", None, "G1", "G", 200)))
    assert shipped(res, "B", "G1") == pytest.approx(200)
    assert shipped(res, "A") == pytest.approx(800)
    assert res.cost == pytest.approx(16_000)


def test_e_fixes_dispatch() -> None:
    # B->G2 = 150: cost = 3,000 + 850 * 11 + 150 * 21 = 15,500
    res = solve(_two_sources(row("B", None, "G2", "E", 150)))
    assert shipped(res, "B", "G2") == pytest.approx(150)
    assert shipped(res, "A", "G2") == pytest.approx(350)
    assert res.cost == pytest.approx(15_500)


def test_e_fixes_dispatch_even_above_the_need() -> None:
    # B->G2 = 800 with G2 needing 500: 300 t end as G2's closing stock; A serves G1 only.
    # cost = 3,000 + 500 * 11 + 800 * 21 = 25,300
    res = solve(_two_sources(row("B", None, "G2", "E", 800)))
    assert shipped(res, "B", "G2") == pytest.approx(800)
    assert shipped(res, "A", "G2") == pytest.approx(0, abs=TOL)
    assert closing(res, "G2") == pytest.approx(300)
    assert res.cost == pytest.approx(25_300)


def test_e_zero_bans_a_lane() -> None:
    # A->G1 = 0: G1 is served by B. cost = 3,000 + 500 * 11 + 500 * 21 = 19,000
    res = solve(_two_sources(row("A", None, "G1", "E", 0)))
    assert shipped(res, "A", "G1") == 0
    assert shipped(res, "B", "G1") == pytest.approx(500)
    assert res.cost == pytest.approx(19_000)


def test_mode_scoped_row_caps_only_that_mode() -> None:
    # A by T2 <= 100 caps A->G2 (rail) only; A->G1 (road) keeps its 500 t.
    # cost = 3,000 + 600 * 11 + 400 * 21 = 18,000
    res = solve(_two_sources(row("A", "T2", None, "L", 100)))
    assert shipped(res, "A", "G2") == pytest.approx(100)
    assert shipped(res, "A", "G1") == pytest.approx(500)
    assert shipped(res, "B", "G2") == pytest.approx(400)
    assert res.cost == pytest.approx(18_000)


def test_iu_total_row_does_not_count_the_self_lane() -> None:
    # A's total dispatch <= 600. Its own 300 t go through the self-lane, which is not a
    # shipment, so A still ships 600 t and B 400 t: cost = 3,000 + 600 * 11 + 400 * 21 = 18,000.
    # (Counting in-plant use would leave A 300 t to ship: cost 21,000.)
    res = solve(_two_sources(row("A", None, None, "L", 600)))
    assert shipped(res, "A") == pytest.approx(600)
    assert shipped(res, "B") == pytest.approx(400)
    assert unmet(res, "A") == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(18_000)


def test_row_on_the_self_lane_is_vacuous() -> None:
    # A -> A by T1 <= 0 matches only the self-lane, which is not modelled: a vacuous row (one
    # more warning), and A still serves its own 300 t. Same optimum as without the row.
    res = solve(_two_sources(row("A", "T1", "A", "L", 0), warnings=2))
    assert unmet(res, "A") == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(14_000)


def test_rows_bind_in_their_own_period_only() -> None:
    # Two periods, demand 100 t at G each; A->G <= 30 in period 2 only; G holds no stock cap.
    # Period-2 shortfall can be pre-shipped in period 1 and held at G: unmet 0,
    # A->G = 170 in period 1 and 30 in period 2; cost = 200 * 11 = 2,200.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 100), ("G", 2, 100)],
        capacity=[("A", 1, 1_000), ("A", 2, 1_000)],
        cost=[("A", 1, 10), ("A", 2, 10)],
        lanes=lane("A", "G", 1, periods=(1, 2)),
        constraints=[row("A", None, "G", "L", 30, t=2)],
    )
    res = solve(tables)
    assert shipped(res, "A", "G", t=2) == pytest.approx(30)
    assert shipped(res, "A", "G", t=1) == pytest.approx(170)
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(2_200)


# --- stock bounds -----------------------------------------------------------------------------


def _one_lane(closing: Sequence[tuple] = (), periods: int = 1, **kw) -> dict[str, pd.DataFrame]:
    ts = range(1, periods + 1)
    return instance(
        {"A": "IU", "G": "GU"},
        demand=kw.get("demand", [("G", t, 100) for t in ts]),
        capacity=[("A", t, 1_000) for t in ts],
        cost=kw.get("cost", [("A", t, 10) for t in ts]),
        lanes=lane("A", "G", 1, periods=ts),
        closing=closing,
    )


def test_min_close_stock_forces_stock_to_be_held() -> None:
    # Without bounds: make and ship 100 t, cost 1,100.
    assert solve(_one_lane()).cost == pytest.approx(1_100)
    # G must close with >= 50 t and A with >= 200 t: ship 150 t, make 350 t.
    # cost = 350 * 10 + 150 * 1 = 3,650
    res = solve(_one_lane(closing=[("A", 1, 200, None), ("G", 1, 50, None)]))
    assert produced(res, "A") == pytest.approx(350)
    assert shipped(res, "A", "G") == pytest.approx(150)
    assert closing(res, "A") == pytest.approx(200)
    assert closing(res, "G") == pytest.approx(50)
    assert res.cost == pytest.approx(3_650)


def test_max_close_stock_caps_stock() -> None:
    # Production costs 10 in period 1 and 100 in period 2; G needs 100 t in each.
    # Unbounded: make 200 t in period 1 and carry 100 t: cost 200 * 10 + 200 * 1 = 2,200.
    cost = [("A", 1, 10), ("A", 2, 100)]
    assert solve(_one_lane(periods=2, cost=cost)).cost == pytest.approx(2_200)
    # A may close period 1 with <= 30 t and G with <= 20 t: carry 50 t at most, so make 150 t
    # then 50 t: cost 150 * 10 + 50 * 100 + 200 * 1 = 6,700.
    bounds = [("A", 1, 0, 30), ("G", 1, 0, 20)]
    res = solve(_one_lane(bounds, periods=2, cost=cost))
    assert produced(res, "A", 1) == pytest.approx(150)
    assert produced(res, "A", 2) == pytest.approx(50)
    assert closing(res, "A", 1) <= 30 + TOL and closing(res, "G", 1) <= 20 + TOL
    assert closing(res, "A", 1) + closing(res, "G", 1) == pytest.approx(50)
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(6_700)


def test_opening_stock_serves_period_one() -> None:
    # G opens with 70 t of its 100 t need: only 30 t are made and shipped. cost 30 * 11 = 330.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 100)],
        capacity=[("A", 1, 1_000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
        opening=[("G", 70)],
    )
    res = solve(tables)
    assert shipped(res, "A", "G") == pytest.approx(30)
    assert res.cost == pytest.approx(330)


# --- fulfilment floors ------------------------------------------------------------------------


def _short_supply(pct_g2: float | None) -> dict[str, pd.DataFrame]:
    # A makes 100 t (10 INR/t); G1 (road 1 INR/t) and G2 (road 5 INR/t) need 100 t each.
    return instance(
        {"A": "IU", "G1": "GU", "G2": "GU"},
        demand=[("G1", 1, 100, None), ("G2", 1, 100, pct_g2)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G1", 1) + lane("A", "G2", 5),
    )


def test_blank_fulfilment_lets_demand_go_unmet() -> None:
    # 100 t short either way; cheapest is all to G1: cost 100 * 11 = 1,100, G2 wholly unmet.
    res = solve(_short_supply(None))
    assert unmet(res, "G2") == pytest.approx(100)
    assert unmet(res, "G1") == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(1_100)


def test_min_fulfilment_forces_service() -> None:
    # G2 must get >= 60 %: 60 t to G2, 40 t to G1. cost = 1,000 + 40 * 1 + 60 * 5 = 1,340
    res = solve(_short_supply(60))
    assert shipped(res, "A", "G2") == pytest.approx(60)
    assert shipped(res, "A", "G1") == pytest.approx(40)
    assert unmet(res, "G2") == pytest.approx(40)
    assert res.cost == pytest.approx(1_340)


# --- objective ----------------------------------------------------------------------------------


def _dear_lane() -> dict[str, pd.DataFrame]:
    # Serving G's 100 t costs 10 (make) + 1,000 (freight) = 1,010 INR/t.
    return instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 100)],
        capacity=[("A", 1, 1_000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1_000),
    )


def test_lexicographic_serves_first_whatever_the_cost() -> None:
    res = solve(_dear_lane())
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(101_000)


def test_penalty_objective_with_a_tiny_penalty_prefers_the_cheap_plan() -> None:
    # 1 INR/t of penalty < 1,010 INR/t of cost: serve nothing, cost 0.
    res = solve(_dear_lane(), objective="penalty", penalty=1.0)
    assert res.unmet_t == pytest.approx(100)
    assert res.cost == pytest.approx(0, abs=TOL)
    # The default penalty (1e5 INR/t) is above 1,010 INR/t: it serves like the lexicographic run.
    res = solve(_dear_lane(), objective="penalty")
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert res.cost == pytest.approx(101_000)


@pytest.mark.parametrize(
    ("holding", "make_in_1", "cost", "holding_cost"),
    [
        # G needs 100 t in period 2 only; making costs 10 in period 1 and 12 in period 2.
        (0.0, 100, 1_100, 0),  # make early: 100 * 10 + 100 * 1
        (1.0, 100, 1_200, 100),  # holding 100 t one period costs 100 < the 200 saved
        (5.0, 0, 1_300, 0),  # holding costs 500 > 200: make late, 100 * 12 + 100 * 1
    ],
)
def test_holding_cost_option(
    holding: float, make_in_1: float, cost: float, holding_cost: float
) -> None:
    tables = _one_lane(
        periods=2, demand=[("G", 1, 0), ("G", 2, 100)], cost=[("A", 1, 10), ("A", 2, 12)]
    )
    res = solve(tables, holding_cost=holding)
    assert produced(res, "A", 1) == pytest.approx(make_in_1, abs=TOL)
    assert res.cost == pytest.approx(cost)
    assert res.holding_cost == pytest.approx(holding_cost, abs=TOL)


# --- time limit ---------------------------------------------------------------------------------


def test_time_limited_run_returns_its_incumbent(monkeypatch) -> None:
    # Each stage's "deadline" is its first incumbent, not a number of seconds: the run stops
    # early on any machine, however loaded.
    from clinker_pipeline.instance.generate import generate_instance
    from clinker_pipeline.optimization.guard import Progress, SolveGuard

    inst = validate_instance(generate_instance(ius=60, gus=250, periods=6, lanes_per_iu=12, seed=1))
    assert inst.valid, "\n".join(map(str, inst.errors[:5]))
    monkeypatch.setattr(SolveGuard, "expired", lambda self: self.incumbent is not None)
    seen: list[Progress] = []
    res = optimize(inst.tables, SolveOptions(mip_start=False), progress=seen.append)
    assert res.status == "feasible-with-gap", res.message
    assert "time limit" in res.message
    assert res.n_int > 0 and res.cost > 0 and 0 <= res.served_pct <= 100
    assert not res.shipments.empty
    # stage 2 ran and stopped on its own incumbent: its bound and gap are reported
    assert res.best_bound is not None and res.best_bound <= res.cost * (1 + 1e-9)
    assert res.mip_gap is not None and res.mip_gap >= 0
    assert {p.stage for p in seen} == {"serve (unmet t)", "cost (INR)"}
    assert any(p.incumbent is not None and p.bound is not None for p in seen)


def test_cost_stage_without_a_plan_keeps_the_serve_stage_plan(monkeypatch) -> None:
    # If the time runs out in stage 2 before it finds any plan, stage 1's plan (best service,
    # any cost) is returned as "feasible-with-gap" instead of an exception.
    from clinker_pipeline.optimization import runners

    real = runners.HighsRunner.solve
    stages = []

    def cost_stage_finds_nothing(self, m, time_limit, rel_gap, **kw):
        stages.append(rel_gap)
        if len(stages) == 1:  # the serve stage runs for real
            return real(self, m, time_limit=time_limit, rel_gap=rel_gap, **kw)
        return runners.StageOutcome(False, False, False, None, None, 0.0, "maxTimeLimit")

    monkeypatch.setattr(runners.HighsRunner, "solve", cost_stage_finds_nothing)
    tables = _two_sources()
    res = optimize(tables, SolveOptions())
    assert len(stages) == 2
    assert res.status == "feasible-with-gap"
    assert res.unmet_t == pytest.approx(0, abs=TOL)
    assert res.cost >= 14_000 - TOL  # any plan that serves all; the optimum costs 14,000
    assert_balanced(res, tables)


# --- infeasibility diagnosis ------------------------------------------------------------------


def test_g_row_above_supply_is_named() -> None:
    # A can make 100 t; row 3 asks for A->G >= 500 t: 400 t short. Row 2 (a loose cap) is fine.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 50)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
        constraints=[row("A", None, None, "L", 1_000), row("A", None, "G", "G", 500)],
    )
    res = optimize(tables, SolveOptions())
    assert res.status == "infeasible"
    diag = res.diagnosis
    assert diag[["source_table", "source_row"]].values.tolist() == [["IUGUConstraint", 3]]
    assert diag["violation_t"].iloc[0] == pytest.approx(400)
    assert "IUGUConstraint row 3" in diag["description"].iloc[0]
    assert "IUGUConstraint row 3" in res.message


def test_unreachable_min_close_stock_is_named() -> None:
    # G must close with >= 200 t (row 3). At most 100 t can arrive and its 50 t demand may go
    # unmet, so G can close with 100 t at best: 100 t short.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 50)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
        closing=[("A", 1, 0, None), ("G", 1, 200, None)],
    )
    res = optimize(tables, SolveOptions())
    assert res.status == "infeasible"
    diag = res.diagnosis
    assert diag[["source_table", "source_row", "iugu_code"]].values.tolist() == [
        ["IUGUClosingStock", 3, "G"]
    ]
    assert diag["violation_t"].iloc[0] == pytest.approx(100)
    assert "IUGUClosingStock row 3" in diag["description"].iloc[0]


def test_fulfilment_floors_above_supply_are_named() -> None:
    # Both GUs must be served in full (100 %) but A makes 100 t of the 200 t: 100 t short in all,
    # blamed on the ClinkerDemand rows (2 and/or 3).
    tables = _short_supply(100)
    tables["clinker_demand"]["min_fulfillment_pct"] = 100.0
    res = optimize(tables, SolveOptions())
    assert res.status == "infeasible"
    diag = res.diagnosis
    assert set(diag["source_table"]) == {"ClinkerDemand"}
    assert set(diag["source_row"]) <= {2, 3}
    assert diag["violation_t"].sum() == pytest.approx(100)


def test_tables_without_source_rows_solve() -> None:
    # ERP or generated tables carry no file line numbers; validation and the solve still work.
    tables = {k: v.drop(columns="source_row") for k, v in _short_supply(60).items()}
    inst = validate_instance(tables)
    assert inst.valid
    assert solve(inst.tables).cost == pytest.approx(1_340)


# --- the public dataset (contract facts) ------------------------------------------------------

DEMAND_T = 22_662_135
UNMET_T = 10_564_022
OPTIMAL_COST = 25_450_276_671


@pytest.fixture(scope="module")
def dummy_tables(dummy_dir: Path) -> dict[str, pd.DataFrame]:
    inst = load_instance(dummy_dir)
    assert inst.valid
    return inst.tables


@pytest.fixture(scope="module")
def proven(dummy_tables: dict[str, pd.DataFrame]) -> PlanResult:
    return optimize(dummy_tables, SolveOptions(mip_gap=0.0))


def test_dummy_served_and_proven_cost(proven: PlanResult) -> None:
    assert proven.status == "optimal"
    assert proven.demand_t == pytest.approx(DEMAND_T, abs=0.5)
    assert proven.unmet_t == pytest.approx(UNMET_T, abs=1.0)
    assert proven.served_pct == pytest.approx(53.3847, abs=5e-5)
    assert proven.cost == pytest.approx(OPTIMAL_COST, rel=1e-4)
    assert proven.mip_gap is not None and proven.mip_gap <= 1e-6
    assert proven.cost == pytest.approx(proven.production_cost + proven.transport_cost)


def test_dummy_integer_trip_variables(
    proven: PlanResult, dummy_tables: dict[str, pd.DataFrame]
) -> None:
    # 79 kept lanes x 3 periods with QUANTITY MULTIPLIER > 1; counted on the built model too.
    assert proven.n_int == 237
    built = build_model(compile_data(dummy_tables))
    n_integer = sum(1 for v in built.model.component_data_objects(Var) if v.is_integer())
    assert n_integer == 237
    assert proven.n_vars == sum(1 for _ in built.model.component_data_objects(Var))


def test_dummy_lp_relaxation(dummy_tables: dict[str, pd.DataFrame]) -> None:
    res = optimize(dummy_tables, SolveOptions(relax_trips=True))
    assert res.status == "optimal"
    assert res.n_int == 0
    assert res.served_pct == pytest.approx(53.4516, abs=5e-5)
    assert_balanced(res, dummy_tables)  # the extracted plan keeps its fractional trips


def test_dummy_default_gap(dummy_tables: dict[str, pd.DataFrame]) -> None:
    res = optimize(dummy_tables, SolveOptions())
    assert res.status == "optimal"
    assert res.mip_gap is not None and res.mip_gap <= 1e-4
    assert res.unmet_t == pytest.approx(UNMET_T, abs=1.0)
    # within the gap of the proven optimum (never below it)
    assert OPTIMAL_COST * (1 - 1e-4) <= res.cost <= OPTIMAL_COST * (1 + 1e-4)


def assert_balanced(res: PlanResult, tables: dict[str, pd.DataFrame]) -> None:
    """opening + production + inbound - outbound + unmet = demand + closing, per node and period,
    with demand and opening stock taken from the instance, not from the result."""
    inv = res.inventory.set_index(["iugu_code", "time_period"])
    keys = inv.index
    zeros = pd.Series(0.0, index=keys)

    def by_node(frame: pd.DataFrame, code: str, value: str) -> pd.Series:
        summed = frame.groupby([code, "time_period"])[value].sum()
        summed.index = summed.index.set_names(["iugu_code", "time_period"])
        return zeros.add(summed, fill_value=0.0).reindex(keys)

    demand = by_node(tables["clinker_demand"].astype({"time_period": int}), "iugu_code", "demand")
    production = by_node(res.production, "iu_code", "production_t")
    inbound = by_node(res.shipments, "to_code", "quantity_t")
    outbound = by_node(res.shipments, "from_code", "quantity_t")
    short = by_node(res.unmet, "iugu_code", "unmet_t")
    lhs = inv["opening_t"] + production + inbound - outbound + short
    rhs = demand + inv["closing_t"]
    assert np.abs(lhs - rhs).max() <= 1e-3

    # period 1 opens with IUGUOpeningStock (0 when missing); later periods with the last closing
    opening = tables["opening_stock"].set_index("iugu_code")["opening_stock"]
    periods = sorted(inv.index.get_level_values("time_period").unique())
    first = inv.xs(periods[0], level="time_period")["opening_t"]
    assert np.allclose(first, opening.reindex(first.index).fillna(0.0).to_numpy(), atol=1e-6)
    for prev_t, t in itertools.pairwise(periods):
        prev = inv.xs(prev_t, level="time_period")["closing_t"]
        assert np.allclose(inv.xs(t, level="time_period")["opening_t"], prev, atol=1e-6)


def test_dummy_plan_balances(proven: PlanResult, dummy_tables: dict[str, pd.DataFrame]) -> None:
    assert len(proven.inventory) == 46 * 3
    assert_balanced(proven, dummy_tables)


def test_dummy_plan_respects_the_hard_rules(
    proven: PlanResult, dummy_tables: dict[str, pd.DataFrame]
) -> None:
    tol = 1e-4
    p = proven.production
    assert (p["production_t"] <= p["capacity_t"] + tol).all()
    assert (p["production_t"] >= -tol).all()

    # stock within [MIN, MAX] of IUGUClosingStock
    bounds = dummy_tables["closing_stock_bounds"].astype({"time_period": int})
    inv = proven.inventory.merge(bounds, on=["iugu_code", "time_period"], how="left")
    assert (inv["closing_t"] >= inv["min_close_stock"].fillna(0.0) - tol).all()
    assert (inv["closing_t"] <= inv["max_close_stock"].fillna(np.inf) + tol).all()

    # shipments only on listed, kept lanes, in whole trips where the multiplier is > 1
    s = proven.shipments
    assert not (s["from_code"] == s["to_code"]).any()
    assert (
        not s["from_code"].str.startswith("EXT").any()
        and not s["to_code"].str.startswith("EXT").any()
    )
    rail = s[s["quantity_multiplier"] > 1]
    assert len(rail) > 0
    assert np.allclose(
        rail["quantity_t"], rail["trips"].astype(float) * rail["quantity_multiplier"]
    )
    assert (rail["trips"] >= 1).all()

    # every IUGUConstraint row holds on the shipped tonnes
    for r in dummy_tables["flow_constraints"].itertuples():
        mask = (s["from_code"] == r.iu_code) & (s["time_period"] == r.time_period)
        if pd.notna(r.transport_code):
            mask &= s["transport_code"] == r.transport_code
        if pd.notna(r.iugu_code):
            mask &= s["to_code"] == r.iugu_code
        flow = float(s.loc[mask, "quantity_t"].sum())
        if r.bound_typeid in ("L", "E"):
            assert flow <= r.value + tol, (r.source_row, flow)
        if r.bound_typeid in ("G", "E"):
            assert flow >= r.value - tol, (r.source_row, flow)

    # unmet within [0, demand]
    u = proven.unmet
    assert ((u["unmet_t"] >= -tol) & (u["unmet_t"] <= u["demand_t"] + tol)).all()
