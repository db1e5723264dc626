"""The `clinker` command: exit codes, output formats and messages are a contract."""

import json
import shutil
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.instance import TABLES, load_instance
from clinker_pipeline_tests.helpers import REPO, copy_instance, dataset

JSON_KEYS = {
    "status",
    "cost",
    "production_cost",
    "transport_cost",
    "holding_cost",
    "unmet_t",
    "served_pct",
    "mip_gap",
    "solver",
    "n_vars",
    "n_int",
    "n_rows",
    "build_s",
    "solve_s",
    "extract_s",
    "run_id",
}


def test_console_script_is_installed():
    exe = shutil.which("clinker") or str(REPO / ".venv" / "bin" / "clinker")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("validate", "template", "optimize", "solvers", "generate", "run"):
        assert command in out.stdout


def test_validate_valid_instance_exits_zero(capsys):
    assert main(["validate", str(dataset("dummy_3mplan"))]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "valid (0 errors, 78 warnings)" in captured.err


def test_validate_lists_one_line_per_problem_with_file_row_column(tmp_path, capsys):
    bad = copy_instance(dataset("dummy_3mplan"), tmp_path / "bad")
    demand = pd.read_csv(bad / "ClinkerDemand.csv", dtype=str, keep_default_na=False)
    demand.loc[0, "DEMAND"] = "lots"
    demand.loc[1, "IUGU CODE"] = "GU_999"
    demand.to_csv(bad / "ClinkerDemand.csv", index=False)
    assert main(["validate", str(bad)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "ERROR ClinkerDemand.csv, row 2, column 'DEMAND': not a number: 'lots'",
        "ERROR ClinkerDemand.csv, row 3, column 'IUGU CODE': unknown plant code 'GU_999'",
    ]


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda d: (d / "IUGUType.csv").write_text(""), "IUGUType.csv: file is empty"),
        (lambda d: (d / "ClinkerCapacity.csv").unlink(), "ClinkerCapacity.csv: file missing"),
        (
            lambda d: (d / "IUGUType.csv").write_text("IUGU CODE,TYPE\nIU_001,IU\n"),
            "IUGUType.csv, column 'PLANT TYPE': column missing",
        ),
    ],
)
def test_bad_files_exit_one_without_traceback(tmp_path, capsys, corrupt, expected):
    bad = copy_instance(dataset("dummy_3mplan"), tmp_path / "bad")
    corrupt(bad)
    assert main(["optimize", "--input", str(bad), "--no-write"]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_missing_path_and_wrong_suffix_are_clear(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "plan.txt").write_text("x")
    assert main(["validate", str(tmp_path / "plan.txt")]) == 1
    assert "expected a directory of CSV files or an .xlsx workbook" in capsys.readouterr().err


def test_wrong_sheet_name_in_workbook(tmp_path, capsys):
    src = dataset("dummy_3mplan")
    book = tmp_path / "plan.xlsx"
    with pd.ExcelWriter(book) as xl:
        for spec in TABLES:
            sheet = "Demand2" if spec.sheet == "ClinkerDemand" else spec.sheet
            pd.read_csv(src / spec.file_name).to_excel(xl, sheet_name=sheet, index=False)
    assert main(["validate", str(book)]) == 1
    out = capsys.readouterr().out
    assert "sheet 'ClinkerDemand' missing; the workbook has:" in out and "'Demand2'" in out


def test_template_writes_headers_that_load_as_an_empty_instance(tmp_path, capsys):
    assert main(["template", str(tmp_path / "t")]) == 0
    for spec in TABLES:
        header = (tmp_path / "t" / spec.file_name).read_text().strip().split(",")
        assert header[: len(spec.headers)] == spec.headers
    inst = load_instance(tmp_path / "t")
    assert all(len(t) == 0 for t in inst.tables.values())
    # every file reads without a structural problem; only "nothing to plan" is left
    assert {p.message.split(":")[0] for p in inst.errors} == {"no plants", "no demand"}


def test_optimize_json_prints_exactly_one_object_and_writes_duckdb(tmp_path, capsys):
    out_db = tmp_path / "plan.duckdb"
    code = main(
        [
            "optimize",
            "--input",
            str(dataset("dummy_3mplan")),
            "--gap",
            "0",
            "--json",
            "--output",
            str(out_db),
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    record = json.loads(stdout)  # exactly one JSON document, nothing else on stdout
    assert record.keys() >= JSON_KEYS
    assert record["status"] == "optimal" and record["n_int"] == 237
    assert record["cost"] == pytest.approx(25_450_276_671, rel=1e-4)
    assert record["served_pct"] == pytest.approx(53.3847, abs=5e-5)
    with duckdb.connect(str(out_db), read_only=True) as con:
        assert con.execute("SELECT run_id FROM latest_plan_run").fetchone()[0] == record["run_id"]


def test_optimize_infeasible_exits_two_with_diagnosis_on_stderr(tmp_path, capsys):
    code = main(
        [
            "optimize",
            "--input",
            str(dataset("toy_2iu3gu")),
            "--json",
            "--output",
            str(tmp_path / "p.duckdb"),
        ]
    )
    assert code == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "infeasible"
    assert "ClinkerDemand row 16 (GU_003, period 3" in captured.err


def test_optimize_rejects_bad_options(capsys):
    assert main(["optimize", "--gap", "2"]) == 1  # a usage error is bad input; 2 = infeasible
    assert "must be in [0, 1)" in capsys.readouterr().err
    assert main(["optimize", "--solver", "no_such_solver", "--no-write"]) == 1
    assert "not available here" in capsys.readouterr().err


def test_solvers_lists_highs_as_available(capsys):
    assert main(["solvers"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("highs "))
    assert "available" in line and "not available" not in line


def test_generate_writes_a_valid_instance(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                str(tmp_path / "g"),
                "--ius",
                "3",
                "--gus",
                "5",
                "--periods",
                "2",
                "--lanes-per-iu",
                "3",
                "--seed",
                "11",
            ]
        )
        == 0
    )
    inst = load_instance(tmp_path / "g")
    assert inst.valid
    assert (inst.tables["plants"]["plant_type"] == "IU").sum() == 3
    assert sorted(inst.tables["clinker_demand"]["time_period"].unique()) == [1, 2]


def test_run_materializes_the_graph_and_prints_a_summary(tmp_path):
    """The quick-start command, as a subprocess with a clean environment."""
    exe = shutil.which("clinker") or str(REPO / ".venv" / "bin" / "clinker")
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [exe, "run", "--duckdb", str(tmp_path / "c.duckdb")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "status      optimal" in out.stdout
    assert "served" in out.stdout and "cost        INR" in out.stdout
    assert "feeds       diesel INR" in out.stdout  # the feed adjustments were applied
    assert "Scenarios (table scenario_comparison)" in out.stdout
    assert "Data quality (table data_quality_report" in out.stdout
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status FROM latest_plan_run").fetchone()[0] == "optimal"
        scenarios = con.execute("SELECT scenario FROM latest_scenario_comparison").fetchall()
        assert {s[0] for s in scenarios} == {
            "base",
            "demand_plus_10",
            "outage_IU_001",
            "fuel_shock",
            "monsoon",
        }
        feeds = {r[0] for r in con.execute("SELECT feed FROM data_quality_report").fetchall()}
        assert {"weather", "diesel", "fx", "indicators", "market", "instance_files"} <= feeds


def test_module_entry_point(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "clinker_pipeline.cli", "solvers"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "highs" in out.stdout
