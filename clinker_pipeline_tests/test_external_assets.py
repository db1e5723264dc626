"""External feed assets end to end: sample mode, live over loopback HTTP, outage with last-good
fallback (visible in checks, feed_status and the plan), and no retry of a 4xx."""

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, materialize
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager
from werkzeug import Request, Response

from clinker_pipeline.defs.erp.assets import ERP_ASSETS
from clinker_pipeline.defs.erp.oracle.resource import OracleResource
from clinker_pipeline.defs.erp.sap.resource import SapResource
from clinker_pipeline.defs.feeds.diesel import client as eia
from clinker_pipeline.defs.feeds.diesel.resource import DieselResource
from clinker_pipeline.defs.feeds.fx import client as frankfurter
from clinker_pipeline.defs.feeds.fx.resource import FxResource
from clinker_pipeline.defs.feeds.indicators import client as worldbank
from clinker_pipeline.defs.feeds.indicators.resource import ManualInputs, WorldBankResource
from clinker_pipeline.defs.feeds.market import client as market
from clinker_pipeline.defs.feeds.market.resource import MarketResource
from clinker_pipeline.defs.feeds.spec import feed_assets
from clinker_pipeline.defs.feeds.weather import client as openweather
from clinker_pipeline.defs.feeds.weather.assets import weather_forecast
from clinker_pipeline.defs.feeds.weather.resource import WeatherResource
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import clinker_plan
from clinker_pipeline.defs.resources import (
    ErpSettings,
    InstanceFiles,
    ScenarioSettings,
    TelemetrySettings,
)

WEATHER_KEY = "owm-K3y-0123456789abcdef"
EIA_KEY = "eia-K3y-fedcba9876543210"
MARKET_KEY = "ogd-K3y-5555aaaa"
KEYS = (WEATHER_KEY, EIA_KEY, MARKET_KEY)
FEEDS = {"weather", "fx", "diesel", "indicators", "market"}


def resources(db: Path, **override: Any) -> dict[str, Any]:
    base = {
        "instance_files": InstanceFiles(path=""),
        "duckdb": DuckDBResource(database=str(db)),
        "duckdb_io_manager": DuckDBPandasIOManager(database=str(db), schema="instance"),
        "sap": SapResource(),
        "oracle": OracleResource(),
        "erp": ErpSettings(),
        "weather": WeatherResource(),
        "diesel": DieselResource(),
        "fx": FxResource(),
        "worldbank": WorldBankResource(),
        "market": MarketResource(),
        "manual_inputs": ManualInputs(),
        "scenarios": ScenarioSettings(),
        "telemetry": TelemetrySettings(landing_dir=str(Path(str(db)).parent / "landing")),
    }
    return base | override


