"""OpenWeatherMap feed: client against real HTTP servers on 127.0.0.1, parsing, schemas, sample.

The servers answer in OWM's real shapes, traps included: `cod` as the string "200" on success
and as an int (401, 429) or a string ("404") on errors, `rain` only on wet steps, no Retry-After
on 429. An autouse fixture captures every log record at DEBUG (urllib3 included) and fails the
test if the API key shows up; `raised` checks exception texts and tracebacks the same way.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from clinker_pipeline.defs.feeds.weather.client import (
    DEFAULT_POLICY,
    SAMPLE_DIR,
    OpenWeatherClient,
    PlantLocation,
    WeatherFetch,
    sample_file,
)
from clinker_pipeline.defs.feeds.weather.parse import (
    DAILY_COLUMNS,
    GALE_WIND_MS,
    HEAVY_RAIN_MM_PER_3H,
    STEP_COLUMNS,
    daily_weather,
    parse_forecast,
    parse_onecall_daily,
    road_availability,
)
from clinker_pipeline.defs.feeds.weather.schema import daily_problems, steps_problems
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.calendar import PeriodWindow, monthly_periods
from clinker_pipeline.lib.feed_transport import SampleFeedTransport
from clinker_pipeline.lib.http import HttpPolicy
from clinker_pipeline_tests.helpers import FAST_POLICY, hermetic_http

API_KEY = "owm-7f3c9a1e5b2d4c6e8a0b1c2d3e4f5a6b"
SECRETS = (API_KEY,)
FORECAST = "/data/2.5/forecast"
ONECALL = "/data/3.0/onecall"
INSTANCE = Path(__file__).resolve().parents[1] / "clinker_pipeline" / "sample_data" / "instance"
T0 = 1796083200  # 2026-12-01 00:00:00 UTC

FAST = FAST_POLICY
INVALID_KEY = {
    "cod": 401,
    "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.",
}
BLOCKED = {
    "cod": 429,
    "message": "Your account is temporary blocked due to exceeding of requests limitation of "
    "your subscription type. Please choose the proper subscription "
    "https://openweathermap.org/price",
}


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No proxy between us and 127.0.0.1; every log record checked for the key afterwards.

    Records of every phase are checked (`caplog.records` alone holds only the teardown's). The
    fake provider's own access log (werkzeug) is skipped: it prints the request line with the
    key, as the real provider's logs would; it is not a log of ours.
    """
    yield from hermetic_http(monkeypatch, caplog, SECRETS)


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    return httpserver_ipv4


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A loopback server that answers requests in parallel (the shared fixture is serial)."""
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def client_for(srv: HTTPServer, *, policy: HttpPolicy = FAST, **kwargs: Any) -> OpenWeatherClient:
    return OpenWeatherClient.live(srv.url_for("/").rstrip("/"), API_KEY, policy=policy, **kwargs)


def owm(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, headers=headers, content_type="application/json")


def step(
    dt: int | None,
    *,
    temp: Any = 24.6,
    wind: Any = 3.4,
    gust: Any = None,
    rain: float | None = None,
    pop: float = 0,
    main: str = "Clear",
) -> dict[str, Any]:
    """One 2.5 forecast step as OWM sends it (`rain` only when wet, `gust` only when given)."""
    item: dict[str, Any] = {}
    if dt is not None:
        item["dt"] = dt
    item["main"] = {
        "temp": temp,
        "feels_like": 24.1,
        "temp_min": temp,
        "temp_max": temp,
        "pressure": 1014,
        "sea_level": 1014,
        "grnd_level": 963,
        "humidity": 41,
        "temp_kf": 0,
    }
    item["weather"] = [{"id": 800, "main": main, "description": "clear sky", "icon": "01d"}]
    item["clouds"] = {"all": 3}
    item["wind"] = {"speed": wind, "deg": 312} | ({"gust": gust} if gust is not None else {})
    item["visibility"] = 10000
    item["pop"] = pop
    if rain is not None:
        item["rain"] = {"3h": rain}
    item["sys"] = {"pod": "d"}
    if dt is not None:
        item["dt_txt"] = datetime.fromtimestamp(dt, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return item


def forecast_body(steps: list[dict[str, Any]], lat: float = 24.88, lon: float = 74.63) -> dict:
    return {
        "cod": "200",
        "message": 0,
        "cnt": len(steps),
        "list": steps,
        "city": {
            "id": 1274693,
            "name": "Chittaurgarh",
            "coord": {"lat": lat, "lon": lon},
            "country": "IN",
            "population": 116406,
            "timezone": 19800,
            "sunrise": 1796066000,
            "sunset": 1796105000,
        },
    }


def onecall_body() -> dict[str, Any]:
    def day(dt: int, rain: float | None, t_min: float, t_max: float, wind: float) -> dict:
        entry: dict[str, Any] = {
            "dt": dt,
            "sunrise": dt - 22000,
            "sunset": dt + 19000,
            "moonrise": dt,
            "moonset": dt - 20000,
            "moon_phase": 0.25,
            "summary": "Expect a day of rain",
            "temp": {
                "day": 26.0,
                "min": t_min,
                "max": t_max,
                "night": 23.0,
                "eve": 25.0,
                "morn": 22.0,
            },
            "feels_like": {"day": 27.0, "night": 24.0, "eve": 26.0, "morn": 23.0},
            "pressure": 1007,
            "humidity": 90,
            "dew_point": 21.0,
            "wind_speed": wind,
            "wind_deg": 50,
            "wind_gust": wind * 1.6,
            "weather": [
                {"id": 502, "main": "Rain", "description": "heavy intensity rain", "icon": "10d"}
            ],
            "clouds": 100,
            "pop": 1,
            "uvi": 2.1,
        }
        if rain is not None:
            entry["rain"] = rain  # a plain number of mm in One Call daily, not {"1h": ...}
        return entry

    noon = T0 + 6 * 3600 + 1800  # 1 Dec 12:00 IST
    return {
        "lat": 13.08,
        "lon": 80.27,
        "timezone": "Asia/Kolkata",
        "timezone_offset": 19800,
        "daily": [
            day(noon - 86400, 21.5, 22.0, 27.0, 9.0),
            day(noon, 82.1, 21.4, 26.5, 12.0),
            day(noon + 86400, None, 23.0, 29.5, 4.2),
        ],
        "alerts": [
            {
                "sender_name": "India Meteorological Department",
                "event": "Thunderstorm",
                # 30 Nov 21:00 IST to 1 Dec 21:00 IST: overlaps two local days
                "start": T0 - 30600,
                "end": T0 + 55800,
                "description": "Thunderstorm with lightning likely over isolated places.",
                "tags": ["Thunderstorm"],
            }
        ],
    }


class Recorder:
    """Answers from a list of callables (the last one repeats) and records each request."""

    def __init__(self, *answers: Callable[[Request], Response]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append({"t": time.monotonic(), "args": dict(request.args), "path": request.path})
        return self.answers[min(len(self.calls), len(self.answers)) - 1](request)


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The exception's message, after checking no form of it carries the key."""
    exc = excinfo.value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        for secret in SECRETS:
            assert secret not in text
    return str(exc)


