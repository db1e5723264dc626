"""ERP feeds as Dagster assets: sample mode, live SAP on loopback, outages, bad records, secrets."""

import base64
import json
import re
from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckSeverity, DagsterInstance, materialize
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
from clinker_pipeline.instance import load_instance, sample_instance_path

PASSWORD = "Sup3r-S3cret-pw!"
USER = "CLINKER_RO"
PLANT_PATH = "/sap/opu/odata/sap/API_PLANT_SRV/A_Plant"


def resources(db, sap=None):
    return {
        "instance_files": InstanceFiles(path=""),
        "duckdb": DuckDBResource(database=str(db)),
        "duckdb_io_manager": DuckDBPandasIOManager(database=str(db), schema="instance"),
        "sap": sap or SapResource(),
        "oracle": OracleResource(),
        "erp": ErpSettings(),
        "scenarios": ScenarioSettings(),
        "telemetry": TelemetrySettings(landing_dir=str(Path(str(db)).parent / "landing")),
    }


def live_sap(httpserver):
    return SapResource(
        base_url=httpserver.url_for("").rstrip("/"),
        username=USER,
        password=PASSWORD,
        sap_client="100",
        timeout_s=5.0,
        deadline_s=8.0,
    )


def mapped_plants():
    return [p.sap_plant for p in ErpSettings().mapping().plants]


def checks(result):
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def plant_page(plants):
    return {
        "d": {
            "results": [
                {
                    "__metadata": {"type": "API_PLANT_SRV.A_PlantType"},
                    "Plant": p,
                    "PlantName": f"Plant {p}",
                    "CompanyCode": "1000",
                    "CompanyCodeName": "Bharat Clinker Ltd",
                }
                for p in plants
            ]
        }
    }


def test_sample_mode_erp_tables_equal_the_bundled_instance(tmp_path):
    result = materialize(ERP_ASSETS, resources=resources(tmp_path / "e.duckdb"))
    assert result.success
    bad = [k for k, e in checks(result).items() if not e.passed]
    assert bad == []
    files = load_instance(sample_instance_path()).tables
    pairs = {
        "erp_plants": ("plants", ["iugu_code", "plant_type"]),
        "erp_inventory": ("opening_stock", ["iugu_code", "opening_stock"]),
        "erp_demand_forecast": ("clinker_demand", ["iugu_code", "time_period", "demand"]),
        "erp_capacity": ("clinker_capacity", ["iu_code", "time_period", "capacity"]),
    }
    for asset, (table, cols) in pairs.items():
        got = result.output_for_node(asset)[cols].sort_values(cols[:-1]).reset_index(drop=True)
        want = files[table][cols].sort_values(cols[:-1]).reset_index(drop=True)
        keys = cols[:-1]
        assert got[keys].astype(str).values.tolist() == want[keys].astype(str).values.tolist(), (
            asset
        )
        if asset != "erp_plants":
            assert got[cols[-1]].tolist() == pytest.approx(want[cols[-1]].tolist(), abs=1e-6), asset
        else:
            assert got["plant_type"].tolist() == want["plant_type"].tolist()


def test_plan_from_erp_equals_plan_from_files(tmp_path):
    plans = {}
    for source in ("files", "erp"):
        result = materialize(
            [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables],
            resources=resources(tmp_path / f"{source}.duckdb"),
            run_config={"ops": {"clinker_plan": {"config": {"input_source": source}}}},
        )
        assert result.success
        plans[source] = result.output_for_node("clinker_plan")
    assert plans["erp"].status == "optimal"
    assert plans["erp"].cost == pytest.approx(plans["files"].cost, rel=1e-6)
    assert plans["erp"].served_pct == pytest.approx(plans["files"].served_pct, abs=1e-6)
    with duckdb.connect(str(tmp_path / "erp.duckdb"), read_only=True) as con:
        assert con.execute("SELECT input_origin FROM latest_plan_run").fetchone()[0] == "erp"


def test_sap_outage_fails_the_asset_and_keeps_the_previous_table(tmp_path, httpserver):
    db = tmp_path / "e.duckdb"
    httpserver.expect_request(PLANT_PATH).respond_with_json(plant_page(mapped_plants()))
    first = materialize([ERP_ASSETS[0]], resources=resources(db, live_sap(httpserver)))
    assert first.success
    httpserver.clear()
    httpserver.expect_request(PLANT_PATH).respond_with_data("down for maintenance", status=503)
    second = materialize(
        [ERP_ASSETS[0]], resources=resources(db, live_sap(httpserver)), raise_on_error=False
    )
    assert not second.success
    failure = next(e for e in second.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error)
    assert "SAP" in text and "API_PLANT_SRV/A_Plant" in text and "503" in text
    with duckdb.connect(str(db), read_only=True) as con:
        kept = con.execute("SELECT iugu_code FROM instance.erp_plants ORDER BY 1").fetchall()
    assert len(kept) == 24 and kept[0] == ("GU_001",)


