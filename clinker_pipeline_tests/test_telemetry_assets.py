"""Telemetry on the Dagster side: landed batches -> typed tables with checks, dead letters,
alerts from threshold rules, aggregates, one sensor run per batch, and the plan reacting to
fresh silo levels and a plant outage."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from clinker_pipeline.defs.automation import telemetry_batches_sensor
from clinker_pipeline.defs.erp.assets import ERP_ASSETS
from clinker_pipeline.defs.erp.mapping import sample_mapping_path
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import clinker_plan
from clinker_pipeline.defs.resources import ErpSettings, TelemetrySettings
from clinker_pipeline.defs.telemetry.assets import alerts, telemetry_tables
from clinker_pipeline.defs.telemetry.landing import LandingStore
from clinker_pipeline.defs.telemetry.payloads import parse_message
from clinker_pipeline_tests.test_external_assets import resources

NOW = datetime.now(UTC).replace(microsecond=0)


def msg(topic: str, values: dict, ts: datetime = NOW, **extra) -> tuple[str, bytes]:
    body = {
        "message_id": extra.pop("message_id", str(uuid.uuid4())),
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "source": "test",
        "values": values,
        **extra,
    }
    return topic, json.dumps(body).encode()


def land(store: LandingStore, messages: list[tuple[str, bytes]]) -> str:
    landed, dead = [], []
    for topic, payload in messages:
        parsed = parse_message(topic, payload, NOW)
        (
            landed if hasattr(parsed, "message_id") and not hasattr(parsed, "reason") else dead
        ).append(parsed)
    return store.write_batch(landed, dead, "test-ingestor").batch_id


def fleet(vehicle: str, speed: float, ts: datetime, lat: float, lon: float) -> tuple[str, bytes]:
    return msg(
        f"clinker/fleet/{vehicle}/telemetry",
        {
            "lat": lat,
            "lon": lon,
            "speed_kmh": speed,
            "load_t": 27.0,
            "capacity_t": 30.0,
            "fuel_l": 200.0,
            "heading_deg": 90.0,
        },
        ts,
        trip={"trip_id": "T-1", "origin": "IU_001", "destination": "GU_001", "mode": "road"},
        status="loaded" if speed > 0 else "stopped",
    )


def telemetry_resources(tmp_path: Path, **extra):
    db = tmp_path / "c.duckdb"
    return resources(
        db, telemetry=TelemetrySettings(landing_dir=str(tmp_path / "landing")), **extra
    )


def run_telemetry(tmp_path: Path, batch_ids: list[str], **kwargs):
    return dg.materialize(
        [telemetry_tables, alerts],
        resources=telemetry_resources(tmp_path),
        run_config={"ops": {"telemetry_tables": {"config": {"batch_ids": batch_ids}}}},
        raise_on_error=False,
        **kwargs,
    )


def checks(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_batches_load_typed_tables_raise_alerts_and_feed_aggregates(tmp_path):
    store = LandingStore(tmp_path / "landing")
    earlier = NOW - timedelta(minutes=50)
    first = land(
        store,
        [
            msg(
                "clinker/plants/IU_001/line/kiln1",
                {"production_tph": 500.0, "running": True, "kiln_temp_c": 1450.0},
            ),
            msg(
                "clinker/plants/IU_002/line/kiln1",
                {"production_tph": 300.0, "running": True, "kiln_temp_c": 1552.0},
            ),
            msg(
                "clinker/plants/GU_001/silo/silo1",
                {"level_pct": 97.0, "level_t": 97000.0, "capacity_t": 100000.0},
            ),
            msg(
                "clinker/plants/IU_001/quality/xrf1",
                {"free_lime_pct": 3.1, "lsf": 0.95, "c3s_pct": 58.0},
            ),
            msg(
                "clinker/plants/IU_001/energy/main_meter",
                {"power_kw": 20000.0, "interval_s": 3600.0, "thermal_kcal_per_kg": 720.0},
            ),
            fleet("TRK-0001", 0.0, earlier, 19.96, 79.30),
            ("clinker/plants/IU_001/line/kiln1", b"{not json"),
        ],
    )
    second = land(
        store,
        [
            fleet("TRK-0001", 0.0, NOW, 19.96, 79.30),  # standing 50 minutes now
            fleet("TRK-0002", 40.0, NOW - timedelta(hours=1), 19.96, 79.30),
            fleet("TRK-0002", 40.0, NOW, 20.30, 79.60),
        ],
    )
    instance = dg.DagsterInstance.ephemeral()
    result = run_telemetry(tmp_path, [first], instance=instance)
    assert result.success
    found = checks(result)
    assert not found[("alerts", "no_error_alerts")].passed  # kiln overheating
    assert not found[("alerts", "no_warning_alerts")].passed  # silo high, free lime
    assert found[("production_telemetry", "structure_valid")].passed
    result = run_telemetry(tmp_path, [second], instance=instance)
    assert result.success
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        count = lambda t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: E731
        assert count("production_telemetry") == 2 and count("fleet_positions") == 4
        assert count("telemetry_dead_letter") == 1
        reason = con.execute("SELECT reason, payload FROM telemetry_dead_letter").fetchone()
        assert "JSON" in reason[0] and reason[1] == "{not json"
        rules = dict(con.execute("SELECT rule, count(*) FROM alerts GROUP BY rule").fetchall())
        assert rules == {
            "kiln_overheat": 1,
            "silo_high": 1,
            "free_lime_high": 1,
            "vehicle_stopped": 1,
        }
        hourly = con.execute(
            "SELECT production_rate_tph, energy_kwh, energy_kwh_per_t FROM telemetry_plant_hourly "
            "WHERE plant = 'IU_001'"
        ).fetchone()
        assert hourly == pytest.approx((500.0, 20000.0, 40.0))
        trip = con.execute(
            "SELECT distance_km, utilisation_pct FROM telemetry_fleet_trips "
            "WHERE vehicle = 'TRK-0002'"
        ).fetchone()
        assert trip[0] == pytest.approx(
            49.09, abs=0.05
        )  # 37.80 km N, 31.32 km E and trip[1] == pytest.approx(90.0)
        assert count("telemetry_batches_loaded") == 2


def test_duplicates_unknown_plants_and_bad_values_are_quarantined_not_loaded(tmp_path):
    store = LandingStore(tmp_path / "landing")
    dup = str(uuid.uuid4())
    line = {"production_tph": 100.0, "running": True}
    first = land(store, [msg("clinker/plants/IU_001/line/kiln1", line, message_id=dup)])
    second = land(
        store,
        [
            msg("clinker/plants/IU_001/line/kiln1", line, message_id=dup),  # redelivered
            msg("clinker/plants/XX_999/line/kiln1", line),
            msg("clinker/plants/IU_003/silo/s1", {"level_pct": 140.0, "level_t": 5.0}),
        ],
    )
    instance = dg.DagsterInstance.ephemeral()
    assert run_telemetry(tmp_path, [first], instance=instance).success
    result = run_telemetry(tmp_path, [second], instance=instance)
    assert not result.success  # the silo over 100 % fails the blocking structure check
    found = checks(result)
    assert not found[("production_telemetry", "plants_known")].passed
    assert not found[("silo_levels", "structure_valid")].passed
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM production_telemetry").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM silo_levels").fetchone()[0] == 0
        loaded = con.execute(
            "SELECT messages, new_messages, duplicates FROM telemetry_batches_loaded "
            "ORDER BY batch_id"
        ).fetchall()
        assert loaded[1] == (3, 0, 3)
        reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine").fetchall()]
        assert any("unknown plant XX_999" in r for r in reasons)


def test_sensor_requests_exactly_one_run_per_new_batch(tmp_path):
    store = LandingStore(tmp_path / "landing")
    settings = TelemetrySettings(landing_dir=str(tmp_path / "landing"))
    batches = [
        land(
            store,
            [msg("clinker/plants/IU_001/line/kiln1", {"production_tph": 1.0, "running": True})],
        )
        for _ in range(3)
    ]
    context = dg.build_sensor_context(resources={"telemetry": settings})
    result = telemetry_batches_sensor(context)
    assert [r.run_key for r in result.run_requests] == [f"telemetry-{b}" for b in batches]
    assert result.run_requests[1].run_config == {
        "ops": {"telemetry_tables": {"config": {"batch_ids": [batches[1]]}}}
    }
    again = telemetry_batches_sensor(
        dg.build_sensor_context(cursor=result.cursor, resources={"telemetry": settings})
    )
    assert isinstance(again, dg.SkipReason)
    fourth = land(
        store, [msg("clinker/plants/IU_001/line/kiln1", {"production_tph": 2.0, "running": True})]
    )
    later = telemetry_batches_sensor(
        dg.build_sensor_context(cursor=result.cursor, resources={"telemetry": settings})
    )
    assert [r.run_key for r in later.run_requests] == [f"telemetry-{fourth}"]
    # a batch that an ingestor of the same share group finished later, with an older id
    late_id = f"{int(fourth[:20]) - 5 * 10**9:020d}-other-ingestor-000001"
    late = store.write_batch([], [], "other-ingestor")
    (tmp_path / "landing" / "batches" / f"{late.batch_id}.parquet").rename(
        tmp_path / "landing" / "batches" / f"{late_id}.parquet"
    )
    last = telemetry_batches_sensor(
        dg.build_sensor_context(cursor=later.cursor, resources={"telemetry": settings})
    )
    assert [r.run_key for r in last.run_requests] == [f"telemetry-{late_id}"]


def test_fresh_silo_levels_and_an_outage_update_the_plan(tmp_path):
    # the plan's first period is this month, so "now" falls in it whenever the test runs
    mapping = json.loads(Path(sample_mapping_path()).read_text(encoding="utf-8"))
    mapping["plan_start"] = date(NOW.year, NOW.month, 1).isoformat()
    mapping_file = tmp_path / "mapping.json"
    mapping_file.write_text(json.dumps(mapping), encoding="utf-8")
    store = LandingStore(tmp_path / "landing")
    batch = land(
        store,
        [
            msg("clinker/plants/IU_001/silo/silo1", {"level_pct": 50.0, "level_t": 30000.0}),
            msg("clinker/plants/IU_001/silo/silo2", {"level_pct": 40.0, "level_t": 20000.0}),
            msg(
                "clinker/plants/IU_002/line/kiln1",
                {"production_tph": 0.0, "running": False},
                NOW - timedelta(minutes=20),
            ),
            msg("clinker/plants/IU_002/line/kiln1", {"production_tph": 0.0, "running": False}),
        ],
    )
    res = telemetry_resources(tmp_path, erp=ErpSettings(mapping_path=str(mapping_file)))
    loaded = dg.materialize(
        [telemetry_tables, alerts],
        resources=res,
        run_config={"ops": {"telemetry_tables": {"config": {"batch_ids": [batch]}}}},
    )
    assert loaded.success
    plan = dg.materialize([instance_tables, *ERP_ASSETS, clinker_plan], resources=res)
    assert plan.success
    applied = plan.output_for_node("clinker_plan").options["adjustments"]
    stock = {o["iugu_code"]: o for o in applied["opening_stock_overrides"]}
    assert stock["IU_001"]["to_t"] == 50000.0 and "silo telemetry" in stock["IU_001"]["reason"]
    caps = {(o["iu_code"], o["time_period"]): o for o in applied["capacity_overrides"]}
    cut = caps[("IU_002", 1)]
    hours = (
        datetime(NOW.year + NOW.month // 12, NOW.month % 12 + 1, 1, tzinfo=UTC)
        - datetime(NOW.year, NOW.month, 1, tzinfo=UTC)
    ).total_seconds() / 3600
    assert cut["to_t"] == pytest.approx(cut["from_t"] * (1 - 72 / hours))
    assert "stopped" in cut["reason"]


def test_safety_stock_is_compared_per_plant_and_loading_is_not_a_stop(tmp_path):
    """IU_001's safety stock (MIN CLOSE STOCK, period 1) is 13,800 t: two silos of 8,000 t are
    fine together; a later reading that takes one silo to 4,000 t makes the plant short."""
    store = LandingStore(tmp_path / "landing")
    first = land(
        store,
        [
            msg("clinker/plants/IU_001/silo/s1", {"level_pct": 40.0, "level_t": 8000.0}),
            msg("clinker/plants/IU_001/silo/s2", {"level_pct": 40.0, "level_t": 8000.0}),
            msg(
                "clinker/fleet/RAKE-01/telemetry",
                {
                    "lat": 19.96,
                    "lon": 79.3,
                    "speed_kmh": 0.0,
                    "load_t": 1000.0,
                    "capacity_t": 3800.0,
                },
                NOW - timedelta(hours=3),
                status="loading",
            ),
            msg(
                "clinker/fleet/RAKE-01/telemetry",
                {
                    "lat": 19.96,
                    "lon": 79.3,
                    "speed_kmh": 0.0,
                    "load_t": 3000.0,
                    "capacity_t": 3800.0,
                },
                status="loading",
            ),
        ],
    )
    second = land(
        store,
        [
            msg(
                "clinker/plants/IU_001/silo/s2",
                {"level_pct": 20.0, "level_t": 4000.0},
                NOW + timedelta(minutes=1),
            )
        ],
    )
    instance = dg.DagsterInstance.ephemeral()
    assert run_telemetry(tmp_path, [first], instance=instance).success
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert run_telemetry(tmp_path, [second], instance=instance).success
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT rule, plant, value, threshold FROM alerts").fetchall()
    assert rows == [("silo_below_safety_stock", "IU_001", 12000.0, 13800.0)]
