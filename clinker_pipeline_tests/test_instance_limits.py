"""Numbers the model must not take: non-finite values, magnitudes no plant has, periods < 1,
instances with nothing to plan, and horizons the tables disagree on (issue 11).

Each test copies the toy dataset (small, alias file names), changes one cell or row, and checks
the one problem the loader reports for it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from clinker_pipeline.instance import load_instance, validate_instance
from clinker_pipeline.instance.tables import MAX_INR_PER_T, MAX_TONNES
from clinker_pipeline_tests.helpers import copy_instance, dataset


def _toy(tmp_path: Path) -> Path:
    return copy_instance(dataset("toy_2iu3gu"), tmp_path / "toy")


def _set_cell(folder: Path, file: str, row: int, header: str, value: str) -> None:
    """Set the cell on 1-based file line `row` (header = 1) to the text `value`."""
    frame = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    frame.loc[row - 2, header] = value
    frame.to_csv(folder / file, index=False)


def _messages(folder: Path, severity: str = "ERROR") -> list[str]:
    inst = load_instance(folder)
    return [str(p) for p in inst.problems if p.severity == severity]


@pytest.mark.parametrize(
    ("file", "header", "text", "expected"),
    [
        ("Production cost.csv", "PRODUCTION COST", "inf", "not a finite number: 'inf'"),
        ("Demand.csv", "DEMAND", "NaN", "not a finite number: 'NaN'"),
        ("Demand.csv", "DEMAND", "-Infinity", "not a finite number: '-Infinity'"),
        ("Closing stock.csv", "MAX CLOSE STOCK", "nan", "not a finite number: 'nan'"),
        ("Demand.csv", "DEMAND", "1e308", "must be <= 100,000,000, got 1e+308"),
        ("Production cost.csv", "PRODUCTION COST", "2e7", "must be <= 1,000,000"),
        ("Logistics.csv", "QUANTITY MULTIPLIER", "300000", "must be <= 100,000"),
        ("Capacity.csv", "TIME PERIOD", "0", "must be >= 1, got 0"),
    ],
)
def test_values_the_model_cannot_take_are_errors(tmp_path, file, header, text, expected):
    folder = _toy(tmp_path)
    _set_cell(folder, file, 2, header, text)
    errors = _messages(folder)
    (found,) = [e for e in errors if f"{file}, row 2, column '{header}'" in e]
    assert found.startswith(f"{file}, row 2, column '{header}': {expected}"), found


def test_nan_is_reported_as_written_not_as_blank(tmp_path):
    folder = _toy(tmp_path)
    _set_cell(folder, "Demand.csv", 3, "DEMAND", "NaN")
    errors = _messages(folder)
    assert not any("blank" in e for e in errors), errors


def test_limits_apply_to_tables_from_any_feed(tmp_path):
    """ERP and generated tables skip the file parser: the Pandera schema alone must refuse."""
    tables = load_instance(dataset("toy_2iu3gu")).tables
    tables["production_cost"].loc[0, "production_cost"] = math.inf
    tables["clinker_demand"].loc[0, "demand"] = MAX_TONNES * 10
    tables["logistics_lanes"].loc[0, "freight_cost"] = MAX_INR_PER_T + 1
    errors = [str(p) for p in validate_instance(tables).errors]
    assert any("PRODUCTION COST" in e and "must be <= 1,000,000" in e for e in errors), errors
    assert any("DEMAND" in e and "must be <= 100,000,000" in e for e in errors), errors
    assert any("FREIGHT COST" in e for e in errors), errors


def test_empty_instance_is_not_valid(tmp_path):
    from clinker_pipeline.cli import main

    assert main(["template", str(tmp_path / "t")]) == 0
    inst = load_instance(tmp_path / "t")
    assert not inst.valid
    messages = [p.message for p in inst.errors]
    assert "no plants: an instance needs at least one IU" in messages
    assert "no demand: every DEMAND is 0 or the file has no rows" in messages


def test_instance_with_zero_demand_is_not_valid(tmp_path):
    folder = _toy(tmp_path)
    frame = pd.read_csv(folder / "Demand.csv", dtype=str, keep_default_na=False)
    frame["DEMAND"] = "0"
    frame.to_csv(folder / "Demand.csv", index=False)
    assert "no demand" in " ".join(_messages(folder))


def test_period_only_one_table_knows_is_a_warning(tmp_path):
    folder = _toy(tmp_path)
    frame = pd.read_csv(folder / "Closing stock.csv", dtype=str, keep_default_na=False)
    extra = frame.iloc[[0]].assign(**{"TIME PERIOD": "4"})
    pd.concat([frame, extra]).to_csv(folder / "Closing stock.csv", index=False)
    inst = load_instance(folder)
    assert inst.valid  # a warning, not an error: the planner decides
    warnings = [str(p) for p in inst.warnings]
    expected = "Closing stock.csv: period 4 appears only in Closing stock.csv; no other table has rows for it"
    assert expected in warnings, warnings


def test_period_with_demand_but_no_capacity_or_lanes_is_a_warning(tmp_path):
    folder = _toy(tmp_path)
    frame = pd.read_csv(folder / "Demand.csv", dtype=str, keep_default_na=False)
    extra = frame[frame["TIME PERIOD"] == "3"].assign(**{"TIME PERIOD": "4"})
    pd.concat([frame, extra]).to_csv(folder / "Demand.csv", index=False)
    warnings = _messages(folder, "WARN")
    for what, file in (
        ("capacity", "Capacity.csv"),
        ("lane", "Logistics.csv"),
        ("closing stock bound", "Closing stock.csv"),
    ):
        assert f"{file}: period 4 has demand but no {what} row: only stock can serve it" in (
            warnings
        )


@pytest.mark.parametrize("name", ["dummy_3mplan", "toy_2iu3gu"])
def test_public_datasets_stay_valid_without_horizon_warnings(name):
    inst = load_instance(dataset(name))
    assert inst.valid
    assert not [p for p in inst.warnings if "period" in p.message and p.row is None]
