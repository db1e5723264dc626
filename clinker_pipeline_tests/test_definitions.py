"""The code location loads, and exposes every asset, check, pool and job the README promises."""

import os
import subprocess
import sys
import tomllib

import dagster as dg
import yaml

from clinker_pipeline.definitions import defs
from clinker_pipeline.instance import TABLES
from clinker_pipeline_tests.helpers import REPO, venv_command

PLAN_TABLES = [
    "plan_runs",
    "plan_production",
    "plan_shipments",
    "plan_inventory",
    "plan_unmet",
    "plan_diagnosis",
]


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_is_registered():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    erp = {"erp_plants", "erp_inventory", "erp_demand_forecast", "erp_capacity"}
    feeds = {
        "weather_forecast",
        "fx_rates",
        "diesel_prices",
        "economic_indicators",
        "cement_prices",
    }
    planning = {"clinker_plan", "scenario_plan", "scenario_comparison"}
    quality = {"data_quality_report"}
    telemetry = {
        "production_telemetry",
        "silo_levels",
        "quality_results",
        "energy_use",
        "fleet_positions",
        "alerts",
    }
    expected = (
        {t.name for t in TABLES} | planning | set(PLAN_TABLES) | erp | feeds | quality | telemetry
    )
    assert keys == expected


def test_every_check_is_registered_with_its_blocking_flag():
    graph = defs.resolve_asset_graph()
    checks = {
        (k.asset_key.to_user_string(), k.name): graph.get_check_spec(k)
        for k in graph.asset_check_keys
    }
    for table in TABLES:
        assert checks[(table.name, "schema_valid")].blocking
    for table in TABLES[1:]:
        assert checks[(table.name, "references_valid")].blocking
    assert not checks[("logistics_lanes", "rows_all_modelled")].blocking
    assert not checks[("flow_constraints", "rows_all_modelled")].blocking
    assert ("clinker_plan", "plan_found") in checks
    assert ("clinker_plan", "gap_within_target") in checks
    for erp in ("erp_plants", "erp_inventory", "erp_demand_forecast", "erp_capacity"):
        assert checks[(erp, "schema_valid")].blocking
        assert checks[(erp, "records_usable")].blocking
    feeds = (
        "weather_forecast",
        "fx_rates",
        "diesel_prices",
        "economic_indicators",
        "cement_prices",
    )
    for feed in feeds:
        assert checks[(feed, "structure_valid")].blocking
        assert not checks[(feed, "values_plausible")].blocking
        assert not checks[(feed, "data_fresh")].blocking
    families = ("production_telemetry", "silo_levels", "quality_results", "energy_use")
    for table in (*families, "fleet_positions"):
        assert checks[(table, "structure_valid")].blocking
        assert not checks[(table, "values_plausible")].blocking
        assert not checks[(table, "plants_known")].blocking
    assert not checks[("alerts", "no_error_alerts")].blocking
    assert ("alerts", "no_warning_alerts") in checks
    assert len(checks) == 9 + 8 + 2 + 2 + 8 + 3 * len(feeds) + 3 * 5 + 2


def test_feed_and_erp_assets_retry_with_backoff_and_the_plan_has_a_max_runtime(monkeypatch):
    """Run-level retries are requested at run time by each source's resource (settings read
    then, not at import): 2 by default, exponential from 60 s, never after a 4xx."""
    import logging
    from types import SimpleNamespace

    from clinker_pipeline.errors import SourceUnavailable
    from clinker_pipeline.lib.source_resource import SourceResource

    monkeypatch.delenv("CLINKER_FEED_RETRIES", raising=False)
    monkeypatch.delenv("CLINKER_FEED_RETRY_DELAY_S", raising=False)
    graph = defs.resolve_asset_graph()
    resources = defs.resources
    for name in ("weather_forecast", "diesel_prices", "fx_rates", "erp_plants", "erp_capacity"):
        keys = graph.get(dg.AssetKey(name)).assets_def.required_resource_keys
        sources = [resources[k] for k in keys if isinstance(resources.get(k), SourceResource)]
        assert sources, name
        for source in sources:
            log = logging.getLogger("test")
            first = SimpleNamespace(retry_number=0, log=log)
            last = SimpleNamespace(retry_number=2, log=log)
            down = SourceUnavailable("down", status=503)
            retry = source.fail(first, down, name)
            assert isinstance(retry, dg.RetryRequested) and retry.max_retries == 2
            assert 30 <= retry.seconds_to_wait <= 90
            assert isinstance(source.fail(last, down, name), dg.Failure)
            wrong = source.fail(first, SourceUnavailable("401", status=401), name)
            assert isinstance(wrong, dg.Failure) and not wrong.allow_retries
    plan = graph.get(dg.AssetKey("clinker_plan"))
    assert plan.tags["dagster/max_runtime"] == "3600"


