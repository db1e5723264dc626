"""`clinker run` (the main job) on any valid instance, and its failures in one line (issue 11).

The public datasets carry no plant coordinates: the weather feed cannot apply to them. It must say
so on the plan and let the plan go on (no failed step, no retry), with the contract's optimum.
"""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from clinker_pipeline_tests.helpers import dataset, venv_command


def _run(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLINKER_FEED_RETRY_DELAY_S": "30"}
    return subprocess.run(
        [venv_command("clinker"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**base, **(env or {})},
    )


@pytest.fixture(scope="module")
def dummy_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("dummy_run")
    db = work / "d.duckdb"
    out = _run(work, "run", "--input", str(dataset("dummy_3mplan")), "--duckdb", str(db))
    return work, db, out


def test_dummy_dataset_plans_through_the_main_job(dummy_run):
    _, db, out = dummy_run
    assert out.returncode == 0, out.stderr[-3000:]
    assert "served      53.3847 %" in out.stdout
    assert "not applied weather: no plant of this instance has coordinates" in out.stdout
    assert "STALE" not in out.stdout  # not applicable is not stale
    with duckdb.connect(str(db), read_only=True) as con:
        adjustments, stale, name = con.execute(
            "SELECT adjustments, stale_inputs, instance_name FROM latest_plan_run"
        ).fetchone()
        # the weather asset ran once and recorded why it did not apply; nothing failed
        statuses = con.execute("SELECT status FROM feed_status WHERE feed = 'weather'").fetchall()
        quality = dict(con.execute("SELECT feed, freshness FROM latest_data_quality").fetchall())
        self_lanes = con.execute(
            "SELECT count(*) FROM quarantine WHERE reason LIKE '%self-lane%'"
        ).fetchone()[0]
    assert "weather" in json.loads(adjustments)["not_applied"]
    assert "weather" not in json.loads(stale)
    assert name == "dummy_3mplan"
    assert statuses == [("partial",)]
    assert quality["weather"] == "no data" and quality["mqtt_silo"] == "no data"
    assert self_lanes == 0  # by design in the format: not a quarantined problem


def test_snapshot_shows_this_runs_scenario_comparison(dummy_run):
    """The comparison is published after the plan: the analysts' snapshot must include it."""
    _, db, out = dummy_run
    assert out.returncode == 0, out.stderr[-3000:]
    query = "SELECT DISTINCT comparison_id FROM latest_scenario_comparison"
    with duckdb.connect(str(db), read_only=True) as con:
        live = con.execute(query).fetchall()
    with duckdb.connect(str(db.with_name("d_analytics.duckdb")), read_only=True) as con:
        assert con.execute(query).fetchall() == live != []


def test_rerun_of_unchanged_input_adds_no_quarantine_rows(dummy_run):
    work, db, _ = dummy_run
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    again = _run(work, "run", "--input", str(dataset("dummy_3mplan")), "--duckdb", str(db))
    assert again.returncode == 0, again.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        after = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        seen = con.execute("SELECT max(times_seen) FROM quarantine").fetchone()[0]
    assert before > 0 and after == before and seen >= 2


def test_toy_dataset_is_infeasible_with_its_diagnosis(tmp_path):
    """Its HubOpeningStock has no rows: an empty instance table must still load downstream."""
    out = _run(tmp_path, "run", "--input", str(dataset("toy_2iu3gu")), "--duckdb", "t.duckdb")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "ClinkerDemand row 16 (GU_003, period 3" in out.stdout


def test_missing_input_is_one_line(tmp_path):
    out = _run(tmp_path, "run", "--input", "no_such_folder")
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["error: --input no_such_folder: no such file or directory"]


def test_a_failed_step_is_named_with_its_cause_in_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    out = _run(tmp_path, "run", "--duckdb", "b.duckdb", env={"CLINKER_SCENARIOS_PATH": "bad.json"})
    assert out.returncode == 3
    (line,) = out.stderr.splitlines()
    assert line.startswith("error: the plan was not built: step clinker_plan failed (scenario")
    assert "not valid JSON" in line and "clinker -v run" in line