def sample_plants() -> list[PlantLocation]:
    with (INSTANCE / "IUGUType.csv").open(newline="", encoding="utf-8") as handle:
        return [
            PlantLocation(row["IUGU CODE"], float(row["LATITUDE"]), float(row["LONGITUDE"]))
            for row in csv.DictReader(handle)
        ]


def all_steps(fetch: WeatherFetch) -> pd.DataFrame:
    frames = []
    for code, payload in fetch.forecasts.items():
        frame, problems = parse_forecast(payload, code)
        assert problems == []
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ---- client: success and errors ---------------------------------------------------------------


def test_forecast_success_string_cod_and_steps_without_rain(server: HTTPServer) -> None:
    body = forecast_body([step(T0, gust=5.1), step(T0 + 10800, rain=0.41, pop=0.38, main="Rain")])
    handler = Recorder(lambda r: owm(body))
    server.expect_request(FORECAST).respond_with_handler(handler)

    with client_for(server) as client:
        payload = client.forecast(24.88, 74.63)

    assert payload["cod"] == "200" and len(payload["list"]) == 2
    [call] = handler.calls
    assert call["args"] == {"lat": "24.88", "lon": "74.63", "units": "metric", "appid": API_KEY}
    steps, problems = parse_forecast(payload, "IU_003")
    assert problems == []
    assert steps["rain_mm"].tolist() == [0.0, 0.41]
    assert steps["wind_gust_ms"].isna().tolist() == [False, True]
    assert steps["step_start_utc"].tolist() == [
        pd.Timestamp("2026-12-01 00:00", tz="UTC"),
        pd.Timestamp("2026-12-01 03:00", tz="UTC"),
    ]


