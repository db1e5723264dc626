"""What analysts and operators see (issue 11): `latest_*` views never mix instances, every
documented table exists from the first publish, the snapshot follows every publish, plan outputs
carry no solver noise, "no data" is not a perfect score, and unchanged input is quarantined once.
"""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pandas as pd
import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.defs.quality.store import FeedQuality, report_frame
from clinker_pipeline.instance import Problem, load_instance
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.lib.store.quarantine import quarantine_problems
from clinker_pipeline.optimization import optimize
from clinker_pipeline_tests.helpers import dataset


@pytest.fixture(scope="module")
def toy_plan():
    toy = load_instance(dataset("toy_2iu3gu"))
    relaxed = {k: v.copy() for k, v in toy.tables.items()}
    relaxed["clinker_demand"]["min_fulfillment_pct"] = float("nan")
    result = optimize(relaxed)
    assert result.status == "optimal"
    return result


def _again(result, run_id: str):
    return dataclasses.replace(result, run_id=run_id)


def _latest(con) -> str:
    return con.execute("SELECT run_id FROM latest_plan_run").fetchone()[0]


def test_latest_views_follow_the_pipelines_instance_not_a_later_cli_run(tmp_path, toy_plan):
    def write(con, run_id: str, launched_by: str, name: str) -> None:
        write_plan(
            con,
            _again(toy_plan, run_id),
            launched_by=launched_by,
            instance_name=name,
            inputs_fingerprint=f"fp-{name}",
        )

    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write(con, "pipe-1", "dagster", "sample")
        # an analyst optimizes another instance into the pipeline's file
        write(con, "cli-other", "cli", "toy_2iu3gu")
        assert _latest(con) == "pipe-1"
        shipments = con.execute("SELECT DISTINCT run_id FROM latest_plan_shipments").fetchall()
        assert shipments == [("pipe-1",)]
        # a CLI run of the same instance (same fingerprint) is the newest plan of it
        write(con, "cli-same", "cli", "sample")
        assert _latest(con) == "cli-same"
        by_instance = dict(
            con.execute("SELECT instance_name, run_id FROM latest_plan_run_by_instance").fetchall()
        )
        assert by_instance == {"sample": "cli-same", "toy_2iu3gu": "cli-other"}
        columns = [r[0] for r in con.execute("DESCRIBE plan_runs").fetchall()]
        assert columns[-1] == "instance_name"  # added at the end: older files gain it


def test_an_older_plan_runs_table_gains_instance_name(tmp_path, toy_plan):
    db = str(tmp_path / "old.duckdb")
    with duckdb.connect(db) as con:
        write_plan(con, _again(toy_plan, "old"), instance_name="x")
        con.execute("ALTER TABLE plan_runs DROP COLUMN instance_name")
    with duckdb.connect(db) as con:
        write_plan(con, _again(toy_plan, "new"), instance_name="toy")
        names = con.execute(
            "SELECT run_id, instance_name FROM plan_runs ORDER BY run_id"
        ).fetchall()
    assert names == [("new", "toy"), ("old", None)]


def test_plan_outputs_are_rounded_to_the_stated_tolerance(tmp_path, toy_plan):
    unmet = toy_plan.unmet.copy()
    unmet["unmet_t"] = unmet["unmet_t"] + 0.00017  # solver noise on every row
    noisy = dataclasses.replace(toy_plan, run_id="noisy", unmet=unmet, unmet_t=0.00017)
    with duckdb.connect(str(tmp_path / "r.duckdb")) as con:
        write_plan(con, noisy)
        assert con.execute("SELECT unmet_t FROM plan_runs").fetchone()[0] == 0.0
        stored = con.execute("SELECT unmet_t FROM plan_unmet").df()["unmet_t"]
    assert (stored == (toy_plan.unmet["unmet_t"]).round(2)).all()
    assert not (stored.between(1e-9, 0.005)).any()


def test_optimize_creates_every_documented_view_and_refreshes_the_snapshot(tmp_path, capsys):
    output = tmp_path / "fresh.duckdb"
    assert main(["optimize", "--output", str(output), "--json", "--time-limit", "60"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    snapshot = tmp_path / "fresh_analytics.duckdb"
    assert snapshot.exists()  # clinker optimize publishes like the pipeline does
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT run_id FROM latest_plan_run").fetchone()[0] == run_id
        assert con.execute("SELECT instance_name FROM latest_plan_run").fetchone()[0] == "sample"
        # the README's queries work before any telemetry, feed or comparison has landed
        for view in (
            "telemetry_plant_hourly",
            "telemetry_fleet_trips",
            "latest_scenario_comparison",
            "latest_data_quality",
            "quarantine",
            "feed_status",
            "alerts",
        ):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == 0, view


def test_no_data_is_its_own_state_not_a_perfect_score():
    empty = FeedQuality("mqtt_silo")
    assert empty.state == "no data" and empty.score() is None
    row = report_frame([empty], run_id="r", job_name=None, run_status=None).iloc[0]
    assert row["freshness"] == "no data" and pd.isna(row["score"])
    # a stale feed with nothing new keeps its state and score
    assert FeedQuality("fx", freshness="stale").score() == 50.0
    assert FeedQuality("fx", rows_kept=3).state == "fresh"


def test_unchanged_input_is_quarantined_once(tmp_path):
    problems = [
        Problem("clinker_demand", "Demand.csv", 3, "DEMAND", "must be >= 0, got -1", value="-1"),
        Problem("plants", "IUGU master.csv", None, None, "no plants"),
    ]
    with duckdb.connect(str(tmp_path / "q.duckdb")) as con:
        for run in ("run-1", "run-2", "run-3"):
            quarantine_problems(con, problems, {}, feed="instance_files", dagster_run_id=run)
        rows = con.execute(
            "SELECT dagster_run_id, times_seen FROM quarantine ORDER BY reason"
        ).fetchall()
        assert rows == [("run-3", 3), ("run-3", 3)]
        changed = [dataclasses.replace(problems[0], message="must be >= 0, got -2")]
        quarantine_problems(con, changed, {}, feed="instance_files", dagster_run_id="run-4")
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 3