def test_bad_and_unknown_records_are_quarantined_and_block_the_plan(tmp_path, httpserver):
    db = tmp_path / "e.duckdb"
    page = plant_page(["1101", "9999"])
    page["d"]["results"].append({"PlantName": "record without its key"})
    httpserver.expect_request(PLANT_PATH).respond_with_json(page)
    result = materialize(
        [ERP_ASSETS[0]], resources=resources(db, live_sap(httpserver)), raise_on_error=False
    )
    check = checks(result)[("erp_plants", "records_usable")]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT source_row, severity, reason, raw_record FROM quarantine "
            "WHERE feed = 'sap_plants' ORDER BY source_row NULLS LAST, reason"
        ).fetchall()
    reasons = [(r[0], r[1], r[2]) for r in rows]
    assert (2, "WARN", "SAP plant 9999 is not in the plant mapping: left out") in reasons
    assert (3, "ERROR", "record has no Plant key") in reasons
    assert (
        json.loads(next(r[3] for r in rows if r[0] == 3))["PlantName"] == "record without its key"
    )
    # the 23 mapped plants SAP did not return are each named
    assert sum("was not returned by SAP" in r[2] for r in rows) == 23


def test_no_secret_reaches_logs_errors_metadata_or_duckdb(tmp_path, httpserver):
    db = tmp_path / "e.duckdb"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    instance = DagsterInstance.ephemeral()
    # 1. a good sync with one broken record: data, metadata and quarantine are written
    page = plant_page(mapped_plants())
    page["d"]["results"].append({"PlantName": "record without its key"})
    httpserver.expect_request(PLANT_PATH).respond_with_json(page)
    ok = materialize(
        [ERP_ASSETS[0]],
        resources=resources(db, live_sap(httpserver)),
        instance=instance,
        raise_on_error=False,
    )
    # 2. the credentials are rejected: the failure is reported
    httpserver.clear()
    httpserver.expect_request(PLANT_PATH).respond_with_data(
        "<html><head><title>Logon failed</title></head><body>401</body></html>",
        status=401,
        content_type="text/html",
    )
    failed = materialize(
        [ERP_ASSETS[0]],
        resources=resources(db, live_sap(httpserver)),
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success
    # the requests really carried the credentials, so their absence below is meaningful
    assert httpserver.log[0][0].headers.get("Authorization") == f"Basic {token}"
    records = instance.all_logs(ok.run_id) + instance.all_logs(failed.run_id)
    dump = "\n".join(
        [repr(r) for r in records] + [str(r.dagster_event) for r in records if r.dagster_event]
    )
    assert "Logon failed" in dump and "record has no Plant key" in dump
    for secret in (PASSWORD, token):
        assert secret not in dump
    with duckdb.connect(str(db), read_only=True) as con:  # DuckDB really holds this run's data
        raw = con.execute("SELECT raw_record FROM quarantine WHERE source_row = 25").fetchone()[0]
        assert "record without its key" in raw
        text = "\n".join(
            str(row)
            for t in ("quarantine", "instance.erp_plants")
            for row in con.execute(f"SELECT * FROM {t}").fetchall()
        )
    for secret in (PASSWORD, token):
        assert secret not in text
    for path in tmp_path.glob("e.duckdb*"):  # the file itself (and any WAL)
        assert (
            PASSWORD.encode() not in path.read_bytes() and token.encode() not in path.read_bytes()
        )


def test_live_sap_over_loopback_http_builds_the_instance_and_the_plan(tmp_path, httpserver):
    """The recorded payloads served by a real HTTP server: paging, auth and sap-client included."""
    from werkzeug import Response

    from clinker_pipeline.defs.erp.sap.client import SampleTransport

    recorded = SampleTransport()
    seen = []

    def answer(request):
        seen.append(request)
        if request.authorization is None or request.authorization.password != PASSWORD:
            return Response("<html><title>Logon</title></html>", 401, content_type="text/html")
        query = request.query_string.decode()
        if "sap-client=100" not in query:
            return Response('{"error":{"message":{"value":"no client"}}}', 400)
        body = recorded.file_for(request.path, query).read_bytes()
        return Response(body, 200, content_type="application/json")

    httpserver.expect_request(re.compile("^/sap/opu/odata/.*")).respond_with_handler(answer)
    result = materialize(
        [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables],
        resources=resources(tmp_path / "live.duckdb", live_sap(httpserver)),
        run_config={"ops": {"clinker_plan": {"config": {"input_source": "erp"}}}},
    )
    assert result.success
    paged = [r for r in seen if "skiptoken" in r.query_string.decode()]
    assert len(paged) == 2  # plants and stock each came in two pages
    plan = result.output_for_node("clinker_plan")
    baseline = materialize(
        [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables],
        resources=resources(tmp_path / "files.duckdb"),
    ).output_for_node("clinker_plan")
    assert plan.status == "optimal" and plan.options["input_source"] == "erp"
    assert plan.cost == pytest.approx(baseline.cost, rel=1e-6)