def test_401_int_cod_message_surfaces_without_the_key(server: HTTPServer) -> None:
    handler = Recorder(lambda r: owm(INVALID_KEY, status=401))
    server.expect_request(FORECAST).respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).forecast(24.88, 74.63)

    message = raised(excinfo)
    assert excinfo.value.status == 401 and not excinfo.value.retryable
    assert "Invalid API key" in message
    assert "2 h to activate" in message and "lat 24.88, lon 74.63" in message
    assert len(handler.calls) == 1  # a rejected key is not retried


def test_404_string_cod(server: HTTPServer) -> None:
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm({"cod": "404", "message": "city not found"}, status=404))
    )
    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).forecast(24.88, 74.63)
    assert excinfo.value.status == 404
    assert "city not found" in raised(excinfo)


def test_429_without_retry_after_backs_off_then_succeeds(server: HTTPServer) -> None:
    body = forecast_body([step(T0)])
    handler = Recorder(
        lambda r: owm(BLOCKED, status=429),
        lambda r: owm(BLOCKED, status=429),
        lambda r: owm(body),
    )
    server.expect_request(FORECAST).respond_with_handler(handler)
    policy = HttpPolicy(
        retries=3, backoff_factor=0.1, backoff_jitter=0, backoff_max=1, read_timeout=3, deadline_s=5
    )

    payload = client_for(server, policy=policy).forecast(24.88, 74.63)

    assert payload["list"][0]["dt"] == T0
    assert len(handler.calls) == 3
    # urllib3 retries the first 429 at once, then waits backoff_factor * 2 = 0.2 s.
    assert handler.calls[2]["t"] - handler.calls[1]["t"] >= 0.15


def test_429_retry_after_is_honoured(server: HTTPServer) -> None:
    body = forecast_body([step(T0)])
    handler = Recorder(
        lambda r: owm(BLOCKED, status=429, headers={"Retry-After": "1"}), lambda r: owm(body)
    )
    server.expect_request(FORECAST).respond_with_handler(handler)

    client_for(server).forecast(24.88, 74.63)

    assert len(handler.calls) == 2
    assert handler.calls[1]["t"] - handler.calls[0]["t"] >= 0.9


def test_503_outage_until_retries_are_spent(server: HTTPServer) -> None:
    handler = Recorder(lambda r: owm({"cod": 503, "message": "Service Unavailable"}, status=503))
    server.expect_request(FORECAST).respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).forecast(24.88, 74.63)

    message = raised(excinfo)
    assert excinfo.value.status == 503 and excinfo.value.retryable
    assert len(handler.calls) == FAST.retries + 1
    assert "gave up after 3 attempts" in message


def test_truncated_json_is_invalid_payload(server: HTTPServer) -> None:
    text = json.dumps(forecast_body([step(T0), step(T0 + 10800)]))[:180]
    server.expect_request(FORECAST).respond_with_handler(Recorder(lambda r: owm(text)))
    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).forecast(24.88, 74.63)
    message = raised(excinfo)
    assert "truncated" in message and "lat 24.88, lon 74.63" in message


