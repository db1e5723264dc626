"""Every path out of `clinker` ends in a clear message and the documented exit code (issue 11):
usage errors are "bad input" (1, not argparse's 2, which means infeasible), `--json` prints one
object on every path, and an --output that cannot take the plan never loses a solved plan.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from clinker_pipeline import cli
from clinker_pipeline.cli import EXIT_BAD_INPUT, EXIT_NOT_WRITTEN, main
from clinker_pipeline.errors import ClinkerError
from clinker_pipeline_tests.helpers import dataset


def _json_only(stdout: str) -> dict:
    """Exactly one JSON object, nothing else on stdout."""
    (line,) = stdout.strip().splitlines()
    return json.loads(line)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["optimize", "--gap", "-1"], "argument --gap: must be in [0, 1), got -1"),
        (["optimize", "--gap", "abc"], "argument --gap: not a number: 'abc'"),
        (["optimize", "--time-limit", "0"], "argument --time-limit: must be > 0, got 0"),
        (["optimize", "--time-limit", "nan"], "argument --time-limit: must be a finite number"),
        (["optimize", "--penalty", "inf"], "argument --penalty: must be a finite number"),
        (["optimize", "--holding-cost", "-3"], "argument --holding-cost: must be >= 0"),
        (["generate", "x", "--ius", "0"], "argument --ius: must be >= 1, got 0"),
        (["optimize", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_usage_errors_exit_one_and_name_the_flag(capsys, argv, says):
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert says in err and "_gap" not in err
    assert err.count("\n") == 1  # one line, no traceback


def test_usage_error_with_json_prints_one_object(capsys):
    assert main(["optimize", "--gap", "2", "--json"]) == EXIT_BAD_INPUT
    record = _json_only(capsys.readouterr().out)
    assert record["status"] == "bad-input" and "--gap" in record["message"]


def test_json_on_invalid_instance_and_unknown_solver(tmp_path, capsys):
    assert main(["template", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert main(["optimize", "--input", str(tmp_path / "t"), "--no-write", "--json"]) == 1
    record = _json_only(capsys.readouterr().out)
    assert record["status"] == "bad-input" and "nothing was solved" in record["message"]
    assert any("no demand" in p for p in record["problems"])

    assert main(["optimize", "--solver", "nonexistent", "--no-write", "--json"]) == 1
    captured = capsys.readouterr()
    assert _json_only(captured.out)["status"] == "bad-input"
    assert "Traceback" not in captured.err and "not available here" in captured.err


def test_unknown_solver_prints_no_pyomo_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "clinker_pipeline.cli", "optimize", "--solver", "nonexistent"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: solver 'nonexistent' is not available here; run `clinker solvers` to see which are"
    ]


def test_template_and_generate_refuse_to_overwrite(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["template", str(a_file)]) == EXIT_BAD_INPUT
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["template", str(tmp_path / "t")]) == 0
    assert main(["template", str(tmp_path / "t")]) == EXIT_BAD_INPUT
    assert "add --force" in capsys.readouterr().err
    assert main(["template", str(tmp_path / "t"), "--force"]) == 0
    assert main(["generate", str(tmp_path / "t"), "--ius", "2", "--gus", "2"]) == EXIT_BAD_INPUT
    assert "folder is not empty; add --force" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "t"), "--ius", "2", "--gus", "2", "--force"]) == 0
    assert a_file.read_text() == "mine"


def _a_folder(path: Path) -> Path:
    path.mkdir()
    return path


def _not_duckdb(path: Path) -> Path:
    path.write_text("not a database")
    return path


def _under_a_file(path: Path) -> Path:
    path.write_text("")
    return path / "plan.duckdb"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_a_folder, "is a folder"),
        (_not_duckdb, "is not a DuckDB database file"),
        (_under_a_file, "cannot create its folder"),
    ],
)
def test_unusable_output_is_refused_before_solving(tmp_path, capsys, make, says):
    output = make(tmp_path / "out")
    code = main(["optimize", "--input", str(dataset("toy_2iu3gu")), "--output", str(output)])
    assert code == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert says in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # nothing was solved


def _hold_lock(path, seconds: float, read_only: bool = False) -> subprocess.Popen:
    """Another process holding a lock on `path`: a writer, or an analyst's read-only session
    (which blocks writers too)."""
    if read_only:
        duckdb.connect(str(path)).close()
    create = "" if read_only else 'con.execute("CREATE TABLE IF NOT EXISTS held (x INT)")'
    code = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(path)!r}, read_only={read_only})
        {create}
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("reader", [False, True], ids=["writer", "reader"])
def test_plan_survives_a_locked_output(tmp_path, capsys, monkeypatch, reader):
    """The lock is held past the bounded wait: the plan is printed, exit 4, nothing lost."""
    output = tmp_path / "held.duckdb"
    holder = _hold_lock(output, 300, read_only=reader)
    monkeypatch.setenv("CLINKER_DUCKDB_LOCK_WAIT_S", "1")
    try:
        code = main(
            ["optimize", "--input", str(dataset("dummy_3mplan")), "--output", str(output), "--json"]
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == EXIT_NOT_WRITTEN
    captured = capsys.readouterr()
    record = _json_only(captured.out)
    assert record["status"] == "optimal" and record["output"] is None
    assert record["served_pct"] == pytest.approx(53.3847, abs=5e-5)
    assert "still locked after 1 s" in record["write_error"]
    assert "the plan was not written" in captured.err and "Traceback" not in captured.err


def test_writer_waits_for_a_lock_that_is_released(tmp_path, capsys, monkeypatch):
    output = tmp_path / "busy.duckdb"
    holder = _hold_lock(output, 1.5)
    monkeypatch.setenv("CLINKER_DUCKDB_LOCK_WAIT_S", "120")
    try:
        code = main(["optimize", "--output", str(output), "--json", "--time-limit", "60"])
    finally:
        holder.wait(timeout=120)
    assert code == 0
    record = _json_only(capsys.readouterr().out)
    assert record["output"] == str(output)
    with duckdb.connect(str(output), read_only=True) as con:
        assert con.execute("SELECT run_id FROM latest_plan_run").fetchone()[0] == record["run_id"]


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (KeyboardInterrupt(), "interrupted", 130),
        (ClinkerError("the solver crashed"), "error", 3),
    ],
)
def test_json_on_error_and_interrupt(monkeypatch, capsys, raised, status, code):
    def boom(args):
        raise raised

    monkeypatch.setattr(cli, "cmd_optimize", boom)
    assert cli.main(["optimize", "--json", "--no-write"]) == code
    captured = capsys.readouterr()
    record = _json_only(captured.out)
    assert record["status"] == status and record["message"]
    assert "Traceback" not in captured.err
