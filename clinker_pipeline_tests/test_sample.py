"""The bundled sample is exactly what `clinker generate --seed 9` writes, and it plans well."""

import json

import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline.instance.generate import generate_instance
from clinker_pipeline.instance.loader import fingerprint

SAMPLE_SEED = 9


def test_checked_in_sample_matches_the_generator(tmp_path):
    sample = load_instance(sample_instance_path())
    assert sample.valid
    assert sample.fingerprint() == fingerprint(generate_instance(seed=SAMPLE_SEED))
    assert main(["generate", str(tmp_path / "g"), "--seed", str(SAMPLE_SEED)]) == 0
    for path in sorted(sample_instance_path().glob("*.csv")):
        assert (tmp_path / "g" / path.name).read_bytes() == path.read_bytes(), path.name


def test_sample_plants_carry_names_and_coordinates_in_india():
    plants = load_instance(sample_instance_path()).tables["plants"]
    assert plants["plant_name"].notna().all() and plants["city"].notna().all()
    assert plants["latitude"].between(6, 37).all() and plants["longitude"].between(68, 98).all()
    assert set(plants["plant_type"]) == {"IU", "GU"}


def test_sample_has_road_and_rail_lanes_with_rake_sized_trips():
    lanes = load_instance(sample_instance_path()).tables["logistics_lanes"]
    rail = lanes[lanes["transport_code"] == "T2"]
    road = lanes[(lanes["transport_code"] == "T1") & (lanes["from_code"] != lanes["to_code"])]
    assert len(rail) and len(road)
    assert (rail["quantity_multiplier"] >= 2000).all()
    assert (road["quantity_multiplier"] == 1).all()


def test_sample_solves_optimal_in_seconds_and_leaves_some_demand_unmet(capsys):
    assert main(["optimize", "--no-write", "--json"]) == 0

    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "optimal"
    assert 90 < record["served_pct"] < 100  # a tight network: the plan must choose
    assert record["n_int"] > 0
    assert record["mip_gap"] == pytest.approx(0, abs=1e-4)