def test_2xx_with_error_cod_or_without_list_is_invalid_payload(server: HTTPServer) -> None:
    handler = Recorder(
        lambda r: owm({"cod": "404", "message": "city not found"}),
        lambda r: owm({"cod": "200", "message": 0, "cnt": 0}),
    )
    server.expect_request(FORECAST).respond_with_handler(handler)
    client = client_for(server)

    with pytest.raises(InvalidPayload) as first:
        client.forecast(11.14, 79.08)
    message = raised(first)
    assert "cod '404'" in message and "city not found" in message
    assert "lat 11.14, lon 79.08" in message

    with pytest.raises(InvalidPayload) as second:
        client.forecast(11.14, 79.08)
    assert "no 'list'" in raised(second)


def test_bad_coordinates_never_reach_the_api(server: HTTPServer) -> None:
    handler = Recorder(lambda r: owm(forecast_body([step(T0)])))
    server.expect_request(FORECAST).respond_with_handler(handler)
    plants = [PlantLocation("GU_X", float("nan"), 77.0), PlantLocation("GU_Y", 12.97, 77.59)]

    fetch = client_for(server).fetch_all(plants)

    assert list(fetch.forecasts) == ["GU_Y"]
    assert "latitude nan" in fetch.failures["GU_X"]
    assert len(handler.calls) == 1


# ---- fetch_all --------------------------------------------------------------------------------


def test_fetch_all_one_plant_failing_is_reported(
    server: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    def answer(request: Request) -> Response:
        if request.args["lat"] == "11.14":
            return owm({"cod": "400", "message": "wrong latitude"}, status=400)
        return owm(
            forecast_body([step(T0)], float(request.args["lat"]), float(request.args["lon"]))
        )

    server.expect_request(FORECAST).respond_with_handler(answer)
    plants = [
        PlantLocation("IU_003", 24.88, 74.63),
        PlantLocation("IU_005", 11.14, 79.08),
        PlantLocation("GU_002", 28.61, 77.21),
    ]

    fetch = client_for(server).fetch_all(plants)

    assert list(fetch.forecasts) == ["IU_003", "GU_002"]
    assert list(fetch.failures) == ["IU_005"]
    assert "wrong latitude" in fetch.failures["IU_005"]
    assert API_KEY not in fetch.failures["IU_005"]
    assert any("IU_005" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_fetch_all_concurrency_is_bounded(threaded_server: HTTPServer) -> None:
    lock = threading.Lock()
    state = {"active": 0, "peak": 0, "calls": 0}

    def answer(request: Request) -> Response:
        with lock:
            state["active"] += 1
            state["calls"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(0.15)
        with lock:
            state["active"] -= 1
        return owm(forecast_body([step(T0)]))

    threaded_server.expect_request(FORECAST).respond_with_handler(answer)
    plants = [PlantLocation(f"GU_{i:03d}", 10.0 + i, 75.0 + i) for i in range(9)]

    fetch = client_for(threaded_server, max_workers=3).fetch_all(plants)

    assert list(fetch.forecasts) == [p.code for p in plants]  # input order kept
    assert state["calls"] == 9
    assert 1 < state["peak"] <= 3


def test_fetch_all_every_plant_failing_raises(server: HTTPServer) -> None:
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm(INVALID_KEY, status=401))
    )
    plants = [PlantLocation("IU_001", 19.96, 79.3), PlantLocation("IU_002", 24.58, 80.83)]

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).fetch_all(plants)

    message = raised(excinfo)
    assert "all 2 plant forecasts failed" in message
    assert "first: IU_001" in message and "Invalid API key" in message
    assert excinfo.value.status == 401


def test_fetch_all_rejects_duplicate_codes() -> None:
    client = OpenWeatherClient.sample()
    with pytest.raises(ValueError, match="IU_001"):
        client.fetch_all([PlantLocation("IU_001", 19.96, 79.3)] * 2)