#: assets that only read DuckDB (solves): they must never wait behind a writer
SOLVES = {"clinker_plan", "scenario_plan"}


def test_every_asset_that_writes_duckdb_shares_the_writer_pool_and_solves_hold_none():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        pools = graph.get(key).pools
        if key.to_user_string() in SOLVES:
            assert pools == set(), key
        else:
            assert pools == {"duckdb_writer"}, key
    retention = defs.resolve_job_def("cleanup_job").graph.node_named("apply_duckdb_retention")
    assert retention.definition.pool == "duckdb_writer"


def test_no_run_tag_limits_and_one_pool_slot_in_dagster_yaml():
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert "tag_concurrency_limits" not in config["concurrency"].get("runs", {})
    for job in defs.get_repository_def().get_all_jobs():
        assert "clinker/duckdb_writer" not in job.tags, job.name


def test_no_job_selects_the_whole_graph():
    """A plan run must not re-fetch every feed: jobs stay small, automation does the rest. The
    one job that spans sources and plan, `main_run_job`, is an operator's (by hand or on
    workers): no schedule or sensor launches it, and it leaves out the partitioned assets."""
    repo = defs.get_repository_def()
    names = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert names == {"erp_sync_job", "cleanup_job", "data_quality_job", "main_run_job"}
    targeted = {s.job_name for s in repo.schedule_defs} | {
        job.name for s in repo.sensor_defs if s.has_jobs for job in s.jobs
    }
    assert "main_run_job" not in targeted
    main = defs.resolve_job_def("main_run_job")
    selected = {k.to_user_string() for k in main.asset_layer.selected_asset_keys}
    assert {"scenario_plan", "scenario_comparison", "data_quality_report"}.isdisjoint(selected)


def test_erp_sync_job_selects_the_erp_group():
    job = defs.resolve_job_def("erp_sync_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"erp_plants", "erp_inventory", "erp_demand_forecast", "erp_capacity"}


def test_plan_asset_has_a_max_runtime():
    spec = next(
        s for s in defs.resolve_all_asset_specs() if s.key.to_user_string() == "clinker_plan"
    )
    assert int(spec.tags["dagster/max_runtime"]) > 0


def test_workspace_yaml_and_pyproject_point_at_the_same_module():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    assert tool["dagster"]["module_name"] == module == "clinker_pipeline.definitions"
    assert tool["dg"]["directory_type"] == "project"
    assert tool["dg"]["project"]["root_module"] == "clinker_pipeline"
    assert tool["dg"]["project"]["code_location_target_module"] == module


def test_dg_check_defs_passes():
    """`dg check defs` (dagster-dg-cli) loads the project from [tool.dg], as `dg dev` does."""
    venv = REPO / ".venv"
    env = {**os.environ, "VIRTUAL_ENV": str(venv)} if venv.is_dir() else dict(os.environ)
    out = subprocess.run(
        [venv_command("dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-2000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_dagster_cli_validates_both_entry_points():
    for args in (["-w", "workspace.yaml"], []):
        out = subprocess.run(
            [sys.executable, "-m", "dagster", "definitions", "validate", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr[-2000:]


def test_the_instance_path_is_read_when_a_run_uses_it(monkeypatch, toy_dir):
    """CLINKER_INSTANCE_PATH set after the definitions loaded still decides the instance."""
    from clinker_pipeline.instance import sample_instance_path

    files = defs.resources["instance_files"]
    monkeypatch.setenv("CLINKER_INSTANCE_PATH", str(toy_dir))
    assert files.resolved_path() == str(toy_dir)
    monkeypatch.delenv("CLINKER_INSTANCE_PATH")
    assert files.resolved_path() == str(sample_instance_path())
