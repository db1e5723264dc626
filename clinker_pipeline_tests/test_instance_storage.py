"""Dagster instance storage: real PostgreSQL when configured, embedded SQLite otherwise."""

import shutil
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest
from dagster._serdes import serialize_value
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from clinker_pipeline.defs.erp.assets import ERP_ASSETS
from clinker_pipeline.defs.erp.oracle.resource import OracleResource
from clinker_pipeline.defs.erp.sap.resource import SapResource
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import clinker_plan, plan_tables
from clinker_pipeline.defs.resources import (
    ErpSettings,
    InstanceFiles,
    ScenarioSettings,
    TelemetrySettings,
)
from clinker_pipeline.instance_storage import postgres_url
from clinker_pipeline_tests.helpers import REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ENV_VARS = (
    "DAGSTER_POSTGRES_URL",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
    "DAGSTER_PG_PORT",
)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def pg_database():
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc}); .ci/run starts it")
    admin.autocommit = True
    name = f"clinker_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def graph_resources(db):
    return {
        "instance_files": InstanceFiles(path=""),
        "duckdb": DuckDBResource(database=str(db)),
        "duckdb_io_manager": DuckDBPandasIOManager(database=str(db), schema="instance"),
        "sap": SapResource(),
        "oracle": OracleResource(),
        "erp": ErpSettings(),
        "scenarios": ScenarioSettings(),
        "telemetry": TelemetrySettings(landing_dir=str(Path(str(db)).parent / "landing")),
    }


def test_without_postgres_settings_runs_are_kept_in_sqlite_under_dagster_home(dagster_home):
    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert (dagster_home / "history").is_dir()


def test_postgres_url_from_parts_and_from_url(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert postgres_url() is None
    monkeypatch.setenv("DAGSTER_PG_HOST", "db.internal")
    monkeypatch.setenv("DAGSTER_PG_USERNAME", "dagster")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "p@ss word")
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster_prod")
    assert (
        postgres_url()
        == "postgresql+psycopg2://dagster:p%40ss%20word@db.internal:5432/dagster_prod"
    )
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://u:pw@h:5433/d")
    assert postgres_url() == "postgresql+psycopg2://u:pw@h:5433/d"  # the URL wins


def test_full_materialization_is_recorded_in_postgres(
    dagster_home, pg_database, tmp_path, monkeypatch
):
    secret = "Pg-S3cret-never-serialized"
    # trust auth on the test server accepts any password; it must still never be serialized
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", f"postgresql://postgres:{secret}@127.0.0.1:5432/{pg_database}"
    )
    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert secret not in serialize_value(instance.get_ref())

    result = dg.materialize(
        [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables],
        resources=graph_resources(tmp_path / "c.duckdb"),
        instance=instance,
    )
    assert result.success
    with psycopg2.connect(dbname=pg_database, **PG) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
        assert cur.fetchone()[0] == len(result.get_asset_materialization_events()) >= 16
    # a second process view of the same instance sees the run and the latest plan metadata
    again = dg.DagsterInstance.get()
    record = again.get_latest_materialization_event(dg.AssetKey("clinker_plan"))
    assert record.run_id == result.run_id
    assert record.asset_materialization.metadata["status"].value == "optimal"
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        assert (
            con.execute("SELECT dagster_run_id FROM latest_plan_run").fetchone()[0] == result.run_id
        )


def test_schedules_and_sensor_ticks_against_postgres(
    dagster_home, pg_database, tmp_path, monkeypatch
):
    """The re-solve sensor reads materializations from PostgreSQL and keeps its cursor there."""
    from datetime import UTC, datetime

    from clinker_pipeline.definitions import defs
    from clinker_pipeline.defs.automation import SCHEDULES, plan_inputs_changed_sensor

    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_USERNAME", "postgres")
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    instance = dg.DagsterInstance.get()
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"

    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        return plan_inputs_changed_sensor.evaluate_tick(ctx)

    assert tick(None).run_requests == []  # nothing materialized yet in this database
    done = dg.materialize(
        [ERP_ASSETS[0]], resources=graph_resources(tmp_path / "c.duckdb"), instance=instance
    )
    assert done.success
    first = tick(None)
    assert len(first.run_requests) == 1
    assert plan_inputs_changed_sensor.job_name == "clinker_plan_job"
    assert first.run_requests[0].run_key.startswith("plan-inputs-")
    assert tick(first.cursor).run_requests == []
    when = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    for schedule in SCHEDULES:
        data = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        )
        assert len(data.run_requests) == 1, schedule.name