# ---- One Call 3.0 -----------------------------------------------------------------------------


def test_onecall_fetch_and_parse(server: HTTPServer) -> None:
    oc = Recorder(lambda r: owm(onecall_body()))
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm(forecast_body([step(T0)])))
    )
    server.expect_request(ONECALL).respond_with_handler(oc)

    fetch = client_for(server, onecall=True).fetch_all([PlantLocation("GU_004", 13.08, 80.27)])

    assert oc.calls[0]["args"]["exclude"] == "current,minutely,hourly"
    assert oc.calls[0]["args"]["units"] == "metric" and oc.calls[0]["args"]["appid"] == API_KEY
    days, problems = parse_onecall_daily(fetch.onecall["GU_004"], "GU_004")
    assert problems == []
    assert days["day"].tolist() == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]
    assert days["rain_mm"].tolist() == [21.5, 82.1, 0.0]  # plain numbers; absent = dry
    assert days["alerts"].tolist() == [1, 1, 0]
    assert days["closed_hours"].tolist() == [0.0, 24.0, 0.0]  # 82.1 mm >= 8 x 7.5 mm
    assert days["temp_mean_c"].tolist() == [24.0, 24.0, 24.0]  # mean of morn/day/eve/night
    assert daily_problems(days, "One Call GU_004") == []


def test_onecall_without_offset_places_days_by_the_timezone_name(server: HTTPServer) -> None:
    """No `timezone_offset`, only the IANA name: days are local days of that zone, not IST.

    Daily `dt` is local noon; 12:00 in Los Angeles (PST, UTC-8) is 01:30 the next day in IST.
    """
    body = onecall_body()
    del body["timezone_offset"]
    noon_pst = T0 + 20 * 3600  # 1 Dec 12:00 PST
    body.update(lat=34.05, lon=-118.24, timezone="America/Los_Angeles", alerts=[])
    for k, entry in enumerate(body["daily"]):
        entry["dt"] = noon_pst + (k - 1) * 86400
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm(forecast_body([step(T0)])))
    )
    server.expect_request(ONECALL).respond_with_handler(Recorder(lambda r: owm(body)))

    fetch = client_for(server, onecall=True).fetch_all([PlantLocation("GU_LA", 34.05, -118.24)])
    days, problems = parse_onecall_daily(fetch.onecall["GU_LA"], "GU_LA")

    assert problems == []
    assert days["day"].tolist() == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ({}, "neither 'timezone_offset' nor a 'timezone' name"),
        ({"timezone": "Asia/Nowhere"}, "unknown time zone 'Asia/Nowhere'"),
        ({"timezone_offset": "IST"}, "timezone_offset 'IST' is not a number of seconds"),
    ],
    ids=["none", "unknown-name", "bad-offset"],
)
def test_onecall_without_a_usable_zone_is_refused_not_taken_as_ist(
    zone: dict[str, Any], expected: str
) -> None:
    body = onecall_body()
    del body["timezone"], body["timezone_offset"]
    body.update(zone)

    days, problems = parse_onecall_daily(body, "GU_004")

    assert days.empty and list(days.columns) == [*DAILY_COLUMNS, "alerts"]
    assert len(problems) == 1 and problems[0].severity == "WARN"  # the outlook is not planned on
    assert expected in problems[0].message and "no daily weather" in problems[0].message


def test_onecall_without_subscription_keeps_the_forecast(server: HTTPServer) -> None:
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm(forecast_body([step(T0)])))
    )
    server.expect_request(ONECALL).respond_with_handler(
        Recorder(
            lambda r: owm(
                {
                    "cod": 401,
                    "message": "Please note that using One Call 3.0 requires a separate "
                    "subscription to the One Call by Call plan.",
                },
                status=401,
            )
        )
    )

    fetch = client_for(server, onecall=True).fetch_all([PlantLocation("GU_004", 13.08, 80.27)])

    assert list(fetch.forecasts) == ["GU_004"] and fetch.failures == {}
    assert fetch.onecall == {}
    assert "One Call by Call" in fetch.onecall_failures["GU_004"]


