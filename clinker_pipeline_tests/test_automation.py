"""Schedules, sensors and the retention job: registered, evaluable, and doing what they say."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from clinker_pipeline.definitions import defs
from clinker_pipeline.defs.automation import (
    _failure_message,
    cleanup_job,
    plan_inputs_changed_sensor,
    run_failure_alert_sensor,
)
from clinker_pipeline.defs.erp.sap.assets import erp_plants
from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline.lib.store.plan_store import DETAIL_TABLES, write_plan
from clinker_pipeline.lib.store.quarantine import QUARANTINE_DDL
from clinker_pipeline.lib.store.retention import apply_retention
from clinker_pipeline.optimization import SolveOptions, optimize
from clinker_pipeline_tests.test_erp_assets import resources as erp_resources

SCHEDULES = {
    "erp_daily_schedule": ("0 2 * * *", "erp_sync_job"),
    "erp_stock_hourly_schedule": ("0 * * * *", "erp_stock_job"),
    "plan_daily_schedule": ("30 5 * * *", "clinker_plan_job"),
    "cleanup_weekly_schedule": ("0 3 * * 0", "cleanup_job"),
    "weather_3hourly_schedule": ("15 */3 * * *", "weather_job"),
    "diesel_weekly_schedule": ("0 6 * * 2", "diesel_job"),
    "fx_daily_schedule": ("30 21 * * 1-5", "fx_job"),
    "market_daily_schedule": ("0 7 * * *", "market_job"),
    "indicators_monthly_schedule": ("0 7 1,15 * *", "indicators_job"),
}
FEED_JOBS = {
    "weather_job": {"weather_forecast"},
    "diesel_job": {"fx_rates", "diesel_prices"},
    "fx_job": {"fx_rates"},
    "market_job": {"cement_prices"},
    "indicators_job": {"economic_indicators"},
}
PLAN_TABLES = ("plan_runs", *DETAIL_TABLES)


# --- registration -----------------------------------------------------------------------------


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_schedule_is_registered_with_cron_timezone_job_and_stopped():
    repo = defs.get_repository_def()
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == set(SCHEDULES)
    for name, (cron, job) in SCHEDULES.items():
        s = schedules[name]
        assert (s.cron_schedule, s.execution_timezone, s.job_name) == (cron, "Asia/Kolkata", job)
        assert s.default_status == dg.DefaultScheduleStatus.STOPPED


def test_every_sensor_is_registered():
    repo = defs.get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {
        "plan_inputs_changed_sensor",
        "run_failure_alert_sensor",
        "data_quality_sensor",
        "telemetry_batches_sensor",
        "default_automation_condition_sensor",  # the feeds' and ERP's automation conditions
    }
    assert sensors["telemetry_batches_sensor"].job_name == "telemetry_job"
    quality = sensors["data_quality_sensor"]
    assert quality.job_name == "data_quality_job"
    assert quality.default_status == dg.DefaultSensorStatus.STOPPED
    plan = sensors["plan_inputs_changed_sensor"]
    assert plan.job_name == "clinker_plan_job"
    assert plan.minimum_interval_seconds == 300
    assert plan.default_status == dg.DefaultSensorStatus.STOPPED
    assert isinstance(sensors["run_failure_alert_sensor"], dg.RunStatusSensorDefinition)


def test_every_job_is_registered():
    repo = defs.get_repository_def()
    names = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert names == {
        "clinker_plan_job",
        "erp_sync_job",
        "erp_stock_job",
        "cleanup_job",
        "data_quality_job",
        "telemetry_job",
        *FEED_JOBS,
    }
    plan = defs.resolve_job_def("clinker_plan_job").asset_layer.selected_asset_keys
    assert dg.AssetKey("data_quality_report") not in plan
    stock = defs.resolve_job_def("erp_stock_job")
    assert {k.to_user_string() for k in stock.asset_layer.selected_asset_keys} == {"erp_inventory"}
    for job, assets in FEED_JOBS.items():
        selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        assert {k.to_user_string() for k in selected} == assets
    for job in ("erp_stock_job", "cleanup_job", *FEED_JOBS):
        assert defs.resolve_job_def(job).tags["clinker/duckdb_writer"] == "true"


# --- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_tick_requests_one_run_of_its_job(name):
    schedule = defs.get_repository_def().get_schedule_def(name)
    when = datetime(2025, 6, 1, 5, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    assert len(data.run_requests) == 1
    assert data.run_requests[0].job_name in (None, SCHEDULES[name][1])
    assert schedule.job_name == SCHEDULES[name][1]


# --- plan re-solve sensor ---------------------------------------------------------------------


def _evaluate(instance, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return plan_inputs_changed_sensor.evaluate_tick(ctx)


def test_sensor_requests_one_plan_run_per_change_and_skips_otherwise(tmp_path):
    with dg.instance_for_test() as instance:
        first = _evaluate(instance, None)
        assert first.run_requests == [] and first.skip_message

        res = dg.materialize(
            [erp_plants], resources=erp_resources(tmp_path / "e.duckdb"), instance=instance
        )
        assert res.success
        tick = _evaluate(instance, None)
        assert len(tick.run_requests) == 1
        request = tick.run_requests[0]
        assert request.run_key and request.job_name in (None, "clinker_plan_job")
        cursor = json.loads(tick.cursor)
        assert set(cursor) == {"erp_plants"}

        again = _evaluate(instance, tick.cursor)
        assert again.run_requests == [] and again.skip_message

        instance.report_runless_asset_event(dg.AssetMaterialization("erp_capacity"))
        changed = _evaluate(instance, tick.cursor)
        assert len(changed.run_requests) == 1
        assert changed.run_requests[0].run_key != request.run_key
        assert set(json.loads(changed.cursor)) == {"erp_plants", "erp_capacity"}


def test_sensor_ignores_inputs_rematerialized_by_the_plan_job(tmp_path):
    """A plan run re-materializes its inputs; that must not schedule yet another plan."""

    @dg.asset(name="erp_plants")
    def stub():
        return 1

    stub_defs = dg.Definitions(
        assets=[stub], jobs=[dg.define_asset_job("clinker_plan_job", selection=[stub])]
    )
    with dg.instance_for_test() as instance:
        stub_defs.resolve_job_def("clinker_plan_job").execute_in_process(instance=instance)
        tick = _evaluate(instance, None)
        assert tick.run_requests == [] and tick.skip_message
        assert set(json.loads(tick.cursor)) == {"erp_plants"}
        assert not _evaluate(instance, tick.cursor).run_requests


# --- retention --------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0)
# run_id -> (scenario, status, age in days)
RUNS = {
    "good_old": ("base", "optimal", 200),  # the newest successful base run: always kept
    "old_a": ("base", "infeasible", 150),
    "old_b": ("high_fuel", "optimal", 120),
    "old_c": ("base", "error", 100),
    "recent_1": ("high_fuel", "optimal", 10),
    "recent_2": ("base", "infeasible", 1),
}


@pytest.fixture(scope="module")
def solved():
    res = optimize(load_instance(sample_instance_path()).tables, SolveOptions())
    assert res.plan_found
    diagnosis = pd.DataFrame([{"kind": "note", "iugu_code": "X", "description": "test"}])
    return dataclasses.replace(res, diagnosis=diagnosis)


def _build_db(path, solved, now):
    con = duckdb.connect(str(path))
    for run_id, (scenario, status, age) in RUNS.items():
        write_plan(
            con, dataclasses.replace(solved, run_id=run_id, status=status), scenario=scenario
        )
        con.execute(
            "UPDATE plan_runs SET created_at = ? WHERE run_id = ?",
            [now - timedelta(days=age), run_id],
        )
    con.execute(QUARANTINE_DDL)
    for age, feed in ((40, "old_feed"), (5, "new_feed")):
        con.execute(
            "INSERT INTO quarantine (quarantined_at, feed, table_name, severity, reason) "
            "VALUES (?, ?, 'plants', 'ERROR', 'bad')",
            [now - timedelta(days=age), feed],
        )
    return con


def _remaining(con):
    return {
        t: {r[0] for r in con.execute(f"SELECT run_id FROM {t}").fetchall()} for t in PLAN_TABLES
    }


def _rows(con, table):
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_retention_deletes_old_runs_everywhere_but_keeps_the_newest_good_base_run(tmp_path, solved):
    con = _build_db(tmp_path / "r.duckdb", solved, NOW)
    per_run = {t: _rows(con, t) // len(RUNS) for t in PLAN_TABLES}
    deleted = apply_retention(
        con, plan_runs_keep_days=90, keep_latest_runs=2, quarantine_keep_days=30, now=NOW
    )
    kept = {"good_old", "recent_1", "recent_2"}
    for table, run_ids in _remaining(con).items():
        assert run_ids == kept, table
        assert deleted[table] == 3 * per_run[table], table
    assert deleted["quarantine"] == 1
    assert [r[0] for r in con.execute("SELECT feed FROM quarantine").fetchall()] == ["new_feed"]
    assert con.execute("SELECT run_id FROM latest_plan_run").fetchone()[0] == "good_old"


def test_retention_honours_keep_latest_runs(tmp_path, solved):
    con = _build_db(tmp_path / "r.duckdb", solved, NOW)
    deleted = apply_retention(
        con, plan_runs_keep_days=90, keep_latest_runs=4, quarantine_keep_days=30, now=NOW
    )
    assert deleted["plan_runs"] == 1
    for run_ids in _remaining(con).values():
        assert run_ids == set(RUNS) - {"old_a"}


def test_retention_on_an_empty_database_creates_tables_and_deletes_nothing(tmp_path):
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    deleted = apply_retention(
        con, plan_runs_keep_days=90, keep_latest_runs=20, quarantine_keep_days=30
    )
    assert set(deleted) == {*PLAN_TABLES, "quarantine"}
    assert set(deleted.values()) == {0}
    with pytest.raises(ValueError, match="keep_latest_runs"):
        apply_retention(con, plan_runs_keep_days=1, keep_latest_runs=-1, quarantine_keep_days=1)


def test_cleanup_job_runs_in_process_and_reports_counts(tmp_path, solved):
    db = tmp_path / "job.duckdb"
    _build_db(db, solved, datetime.now(UTC).replace(tzinfo=None)).close()
    result = cleanup_job.execute_in_process(
        resources={"duckdb": DuckDBResource(database=str(db))},
        run_config={
            "ops": {"apply_duckdb_retention": {"config": {"keep_latest_runs": 2}}},
        },
    )
    assert result.success
    deleted = result.output_for_node("apply_duckdb_retention")
    assert deleted["plan_runs"] == 3 and deleted["quarantine"] == 1
    (output,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.step_output_data.metadata["deleted_plan_runs"].value == 3
    assert output.step_output_data.metadata["deleted_quarantine"].value == 1
    with duckdb.connect(str(db)) as con:
        assert {r[0] for r in con.execute("SELECT run_id FROM plan_runs").fetchall()} == {
            "good_old",
            "recent_1",
            "recent_2",
        }


# --- run failure sensor -----------------------------------------------------------------------


def test_run_failure_sensor_logs_job_run_and_first_step_error():
    @dg.op
    def explode():
        raise RuntimeError("SAP said no")

    @dg.job
    def doomed_job():
        explode()

    with dg.instance_for_test() as instance:
        result = doomed_job.execute_in_process(raise_on_error=False, instance=instance)
        assert not result.success
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        assert "SAP said no" in _failure_message(ctx)
        assert _failure_message(ctx).startswith("explode:")
        run_failure_alert_sensor(ctx)
