"""The scenario layer: each feed adjustment does what the spec says, and moves the plan the
documented way (dearer diesel or monsoon-shut roads: more rail, higher cost)."""

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline.lib.calendar import monthly_periods
from clinker_pipeline.optimization import SolveOptions
from clinker_pipeline.optimization.comparison import comparison_table, run_scenarios
from clinker_pipeline.optimization.scenarios import (
    AdjustmentSettings,
    FeedInputs,
    Outage,
    Scenario,
    ScenarioError,
    ScenarioSet,
    apply_adjustments,
    mode_shares,
)

PERIODS = monthly_periods(date(2026, 12, 1), 3)
SETTINGS = AdjustmentSettings(fuel_share=0.35, diesel_base_inr_per_litre=80.0)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return load_instance(sample_instance_path()).tables


def solve(tables, feeds, scenario):
    from clinker_pipeline.optimization import optimize

    adjusted = apply_adjustments(tables, feeds, scenario, SETTINGS)
    result = optimize(adjusted.tables, SolveOptions(time_limit=60))
    assert result.status == "optimal", result.message
    return adjusted, result, mode_shares(result.shipments)


def test_fuel_index_scales_road_freight_only(tables):
    adjusted = apply_adjustments(tables, FeedInputs(diesel_inr_per_litre=100.0), None, SETTINGS)
    index = 1 + 0.35 * (100.0 / 80.0 - 1)
    before, after = tables["logistics_lanes"], adjusted.tables["logistics_lanes"]
    road = before["transport_code"] == "T1"
    assert after.loc[road, "freight_cost"].tolist() == pytest.approx(
        (before.loc[road, "freight_cost"] * index).tolist()
    )
    assert after.loc[~road, "freight_cost"].tolist() == before.loc[~road, "freight_cost"].tolist()
    assert adjusted.applied["fuel"]["fuel_index"] == pytest.approx(index)
    # the input tables are not modified in place
    assert tables["logistics_lanes"]["freight_cost"].equals(before["freight_cost"])


def test_no_feeds_means_no_change(tables):
    adjusted = apply_adjustments(tables, FeedInputs(), Scenario("base"), SETTINGS)
    for name, table in tables.items():
        pd.testing.assert_frame_equal(adjusted.tables[name], table)
    assert set(adjusted.applied) == {"scenario"}


def _steps(plant: str, rain_mm: float, start: datetime, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plant_code": plant,
            "step_start_utc": pd.to_datetime(
                [start + timedelta(hours=3 * k) for k in range(n)], utc=True
            ),
            "step_hours": 3.0,
            "rain_mm": rain_mm,
            "snow_mm": 0.0,
            "temp_c": 25.0,
            "wind_speed_ms": 3.0,
            "wind_gust_ms": 5.0,
            "pop": 1.0,
            "weather_main": "Rain",
            "road_closed": rain_mm >= 7.5,
            "source_row": range(1, n + 1),
        }
    )


def test_weather_adds_a_road_cap_where_none_exists(tables):
    # 40 heavy-rain steps (120 h) inside period 1 at IU_005: 120 of 744 hours shut
    steps = _steps("IU_005", 20.0, datetime(2026, 12, 1, tzinfo=UTC), 40)
    feeds = FeedInputs(weather_steps=steps, periods=PERIODS)
    adjusted = apply_adjustments(tables, feeds, None, SETTINGS)
    rows = adjusted.tables["flow_constraints"]
    added = rows[(rows["iu_code"] == "IU_005") & (rows["transport_code"] == "T1")]
    capacity = tables["clinker_capacity"]
    cap1 = float(
        capacity[(capacity["iu_code"] == "IU_005") & (capacity["time_period"] == 1)][
            "capacity"
        ].iloc[0]
    )
    assert len(added) == 1
    assert added["time_period"].iloc[0] == 1 and added["bound_typeid"].iloc[0] == "L"
    assert added["value"].iloc[0] == pytest.approx((1 - 120 / 744) * cap1)
    assert adjusted.applied["weather"]["road_caps_added"] == 1
    assert len(rows) == len(tables["flow_constraints"]) + 1