# ---- sample mode ------------------------------------------------------------------------------


def test_sample_file_naming() -> None:
    assert sample_file("/data/2.5/forecast", {"lat": "20.3", "lon": "85.82"}) == (
        "forecast_20.30_85.82.json"
    )
    assert sample_file("data/3.0/onecall", {"lat": "13.08", "lon": "80.27"}) == (
        "onecall_13.08_80.27.json"
    )


def test_sample_mode_reads_every_plant_through_the_same_client(server: HTTPServer) -> None:
    plants = sample_plants()
    client = OpenWeatherClient.sample()
    assert isinstance(client.transport, SampleFeedTransport)

    fetch = client.fetch_all(plants)

    assert len(plants) == 24 and fetch.failures == {}
    assert list(fetch.forecasts) == [p.code for p in plants]
    assert len(client.transport.served) == 24
    steps = all_steps(fetch)
    assert len(steps) == 24 * 40
    assert steps_problems(steps, "sample") == []
    assert daily_problems(daily_weather(steps), "sample") == []

    # The same bytes served over HTTP parse to the same table.
    chennai = SAMPLE_DIR / "forecast_13.08_80.27.json"
    server.expect_request(FORECAST).respond_with_handler(
        Recorder(lambda r: owm(chennai.read_text(encoding="utf-8")))
    )
    live, _ = parse_forecast(client_for(server).forecast(13.08, 80.27), "GU_004")
    pd.testing.assert_frame_equal(
        live, steps[steps["plant_code"] == "GU_004"].reset_index(drop=True)
    )


def test_sample_onecall_and_missing_files() -> None:
    client = OpenWeatherClient.sample(onecall=True)
    fetch = client.fetch_all(
        [PlantLocation("GU_004", 13.08, 80.27), PlantLocation("GU_002", 28.61, 77.21)]
    )
    assert set(fetch.forecasts) == {"GU_004", "GU_002"}
    assert list(fetch.onecall) == ["GU_004"]
    assert "no sample file onecall_28.61_77.21.json" in fetch.onecall_failures["GU_002"]
    days, problems = parse_onecall_daily(fetch.onecall["GU_004"], "GU_004")
    assert problems == [] and days["alerts"].sum() == 2  # one alert over two local days

    with pytest.raises(SourceUnavailable, match=r"no sample file forecast_0\.00_0\.00\.json"):
        client.fetch_all([PlantLocation("NOWHERE", 0.0, 0.0)])


def test_sample_south_has_reduced_road_availability_north_none() -> None:
    plants = sample_plants()
    steps = all_steps(OpenWeatherClient.sample().fetch_all(plants))

    table = road_availability(steps, monthly_periods(date(2026, 12, 1), 3))

    assert len(table) == 24 * 3
    first = table[table["time_period"] == 1].set_index("plant_code")["availability"]
    south = {p.code for p in plants if p.latitude < 14}
    assert south == {"IU_005", "GU_004", "GU_005", "GU_013"}
    for plant in plants:
        if plant.code in south:
            assert first[plant.code] < 0.99, plant.code
        else:
            assert first[plant.code] == 1.0, plant.code
    assert (table[table["time_period"] > 1]["availability"] == 1.0).all()
    assert (table[table["time_period"] == 1]["forecast_hours"] == 24.0).all()


# ---- parsing ----------------------------------------------------------------------------------


def test_parse_problems_for_missing_dt_and_non_numeric_temp() -> None:
    bad_temp = step(T0 + 10800, temp="abc")
    payload = forecast_body([step(T0), step(None), bad_temp, step(T0 + 21600)])

    steps, problems = parse_forecast(payload, "IU_003")

    assert steps["source_row"].tolist() == [1, 4]
    assert [(p.row, p.column) for p in problems] == [(2, "dt"), (3, "main.temp")]
    assert all(p.table == "weather_forecast" and p.severity == "ERROR" for p in problems)
    assert problems[0].source == "OpenWeatherMap forecast IU_003"
    assert "'dt'" in problems[0].message
    assert problems[1].value == "abc" and "not a number" in problems[1].message
    assert problems[1].record == bad_temp