def checks(result) -> dict[tuple[str, str], Any]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def statuses(db: Path) -> dict[str, tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT feed, status, sample_mode, rows_kept, message FROM feed_status "
            "QUALIFY row_number() OVER (PARTITION BY feed ORDER BY checked_at DESC) = 1"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_every_feed_in_sample_mode_lands_checked_tables(tmp_path):
    db = tmp_path / "c.duckdb"
    result = materialize([instance_tables, *feed_assets()], resources=resources(db))
    assert result.success
    found = checks(result)
    for asset in ("weather_forecast", "fx_rates", "diesel_prices", "cement_prices"):
        assert found[(asset, "structure_valid")].passed, asset
        assert found[(asset, "data_fresh")].passed, asset
    got = statuses(db)
    assert set(got) == FEEDS
    assert all(s[0] == "fresh" and s[1] is True and s[2] > 0 for s in got.values()), got
    with duckdb.connect(str(db), read_only=True) as con:
        count = lambda t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: E731
        assert count("weather_forecast") == 24 * 40
        assert count("road_availability") == 24 * 3
        assert count("diesel_prices") == 152
        assert count("cement_prices") == 276
        assert count("cement_market_stats") == 12
        inr = con.execute(
            "SELECT inr_per_litre, usd_per_gal, usd_inr FROM diesel_prices ORDER BY week DESC LIMIT 1"
        ).fetchone()
        assert inr[0] == pytest.approx(inr[1] * inr[2] / 3.785411784)
        # the north-east monsoon sample: Chennai's roads lose hours in period 1, Delhi's do not
        avail = dict(
            con.execute(
                "SELECT plant_code, availability FROM road_availability WHERE time_period = 1"
            ).fetchall()
        )
        assert avail["GU_004"] < 1.0 and avail["GU_002"] == 1.0
        indicators = {
            r[0]
            for r in con.execute("SELECT DISTINCT indicator FROM economic_indicators").fetchall()
        }
        assert indicators == {"FP.CPI.TOTL.ZG", "manufacturing_pmi", "road_freight_index"}
        # World Bank's null latest year is quarantined with its reason, not dropped silently
        reason = con.execute(
            "SELECT reason FROM quarantine WHERE feed = 'indicators' AND severity = 'WARN'"
        ).fetchone()[0]
        assert "2025" in reason


# --- a loopback server speaking every provider's wire format ---------------------------------


def _sample(folder: Path, name: str) -> Response:
    file = folder / name
    if not file.is_file():
        return Response(json.dumps({"message": "not found"}), 404, content_type="application/json")
    ctype = "text/csv" if name.endswith(".csv") else "application/json"
    return Response(file.read_text(encoding="utf-8"), 200, content_type=ctype)


def _eia(request: Request) -> Response:
    """EIA honours offset/length over the whole series (the sample is two recorded pages)."""
    if request.args.get("api_key") != EIA_KEY:
        body = {"error": {"code": "API_KEY_INVALID", "message": "An invalid api_key was supplied."}}
        return Response(json.dumps(body), 403, content_type="application/json")
    pages = [
        json.loads((eia.SAMPLE_DIR / f"diesel_weekly.offset={o}.json").read_text(encoding="utf-8"))
        for o in (0, 100)
    ]
    rows = pages[0]["response"]["data"] + pages[1]["response"]["data"]
    offset, length = int(request.args.get("offset", 0)), int(request.args.get("length", 5000))
    payload = pages[0]
    payload["response"]["data"] = rows[offset : offset + length]
    payload["response"]["total"] = str(len(rows))
    return Response(json.dumps(payload), 200, content_type="application/json")


def serve_providers(server: Any) -> None:
    def weather(request: Request) -> Response:
        if request.args.get("appid") != WEATHER_KEY:
            body = {"cod": 401, "message": "Invalid API key."}
            return Response(json.dumps(body), 401, content_type="application/json")
        name = openweather.sample_file(request.path, dict(request.args))
        return _sample(openweather.SAMPLE_DIR, name)

    def market_page(request: Request) -> Response:
        assert request.args.get("api-key") == MARKET_KEY
        return _sample(market.SAMPLE_DIR, market.sample_file(request.path, dict(request.args)))

    server.expect_request("/data/2.5/forecast").respond_with_handler(weather)
    server.expect_request("/v2/petroleum/pri/gnd/data/").respond_with_handler(_eia)
    server.expect_request("/v1/latest").respond_with_handler(
        lambda r: _sample(frankfurter.SAMPLE_DIR, "latest.json")
    )
    server.expect_request(
        __import__("re").compile(r"^/v1/\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$")
    ).respond_with_handler(lambda r: _sample(frankfurter.SAMPLE_DIR, "timeseries.json"))
    server.expect_request("/v2/country/IND/indicator/FP.CPI.TOTL.ZG").respond_with_handler(
        lambda r: _sample(
            worldbank.SAMPLE_DIR,
            # the recorded pages hold 8 rows each: serve them whatever per_page was asked
            worldbank.sample_file(r.path, dict(parse_qsl(r.query_string.decode()))),
        )
    )
    server.expect_request("/resource/cement").respond_with_handler(market_page)


def live(server: Any, db: Path) -> dict[str, Any]:
    url = server.url_for("").rstrip("/")
    fast = {"retries": 1, "backoff_factor": 0.01, "deadline_s": 10.0, "min_interval_s": 0.0}
    return resources(
        db,
        weather=WeatherResource(base_url=url, api_key=WEATHER_KEY, **fast),
        diesel=DieselResource(base_url=url, api_key=EIA_KEY, **fast),
        fx=FxResource(base_url=url, **fast),
        worldbank=WorldBankResource(base_url=url, **fast),
        market=MarketResource(url=f"{url}/resource/cement", api_key=MARKET_KEY, **fast),
    )


@pytest.fixture
def server(httpserver_ipv4: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return httpserver_ipv4


def test_every_feed_live_over_loopback_keeps_keys_out_of_duckdb_and_events(tmp_path, server):
    serve_providers(server)
    db = tmp_path / "c.duckdb"
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [instance_tables, *feed_assets()], resources=live(server, db), instance=instance
    )
    assert result.success
    got = statuses(db)
    assert all(s[0] == "fresh" and s[1] is False for f, s in got.items() if f != "indicators")
    assert got["weather"][2] == 24 * 40 and got["diesel"][2] == 152
    requested = {r.path for r, _ in server.log}
    assert "/data/2.5/forecast" in requested and "/resource/cement" in requested
    # keys went as query parameters, and nowhere else
    weather_calls = [r for r, _ in server.log if r.path == "/data/2.5/forecast"]
    assert len(weather_calls) == 24 and all(r.args["appid"] == WEATHER_KEY for r in weather_calls)
    with duckdb.connect(str(db), read_only=True) as con:
        for (table,) in con.execute("SHOW TABLES").fetchall():
            text = con.execute(f"SELECT * FROM {table}").df().to_csv()
            assert not any(k in text for k in KEYS), table
    events = instance.all_logs(result.run_id)
    dumped = "".join(str(e.dagster_event) + str(e.user_message) for e in events)
    assert not any(k in dumped for k in KEYS)


def test_outage_observes_fails_freshness_keeps_last_good_data_and_the_plan_says_stale(
    tmp_path, server
):
    db = tmp_path / "c.duckdb"
    assert materialize([instance_tables, *feed_assets()], resources=resources(db)).success
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("SELECT * FROM weather_forecast ORDER BY ALL").df()

    server.expect_request("/data/2.5/forecast").respond_with_json(
        {"cod": "503", "message": "service unavailable"}, status=503
    )
    down = live(server, db)
    result = materialize(
        [instance_tables, weather_forecast], resources=down, selection=[weather_forecast]
    )
    assert result.success  # a stale snapshot is not a failed run
    # nothing new was fetched: no materialization, no check that did not run reported as passed
    assert result.asset_materializations_for_node("weather_forecast") == []
    observed = result.asset_observations_for_node("weather_forecast")
    assert len(observed) == 1 and observed[0].metadata["stale"].value is True
    assert "HTTP 503" in observed[0].metadata["stale_reason"].value
    assert observed[0].metadata["last_good_at"].value not in ("", "None")
    evaluated = checks(result)
    assert set(evaluated) == {("weather_forecast", "data_fresh")}
    fresh = evaluated[("weather_forecast", "data_fresh")]
    assert not fresh.passed and fresh.severity.value == "WARN"
    with duckdb.connect(str(db), read_only=True) as con:
        after = con.execute("SELECT * FROM weather_forecast ORDER BY ALL").df()
        assert after.equals(before)
        status = con.execute(
            "SELECT status, last_good_at IS NOT NULL FROM feed_status "
            "WHERE feed = 'weather' ORDER BY checked_at DESC LIMIT 1"
        ).fetchone()
    assert status == ("stale", True)

    plan = materialize([instance_tables, *ERP_ASSETS, clinker_plan], resources=resources(db))
    assert plan.success
    meta = plan.asset_materializations_for_node("clinker_plan")[0].metadata
    stale = meta["stale_inputs"].value
    assert list(stale) == ["weather"] and "stale" in stale["weather"]
    result_obj = plan.output_for_node("clinker_plan")
    assert "weather" in result_obj.options["adjustments"]["stale_inputs"]


def _retries(instance: DagsterInstance, run_id: str) -> int:
    return len(
        instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY).records
    )


