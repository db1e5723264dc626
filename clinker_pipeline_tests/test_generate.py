"""The synthetic instance generator: deterministic, the requested size, valid and solvable."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from clinker_pipeline.instance.generate import generate_instance
from clinker_pipeline.instance.io import write_tables
from clinker_pipeline.instance.loader import fingerprint, load_instance, validate_instance
from clinker_pipeline.instance.parse import empty_table
from clinker_pipeline.instance.tables import TABLES
from clinker_pipeline.optimization import SolveOptions, optimize

LARGE = {"ius": 120, "gus": 500, "periods": 12, "lanes_per_iu": 15}


@pytest.fixture(scope="module")
def default_tables() -> dict[str, pd.DataFrame]:
    return generate_instance()


def _outbound(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Distinct (from, to, mode) lanes without self-lanes."""
    lanes = tables["logistics_lanes"]
    lanes = lanes[lanes["from_code"] != lanes["to_code"]]
    return lanes[["from_code", "to_code", "transport_code"]].drop_duplicates()


def _check_sizes(tables: dict[str, pd.DataFrame], ius, gus, periods, lanes_per_iu) -> None:
    plants = tables["plants"]
    assert (plants["plant_type"] == "IU").sum() == ius
    assert (plants["plant_type"] == "GU").sum() == gus
    iu_codes = set(plants.loc[plants["plant_type"] == "IU", "iugu_code"])
    gu_codes = set(plants.loc[plants["plant_type"] == "GU", "iugu_code"])
    for name in ("clinker_demand", "clinker_capacity", "logistics_lanes", "flow_constraints"):
        assert sorted(tables[name]["time_period"].unique()) == list(range(1, periods + 1)), name
    assert len(tables["clinker_demand"]) == (ius + gus) * periods
    assert len(tables["clinker_capacity"]) == ius * periods

    lanes = tables["logistics_lanes"]
    assert (lanes.groupby(["from_code", "to_code", "transport_code"]).size() == periods).all()
    self_lanes = lanes[lanes["from_code"] == lanes["to_code"]]
    assert set(self_lanes["from_code"]) == iu_codes
    assert (self_lanes["freight_cost"] == 0).all()
    outbound = _outbound(tables)
    assert not outbound.duplicated(["from_code", "to_code"]).any(), "one mode per (from, to)"
    per_iu = outbound.groupby("from_code").size().reindex(sorted(iu_codes), fill_value=0)
    assert (per_iu == lanes_per_iu).all(), per_iu[per_iu != lanes_per_iu]
    assert gu_codes <= set(outbound["to_code"]), "every GU has an inbound lane"


def test_same_seed_gives_the_same_tables_and_another_seed_does_not():
    first, again = generate_instance(seed=11), generate_instance(seed=11)
    assert list(first) == [spec.name for spec in TABLES]
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name], check_exact=True)
    other = generate_instance(seed=12)
    assert fingerprint(other) != fingerprint(first)
    assert not first["clinker_demand"]["demand"].equals(other["clinker_demand"]["demand"])


def test_default_and_custom_sizes(default_tables):
    _check_sizes(default_tables, ius=8, gus=16, periods=3, lanes_per_iu=6)
    custom = generate_instance(ius=5, gus=9, periods=4, lanes_per_iu=4, seed=3)
    _check_sizes(custom, ius=5, gus=9, periods=4, lanes_per_iu=4)


def test_columns_and_dtypes_are_those_parse_produces(default_tables):
    for spec in TABLES:
        frame = default_tables[spec.name]
        expected = empty_table(spec)
        for col in spec.column_names:
            assert col in frame, f"{spec.name}.{col} missing"
            assert frame[col].dtype == expected[col].dtype, f"{spec.name}.{col}: {frame[col].dtype}"


@pytest.mark.parametrize("seed", [7, 1, 2, 3, 42])
def test_generated_instances_have_no_validation_errors(seed):
    instance = validate_instance(generate_instance(seed=seed))
    assert instance.errors == []
    # the only warnings are the self-lanes, one per IU and period, as in the public dataset
    assert all("self-lane" in p.message for p in instance.warnings)


def test_numbers_are_in_realistic_ranges(default_tables):
    t = default_tables
    plants = t["plants"]
    assert plants[["plant_name", "city", "state"]].notna().all().all()
    assert plants["n_source"].isna().all()
    assert plants["latitude"].between(6, 37).all() and plants["longitude"].between(68, 98).all()
    assert t["clinker_capacity"]["capacity"].between(150_000, 450_000).all()
    assert t["production_cost"]["production_cost"].between(1_400, 2_300).all()
    demand = t["clinker_demand"]
    gu_demand = demand.loc[demand["iugu_code"].str.startswith("GU"), "demand"]
    assert gu_demand.between(40_000, 250_000).all()
    ratio = (
        demand.groupby("time_period")["demand"].sum()
        / t["clinker_capacity"].groupby("time_period")["capacity"].sum()
    )
    assert ratio.between(0.85, 1.0).all(), ratio
    lanes = t["logistics_lanes"]
    rail = lanes["transport_code"] == "T2"
    assert (lanes.loc[rail, "quantity_multiplier"] >= 3000).all()
    assert (lanes.loc[~rail, "quantity_multiplier"] == 1).all()
    assert (lanes.loc[~rail, "handling_cost"] == 0).all()
    # holding the opening stock satisfies every closing-stock bound: the feasibility argument
    stock = t["closing_stock_bounds"].merge(t["opening_stock"], on="iugu_code")
    assert (stock["min_close_stock"] <= stock["opening_stock"]).all()
    assert (
        stock["max_close_stock"].isna() | (stock["max_close_stock"] >= stock["opening_stock"])
    ).all()
    hub = t["hub_opening_stock"]
    hub_total = hub.groupby("hub_code")["opening_stock"].sum()
    opening = t["opening_stock"].set_index("iugu_code")["opening_stock"]
    assert (hub_total <= opening.reindex(hub_total.index)).all()
    cons = t["flow_constraints"]
    scopes = {
        (mode, dest)
        for mode, dest in zip(
            cons["transport_code"].notna(), cons["iugu_code"].notna(), strict=True
        )
    }
    assert {(True, False), (False, False)} <= scopes and any(dest for _, dest in scopes)
    assert set(cons["bound_typeid"]) == {"L", "G", "E"}
    assert (cons["value_typeid"] == "C").all()


def test_round_trip_through_files_keeps_the_fingerprint(default_tables, tmp_path):
    write_tables(default_tables, tmp_path)
    loaded = load_instance(tmp_path)
    assert loaded.errors == []
    assert loaded.fingerprint() == fingerprint(default_tables)
    assert (
        loaded.tables["plants"]["plant_name"].tolist()
        == default_tables["plants"]["plant_name"].tolist()
    )


def test_default_instance_solves_optimal_and_serves_most_demand(default_tables):
    result = optimize(default_tables, SolveOptions(time_limit=60))
    assert result.status == "optimal", result.message
    assert result.served_pct > 85
    assert result.n_int > 0  # rail lanes make it a MILP, not an LP


def test_large_instance_is_generated_quickly_and_is_valid():
    start = time.perf_counter()
    tables = generate_instance(**LARGE)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"generating {LARGE} took {elapsed:.1f} s"
    _check_sizes(tables, **LARGE)
    instance = validate_instance(tables)
    assert instance.errors == [], instance.errors[:5]