def test_weather_scales_an_existing_road_cap(tables):
    base = tables["flow_constraints"]
    extra = pd.DataFrame(
        [
            {
                "iu_code": "IU_005",
                "transport_code": "T1",
                "iugu_code": pd.NA,
                "time_period": 1,
                "bound_typeid": "L",
                "value_typeid": "C",
                "value": 50_000.0,
            }
        ]
    ).astype({c: base[c].dtype for c in base.columns if c != "source_row"})
    with_cap = {**tables, "flow_constraints": pd.concat([base, extra], ignore_index=True)}
    feeds = FeedInputs(periods=PERIODS)
    adjusted = apply_adjustments(with_cap, feeds, Scenario("wet", road_closure_share=0.5), SETTINGS)
    rows = adjusted.tables["flow_constraints"]
    cap = rows[(rows["iu_code"] == "IU_005") & (rows["transport_code"] == "T1")]
    p1 = cap[cap["time_period"] == 1]
    assert p1["value"].tolist() == [pytest.approx(25_000.0)]  # scaled, not duplicated
    assert set(cap["time_period"]) == {1, 2, 3}  # periods 2 and 3 got a cap added


def test_closure_by_state_only_touches_those_plants(tables):
    scenario = Scenario("tn", road_closure_share=0.5, road_closure_states=("Tamil Nadu",))
    adjusted = apply_adjustments(tables, FeedInputs(periods=PERIODS), scenario, SETTINGS)
    added = adjusted.tables["flow_constraints"].iloc[len(tables["flow_constraints"]) :]
    assert set(added["iu_code"]) == {"IU_005"}  # the only IU in Tamil Nadu


def test_demand_outage_and_telemetry_overrides(tables):
    feeds = FeedInputs(
        capacity_overrides=pd.DataFrame(
            [{"iu_code": "IU_002", "time_period": 1, "capacity": 1000.0, "reason": "kiln trip"}]
        ),
        opening_stock_overrides=pd.DataFrame(
            [{"iugu_code": "GU_001", "opening_stock": 4321.0, "reason": "silo radar"}]
        ),
    )
    scenario = Scenario("mix", demand_change_pct=10, outages=(Outage("IU_001", (1, 2), 0.25),))
    adjusted = apply_adjustments(tables, feeds, scenario, SETTINGS)
    out = adjusted.tables
    assert out["clinker_demand"]["demand"].sum() == pytest.approx(
        tables["clinker_demand"]["demand"].sum() * 1.1
    )
    cap = out["clinker_capacity"].set_index(["iu_code", "time_period"])["capacity"]
    cap0 = tables["clinker_capacity"].set_index(["iu_code", "time_period"])["capacity"]
    assert cap[("IU_002", 1)] == 1000.0
    assert cap[("IU_001", 1)] == pytest.approx(cap0[("IU_001", 1)] * 0.25)
    assert cap[("IU_001", 3)] == cap0[("IU_001", 3)]
    stock = out["opening_stock"].set_index("iugu_code")["opening_stock"]
    assert stock["GU_001"] == 4321.0
    assert adjusted.applied["capacity_overrides"][0]["reason"] == "kiln trip"


def test_diesel_rise_moves_freight_to_rail_and_costs_more(tables):
    """Done-when of #4: diesel up -> rail share up, cost up."""
    _, base, base_share = solve(tables, FeedInputs(diesel_inr_per_litre=82.0), None)
    _, dear, dear_share = solve(tables, FeedInputs(diesel_inr_per_litre=82.0 * 1.5), None)
    assert dear.cost > base.cost
    assert dear_share["rail_share_pct"] > base_share["rail_share_pct"] + 1
    assert dear.served_pct == pytest.approx(base.served_pct, abs=1e-6)


def test_monsoon_closing_roads_moves_freight_to_rail_and_costs_more(tables):
    """Done-when of #4: heavy rain closes roads -> rail share up, cost up."""
    rainy = pd.concat(
        [
            _steps(code, 25.0, datetime(2026, 12, 1, tzinfo=UTC), 40)
            for code in tables["clinker_capacity"]["iu_code"].unique()
        ],
        ignore_index=True,
    )
    dry = FeedInputs(diesel_inr_per_litre=82.0, periods=PERIODS)
    wet = FeedInputs(diesel_inr_per_litre=82.0, periods=PERIODS, weather_steps=rainy)
    monsoon = Scenario("monsoon", road_closure_share=0.8)
    _, base, base_share = solve(tables, dry, None)
    adjusted, shut, shut_share = solve(tables, wet, monsoon)
    assert adjusted.applied["weather"]["min_availability"] < 0.25
    assert shut.cost > base.cost
    assert shut_share["rail_share_pct"] > base_share["rail_share_pct"] + 1


