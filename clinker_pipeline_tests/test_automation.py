"""Declarative automation, the retention job and the failure alert: registered, evaluable, and
doing what they say (a plan run materializes the planning assets only)."""

import dataclasses
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
    run_failure_alert_sensor,
)
from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline.lib.store.plan_store import DETAIL_TABLES, write_plan
from clinker_pipeline.lib.store.quarantine import QUARANTINE_DDL
from clinker_pipeline.lib.store.retention import apply_retention
from clinker_pipeline.optimization import SolveOptions, optimize

PLAN_TABLES = ("plan_runs", *DETAIL_TABLES)
IST = ZoneInfo("Asia/Kolkata")
#: source -> its cron (plant time): the supplier's cadence
SOURCE_CRONS = {
    "erp_plants": "0 2 * * *",
    "erp_demand_forecast": "0 2 * * *",
    "erp_capacity": "0 2 * * *",
    "erp_inventory": "0 * * * *",
    "plants": "0 5 * * *",
    "weather_forecast": "15 */3 * * *",
    "diesel_prices": "0 6 * * 2",
    "fx_rates": "30 21 * * 1-5",
    "cement_prices": "0 7 * * *",
    "economic_indicators": "0 7 1,15 * *",
}
PLANNING = {"clinker_plan", "scenario_plan", "scenario_comparison", *PLAN_TABLES}


# --- registration -----------------------------------------------------------------------------


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_an_automation_condition_but_the_quality_report():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        if key.to_user_string() == "data_quality_report":
            assert condition is None  # it follows runs (data_quality_sensor), not assets
        else:
            assert condition is not None, key


def test_sources_run_on_their_cron_in_plant_time_and_the_plan_follows_its_inputs():
    graph = defs.resolve_asset_graph()
    label = lambda name: graph.get(dg.AssetKey(name)).automation_condition.get_label()  # noqa: E731
    for name, cron in SOURCE_CRONS.items():
        assert label(name) == f"on_cron({cron}, Asia/Kolkata)", name
    assert label("clinker_plan") == "inputs changed, or daily"
    for name in ("plan_runs", "scenario_plan", "scenario_comparison", "alerts"):
        assert label(name) == "eager", name
    assert label("production_telemetry") == "on_missing"


def test_one_automation_sensor_running_by_default_and_the_kept_sensors():
    repo = defs.get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {
        "clinker_automation_sensor",
        "run_failure_alert_sensor",
        "data_quality_sensor",
        "data_quality_failure_sensor",
        "telemetry_batches_sensor",
        "scenario_set_sensor",
    }
    automation = [
        s for s in sensors.values() if isinstance(s, dg.AutomationConditionSensorDefinition)
    ]
    assert [s.name for s in automation] == ["clinker_automation_sensor"]
    assert automation[0].default_status == dg.DefaultSensorStatus.RUNNING
    for name in ("data_quality_sensor", "data_quality_failure_sensor", "scenario_set_sensor"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING, name
    for name in ("data_quality_sensor", "data_quality_failure_sensor", "run_failure_alert_sensor"):
        assert isinstance(sensors[name], dg.RunStatusSensorDefinition), name
    assert sensors["telemetry_batches_sensor"].default_status == dg.DefaultSensorStatus.STOPPED


def test_only_the_retention_schedule_is_left():
    repo = defs.get_repository_def()
    (schedule,) = repo.schedule_defs
    assert (schedule.name, schedule.job_name) == ("cleanup_weekly_schedule", "cleanup_job")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 3 * * 0", "Asia/Kolkata")
    when = datetime(2025, 6, 1, 3, 0, tzinfo=IST)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    assert len(data.run_requests) == 1


# --- declarative automation -------------------------------------------------------------------


def _materialize_everything_once(instance: dg.DagsterInstance) -> None:
    """Every unpartitioned asset materialized, with its checks passed."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if graph.get(key).partitions_def is None:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
    for check in graph.asset_check_keys:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=check.asset_key, check_name=check.name, passed=True)
        )


def _requested(result) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {k.to_user_string() for k in graph.get_all_asset_keys() if result.get_num_requested(k)}


def test_a_fresh_instance_launches_nothing_at_start_up():
    """Why the automation sensor may run by default: its first tick requests nothing."""
    with dg.instance_for_test() as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0


def _tick(instance: dg.DagsterInstance, when: datetime, previous=None):
    return dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        cursor=previous.cursor if previous else None,
        evaluation_time=when,
    )


@pytest.mark.parametrize("check_passed", [True, False])
def test_an_input_change_requests_the_planning_assets_only(check_passed):
    """A plan run launched by automation fetches no feed, no ERP entity, no instance file; and
    an input whose blocking check failed triggers nothing."""
    with dg.instance_for_test() as instance:
        start = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)
        first = _tick(instance, start)
        _materialize_everything_once(instance)
        settled = _tick(instance, start + timedelta(minutes=1), first)
        assert _requested(settled) == set()  # the plan was materialized with its inputs
        instance.report_runless_asset_event(dg.AssetMaterialization("erp_inventory"))
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("erp_inventory"),
                check_name="records_usable",
                passed=check_passed,
            )
        )
        requested = _requested(_tick(instance, start + timedelta(minutes=2), settled))
        if check_passed:
            assert {"clinker_plan", "plan_runs", "plan_shipments"} <= requested
            assert requested <= PLANNING, requested - PLANNING
        else:
            assert "clinker_plan" not in requested


def test_the_plan_is_solved_daily_even_when_no_input_changed():
    with dg.instance_for_test() as instance:
        before = datetime(2026, 6, 2, 5, 0, tzinfo=IST)  # 05:00 IST, the plan's cron is 05:30
        first = _tick(instance, before)
        _materialize_everything_once(instance)
        quiet = _tick(instance, before + timedelta(minutes=10), first)
        assert "clinker_plan" not in _requested(quiet)
        after = _tick(instance, before + timedelta(minutes=40), quiet)
        assert "clinker_plan" in _requested(after)
        assert _requested(after) <= PLANNING


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
