"""Explanations of a plan (issue 12): each unmet reason and each marginal value on an instance
small enough to work out on paper (the working is in the comments), the tables written with the
plan, and the public dataset's every unmet node-period explained."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from clinker_pipeline.explain import explain_plan
from clinker_pipeline.explain.changes import change_summary
from clinker_pipeline.explain.charts import network_map, plan_charts, scenario_chart
from clinker_pipeline.explain.lp import PlanLP
from clinker_pipeline.explain.marginals import bottlenecks
from clinker_pipeline.explain.plan_arrays import plan_arrays
from clinker_pipeline.explain.reasons import explain_unmet
from clinker_pipeline.instance import load_instance
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.optimization.data import compile_data
from clinker_pipeline_tests.test_model import instance, lane, row, solve


def explained(tables):
    res = solve(tables)
    res.explanation = explain_plan(tables, res)
    assert res.explanation.error is None, res.explanation.error
    return res, res.explanation


def reason_of(expl, node: str, t: int = 1) -> pd.Series:
    r = expl.reasons
    hit = r[(r["iugu_code"] == node) & (r["time_period"] == t)]
    assert len(hit) == 1, r
    return hit.iloc[0]


def marginal(expl, kind: str, node: str | None = None, t: int = 1, **where) -> pd.Series:
    m = expl.marginals
    mask = (m["kind"] == kind) & (m["time_period"] == t)
    if node is not None:
        mask &= m["iugu_code"] == node
    for k, v in where.items():
        mask &= m[k] == v
    assert mask.sum() == 1, m[m["kind"] == kind]
    return m[mask].iloc[0]


# --- reasons ----------------------------------------------------------------------------------


def test_no_lane_reaches_the_node() -> None:
    # A serves H by road; G has demand and no lane at all: nothing can ever reach it.
    tables = instance(
        {"A": "IU", "G": "GU", "H": "GU"},
        demand=[("G", 1, 50), ("H", 1, 10)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "H", 1),
    )
    _, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["reason"] == "no_lane" and r["unmet_t"] == pytest.approx(50)
    # H may keep the serve floor's tolerance (1e-6 t) unmet: published as 0, not explained
    assert list(expl.reasons["iugu_code"]) == ["G"]


def _one_full_iu() -> dict[str, pd.DataFrame]:
    # A makes at most 100 t at 10 INR/t; G needs 150 t by road at 1 INR/t
    return instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 150)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
    )


def test_every_iu_that_reaches_it_is_at_capacity_and_one_more_tonne_serves_one_more() -> None:
    # A makes at most 100 t; G needs 150 t by road: 50 t unmet because A is full. One more tonne
    # of capacity at the only IU serves one more tonne; at the same service it saves nothing.
    tables = _one_full_iu()
    res, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["reason"] == "iu_at_capacity"
    assert r["named_plants"] == ["A"]
    cap = marginal(expl, "capacity", "A")
    assert cap["binding"] and cap["slack"] == pytest.approx(0, abs=1e-3)
    assert cap["serve_t_per_unit"] == pytest.approx(1.0)
    assert cap["saving_inr_per_unit"] == pytest.approx(0.0, abs=1e-3)
    # the same by re-solving the plan's LP with 101 t of capacity: 49 t unmet
    data = compile_data(tables)
    lp = PlanLP(data, plan_arrays(data, res).trips)
    assert lp.what_if_col(lp.p0, 0.0, 101.0)[0] == pytest.approx(49.0)
    # serving one more tonne at G: at the same total unmet nothing more can be served there
    assert marginal(expl, "demand", "G")["serve_t_per_unit"] == pytest.approx(-1.0)
    assert bottlenecks(expl.marginals).iloc[0]["kind"] == "capacity"


def test_a_dispatch_row_caps_the_flow() -> None:
    # A has 1,000 t but IUGUConstraint row 2 lets at most 100 t leave A: G (150 t) is 50 short.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 150)],
        capacity=[("A", 1, 1000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
        constraints=[row("A", None, None, "L", 100)],
    )
    _, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["reason"] == "dispatch_row_caps"
    assert r["named_rows"] == [
        "IUGUConstraint row 2 (A -> any destination by any mode, period 1, dispatch <= 100 t)"
    ]
    # one tonne more room under the row serves one more tonne; at the same service it saves
    # nothing, and the last tonne served costs 11 INR (A's 10 + road 1): the serve floor's price
    m = marginal(expl, "dispatch_row", "A", source_row=2)
    assert m["serve_t_per_unit"] == pytest.approx(1.0)
    assert m["saving_inr_per_unit"] == pytest.approx(0.0, abs=1e-6)
    floor = expl.marginals[expl.marginals["kind"] == "serve_floor"].iloc[0]
    assert floor["saving_inr_per_unit"] == pytest.approx(11.0)


def test_a_g_row_forcing_tonnes_into_stock_elsewhere_caps_the_flow() -> None:
    # A makes 100 t; row 2 forces at least 80 t from A to H (no demand there: they sit in stock),
    # so G (100 t) gets 20 t. Lowering the row's floor by a tonne serves a tonne more at G.
    tables = instance(
        {"A": "IU", "G": "GU", "H": "GU"},
        demand=[("G", 1, 100)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1) + lane("A", "H", 1),
        constraints=[row("A", None, "H", "G", 80)],
    )
    _, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["unmet_t"] == pytest.approx(80)
    assert r["reason"] == "dispatch_row_caps"
    assert r["named_rows"] == [
        "IUGUConstraint row 2 (A -> H by any mode, period 1, dispatch >= 80 t)"
    ]
    m = marginal(expl, "dispatch_row", "A", source_row=2)
    assert m["binding"] and m["serve_t_per_unit"] == pytest.approx(1.0)


def test_a_stock_floor_holds_the_tonnes() -> None:
    # A makes 100 t and must close the period with at least 40 t: G (100 t) gets 60 t.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 100)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1),
        closing=[("A", 1, 40, None)],
    )
    _, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["unmet_t"] == pytest.approx(40)
    assert r["reason"] == "stock_floor"
    assert r["named_plants"] == ["A"]
    # lowering A's floor by a tonne serves a tonne more
    assert marginal(expl, "stock_min", "A")["serve_t_per_unit"] == pytest.approx(1.0)


def test_a_fulfilment_floor_elsewhere_takes_the_tonnes() -> None:
    # A makes 100 t. H must get at least 80 % of its 100 t; G's lane is cheaper, so without the
    # floor the plan would serve G. With it: H 80 t, G 20 t, G 80 t short because of H's floor.
    tables = instance(
        {"A": "IU", "G": "GU", "H": "GU"},
        demand=[("G", 1, 100), ("H", 1, 100, 80)],
        capacity=[("A", 1, 100)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 1) + lane("A", "H", 5),
    )
    _, expl = explained(tables)
    g = reason_of(expl, "G")
    assert g["unmet_t"] == pytest.approx(80)
    assert g["reason"] == "fulfilment_floor_elsewhere"
    assert g["named_plants"] == ["H"]
    # H is short only because A is full: its own floor is not its reason
    assert reason_of(expl, "H")["reason"] == "iu_at_capacity"


def test_whole_trips_leave_a_remainder() -> None:
    # A has 5,000 t; G needs 1,500 t and can hold at most 200 t: the only lane moves 1,000 t
    # rakes, so one rake (1,000 t) goes and two (2,000 t, 500 t left over) would not fit.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 1500)],
        capacity=[("A", 1, 5000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 2, mode="T2", mult=1000),
        closing=[("G", 1, 0, 200)],
    )
    _, expl = explained(tables)
    r = reason_of(expl, "G")
    assert r["unmet_t"] == pytest.approx(500)
    assert r["reason"] == "whole_trip_remainder"
    assert r["named_rows"] == ["A -> G by T2 in period 1 (1,000 t per trip)"]
    # one more rake does not fit G's stock: no value, said so
    trip = marginal(expl, "rake_trip", "A", to_code="G")
    assert np.isnan(trip["serve_t_per_unit"]) and "no feasible plan" in trip["description"]


def test_spare_supply_on_a_continuous_path_means_the_solver_stopped_early() -> None:
    # the capacity instance, with the plan as a time-limited solver might leave it: A makes only
    # 80 of its 100 t and G gets 80. Spare clinker can reach G by road: no limit explains it.
    tables = _one_full_iu()
    res = solve(tables)
    data = compile_data(tables)
    plan = plan_arrays(data, res)
    short = replace(
        plan,
        flow=plan.flow * 0.8,
        production=plan.production * 0.8,
        unmet=np.where(plan.unmet > 1, 70.0, 0.0),
    )
    r = explain_unmet(data, short).iloc[0]
    assert r["reason"] == "not_serve_optimal" and r["named_plants"] == ["A"]


# --- marginal values ----------------------------------------------------------------------------


def _two_ius() -> dict[str, pd.DataFrame]:
    # A makes at 10 INR/t but row 2 lets only 100 t leave it; B makes at 20. G needs 150 t, road
    # 1 INR/t from both. Plan: A 100, B 50, cost 100*11 + 50*21 = 2,150. With 101 t under the row:
    # 101*11 + 49*21 = 2,140, so the row's shadow price is 10 INR/t.
    return instance(
        {"A": "IU", "B": "IU", "G": "GU"},
        demand=[("G", 1, 150)],
        capacity=[("A", 1, 1000), ("B", 1, 1000)],
        cost=[("A", 1, 10), ("B", 1, 20)],
        lanes=lane("A", "G", 1) + lane("B", "G", 1),
        constraints=[row("A", None, None, "L", 100)],
    )


def test_a_binding_rows_shadow_price_is_the_cost_of_loosening_it_by_a_tonne() -> None:
    tables = _two_ius()
    res, expl = explained(tables)
    assert res.cost == pytest.approx(2150)
    m = marginal(expl, "dispatch_row", "A", source_row=2)
    assert m["binding"] and m["serve_t_per_unit"] == pytest.approx(0.0, abs=1e-9)
    assert m["saving_inr_per_unit"] == pytest.approx(10.0)
    # the same by re-solving: the LP with the row at 101 t, and the MILP itself
    data = compile_data(tables)
    lp = PlanLP(data, plan_arrays(data, res).trips)
    loosened = lp.what_if_row(lp.d0, -np.inf, 101.0)
    assert res.cost - loosened[1] == pytest.approx(m["saving_inr_per_unit"])
    tables["flow_constraints"].loc[0, "value"] = 101.0
    assert res.cost - solve(tables).cost == pytest.approx(m["saving_inr_per_unit"])
    # the marginal tonne at G is B's: 21 INR; B's capacity is worth nothing (not binding)
    assert marginal(expl, "demand", "G")["saving_inr_per_unit"] == pytest.approx(-21.0)
    assert not marginal(expl, "capacity", "B")["binding"]
    top = bottlenecks(expl.marginals).iloc[0]
    assert top["kind"] == "dispatch_row" and top["saving_inr_per_unit"] == pytest.approx(10.0)
    assert "IUGUConstraint row 2" in expl.top_bottleneck()


def test_one_more_rake_is_worth_the_difference_of_two_re_solves() -> None:
    # A makes at 10; G needs 2,500 t and may keep 1,000 t. Rail moves 1,000 t rakes at 10 INR/t,
    # road 15 INR/t. Plan: 2 rakes + 500 t road = 2,000*20 + 500*25 = 52,500. A third rake
    # (3,000 t, 500 t kept) costs 3,000*20 = 60,000: it serves nothing more and costs 7,500.
    tables = instance(
        {"A": "IU", "G": "GU"},
        demand=[("G", 1, 2500)],
        capacity=[("A", 1, 5000)],
        cost=[("A", 1, 10)],
        lanes=lane("A", "G", 10, mode="T2", mult=1000) + lane("A", "G", 15),
        closing=[("G", 1, 0, 1000)],
    )
    res, expl = explained(tables)
    assert res.cost == pytest.approx(52_500)
    trip = marginal(expl, "rake_trip", "A", to_code="G")
    assert trip["activity"] == 2 and trip["method"] == "resolve"
    assert trip["serve_t_per_unit"] == pytest.approx(0.0, abs=1e-6)
    assert trip["saving_inr_per_unit"] == pytest.approx(-7_500)


# --- the tables, written with the plan ----------------------------------------------------------


def test_tables_are_written_with_the_plan_and_changes_follow_the_previous_plan(tmp_path) -> None:
    tables = _two_ius()
    first, _ = explained(tables)
    tables["flow_constraints"].loc[0, "value"] = 120.0
    second, _ = explained(tables)
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        counts = write_plan(con, first, input_origin="x")
        assert counts["plan_changes"] == 0  # nothing earlier to compare with
        counts = write_plan(con, second, input_origin="x")
        assert counts["plan_marginals"] == len(second.explanation.marginals)
        changes = con.execute(
            "SELECT previous_run_id, category, item, before, after, change FROM plan_changes "
            "WHERE run_id = ?",
            [second.run_id],
        ).df()
        # row 2 now lets 120 t leave A: A makes 20 t more, B 20 t less, cost 20 * 10 lower
        assert set(changes["previous_run_id"]) == {first.run_id}
        prod = changes[changes["category"] == "production"].set_index("item")["change"]
        assert prod.to_dict() == pytest.approx({"A": 20.0, "B": -20.0})
        total = changes[(changes["category"] == "cost") & (changes["item"] == "total")]
        assert total["change"].iloc[0] == pytest.approx(-200.0)
        ranked = con.execute(
            "SELECT rank, kind, source_row FROM plan_bottlenecks WHERE run_id = ? ORDER BY rank",
            [second.run_id],
        ).fetchall()
        assert ranked[0] == (1, "dispatch_row", 2)
    line = change_summary(second.explanation.changes, second.explanation.previous_run_id)
    assert line.startswith(f"vs {first.run_id[:8]}: cost -0.00 crore")
    assert "production changed at 2 IU(s)" in line


def test_a_failing_explanation_never_costs_the_plan(tmp_path, monkeypatch) -> None:
    tables = _two_ius()
    res = solve(tables)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr("clinker_pipeline.explain.marginals.compute_marginals", broken)
    res.explanation = explain_plan(tables, res)
    assert res.explanation.error == "RuntimeError: boom"
    monkeypatch.setattr("clinker_pipeline.explain.store.compare_plans", broken)
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, solve(tables), input_origin="x")  # a previous plan: changes are made
        counts = write_plan(con, res, input_origin="x")
        assert counts["plan_runs"] == 1 and "plan_changes" not in counts
        assert con.execute(
            "SELECT count(*) FROM plan_runs WHERE run_id = ?", [res.run_id]
        ).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM plan_marginals").fetchone() == (0,)
    assert "not written: RuntimeError: boom" in res.explanation.error


# --- pictures -----------------------------------------------------------------------------------


def _png_text_keys(png: bytes) -> list[bytes]:
    keys, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(png[pos + 8 : pos + 8 + length].split(b"\0")[0])
        if kind == b"tIME":
            keys.append(b"tIME")
        pos += 12 + length
    return keys


def test_charts_are_deterministic_pngs_without_dates() -> None:
    tables = _two_ius()
    res = solve(tables)
    charts = plan_charts(tables["plants"], res)
    assert set(charts) == {
        "network_map",
        "production_vs_capacity",
        "unmet_by_node",
        "mode_share",
        "cost_by_component",
    }
    again = plan_charts(tables["plants"], res)
    for name, png in charts.items():
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert png == again[name], name
        keys = _png_text_keys(png)
        assert b"tIME" not in keys and b"Creation Time" not in keys and b"Software" not in keys
    # no coordinates in these plants: the layered layout still draws
    assert network_map(tables["plants"], res.shipments).startswith(b"\x89PNG")
    table = pd.DataFrame(
        {
            "scenario": ["base", "x"],
            "cost_inr": [1e9, 1.1e9],
            "served_pct": [90.0, 95.0],
            "rail_share_pct": [60.0, 70.0],
        }
    )
    assert scenario_chart(table) == scenario_chart(table)


# --- the public dataset --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_plan(dummy_dir):
    """The public dataset solved once for the tests below (defaults of the contract)."""
    tables = load_instance(dummy_dir).tables
    return tables, solve(tables, mip_gap=1e-4, time_limit=120)


def test_every_unmet_node_period_of_the_dataset_has_a_reason(dataset_plan) -> None:
    tables, res = dataset_plan
    assert res.served_pct == pytest.approx(53.3847, abs=5e-5)
    expl = explain_plan(tables, res, trip_budget_s=2.0)
    assert expl.error is None
    unmet = res.unmet[res.unmet["unmet_t"] > 0.005]  # what plan_unmet publishes as > 0
    keyed = expl.reasons.set_index(["iugu_code", "time_period"])
    assert len(keyed) == len(unmet)
    assert set(keyed.index) == set(zip(unmet["iugu_code"], unmet["time_period"], strict=True))
    assert (
        keyed["reason"]
        .isin(
            {
                "no_lane",
                "iu_at_capacity",
                "dispatch_row_caps",
                "stock_floor",
                "fulfilment_floor_elsewhere",
                "whole_trip_remainder",
                "solver_tolerance",
            }
        )
        .all()
    ), keyed["reason"].value_counts()
    assert keyed.loc[keyed["reason"] != "solver_tolerance", "unmet_t"].min() > 0.01
    assert (keyed["text"].str.len() > 0).all()
    named = keyed[keyed["reason"] == "dispatch_row_caps"]["named_rows"]
    assert named.map(len).min() >= 1
    # the plan's LP (trips fixed) is the plan: same shortfall, same cost
    data = compile_data(tables)
    first, second = PlanLP(data, plan_arrays(data, res).trips).solve_both()
    assert first.objective == pytest.approx(res.unmet_t, abs=1.0)
    assert second.objective == pytest.approx(res.cost, rel=1e-6)
    json.dumps(expl.reasons["named_rows"].tolist())  # JSON-safe for DuckDB


# --- clinker explain ------------------------------------------------------------------------------


def test_clinker_explain_prints_reasons_bottlenecks_and_changes(tmp_path, capsys) -> None:
    from clinker_pipeline.cli import main
    from clinker_pipeline.instance.io import write_tables

    src = tmp_path / "inst"
    tables = _two_ius()
    write_tables(tables, src)
    db = str(tmp_path / "p.duckdb")
    assert main(["optimize", "--input", str(src), "--output", db, "--gap", "0"]) == 0
    assert "changes     first plan of this scenario and instance" in capsys.readouterr().out
    tables["flow_constraints"].loc[0, "value"] = 120.0
    write_tables(tables, src)
    assert main(["optimize", "--input", str(src), "--output", db, "--gap", "0"]) == 0
    out = capsys.readouterr().out
    assert "  changes     vs " in out and "cost -0.00 crore" in out
    assert "  bottleneck  IUGUConstraint row 2" in out
    # optimize writes scenario 'base': the default run is the newest one
    assert main(["explain", "--duckdb", db, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["bottlenecks"][0]["source_row"] == 2
    assert record["bottlenecks"][0]["saving_inr_per_unit"] == pytest.approx(10.0)
    assert record["previous_run_id"] is not None
    assert {c["item"] for c in record["changes"] if c["category"] == "production"} == {"A", "B"}
    assert main(["explain", "--duckdb", db]) == 0
    text = capsys.readouterr().out
    assert "Top bottlenecks" in text and "Changes (table plan_changes): vs " in text
    assert "none: all demand served" in text
    assert main(["explain", "--duckdb", db, "--run-id", "nope"]) == 1
    assert "holds no run nope" in capsys.readouterr().err
    assert main(["explain", "--duckdb", str(tmp_path / "missing.duckdb")]) == 1
    assert "no such DuckDB file" in capsys.readouterr().err


def test_the_datasets_top_bottlenecks_are_worth_what_a_re_solve_says(dataset_plan) -> None:
    # prices of a degenerate LP need not be unique: check the ranked ones against finite
    # differences of the plan's LP (one tonne loosened; stage 2 at the same unmet)
    tables, res = dataset_plan
    expl = explain_plan(tables, res, trip_budget_s=0.5)
    data = compile_data(tables)
    lp = PlanLP(data, plan_arrays(data, res).trips)
    first, second = lp.solve_both()
    n_t = data.n_periods
    top = bottlenecks(expl.marginals)
    top = top[top["kind"].isin(["capacity", "stock_min"])].head(5)
    assert len(top) == 5
    for r in top.itertuples(index=False):
        node, t = data.nodes.index(r.iugu_code), data.periods.index(r.time_period)
        if r.kind == "stock_min":
            col, lo, hi = lp.i0 + node * n_t + t, r.bound - 1, lp.col_hi[lp.i0 + node * n_t + t]
        else:
            col, lo, hi = lp.p0 + lp.prod_keys.index((node, t)), 0.0, r.bound + 1
        unmet, _ = lp.what_if_col(col, lo, hi)
        _, cost = lp.what_if_col(col, lo, hi, hold_unmet=first.objective)
        assert first.objective - unmet == pytest.approx(r.serve_t_per_unit, abs=1e-6)
        assert second.objective - cost == pytest.approx(r.saving_inr_per_unit, rel=1e-6, abs=1e-3)
