"""The asset graph end to end: instance -> checks -> plan -> DuckDB, and bad data blocked."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, materialize
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
from clinker_pipeline_tests.helpers import copy_instance, dataset

ASSETS = [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables]


def run_graph(instance_path, db_path, time_limit=60.0):
    return materialize(
        ASSETS,
        resources={
            "instance_files": InstanceFiles(path=str(instance_path)),
            "duckdb": DuckDBResource(database=str(db_path)),
            "duckdb_io_manager": DuckDBPandasIOManager(database=str(db_path), schema="instance"),
            "sap": SapResource(),  # sample mode: bundled payloads, no network
            "oracle": OracleResource(),
            "erp": ErpSettings(),
            "scenarios": ScenarioSettings(),
            "telemetry": TelemetrySettings(landing_dir=str(Path(str(db_path)).parent / "landing")),
        },
        run_config={"ops": {"clinker_plan": {"config": {"time_limit": time_limit}}}},
        raise_on_error=False,
    )


def checks_by_name(result):
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_sample_instance_materializes_every_asset(tmp_path):
    db = tmp_path / "c.duckdb"
    result = run_graph("", db)  # empty path: the bundled sample
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"plants", "clinker_plan", "plan_runs", "plan_shipments"} <= materialized
    errors = [
        k
        for k, e in checks_by_name(result).items()
        if not e.passed and e.severity == AssetCheckSeverity.ERROR
    ]
    assert errors == []
    plan = result.output_for_node("clinker_plan")
    with duckdb.connect(str(db), read_only=True) as con:
        run = con.execute(
            "SELECT run_id, status, launched_by, dagster_run_id, served_pct FROM latest_plan_run"
        ).fetchone()
        assert run[:4] == (plan.run_id, "optimal", "dagster", result.run_id)
        assert run[4] == pytest.approx(plan.served_pct)
        stored = con.execute("SELECT count(*) FROM instance.plants").fetchone()[0]
        assert (
            stored
            == len(plan.production.iu_code.unique())
            + con.execute(
                "SELECT count(*) FROM instance.plants WHERE plant_type = 'GU'"
            ).fetchone()[0]
        )


def test_public_dataset_through_the_pipeline_reproduces_the_contract(tmp_path):
    result = run_graph(dataset("dummy_3mplan"), tmp_path / "c.duckdb")
    assert result.success
    plan = result.output_for_node("clinker_plan")
    assert plan.cost == pytest.approx(25_450_276_671, rel=1e-4)
    assert plan.unmet_t == pytest.approx(10_564_022, abs=1)
    mat = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert mat["clinker_plan"]["status"].value == "optimal"
    assert "IU_" in mat["clinker_plan"]["cost_by_iu"].value
    checks = checks_by_name(result)
    vacuous = checks[("flow_constraints", "rows_all_modelled")]
    assert not vacuous.passed and vacuous.severity == AssetCheckSeverity.WARN
    assert vacuous.metadata["num_failures"].value == 9


def test_bad_row_blocks_the_plan_is_quarantined_and_keeps_the_previous_plan(tmp_path):
    db = tmp_path / "c.duckdb"
    good = run_graph(dataset("dummy_3mplan"), db)
    assert good.success
    bad_dir = copy_instance(dataset("dummy_3mplan"), tmp_path / "bad")
    cap = pd.read_csv(bad_dir / "ClinkerCapacity.csv")
    cap.loc[4, "CAPACITY"] = -5
    cap.to_csv(bad_dir / "ClinkerCapacity.csv", index=False)

    bad = run_graph(bad_dir, db)
    assert not bad.success
    check = checks_by_name(bad)[("clinker_capacity", "schema_valid")]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert "-5" in check.metadata["failure_sample"].value
    planned = {e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()}
    assert "clinker_plan" not in planned and "plan_runs" not in planned
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, source_row, column_name, severity, reason, raw_record "
            "FROM quarantine WHERE dagster_run_id = ? AND severity = 'ERROR'",
            [bad.run_id],
        ).fetchall()
        assert rows == [
            (
                "clinker_capacity",
                6,
                "CAPACITY",
                "ERROR",
                "must be >= 0, got -5.0",
                rows[0][5],
            )
        ]
        assert '"capacity": -5.0' in rows[0][5]
        # the earlier good plan is still the latest, untouched
        assert con.execute("SELECT count(*) FROM plan_runs").fetchone()[0] == 1
        latest = con.execute("SELECT dagster_run_id FROM latest_plan_run").fetchone()[0]
        assert latest == good.run_id
