"""The data-quality report: the documented score, the report of a real run (bad rows and all),
the sensor that requests one report per finished run, and WARN failures shown on the plan."""

import json

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.erp.assets import ERP_ASSETS
from clinker_pipeline.defs.feeds.diesel import client as eia
from clinker_pipeline.defs.feeds.diesel.assets import diesel_prices
from clinker_pipeline.defs.feeds.diesel.resource import DieselResource
from clinker_pipeline.defs.feeds.fx.assets import fx_rates
from clinker_pipeline.defs.feeds.spec import feed_assets
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import clinker_plan
from clinker_pipeline.defs.quality.assets import (
    build_report,
    data_quality_report,
    data_quality_sensor,
)
from clinker_pipeline.defs.quality.store import CheckOutcome, FeedQuality
from clinker_pipeline_tests.test_external_assets import resources


def test_score_formula():
    perfect = FeedQuality("fx", rows_kept=10, checks=[CheckOutcome("a", "c", True, "ERROR")])
    assert perfect.score() == 100.0
    # 8 kept, 2 ERROR rows: completeness 0.8; 1 of 3 checks failed as ERROR: 2/3; stale: 0.5
    q = FeedQuality(
        "diesel",
        rows_kept=8,
        rows_quarantined_error=2,
        rows_quarantined_warn=5,  # WARN rows do not count against completeness
        checks=[
            CheckOutcome("a", "structure_valid", False, "ERROR"),
            CheckOutcome("a", "values_plausible", True, "WARN"),
            CheckOutcome("a", "data_fresh", True, "WARN"),
        ],
        freshness="stale",
    )
    assert q.factors() == pytest.approx((0.8, 2 / 3, 0.5))
    assert q.score() == round(100 * 0.8 * (2 / 3) * 0.5, 1)
    warn_only = FeedQuality("w", rows_kept=1, checks=[CheckOutcome("a", "c", False, "WARN")])
    assert warn_only.score() == 50.0
    assert FeedQuality("x", freshness="failed").score() == 0.0


def _bad_diesel_dir(tmp_path):
    """The bundled EIA pages with one negative and one non-numeric price."""
    folder = tmp_path / "eia"
    folder.mkdir()
    for offset in (0, 100):
        name = f"diesel_weekly.offset={offset}.json"
        payload = json.loads((eia.SAMPLE_DIR / name).read_text(encoding="utf-8"))
        if offset == 0:
            payload["response"]["data"][3]["value"] = "-3.9"
            payload["response"]["data"][5]["value"] = "n/a"
        (folder / name).write_text(json.dumps(payload), encoding="utf-8")
    return folder


class SampleDiesel(DieselResource):
    """The diesel resource reading sample pages from another folder (a bad payload)."""

    folder: str

    def client(self):
        return eia.EiaClient.sample(self.folder)


def test_report_of_a_run_with_bad_rows(tmp_path):
    db = tmp_path / "c.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    res = resources(db, diesel=SampleDiesel(folder=str(_bad_diesel_dir(tmp_path))))
    run = dg.materialize(
        [fx_rates, diesel_prices], resources=res, instance=instance, raise_on_error=False
    )
    assert not run.success  # the blocking structure check stopped the run
    retried = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
    ).records
    assert retried == []  # bad data is not a transient failure: no retry
    report = build_report(instance, run.run_id, DuckDBResource(database=str(db))).set_index("feed")
    assert set(report.index) == {"fx", "diesel"}
    diesel = report.loc["diesel"]
    assert diesel["rows_quarantined_error"] == 2 and diesel["rows_kept"] == 150
    assert diesel["checks_failed_error"] == 1 and "structure_valid" in diesel["failed_checks"]
    assert diesel["score"] == round(100 * (150 / 152) * (2 / 3) * 1.0, 1)
    assert report.loc["fx", "score"] == 100.0
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = con.execute(
            "SELECT reason, rows FROM data_quality_reasons WHERE feed = 'diesel' ORDER BY reason"
        ).fetchall()
        latest = con.execute("SELECT feed, score FROM latest_data_quality ORDER BY feed").fetchall()
    assert len(reasons) == 2 and all(r[1] == 1 for r in reasons)
    assert any("n/a" in r[0] or "numeric" in r[0] for r in reasons)
    assert dict(latest)["diesel"] == diesel["score"]
    # building it again replaces, never duplicates, the run's rows
    build_report(instance, run.run_id, DuckDBResource(database=str(db)))
    with duckdb.connect(str(db), read_only=True) as con:
        n = con.execute(
            "SELECT count(*) FROM data_quality_report WHERE dagster_run_id = ?", [run.run_id]
        ).fetchone()[0]
    assert n == 2


def test_sensor_requests_one_report_per_finished_run_and_the_asset_writes_it(tmp_path):
    db = tmp_path / "c.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(
        assets=[fx_rates, data_quality_report],
        jobs=[
            dg.define_asset_job("fx_job", selection=[fx_rates]),
            dg.define_asset_job("data_quality_job", selection=[data_quality_report]),
        ],
        resources=resources(db),
    )
    fx_run = defs.resolve_job_def("fx_job").execute_in_process(instance=instance)
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    result = data_quality_sensor(context)
    assert [r.run_key for r in result.run_requests] == [f"dq-{fx_run.run_id}"]
    request = result.run_requests[0]
    # the next tick with the advanced cursor has nothing new
    again = data_quality_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert isinstance(again, dg.SkipReason)
    report_run = defs.resolve_job_def("data_quality_job").execute_in_process(
        instance=instance, run_config=request.run_config
    )
    assert report_run.success
    meta = report_run.asset_materializations_for_node("data_quality_report")[0].metadata
    assert meta["reported_run_id"].value == fx_run.run_id and meta["feeds"].value == 1
    # the report's own run is not reported on (not a data-fetching job)
    later = data_quality_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert isinstance(later, dg.SensorResult) and not later.run_requests


def test_plan_shows_the_warn_checks_that_failed_in_its_run(tmp_path):
    db = tmp_path / "c.duckdb"
    result = dg.materialize(
        [instance_tables, *ERP_ASSETS, *feed_assets(), clinker_plan], resources=resources(db)
    )
    assert result.success
    warned = (
        result.asset_materializations_for_node("clinker_plan")[0]
        .metadata["input_check_warnings"]
        .value
    )
    # World Bank's unpublished latest year; the sample's self-lanes are by design, not a warning
    assert "logistics_lanes.rows_all_modelled" not in warned
    assert "economic_indicators.values_plausible" in warned
    assert not any("structure_valid" in w or "schema_valid" in w for w in warned)
