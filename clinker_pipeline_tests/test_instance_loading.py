"""Loading and validating planning instances from files (`clinker_pipeline.instance`).

The public dataset is read from ../shared/datasets (see conftest). Each bad-file test copies the
dummy CSVs to tmp_path, corrupts exactly one thing, and checks that the loader reports it as one
Problem with the right file, row (1-based line, header = 1) and column, and a message a planner
can act on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from clinker_pipeline.errors import InvalidInstance
from clinker_pipeline.instance import Problem, load_instance

# Rows of the dummy IUGUConstraint.csv that match no lane (L/E=0 rows towards GU_016 from IUs
# that have no lane to GU_016): FORMAT.md section 6 lists 9 of them.
VACUOUS_ROWS = [14, 15, 16, 26, 28, 30, 35, 37, 39]


# --- helpers --------------------------------------------------------------------------------


def copy_csvs(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv"):
        shutil.copyfile(f, dst / f.name)
    return dst


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV with every cell as the text in the file (blank = "")."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def edit_csv(
    folder: Path, file: str, change: Callable[[pd.DataFrame], pd.DataFrame | None]
) -> None:
    frame = read_csv_text(folder / file)
    out = change(frame)
    (out if out is not None else frame).to_csv(folder / file, index=False)


def file_row(frame: pd.DataFrame, **where: str) -> int:
    """The 1-based line of the only row matching `where` (header is line 1)."""
    mask = pd.Series(True, index=frame.index)
    for header, value in where.items():
        mask &= frame[header.replace("_", " ")] == value
    (index,) = frame.index[mask]
    return int(index) + 2


def append(frame: pd.DataFrame, *rows: dict[str, str]) -> pd.DataFrame:
    new = pd.DataFrame([{c: r.get(c, "") for c in frame.columns} for r in rows])
    return pd.concat([frame, new], ignore_index=True)


def only_error(problems: list[Problem]) -> Problem:
    errors = [p for p in problems if p.severity == "ERROR"]
    assert len(errors) == 1, "expected exactly one error, got:\n" + "\n".join(map(str, errors))
    return errors[0]


@pytest.fixture
def bad(tmp_path: Path, dummy_dir: Path) -> Path:
    """A writable copy of the dummy CSV directory, to corrupt one thing in."""
    return copy_csvs(dummy_dir, tmp_path / "instance")


# --- the public dataset ---------------------------------------------------------------------


def test_dummy_csv_and_xlsx_load_identically(dummy_dir: Path, dummy_xlsx: Path) -> None:
    from_csv = load_instance(dummy_dir)
    from_xlsx = load_instance(dummy_xlsx)
    assert from_csv.valid and from_xlsx.valid
    assert from_csv.errors == [] and from_xlsx.errors == []
    assert from_csv.fingerprint() == from_xlsx.fingerprint()
    # the counts FORMAT.md gives per table
    sizes = {name: len(t) for name, t in from_csv.tables.items()}
    assert sizes == {
        "plants": 46,
        "clinker_demand": 132,
        "clinker_capacity": 60,
        "production_cost": 60,
        "logistics_lanes": 348,
        "flow_constraints": 75,
        "opening_stock": 44,
        "closing_stock_bounds": 132,
        "hub_opening_stock": 3,
    }
    assert (
        from_xlsx.sources["clinker_capacity"]
        == "Dataset_Dummy_Clinker_3MPlan.xlsx[ClinkerCapacity]"
    )
    assert from_csv.sources["clinker_capacity"] == "ClinkerCapacity.csv"


def test_dummy_warnings_are_vacuous_rows_and_dropped_lanes(dummy_dir: Path) -> None:
    inst = load_instance(dummy_dir)
    assert inst.errors == []
    vacuous = [p for p in inst.warnings if p.table == "flow_constraints"]
    assert len(vacuous) == 9
    assert sorted(p.row for p in vacuous) == VACUOUS_ROWS
    assert all("vacuous" in p.message and p.source == "IUGUConstraint.csv" for p in vacuous)

    lanes = [p for p in inst.warnings if p.table == "logistics_lanes"]
    self_lanes = [p for p in lanes if "self-lane" in p.message]
    ext_lanes = [p for p in lanes if "EXT_" in p.message]
    # self-lanes are the format's in-plant use: listed, but by design (no quarantine, no check)
    assert all(p.rule == "by_design" for p in self_lanes)
    assert all(p.rule == "dropped" for p in ext_lanes)
    # 20 self-lanes and 3 EXT lanes (EXT_001->GU_006, EXT_002->GU_021, IU_008->EXT_003),
    # each with one row per period
    assert len(self_lanes) == 20 * 3
    assert len(ext_lanes) == 3 * 3
    assert len(lanes) == len(self_lanes) + len(ext_lanes)
    assert len(inst.warnings) == 9 + 60 + 9
    lane_csv = read_csv_text(dummy_dir / "LogisticsIUGU.csv")
    for p in self_lanes + ext_lanes:  # each warning points at the right line of the file
        r = lane_csv.iloc[p.row - 2]
        assert p.message.startswith(f"{r['FROM IU CODE']} -> {r['TO IUGU CODE']} ")
    assert {r for p in ext_lanes for r in (p.message.split()[0], p.message.split()[2])} >= {
        "EXT_001",
        "EXT_002",
        "EXT_003",
    }


def test_toy_dataset_loads_through_alias_file_names(toy_dir: Path) -> None:
    inst = load_instance(toy_dir)
    assert inst.errors == []
    assert inst.sources["clinker_capacity"] == "Capacity.csv"
    assert inst.sources["closing_stock_bounds"] == "Closing stock.csv"
    assert inst.sources["plants"] == "IUGU master.csv"
    assert inst.sources["hub_opening_stock"] == "Hub opening stock.csv"
    sizes = {name: len(t) for name, t in inst.tables.items()}
    assert sizes["plants"] == 5
    assert sizes["clinker_demand"] == 15
    assert sizes["logistics_lanes"] == 24
    assert sizes["flow_constraints"] == 3
    assert sizes["hub_opening_stock"] == 0  # header only
    assert (inst.tables["clinker_demand"]["min_fulfillment_pct"] == 100).all()
    # the 2 self-lanes x 3 periods are the only warnings
    assert len(inst.warnings) == 6
    assert all("self-lane" in p.message for p in inst.warnings)


def test_typed_tables_have_the_internal_dtypes(dummy_dir: Path) -> None:
    t = load_instance(dummy_dir).tables
    lanes = t["logistics_lanes"]
    assert str(lanes["from_code"].dtype) == "string"
    assert str(lanes["time_period"].dtype) == "Int64"
    assert lanes["quantity_multiplier"].dtype == "float64"
    assert t["clinker_demand"]["min_fulfillment_pct"].isna().all()  # blank in all 132 rows
    # 79 IU lanes and 3 EXT lanes have trips of 3,000 t, one row per period
    assert int((lanes["quantity_multiplier"] == 3000).sum()) == (79 + 3) * 3


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidInstance, match="no such file"):
        load_instance(tmp_path / "nope")


# --- bad files: one corruption each ---------------------------------------------------------


def test_missing_column(bad: Path) -> None:
    edit_csv(bad, "ClinkerCapacity.csv", lambda f: f.drop(columns=["CAPACITY"]))
    p = only_error(load_instance(bad).problems)
    assert (p.table, p.source, p.row, p.column) == (
        "clinker_capacity",
        "ClinkerCapacity.csv",
        None,
        "CAPACITY",
    )
    assert "column missing" in p.message
    assert "'IU CODE', 'TIME PERIOD'" in p.message  # says what it found instead


def test_duplicate_key(bad: Path) -> None:
    frame = read_csv_text(bad / "ClinkerDemand.csv")
    first = frame.iloc[0].to_dict()  # IU_003, period 1
    edit_csv(bad, "ClinkerDemand.csv", lambda f: append(f, first))
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row) == ("ClinkerDemand.csv", len(frame) + 2)  # the repeat, not row 2
    assert "duplicate key" in p.message
    assert f"IUGU CODE={first['IUGU CODE']}" in p.message
    assert f"TIME PERIOD={first['TIME PERIOD']}" in p.message


def test_negative_capacity(bad: Path) -> None:
    frame = read_csv_text(bad / "ClinkerCapacity.csv")
    row = file_row(frame, IU_CODE="IU_005", TIME_PERIOD="1")

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "CAPACITY"] = "-5"

    edit_csv(bad, "ClinkerCapacity.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column) == ("ClinkerCapacity.csv", row, "CAPACITY")
    assert ">= 0" in p.message and "-5" in p.message


def test_unknown_plant_code(bad: Path) -> None:
    frame = read_csv_text(bad / "ClinkerDemand.csv")
    row = file_row(frame, IUGU_CODE="GU_010", TIME_PERIOD="2")

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "IUGU CODE"] = "GU_999"

    edit_csv(bad, "ClinkerDemand.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column, p.rule) == (
        "ClinkerDemand.csv",
        row,
        "IUGU CODE",
        "reference",
    )
    assert "unknown plant code 'GU_999'" in p.message


def test_unknown_plant_code_in_capacity(bad: Path) -> None:
    edit_csv(
        bad,
        "ClinkerCapacity.csv",
        lambda f: append(f, {"IU CODE": "IU_999", "TIME PERIOD": "1", "CAPACITY": "10"}),
    )
    errors = load_instance(bad).errors
    unknown = [p for p in errors if "unknown plant code 'IU_999'" in p.message]
    assert [(p.source, p.row, p.column) for p in unknown] == [
        ("ClinkerCapacity.csv", 62, "IU CODE")
    ]
    assert all(p.row == 62 for p in errors)


def test_text_in_number_column(bad: Path) -> None:
    frame = read_csv_text(bad / "ClinkerDemand.csv")
    row = file_row(frame, IUGU_CODE="IU_011", TIME_PERIOD="1")

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "DEMAND"] = "lots"

    edit_csv(bad, "ClinkerDemand.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column, p.value) == ("ClinkerDemand.csv", row, "DEMAND", "lots")
    assert p.message == "not a number: 'lots'"


def test_text_in_integer_period(bad: Path) -> None:
    frame = read_csv_text(bad / "ClinkerCapacity.csv")
    row = file_row(frame, IU_CODE="IU_005", TIME_PERIOD="2")

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "TIME PERIOD"] = "1.5"

    edit_csv(bad, "ClinkerCapacity.csv", change)
    errors = load_instance(bad).errors
    assert errors, "a fractional TIME PERIOD must be rejected"
    p = next(p for p in errors if p.column == "TIME PERIOD")
    assert (p.source, p.row) == ("ClinkerCapacity.csv", row)
    assert "whole number" in p.message


def test_empty_file(bad: Path) -> None:
    (bad / "ClinkerCapacity.csv").write_bytes(b"")
    p = only_error(load_instance(bad).problems)
    assert (p.table, p.source, p.row, p.column) == (
        "clinker_capacity",
        "ClinkerCapacity.csv",
        None,
        None,
    )
    assert "empty" in p.message


def test_missing_file(bad: Path) -> None:
    (bad / "ProductionCost.csv").unlink()
    p = only_error(load_instance(bad).problems)
    assert (p.table, p.source, p.row, p.column) == (
        "production_cost",
        "ProductionCost.csv",
        None,
        None,
    )
    assert "missing" in p.message and str(bad) in p.message


def test_missing_hub_file_is_allowed(bad: Path, dummy_dir: Path) -> None:
    # HubOpeningStock is informational: a directory of the 8 model CSVs is a valid instance.
    (bad / "HubOpeningStock.csv").unlink()
    inst = load_instance(bad)
    assert inst.valid
    assert len(inst.tables["hub_opening_stock"]) == 0


def test_xlsx_with_wrong_sheet_name(tmp_path: Path, dummy_dir: Path) -> None:
    book = tmp_path / "plan.xlsx"
    with pd.ExcelWriter(book, engine="openpyxl") as xl:
        for f in sorted(dummy_dir.glob("*.csv")):
            sheet = "ClinkerCap" if f.stem == "ClinkerCapacity" else f.stem
            pd.read_csv(f).to_excel(xl, sheet_name=sheet, index=False)
    p = only_error(load_instance(book).problems)
    assert (p.table, p.source, p.row, p.column) == (
        "clinker_capacity",
        "plan.xlsx[ClinkerCapacity]",
        None,
        None,
    )
    assert "sheet 'ClinkerCapacity' missing" in p.message
    assert "'ClinkerCap'" in p.message  # lists the sheets the workbook does have


def test_xlsx_written_from_csvs_matches_csv_dir(tmp_path: Path, dummy_dir: Path) -> None:
    book = tmp_path / "plan.xlsx"
    with pd.ExcelWriter(book, engine="openpyxl") as xl:
        for f in sorted(dummy_dir.glob("*.csv")):
            pd.read_csv(f).to_excel(xl, sheet_name=f.stem, index=False)
    inst = load_instance(book)
    assert inst.valid
    assert inst.fingerprint() == load_instance(dummy_dir).fingerprint()


def test_min_close_above_max_close(bad: Path) -> None:
    frame = read_csv_text(bad / "IUGUClosingStock.csv")
    row = file_row(frame, IUGU_CODE="IU_002", TIME_PERIOD="2")  # 18600 .. 50000

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "MIN CLOSE STOCK"] = "60000"

    edit_csv(bad, "IUGUClosingStock.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column) == ("IUGUClosingStock.csv", row, "MIN CLOSE STOCK")
    assert "MIN CLOSE STOCK is above MAX CLOSE STOCK" in p.message
    assert "60000" in p.message and "50000" in p.message


def test_unknown_bound_typeid(bad: Path) -> None:
    def change(f: pd.DataFrame) -> None:
        f.loc[0, "BOUND TYPEID"] = "X"  # line 2: IU_003 T2 period 1 L 233,200

    edit_csv(bad, "IUGUConstraint.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column, p.value) == ("IUGUConstraint.csv", 2, "BOUND TYPEID", "X")
    assert "must be one of" in p.message and "'L'" in p.message and "got X" in p.message


def test_value_typeid_other_than_c(bad: Path) -> None:
    def change(f: pd.DataFrame) -> None:
        f.loc[1, "VALUE TYPEID"] = "P"  # line 3

    edit_csv(bad, "IUGUConstraint.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column, p.value) == ("IUGUConstraint.csv", 3, "VALUE TYPEID", "P")
    assert "['C']" in p.message and "got P" in p.message


@pytest.mark.parametrize(
    ("multiplier", "expected"),
    [("2.5", "whole number"), ("0", ">= 1"), ("-3000", ">= 1")],
)
def test_bad_quantity_multiplier(bad: Path, multiplier: str, expected: str) -> None:
    frame = read_csv_text(bad / "LogisticsIUGU.csv")
    row = file_row(frame, FROM_IU_CODE="IU_006", TO_IUGU_CODE="GU_013", TIME_PERIOD="2")

    def change(f: pd.DataFrame) -> None:
        f.loc[row - 2, "QUANTITY MULTIPLIER"] = multiplier

    edit_csv(bad, "LogisticsIUGU.csv", change)
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column) == ("LogisticsIUGU.csv", row, "QUANTITY MULTIPLIER")
    assert expected in p.message


def test_constraint_row_matching_no_lane(bad: Path) -> None:
    # IU_006 has no lane to GU_016 in any mode (FORMAT.md 6). A row that demands flow there is
    # infeasible as written (error); one that only caps it is vacuous (warning).
    rows = [
        ("IU_006", "T1", "GU_016", "1", "E", "100"),  # line 77: error
        ("IU_006", "T1", "GU_016", "2", "G", "50"),  # line 78: error
        ("IU_006", "T1", "GU_016", "3", "L", "70"),  # line 79: vacuous
        ("IU_006", "", "GU_016", "1", "L", "0"),  # line 80: vacuous
        ("IU_006", "T1", "GU_016", "2", "E", "0"),  # line 81: vacuous (E = 0)
    ]
    headers = ["IU CODE", "TRANSPORT CODE", "IUGU CODE", "TIME PERIOD", "BOUND TYPEID", "Value"]
    edit_csv(
        bad,
        "IUGUConstraint.csv",
        lambda f: append(
            f, *({**dict(zip(headers, r, strict=True)), "VALUE TYPEID": "C"} for r in rows)
        ),
    )
    inst = load_instance(bad)
    assert sorted(p.row for p in inst.errors) == [77, 78]
    assert all(p.source == "IUGUConstraint.csv" and p.rule == "reference" for p in inst.errors)
    e77 = next(p for p in inst.errors if p.row == 77)
    assert "IU_006 -> GU_016" in e77.message and "period 1" in e77.message
    assert "matches no lane" in e77.message and "E 100" in e77.message
    vacuous = sorted(p.row for p in inst.warnings if p.table == "flow_constraints")
    assert vacuous == sorted([*VACUOUS_ROWS, 79, 80, 81])


def test_lane_to_unknown_node_is_dropped_with_a_warning(bad: Path) -> None:
    lane = {
        "FROM IU CODE": "IU_002",
        "TO IUGU CODE": "GU_999",
        "TRANSPORT CODE": "T1",
        "TIME PERIOD": "1",
        "FREIGHT COST": "10",
        "HANDLING COST": "0",
        "QUANTITY MULTIPLIER": "1",
    }
    edit_csv(
        bad,
        "LogisticsIUGU.csv",
        lambda f: append(f, lane, {**lane, "FROM IU CODE": "XX_1", "TO IUGU CODE": "GU_002"}),
    )
    inst = load_instance(bad)
    assert inst.valid
    by_row = {p.row: p for p in inst.warnings if p.table == "logistics_lanes"}
    assert by_row[350].rule == "dropped"
    assert "GU_999" in by_row[350].message and "destination not in IUGUType" in by_row[350].message
    assert "XX_1" in by_row[351].message and "origin not in IUGUType" in by_row[351].message


def test_capacity_row_for_a_gu(bad: Path) -> None:
    edit_csv(
        bad,
        "ClinkerCapacity.csv",
        lambda f: append(f, {"IU CODE": "GU_002", "TIME PERIOD": "1", "CAPACITY": "100"}),
    )
    edit_csv(
        bad,
        "ProductionCost.csv",
        lambda f: append(f, {"IU CODE": "GU_002", "TIME PERIOD": "1", "PRODUCTION COST": "50"}),
    )
    errors = load_instance(bad).errors
    located = sorted((p.source, p.row, p.column) for p in errors)
    assert located == [
        ("ClinkerCapacity.csv", 62, "IU CODE"),
        ("ProductionCost.csv", 62, "IU CODE"),
    ]
    assert all("'GU_002' is a GU" in p.message for p in errors)


def test_capacity_without_production_cost(bad: Path) -> None:
    cap = read_csv_text(bad / "ClinkerCapacity.csv")
    row = file_row(cap, IU_CODE="IU_005", TIME_PERIOD="1")
    edit_csv(
        bad,
        "ProductionCost.csv",
        lambda f: f[~((f["IU CODE"] == "IU_005") & (f["TIME PERIOD"] == "1"))],
    )
    p = only_error(load_instance(bad).problems)
    assert (p.source, p.row, p.column) == ("ClinkerCapacity.csv", row, "IU CODE")
    assert "IU_005" in p.message and "no PRODUCTION COST" in p.message


def test_zero_capacity_needs_no_production_cost(bad: Path) -> None:
    def zero(f: pd.DataFrame) -> None:
        f.loc[(f["IU CODE"] == "IU_005") & (f["TIME PERIOD"] == "1"), "CAPACITY"] = "0"

    edit_csv(bad, "ClinkerCapacity.csv", zero)
    edit_csv(
        bad,
        "ProductionCost.csv",
        lambda f: f[~((f["IU CODE"] == "IU_005") & (f["TIME PERIOD"] == "1"))],
    )
    assert load_instance(bad).valid


def test_whitespace_around_codes_is_stripped(bad: Path, dummy_dir: Path) -> None:
    def pad(f: pd.DataFrame) -> pd.DataFrame:
        for col in f.columns:
            if "CODE" in col or col in ("PLANT TYPE", "BOUND TYPEID", "VALUE TYPEID"):
                f[col] = f[col].map(lambda s: f"  {s}\t " if s else s)
        return f.rename(columns=lambda c: f" {c} ")

    for name in ("IUGUType.csv", "ClinkerCapacity.csv", "LogisticsIUGU.csv", "IUGUConstraint.csv"):
        edit_csv(bad, name, pad)
    assert "  IU_" in (bad / "ClinkerCapacity.csv").read_text()  # the padding really is there
    inst = load_instance(bad)
    assert inst.errors == []
    assert set(inst.tables["logistics_lanes"]["from_code"]) >= {"IU_001", "EXT_001"}
    assert inst.fingerprint() == load_instance(dummy_dir).fingerprint()
    assert len(inst.warnings) == 9 + 60 + 9
