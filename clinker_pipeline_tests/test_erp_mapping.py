"""ERP records become planner tables; every record that cannot be used is reported, not dropped."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from clinker_pipeline.defs.erp.mapping import (
    ErpMapping,
    PlantMap,
    map_capacity,
    map_demand,
    map_plants,
    map_stock,
    sample_mapping_path,
)
from clinker_pipeline.instance import load_instance, sample_instance_path, validate_instance
from clinker_pipeline.instance.schema import INSTANCE_SCHEMAS

MAPPING = ErpMapping(
    clinker_material="CLK-OPC",
    stock_types=("01",),
    plan_start=date(2026, 12, 1),
    periods=3,
    ibp_planning_area="ZCEMPA",
    ibp_key_figure="CONSENSUSDEMAND",
    ibp_uom="TO",
    ibp_period_field="PERIODID3_TSTAMP",
    ibp_location_field="LOCID",
    ibp_product_field="PRDID",
    clinker_factors={"CLK-OPC": 1.0, "CEM-PPC": 0.65},
    plants=(
        PlantMap("1101", "IU_001", "IU", oracle_plant="ORA1"),
        PlantMap("1201", "GU_001", "GU", ibp_location="LOC-GU1"),
    ),
)


@dataclass
class Row:
    plant_code: str
    period_start: date
    capacity_t: Decimal
    uom: str = "TO"


def by_message(problems, text):
    return [p for p in problems if text in p.message]


def test_sample_mapping_covers_every_node_of_the_sample_instance():
    mapping = ErpMapping.load(sample_mapping_path())
    plants = load_instance(sample_instance_path()).tables["plants"]
    assert {p.iugu_code for p in mapping.plants} == set(plants["iugu_code"])
    types = dict(zip(plants["iugu_code"], plants["plant_type"], strict=True))
    assert all(types[p.iugu_code] == p.plant_type for p in mapping.plants)
    assert len({p.sap_plant for p in mapping.plants}) == len(mapping.plants)


def test_period_of_maps_calendar_months_inside_the_horizon():
    assert MAPPING.period_of(date(2026, 12, 15)) == 1
    assert MAPPING.period_of(datetime(2027, 2, 1, tzinfo=UTC)) == 3
    assert MAPPING.period_of(date(2026, 11, 30)) is None
    assert MAPPING.period_of(date(2027, 3, 1)) is None


def test_plants_are_mapped_and_unknown_or_broken_records_are_reported():
    records = [
        {"Plant": "1101", "PlantName": "Satna Cement Works"},
        {"Plant": "9999", "PlantName": "Packing plant"},
        {"PlantName": "no key"},
        {"Plant": "1101", "PlantName": "again"},
    ]
    table, problems = map_plants(records, MAPPING)
    assert table[["iugu_code", "plant_type", "plant_name"]].values.tolist() == [
        ["IU_001", "IU", "Satna Cement Works"]
    ]
    INSTANCE_SCHEMAS["plants"].validate(table)
    unknown = by_message(problems, "9999 is not in the plant mapping")
    assert unknown[0].severity == "WARN" and unknown[0].row == 2
    assert unknown[0].record == {"Plant": "9999", "PlantName": "Packing plant"}
    assert by_message(problems, "no Plant key")[0].severity == "ERROR"
    assert by_message(problems, "appears twice")[0].row == 4
    missing = by_message(problems, "mapped plant 1201 (GU_001) was not returned by SAP")
    assert missing[0].severity == "ERROR" and missing[0].row is None


def test_stock_counts_unrestricted_clinker_only_and_converts_units():
    records = [
        {
            "Material": "CLK-OPC",
            "Plant": "1101",
            "InventoryStockType": "01",
            "MaterialBaseUnit": "TO",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("48210.500"),
        },
        {
            "Material": "CLK-OPC",
            "Plant": "1101",
            "InventoryStockType": "01",
            "MaterialBaseUnit": "KG",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("1500"),
        },
        {
            "Material": "CLK-OPC",
            "Plant": "1101",
            "InventoryStockType": "07",  # blocked
            "MaterialBaseUnit": "TO",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("999"),
        },
        {
            "Material": "GYPSUM",
            "Plant": "1101",
            "InventoryStockType": "01",
            "MaterialBaseUnit": "TO",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("5"),
        },
        {
            "Material": "CLK-OPC",
            "Plant": "1201",
            "InventoryStockType": "01",
            "MaterialBaseUnit": "TO",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("-3"),
        },
        {
            "Material": "CLK-OPC",
            "Plant": "1201",
            "InventoryStockType": "01",
            "MaterialBaseUnit": "BAG",
            "MatlWrhsStkQtyInMatlBaseUnit": Decimal("10"),
        },
    ]
    table, problems = map_stock(records, MAPPING)
    assert table.to_dict("list")["iugu_code"] == ["IU_001"]
    assert table["opening_stock"].iloc[0] == pytest.approx(48210.5 + 1.5)
    assert [p.row for p in problems] == [5, 6]
    assert "negative stock -3" in problems[0].message
    assert "'BAG' cannot be converted to tonnes" in problems[1].message
    assert problems[0].record["MatlWrhsStkQtyInMatlBaseUnit"] == "-3"


def test_demand_is_converted_to_clinker_and_summed_per_node_and_month():
    dec, jan = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    base = {"UOMTOID": "TO", "PERIODID3_TSTAMP": dec}
    records = [
        {
            **base,
            "PRDID": "CLK-OPC",
            "LOCID": "1101",
            "CUSTID": "A",
            "CONSENSUSDEMAND": Decimal("100"),
        },
        {
            **base,
            "PRDID": "CLK-OPC",
            "LOCID": "1101",
            "CUSTID": "B",
            "CONSENSUSDEMAND": Decimal("50"),
        },
        {
            **base,
            "PRDID": "CEM-PPC",
            "LOCID": "LOC-GU1",
            "CONSENSUSDEMAND": Decimal("1000"),
            "PERIODID3_TSTAMP": jan,
        },
        {**base, "PRDID": "CEM-XYZ", "LOCID": "1101", "CONSENSUSDEMAND": Decimal("1")},
        {
            **base,
            "PRDID": "CLK-OPC",
            "LOCID": "1101",
            "CONSENSUSDEMAND": Decimal("1"),
            "PERIODID3_TSTAMP": datetime(2027, 6, 1, tzinfo=UTC),
        },
        {
            **base,
            "PRDID": "CLK-OPC",
            "LOCID": "1101",
            "CONSENSUSDEMAND": Decimal("1"),
            "UOMTOID": "KG",
        },
        {**base, "PRDID": "CLK-OPC", "LOCID": "7777", "CONSENSUSDEMAND": Decimal("1")},
        {**base, "PRDID": "CLK-OPC", "LOCID": "1101", "CONSENSUSDEMAND": Decimal("-1")},
    ]
    table, problems = map_demand(records, MAPPING)
    got = {(r.iugu_code, r.time_period): r.demand for r in table.itertuples()}
    assert got == {("IU_001", 1): 150.0, ("GU_001", 2): pytest.approx(650.0)}
    assert [(p.row, p.severity) for p in problems] == [
        (4, "ERROR"),
        (5, "WARN"),
        (6, "ERROR"),
        (7, "WARN"),
        (8, "ERROR"),
    ]
    INSTANCE_SCHEMAS["clinker_demand"].validate(table)


def test_capacity_maps_oracle_plants_and_reports_bad_rows():
    @dataclass
    class Bad:
        raw: dict
        reason: str

    rows = [
        Row("ORA1", date(2026, 12, 1), Decimal("300000.5")),
        Row("ORA1", date(2027, 1, 1), Decimal("280000")),
        Row("1201", date(2026, 12, 1), Decimal("10")),  # a GU
        Row("X9", date(2026, 12, 1), Decimal("10")),
        Row("ORA1", date(2028, 1, 1), Decimal("10")),
    ]
    table, problems = map_capacity(rows, [Bad({"PLANT_CODE": None}, "missing plant")], MAPPING)
    assert table[["iu_code", "time_period", "capacity"]].values.tolist() == [
        ["IU_001", 1, 300000.5],
        ["IU_001", 2, 280000.0],
    ]
    assert [(p.row, p.severity) for p in problems] == [
        (1, "ERROR"),
        (4, "ERROR"),
        (5, "WARN"),
        (6, "WARN"),
    ]
    assert problems[0].message == "missing plant"


def test_erp_tables_slot_into_the_bundled_instance():
    """ERP tables replace their file twins and the whole instance still validates."""
    inst = load_instance(sample_instance_path())
    mapping = ErpMapping.load(sample_mapping_path())
    demand = inst.tables["clinker_demand"]
    ibp = [
        {
            "LOCID": next(p.sap_plant for p in mapping.plants if p.iugu_code == r.iugu_code),
            "PRDID": "CLK-OPC",
            "UOMTOID": "TO",
            "CONSENSUSDEMAND": Decimal(str(r.demand)),
            "PERIODID3_TSTAMP": datetime(2026, 11 + r.time_period, 1, tzinfo=UTC)
            if r.time_period == 1
            else datetime(2027, r.time_period - 1, 1, tzinfo=UTC),
        }
        for r in demand.itertuples()
    ]
    table, problems = map_demand(ibp, mapping)
    assert problems == []
    merged = validate_instance({**inst.tables, "clinker_demand": table})
    assert merged.valid
    cols = ["iugu_code", "time_period", "demand"]
    expected = demand[cols].sort_values(cols[:2]).values.tolist()
    assert table[cols].sort_values(cols[:2]).values.tolist() == expected