def test_parse_payload_without_list_is_one_problem() -> None:
    steps, problems = parse_forecast({"cod": "200", "message": 0}, "GU_001")
    assert steps.empty and list(steps.columns) == list(STEP_COLUMNS)
    [problem] = problems
    assert problem.row is None and problem.column == "list"


def test_parse_types_and_closure_rule() -> None:
    payload = forecast_body(
        [
            step(T0, rain=HEAVY_RAIN_MM_PER_3H),
            step(T0 + 10800, rain=HEAVY_RAIN_MM_PER_3H - 0.01),
            step(T0 + 21600, wind=GALE_WIND_MS, gust=25.0),
        ]
    )
    steps, _ = parse_forecast(payload, "GU_004")
    assert {c: str(t) for c, t in steps.dtypes.items()} == STEP_COLUMNS
    assert steps["road_closed"].tolist() == [True, False, True]
    assert steps["step_hours"].tolist() == [3.0, 3.0, 3.0]
    assert steps["weather_main"].tolist() == ["Clear", "Clear", "Clear"]


def test_daily_aggregation_numbers() -> None:
    payload = forecast_body(
        [
            step(T0, rain=8.0, temp=20.0, wind=3.0, gust=5.0),  # 05:30 IST 1 Dec, heavy
            step(T0 + 10800, rain=1.0, temp=26.0, wind=18.0),  # gale, no gust field
            step(T0 + 21600, temp=30.0, wind=2.0, gust=4.0),
            step(T0 + 64800, rain=10.0, temp=18.0, wind=1.0),  # 23:30-02:30 IST: mostly 2 Dec
        ]
    )
    steps, _ = parse_forecast(payload, "GU_004")

    daily = daily_weather(steps).set_index("day")

    first, second = daily.loc[date(2026, 12, 1)], daily.loc[date(2026, 12, 2)]
    assert first["rain_mm"] == 9.0 and first["wind_max_ms"] == 18.0 and first["gust_max_ms"] == 5.0
    assert (first["temp_min_c"], first["temp_max_c"]) == (20.0, 30.0)
    assert first["temp_mean_c"] == pytest.approx(76.0 / 3)
    assert (first["heavy_rain_hours"], first["closed_hours"], first["hours_covered"]) == (3, 6, 9)
    assert second["rain_mm"] == 10.0 and pd.isna(second["gust_max_ms"])
    assert (second["heavy_rain_hours"], second["closed_hours"], second["hours_covered"]) == (
        3,
        3,
        3,
    )

    utc = daily_weather(steps, utc_offset_s=0)
    assert utc["day"].tolist() == [date(2026, 12, 1)]
    assert utc["hours_covered"].tolist() == [12.0]