def test_scenario_set_runs_and_compares(tables):
    scenario_set = ScenarioSet.load()
    feeds = FeedInputs(diesel_inr_per_litre=82.0, periods=PERIODS)
    runs = run_scenarios(
        tables, feeds, scenario_set, SolveOptions(time_limit=60), ["fuel_shock", "monsoon"]
    )
    table = comparison_table(runs)
    assert table["scenario"].tolist() == ["base", "fuel_shock", "monsoon"]
    base = table.iloc[0]
    assert base["cost_vs_base_pct"] == 0 and base["rail_share_vs_base_pts"] == 0
    shock = table.set_index("scenario").loc["fuel_shock"]
    assert shock["fuel_index"] > base["fuel_index"]
    assert shock["cost_vs_base_pct"] > 0 and shock["rail_share_vs_base_pts"] > 0
    assert (table["status"] == "optimal").all()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"scenarios": [{"name": "x", "demand_pct": 5}]}, "unknown field(s) demand_pct"),
        ({"scenarios": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"scenarios": [{"description": "no name"}]}, "non-empty 'name'"),
        ({"scenarios": [{"name": "m", "road_closure_share": 1.5}]}, "within 0..1"),
        ({"scenarios": [{"name": "d", "diesel_factor": 0}]}, "diesel_factor must be > 0"),
        ({"adjustments": {"diesel_base_inr_per_litre": -1}}, "must be > 0"),
    ],
)
def test_bad_scenario_files_say_what_is_wrong(raw, message):
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScenarioSet.from_dict(raw)


def test_scenario_file_errors(tmp_path, tables):
    bad = tmp_path / "s.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        ScenarioSet.load(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        ScenarioSet.load(tmp_path / "missing.json")
    with pytest.raises(ScenarioError, match="no scenario named 'nope'"):
        ScenarioSet.load().get("nope")
    # one scenario set serves every instance: an outage of a plant this one lacks is recorded
    outage = apply_adjustments(tables, FeedInputs(), Scenario("o", outages=(Outage("GU_001"),)))
    assert "no capacity rows for GU_001" in outage.applied["not_applied"]["outage GU_001"]
    with pytest.raises(ScenarioError, match="no diesel price"):
        apply_adjustments(tables, FeedInputs(), Scenario("f", diesel_factor=1.2))


def test_bundled_scenarios_are_the_documented_five():
    names = [s.name for s in ScenarioSet.load().scenarios]
    assert names == ["base", "demand_plus_10", "outage_IU_001", "fuel_shock", "monsoon"]
    raw = json.loads((sample_instance_path().parent / "scenarios.json").read_text(encoding="utf-8"))
    assert raw["adjustments"]["fuel_share"] == 0.35


# --- issue 11: live silo readings apply to the current period; monsoon vs committed road flows


def _silo(code: str, level: float) -> pd.DataFrame:
    return pd.DataFrame([{"iugu_code": code, "opening_stock": level, "reason": "silo radar"}])


def test_silo_reading_in_period_one_is_the_opening_stock(tables):
    feeds = FeedInputs(opening_stock_overrides=_silo("GU_001", 4321.0), current_period=1)
    out = apply_adjustments(tables, feeds, None, SETTINGS)
    assert (
        out.tables["opening_stock"].set_index("iugu_code").at["GU_001", "opening_stock"] == 4321.0
    )
    pd.testing.assert_frame_equal(
        out.tables["closing_stock_bounds"], tables["closing_stock_bounds"]
    )


def test_silo_reading_in_a_later_period_fixes_the_previous_closing_stock(tables):
    feeds = FeedInputs(opening_stock_overrides=_silo("GU_001", 4321.0), current_period=3)
    out = apply_adjustments(tables, feeds, None, SETTINGS)
    # the opening stock of period 1 is history: untouched
    pd.testing.assert_frame_equal(out.tables["opening_stock"], tables["opening_stock"])
    bounds = out.tables["closing_stock_bounds"].set_index(["iugu_code", "time_period"])
    assert bounds.loc[("GU_001", 2), "min_close_stock"] == 4321.0
    assert bounds.loc[("GU_001", 2), "max_close_stock"] == 4321.0
    (entry,) = out.applied["opening_stock_overrides"]
    assert entry["time_period"] == 3 and entry["fixes"] == "closing stock of period 2"
    result = solve(tables, feeds, None)[1]
    stock = result.inventory.set_index(["iugu_code", "time_period"])
    assert float(stock.filter(like="clos").loc[("GU_001", 2)].iloc[0]) == pytest.approx(4321.0)