def test_without_earlier_data_a_4xx_fails_once_and_a_5xx_is_retried(tmp_path, server):
    db = tmp_path / "c.duckdb"
    assert materialize([instance_tables], resources=resources(db)).success
    server.expect_request("/data/2.5/forecast").respond_with_json(
        {"cod": 401, "message": "Invalid API key."}, status=401
    )
    instance = DagsterInstance.ephemeral()
    wrong_key = live(server, db) | {
        "weather": WeatherResource(
            base_url=server.url_for("").rstrip("/"), api_key="not-the-K3y-42", retries=0
        )
    }
    result = materialize(
        [instance_tables, weather_forecast],
        resources=wrong_key,
        selection=[weather_forecast],
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("weather_forecast")
    assert "HTTP 401" in failure.error.message and "Invalid API key" in failure.error.message
    assert _retries(instance, result.run_id) == 0

    server.clear()
    server.expect_request("/data/2.5/forecast").respond_with_json(
        {"cod": "503", "message": "down"}, status=503
    )
    result = materialize(
        [instance_tables, weather_forecast],
        resources=live(server, db),
        selection=[weather_forecast],
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert _retries(instance, result.run_id) == 2  # CLINKER_FEED_RETRIES default
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT status FROM feed_status WHERE feed = 'weather' ORDER BY checked_at"
        ).fetchall()
    assert {r[0] for r in rows} == {"failed"}