def test_road_availability_formula() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    p1 = PeriodWindow(1, start, datetime(2026, 12, 2, 1, tzinfo=UTC))  # 25 h
    p2 = PeriodWindow(2, p1.end, datetime(2026, 12, 3, 1, tzinfo=UTC))  # 24 h
    a, _ = parse_forecast(
        forecast_body(
            [
                step(T0, rain=12.0),  # closed, 3 h in P1
                step(T0 + 10800),  # open, 3 h in P1
                step(T0 + 86400, rain=9.0),  # closed, straddles: 1 h in P1, 2 h in P2
            ]
        ),
        "A",
    )
    b, _ = parse_forecast(forecast_body([step(T0 + 21600)]), "B")
    steps = pd.concat([a, b], ignore_index=True)

    def table(closure: Any = 0.0) -> dict[tuple[str, int], dict[str, float]]:
        out = road_availability(steps, [p1, p2], beyond_forecast_closure=closure)
        return {(r["plant_code"], r["time_period"]): r for r in out.to_dict("records")}

    base = table()
    assert base[("A", 1)]["forecast_hours"] == 7.0 and base[("A", 1)]["closed_hours"] == 4.0
    assert base[("A", 1)]["period_hours"] == 25.0
    assert base[("A", 1)]["availability"] == pytest.approx(1 - 4 / 25)
    assert base[("A", 2)]["availability"] == pytest.approx(1 - 2 / 24)
    assert base[("B", 1)]["availability"] == 1.0
    assert base[("B", 2)]["availability"] == 1.0 and base[("B", 2)]["forecast_hours"] == 0.0

    half = table(0.5)
    assert half[("A", 1)]["availability"] == pytest.approx(1 - (4 + 0.5 * 18) / 25)
    assert half[("A", 2)]["availability"] == pytest.approx(1 - (2 + 0.5 * 22) / 24)
    assert half[("B", 1)]["availability"] == pytest.approx(1 - 0.5 * 22 / 25)
    assert half[("B", 2)]["availability"] == pytest.approx(0.5)

    per_plant = table({"A": 1.0})
    assert per_plant[("A", 1)]["availability"] == pytest.approx(1 - (4 + 18) / 25)
    assert per_plant[("A", 2)]["availability"] == pytest.approx(0.0)
    assert per_plant[("B", 2)]["availability"] == 1.0  # not in the mapping: 0

    with pytest.raises(ValueError, match=r"0\.\.1"):
        road_availability(steps, [p1], beyond_forecast_closure=1.5)


# ---- schemas ----------------------------------------------------------------------------------


def test_schema_negative_rain_is_error_and_70_degrees_is_warn() -> None:
    steps, _ = parse_forecast(
        forecast_body([step(T0), step(T0 + 10800, rain=-2.0), step(T0 + 21600, temp=70.0)]),
        "IU_008",
    )

    problems = steps_problems(steps, "OpenWeatherMap forecast IU_008")

    assert [(p.row, p.column, p.severity, p.rule) for p in problems] == [
        (2, "rain_mm", "ERROR", "schema"),
        (3, "temp_c", "WARN", "plausibility"),
    ]
    assert problems[0].record["rain_mm"] == -2.0
    assert problems[1].value == "70.0"


def test_schema_duplicate_step_and_daily_structure() -> None:
    steps, _ = parse_forecast(forecast_body([step(T0), step(T0)]), "IU_008")
    problems = steps_problems(steps, "x")
    assert {p.row for p in problems} == {1, 2}
    assert all(p.severity == "ERROR" for p in problems)

    daily = daily_weather(steps.iloc[:1])
    assert daily_problems(daily, "x") == []
    broken = daily.assign(temp_min_c=40.0, temp_max_c=60.0)
    found = {(p.column, p.severity, p.rule) for p in daily_problems(broken, "x")}
    assert found == {("temp_max_c", "WARN", "plausibility")}
    inverted = daily_problems(daily.assign(temp_min_c=31.0, temp_max_c=30.0), "x")
    assert [(p.column, p.severity, p.rule) for p in inverted] == [
        ("temp_min_c", "ERROR", "schema"),
        ("temp_max_c", "ERROR", "schema"),
    ]
    assert "temp_min_c must not exceed temp_max_c" in inverted[0].message


def test_default_policy_suits_the_free_plan() -> None:
    assert DEFAULT_POLICY.min_interval_s == pytest.approx(1.0)
    assert 429 in DEFAULT_POLICY.retry_statuses
    # Backoff of the retries after the first (0 s): together they span OWM's one-minute block.
    waits = [
        min(DEFAULT_POLICY.backoff_max, DEFAULT_POLICY.backoff_factor * 2**k)
        for k in range(1, DEFAULT_POLICY.retries)
    ]
    assert sum(waits) >= 60 and sum(waits) + 10 < DEFAULT_POLICY.deadline_s