def test_silo_reading_outside_the_horizon_is_refused(tables):
    feeds = FeedInputs(opening_stock_overrides=_silo("GU_001", 4321.0), current_period=None)
    out = apply_adjustments(tables, feeds, None, SETTINGS)
    pd.testing.assert_frame_equal(out.tables["opening_stock"], tables["opening_stock"])
    pd.testing.assert_frame_equal(
        out.tables["closing_stock_bounds"], tables["closing_stock_bounds"]
    )
    (entry,) = out.applied["opening_stock_overrides"]
    assert entry["refused"] == "the current time is outside the plan horizon"


def test_monsoon_scales_committed_road_flows_and_serves_less_instead_of_infeasible(tables):
    """A fixed road flow (E) of a plant at its whole road capacity: a 60 % closure used to leave
    the E row above the new cap (infeasible); now it is scaled with the caps."""
    lanes = tables["logistics_lanes"]
    road = lanes[(lanes["transport_code"] == "T1") & (lanes["from_code"] != lanes["to_code"])]
    lane = road.iloc[0]
    row = {"iu_code": lane["from_code"], "transport_code": "T1", "time_period": 1}
    fixed = (
        pd.DataFrame(
            [
                {**row, "iugu_code": lane["to_code"], "bound_typeid": "E", "value": 20_000.0},
                {**row, "iugu_code": pd.NA, "bound_typeid": "L", "value": 20_000.0},
            ]
        )
        .assign(value_typeid="C")
        .astype({c: tables["flow_constraints"][c].dtype for c in ("iu_code", "time_period")})
    )
    with_e = {
        **tables,
        "flow_constraints": pd.concat([tables["flow_constraints"], fixed], ignore_index=True),
    }
    monsoon = Scenario("wet", road_closure_share=0.6)
    adjusted = apply_adjustments(with_e, FeedInputs(periods=PERIODS), monsoon, SETTINGS)
    from clinker_pipeline.optimization import optimize

    result = optimize(adjusted.tables, SolveOptions(time_limit=60))
    assert result.status == "optimal", result.message
    rows = adjusted.tables["flow_constraints"]
    e_row = rows[(rows["bound_typeid"] == "E") & (rows["iu_code"] == lane["from_code"])]
    assert e_row["value"].tolist() == [pytest.approx(8_000.0)]
    assert adjusted.applied["weather"]["road_commitments_scaled"] >= 1


# --- issue 11: a feed that cannot apply to an instance says so and the plan goes on


def test_feeds_that_cannot_apply_are_recorded_not_applied(tables):
    """The public datasets have no coordinates; the stored forecast belongs to another instance
    with the same plant codes: it must not cap this one's roads."""
    rainy = pd.concat(
        [
            _steps(code, 25.0, datetime(2026, 12, 1, tzinfo=UTC), 40)
            for code in tables["plants"]["iugu_code"]
        ],
        ignore_index=True,
    )
    no_xy = {**tables, "plants": tables["plants"].assign(latitude=None, longitude=None)}
    feeds = FeedInputs(periods=PERIODS, weather_steps=rainy)
    out = apply_adjustments(no_xy, feeds, None, SETTINGS)
    pd.testing.assert_frame_equal(out.tables["flow_constraints"], tables["flow_constraints"])
    assert out.applied["not_applied"]["weather"].startswith(
        "no plant of this instance has coordinates"
    )
    # same plant codes with coordinates: the forecast applies
    assert "not_applied" not in apply_adjustments(tables, feeds, None, SETTINGS).applied

    rail_only = {
        **tables,
        "logistics_lanes": tables["logistics_lanes"].query("transport_code != 'T1'"),
    }
    feeds = FeedInputs(periods=PERIODS, weather_steps=rainy, diesel_inr_per_litre=95.0)
    out = apply_adjustments(rail_only, feeds, None, SETTINGS)
    assert out.applied["not_applied"]["weather"] == (
        "the instance has no road (T1) lanes: nothing to cap"
    )
    assert "no road (T1) lanes" in out.applied["not_applied"]["fuel"]

    strangers = FeedInputs(opening_stock_overrides=_silo("GU_999", 10.0))
    out = apply_adjustments(tables, strangers, None, SETTINGS)
    assert out.applied["not_applied"]["telemetry"].endswith("GU_999")
