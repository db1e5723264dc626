"""Cement market price feed: OGD paging and CSV over a real HTTP server on 127.0.0.1, parsing,
statistics, Pandera checks, and sample mode through the same client.

An autouse fixture captures every log record at DEBUG (urllib3 included) and fails the test if
the API key shows up; `raised` checks exception texts and tracebacks the same way.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from werkzeug import Request, Response

from clinker_pipeline.defs.feeds.market.client import (
    CSV,
    OGD_JSON,
    SAMPLE_DIR,
    MarketFetch,
    MarketPriceClient,
)
from clinker_pipeline.defs.feeds.market.parse import (
    BAG_KG,
    PRICE_COLUMNS,
    SPREAD_COLUMNS,
    STATS_COLUMNS,
    market_stats,
    parse_prices,
    regional_spread,
)
from clinker_pipeline.defs.feeds.market.schema import price_problems
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_runtime import drop_error_rows
from clinker_pipeline_tests.helpers import FAST_POLICY, hermetic_http

API_KEY = "579b464db66ec23bdd000001cafe0f1e2d3c4b5aK3y"
SECRETS = (API_KEY, quote(API_KEY, safe=""))
RESOURCE = "/resource/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
FAST = FAST_POLICY


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No proxy between us and 127.0.0.1; every log record checked for the key afterwards."""
    yield from hermetic_http(monkeypatch, caplog, SECRETS)


@pytest.fixture
def server(httpserver_ipv4: Any) -> Any:
    return httpserver_ipv4


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The exception's message, after checking no form of it carries the key."""
    exc = excinfo.value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        for secret in SECRETS:
            assert secret not in text
    return str(exc)


def live(server: Any, path: str = RESOURCE, **kwargs: Any) -> MarketPriceClient:
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("policy", FAST)
    return MarketPriceClient.live(server.url_for(path), **kwargs)


def price_record(city: str, day: str, price: str, **extra: str) -> dict[str, str]:
    return {
        "city": city,
        "state": "Delhi",
        "region": "North",
        "date": day,
        "price_inr_per_bag": price,
        "unit": "INR/50kg bag",
        **extra,
    }


def records(n: int) -> list[dict[str, str]]:
    return [price_record(f"City{i:02d}", "2026-10-01", str(330 + i)) for i in range(n)]


def envelope(page: list[dict], *, total: Any, offset: Any, limit: Any) -> dict[str, Any]:
    """The data.gov.in resource answer: numbers for total/count, strings for limit/offset."""
    return {
        "index_name": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "title": "Cement Retail Prices - City-wise Monthly",
        "desc": "Composed for tests",
        "org_type": "Central",
        "org": ["Test Org"],
        "sector": ["Industries", "Prices"],
        "source": "data.gov.in",
        "catalog_uuid": "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
        "visualizable": "1",
        "active": "1",
        "created": 1705276800,
        "updated": 1795744800,
        "created_date": "2024-01-15T00:00:00Z",
        "updated_date": "2026-11-26T12:00:00Z",
        "external_ws": 0,
        "external_ws_url": "",
        "target_bucket": {"index": "ogd", "type": "x", "field": "x"},
        "field": [{"id": "city", "name": "City", "type": "keyword"}],
        "message": "Resource detail",
        "version": "2.2.0",
        "status": "ok",
        "total": total,
        "count": len(page),
        "limit": limit,
        "offset": offset,
        "records": page,
    }


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class OgdFeed:
    """A fake OGD resource: honours offset/limit (capped at `cap`), remembers every request."""

    def __init__(
        self,
        data: list[dict],
        *,
        cap: int | None = None,
        total: Any = None,
        answer: Callable[[Request, int], Response | None] | None = None,
    ) -> None:
        self.data = data
        self.cap = cap
        self.total = len(data) if total is None else total
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append({"t": time.monotonic(), "args": dict(request.args)})
        if self.answer is not None:
            special = self.answer(request, len(self.calls))
            if special is not None:
                return special
        offset = int(request.args.get("offset", "0"))
        limit = int(request.args.get("limit", "10"))
        if self.cap is not None:
            limit = min(limit, self.cap)
        page = self.data[offset : offset + limit]
        return json_response(envelope(page, total=self.total, offset=str(offset), limit=str(limit)))

    @property
    def offsets(self) -> list[str]:
        return [c["args"].get("offset") for c in self.calls]


# ---- OGD paging -------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [5, "5"], ids=["total-number", "total-string"])
def test_ogd_pages_until_total(server: Any, total: Any) -> None:
    data = records(5)
    feed = OgdFeed(data, total=total)
    server.expect_request(RESOURCE).respond_with_handler(feed)

    fetch = live(server, page_limit=2).fetch()

    assert isinstance(fetch, MarketFetch)
    assert fetch.records == data
    assert (fetch.format, fetch.total, fetch.pages) == (OGD_JSON, 5, 3)
    assert fetch.title == "Cement Retail Prices - City-wise Monthly"
    assert feed.offsets == ["0", "2", "4"]  # and no request for offset 6: total reached
    for call in feed.calls:
        assert call["args"]["limit"] == "2"
        assert call["args"]["format"] == "json"
        assert call["args"]["api-key"] == API_KEY


def test_server_capping_the_limit_loses_no_record(server: Any) -> None:
    """The shared sample key returns ~10 records whatever `limit` says: advance by what came."""
    data = records(25)
    feed = OgdFeed(data, cap=10)
    server.expect_request(RESOURCE).respond_with_handler(feed)

    fetch = live(server, page_limit=500).fetch()

    assert feed.offsets == ["0", "10", "20"]
    assert fetch.records == data
    assert fetch.pages == 3


def test_stops_when_records_run_out_before_total(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    feed = OgdFeed(records(4), total=10)
    server.expect_request(RESOURCE).respond_with_handler(feed)

    fetch = live(server, page_limit=2).fetch()

    assert feed.offsets == ["0", "2", "4"]
    assert len(fetch.records) == 4
    assert fetch.total == 10
    assert any("stopped answering after 4" in r.getMessage() for r in caplog.records)


def test_url_query_parameters_are_sent_on_every_page(server: Any) -> None:
    feed = OgdFeed(records(3))
    server.expect_request(RESOURCE).respond_with_handler(feed)

    live(server, RESOURCE + "?filters%5Bstate%5D=Delhi&offset=99", page_limit=2).fetch()

    assert feed.offsets == ["0", "2"]  # the URL's own offset does not override paging
    assert all(c["args"]["filters[state]"] == "Delhi" for c in feed.calls)


def test_server_ignoring_offset_is_invalid_payload(server: Any) -> None:
    def same_page(request: Request, _: int) -> Response:
        return json_response(envelope(records(2), total=10, offset="0", limit="2"))

    feed = OgdFeed([], answer=same_page)
    server.expect_request(RESOURCE).respond_with_handler(feed)

    with pytest.raises(InvalidPayload) as info:
        live(server, page_limit=2).fetch()

    assert "asked for offset 2 but the server answered offset 0" in raised(info)
    assert len(feed.calls) == 2


def test_status_error_in_http_200_is_source_unavailable(server: Any) -> None:
    body = {"status": "error", "message": "Invalid API key", "version": "2.2.0", "records": []}
    feed = OgdFeed([], answer=lambda r, n: json_response(body))
    server.expect_request(RESOURCE).respond_with_handler(feed)

    with pytest.raises(SourceUnavailable) as info:
        live(server).fetch()

    message = raised(info)
    assert "status 'error'" in message and "Invalid API key" in message
    assert RESOURCE in message
    assert len(feed.calls) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(server: Any, status: int) -> None:
    body = {"status": "error", "message": "Key not authorised for this resource"}
    feed = OgdFeed([], answer=lambda r, n: json_response(body, status))
    server.expect_request(RESOURCE).respond_with_handler(feed)

    with pytest.raises(SourceUnavailable) as info:
        live(server).fetch()

    message = raised(info)
    assert info.value.status == status and not info.value.retryable
    assert f"HTTP {status}" in message and "Key not authorised" in message
    assert len(feed.calls) == 1


def test_429_retry_after_is_honoured(server: Any) -> None:
    def throttle_once(request: Request, n: int) -> Response | None:
        if n == 1:
            return json_response(
                {"status": "error", "message": "Rate limit exceeded"}, 429, {"Retry-After": "1"}
            )
        return None

    feed = OgdFeed(records(3), answer=throttle_once)
    server.expect_request(RESOURCE).respond_with_handler(feed)

    fetch = live(server).fetch()

    assert len(fetch.records) == 3
    assert len(feed.calls) == 2
    assert feed.calls[1]["t"] - feed.calls[0]["t"] >= 0.9  # waited as told, not the 0.01 s backoff


def test_503_gives_up_after_the_retries(server: Any) -> None:
    feed = OgdFeed([], answer=lambda r, n: Response("Service Unavailable", 503))
    server.expect_request(RESOURCE).respond_with_handler(feed)

    with pytest.raises(SourceUnavailable) as info:
        live(server).fetch()

    message = raised(info)
    assert info.value.status == 503 and info.value.retryable
    assert "gave up after 3 attempts" in message
    assert len(feed.calls) == 3


def test_error_text_echoing_the_key_is_scrubbed(server: Any) -> None:
    """A proxy that quotes the request URL (key included) in its error body."""

    def echo(request: Request, _: int) -> Response:
        return json_response({"message": f"bad request {request.url}"}, 400)

    server.expect_request(RESOURCE).respond_with_handler(OgdFeed([], answer=echo))

    with pytest.raises(SourceUnavailable) as info:
        live(server).fetch()

    assert "HTTP 400" in raised(info)


def test_malformed_json_is_invalid_payload(server: Any) -> None:
    text = json.dumps(envelope(records(3), total=3, offset="0", limit="500"))[:-40]
    feed = OgdFeed([], answer=lambda r, n: Response(text, 200, content_type="application/json"))
    server.expect_request(RESOURCE).respond_with_handler(feed)

    with pytest.raises(InvalidPayload) as info:
        live(server).fetch()

    assert "not valid JSON" in raised(info)


def test_2xx_without_records_is_invalid_payload(server: Any) -> None:
    body = {"status": "ok", "message": "Resource detail", "total": 3, "count": 0}
    server.expect_request(RESOURCE).respond_with_handler(
        OgdFeed([], answer=lambda r, n: json_response(body))
    )

    with pytest.raises(InvalidPayload) as info:
        live(server).fetch()

    assert "without a 'records' list" in raised(info)


# ---- CSV --------------------------------------------------------------------------------------

CSV_PATH = "/exports/cement_prices.csv"


def test_csv_is_one_get_of_a_url_ending_in_csv(server: Any) -> None:
    text = (
        "\ufeffcity,state,region,date,price_inr_per_bag,unit\r\n"
        'Delhi,Delhi,North,2026-09-01,"355",INR/50kg bag\r\n'
        '"Navi Mumbai, Thane",Maharashtra,West,2026-09-01,372.50,INR/50kg bag\r\n'
    )
    calls: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        calls.append(dict(request.args))
        return Response(text, 200, content_type="text/csv; charset=utf-8")

    server.expect_request(CSV_PATH).respond_with_handler(handler)
    client = live(server, CSV_PATH)

    fetch = client.fetch()

    assert client.format == CSV
    assert calls == [{"api-key": API_KEY}]  # no paging parameters on a file
    assert (fetch.format, fetch.pages, fetch.total, fetch.first_row) == (CSV, 1, 2, 2)
    assert fetch.records[0] == {
        "city": "Delhi",  # the BOM is gone, so the first field id still matches
        "state": "Delhi",
        "region": "North",
        "date": "2026-09-01",
        "price_inr_per_bag": "355",
        "unit": "INR/50kg bag",
    }
    table, problems = parse_prices(fetch.records, first_row=fetch.first_row)
    assert problems == []
    assert list(table["city"]) == ["Delhi", "Navi Mumbai, Thane"]
    assert list(table["source_row"]) == [2, 3]


def test_csv_export_of_an_ogd_resource_keeps_the_url_parameters(server: Any) -> None:
    calls: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        calls.append(dict(request.args))
        return Response("city,date,price_inr_per_bag\nDelhi,2026-09-01,355\n", 200)

    server.expect_request(RESOURCE).respond_with_handler(handler)

    fetch = live(server, RESOURCE + "?format=csv&limit=10000", fmt="csv").fetch()

    assert calls == [{"format": "csv", "limit": "10000", "api-key": API_KEY}]
    assert fetch.records == [{"city": "Delhi", "date": "2026-09-01", "price_inr_per_bag": "355"}]


def test_csv_row_with_shifted_cells_is_quarantined(server: Any) -> None:
    text = (
        "city,date,price_inr_per_bag\n"
        "Delhi,2026-09-01,355\n"
        "Jaipur,2026-09-01,3,450\n"  # an unquoted thousands separator: one cell too many
    )
    server.expect_request(CSV_PATH).respond_with_data(text, content_type="text/csv")

    fetch = live(server, CSV_PATH).fetch()
    table, problems = parse_prices(fetch.records, first_row=fetch.first_row)

    assert list(table["city"]) == ["Delhi"]
    [problem] = problems
    assert problem.row == 3 and problem.severity == "ERROR"
    assert "line 3 has 4 cells, the header has 3" in problem.message
    assert problem.record is not None and problem.record["city"] == "Jaipur"


def test_csv_header_only_is_zero_records(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server.expect_request(CSV_PATH).respond_with_data(
        "city,date,price_inr_per_bag\n", content_type="text/csv"
    )

    fetch = live(server, CSV_PATH).fetch()

    assert fetch.records == [] and fetch.total == 0
    assert any("header but no rows" in r.getMessage() for r in caplog.records)


def test_csv_empty_body_is_invalid_payload(server: Any) -> None:
    server.expect_request(CSV_PATH).respond_with_data("", content_type="text/csv")

    with pytest.raises(InvalidPayload) as info:
        live(server, CSV_PATH).fetch()

    assert "empty body" in raised(info)


def test_format_choice() -> None:
    url = "https://api.data.gov.in/resource/9a8b7c6d"
    assert MarketPriceClient.live(url, api_key=API_KEY).format == OGD_JSON
    assert MarketPriceClient.live("https://mirror.example/Prices.CSV").format == CSV
    assert MarketPriceClient.live(url, fmt="csv").format == CSV
    assert MarketPriceClient.live(url).path == "/resource/9a8b7c6d"
    with pytest.raises(ValueError, match="format must be"):
        MarketPriceClient.live(url, fmt="xml")


def test_key_in_the_url_is_refused_without_echoing_it() -> None:
    url = f"https://api.data.gov.in/resource/x?api-key={API_KEY}&format=json"
    with pytest.raises(ValueError) as info:
        MarketPriceClient.live(url)
    assert "API key setting" in raised(info)


# ---- parsing ----------------------------------------------------------------------------------


def test_parse_strings_units_and_dates() -> None:
    rows = [
        price_record("Delhi", "2026-03-15", " 365 "),
        price_record("Jaipur", "2026-03", "342.50"),
        price_record("Mumbai", "15-03-2026", "₹ 7,400", unit="INR per tonne"),
        price_record("Pune", "03-04-2026", "7300.00", unit="Rs/MT"),
        price_record("Patna", "15/03/2026", "380", unit=""),
        {"city": "Kolkata", "date": "2026-03-01", "price_inr_per_bag": 371},  # no unit field
    ]

    table, problems = parse_prices(rows, source="mirror.csv")

    assert problems == []
    assert list(table.columns) == list(PRICE_COLUMNS)
    by_city = table.set_index("city")
    assert by_city.loc["Delhi", "price_inr_per_bag"] == 365.0
    assert by_city.loc["Delhi", "price_inr_per_t"] == 7300.0  # 365 * 1000 / 50
    assert by_city.loc["Jaipur", "price_date"] == date(2026, 3, 1)  # YYYY-MM: first of month
    assert by_city.loc["Jaipur", "price_inr_per_t"] == 6850.0
    assert by_city.loc["Mumbai", "price_date"] == date(2026, 3, 15)  # DD-MM-YYYY
    assert by_city.loc["Mumbai", "price_inr_per_t"] == 7400.0  # per tonne taken as is
    assert by_city.loc["Mumbai", "price_inr_per_bag"] == 7400.0 * BAG_KG / 1000 == 370.0
    assert by_city.loc["Pune", "price_date"] == date(2026, 4, 3)  # day first, never month first
    assert by_city.loc["Patna", "price_inr_per_t"] == 7600.0  # blank unit: per bag
    assert by_city.loc["Kolkata", "price_inr_per_bag"] == 371.0
    assert table["price_inr_per_bag"].dtype == "float64"
    assert str(table["source_row"].dtype) == "Int64"
    assert isinstance(table.loc[0, "price_date"], date)


def test_bad_records_become_problems_with_the_raw_record() -> None:
    good = price_record("Delhi", "2026-03-01", "365")
    bad = [
        price_record("", "2026-03-01", "365"),
        price_record("Jaipur", "", "365"),
        price_record("Jaipur", "2026-13-01", "365"),
        price_record("Jaipur", "2026-03-01", "n/a"),
        price_record("Jaipur", "2026-03-02", "0"),
        price_record("Jaipur", "2026-03-03", "-5"),
        price_record("Jaipur", "2026-03-01", "365,50"),
        price_record("Jaipur", "2026-03-01", "365", unit="INR/kg"),
        price_record("Jaipur", "2026-03-01", "365", unit="INR/40kg bag"),
        price_record("Jaipur", "2026-03-01", ""),
    ]

    table, problems = parse_prices([good, *bad], source="feed")
    # a readable but non-positive price is judged by the one Pandera rule, not by the parser
    judged = [
        p
        for p in price_problems(table, "feed")
        if p.severity == "ERROR" and p.column == "price_inr_per_bag"
    ]
    problems = sorted(problems + judged, key=lambda p: p.row)

    assert [p.row for p in problems] == list(range(2, 12))
    assert all(p.severity == "ERROR" and p.table == "cement_prices" for p in problems)
    assert [p.record for p in problems] == bad
    assert [p.column for p in problems] == [
        "city",
        "date",
        "date",
        *(["price_inr_per_bag"] * 4),
        "unit",
        "unit",
        "price_inr_per_bag",
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "city is missing"
    assert "not YYYY-MM-DD" in messages[2] and problems[2].value == "2026-13-01"
    assert messages[3] == "price is not a number"
    assert messages[4].startswith("price must be positive")
    assert messages[5].startswith("price must be positive")
    assert messages[6] == "price is not a number"  # a decimal comma is refused, not read as 36550
    assert "unknown unit" in messages[7] and problems[8].value == "INR/40kg bag"
    assert messages[9] == "price is missing"
    kept = drop_error_rows(table, problems, ("city", "price_date"))
    assert list(kept["city"]) == ["Delhi"]


def test_duplicate_city_and_date_keeps_the_last() -> None:
    rows = [
        price_record("Delhi", "2026-03-01", "360"),
        price_record("Delhi", "2026-04-01", "362"),
        price_record("Delhi", "01-03-2026", "365"),  # same date, other spelling: a correction
    ]

    table, problems = parse_prices(rows)

    assert list(table["price_inr_per_bag"]) == [365.0, 362.0]
    assert list(table["source_row"]) == [3, 2]
    [warn] = problems
    assert (warn.severity, warn.row, warn.record) == ("WARN", 1, rows[0])
    assert "row 3 replaces this one" in warn.message


def test_field_ids_are_configurable() -> None:
    fields = {"city": "centre_name", "date": "month", "price": "rate_rs_per_bag", "region": "zone"}
    rows = [{"centre_name": "Bhopal", "month": "2026-10", "rate_rs_per_bag": "341", "zone": "C"}]

    table, problems = parse_prices(rows, fields)

    assert problems == []
    assert table.loc[0, "city"] == "Bhopal" and table.loc[0, "region"] == "C"
    assert pd.isna(table.loc[0, "state"])  # "state" still looked up under its default id
    assert table.loc[0, "price_inr_per_t"] == 6820.0


def test_no_records_is_an_empty_table_with_the_columns() -> None:
    table, problems = parse_prices([])
    assert table.empty and problems == []
    assert list(table.columns) == list(PRICE_COLUMNS)


# ---- statistics -------------------------------------------------------------------------------


def history(rows: list[tuple[str, str | None, date, float]]) -> pd.DataFrame:
    """A parsed-price table from (city, region, date, INR per tonne)."""
    records = [
        {
            "city": city,
            "date": day.isoformat(),
            "price_inr_per_bag": str(per_t),
            "unit": "INR/t",
            **({"region": region} if region else {}),
        }
        for city, region, day, per_t in rows
    ]
    table, problems = parse_prices(records)
    assert problems == []
    return table


def test_market_stats_on_a_hand_made_series() -> None:
    table = history(
        [
            ("Agra", "North", date(2026, 1, 1), 7000.0),
            ("Agra", "North", date(2026, 2, 1), 7700.0),
            ("Agra", "North", date(2026, 3, 1), 7000.0),
            ("Agra", "North", date(2026, 4, 1), 7350.0),
            ("Vizag", "South", date(2026, 1, 1), 8000.0),
            ("Vizag", "South", date(2026, 3, 1), 8400.0),
        ]
    )

    stats = market_stats(table).set_index("city")

    assert list(market_stats(table).columns) == list(STATS_COLUMNS)
    agra = stats.loc["Agra"]
    assert agra["region"] == "North"
    assert agra["observations"] == 4
    assert (agra["first_date"], agra["last_date"]) == (date(2026, 1, 1), date(2026, 4, 1))
    assert agra["latest_price_inr_per_t"] == 7350.0
    # returns ln 1.1, ln(1/1.1), ln 1.05: mean 0.0162634, squared deviations 0.0062484,
    # 0.0124487, 0.0010580 -> sample variance 0.0098776 -> sd 0.0993857
    assert agra["volatility_pct"] == pytest.approx(9.93857, abs=1e-4)
    # x = 0,1,2,3; Σ dx·dy = 393.75 - 218.75 - 131.25 + 131.25 = 175; Σ dx² = 5
    assert agra["trend_inr_per_t_per_month"] == pytest.approx(35.0)
    assert agra["trend_pct_per_month"] == pytest.approx(35.0 / 7262.5 * 100)  # 0.48193
    vizag = stats.loc["Vizag"]
    assert math.isnan(vizag["volatility_pct"])  # fewer than 3 observations
    assert vizag["trend_inr_per_t_per_month"] == pytest.approx(200.0)  # 400 over two months


def test_market_stats_as_of_ignores_later_prices() -> None:
    table = history(
        [
            ("Agra", "North", date(2026, 1, 1), 7000.0),
            ("Agra", "North", date(2026, 2, 1), 7700.0),
            ("Agra", "North", date(2026, 3, 1), 7000.0),
            ("Vizag", "South", date(2026, 3, 1), 8400.0),
        ]
    )

    stats = market_stats(table, as_of=date(2026, 2, 15))

    assert list(stats["city"]) == ["Agra"]
    row = stats.iloc[0]
    assert row["observations"] == 2 and row["latest_price_inr_per_t"] == 7700.0
    assert math.isnan(row["volatility_pct"])
    assert row["trend_inr_per_t_per_month"] == pytest.approx(700.0)


def test_regional_spread_on_a_hand_made_case() -> None:
    table = history(
        [
            ("Delhi", "North", date(2026, 1, 1), 7000.0),
            ("Delhi", "North", date(2026, 1, 20), 7200.0),  # the latest in January counts
            ("Jaipur", "North", date(2026, 1, 10), 6800.0),
            ("Chandigarh", "North", date(2026, 1, 5), 7400.0),
            ("Delhi", "North", date(2026, 2, 1), 7300.0),
            ("Chennai", "South", date(2026, 1, 1), 8000.0),
            ("Nowhere", None, date(2026, 1, 1), 5000.0),  # no region: in no comparison
        ]
    )

    spread = regional_spread(table)

    assert list(spread.columns) == list(SPREAD_COLUMNS)
    assert list(zip(spread["region"], spread["price_date"], strict=True)) == [
        ("North", date(2026, 1, 20)),
        ("North", date(2026, 2, 1)),
        ("South", date(2026, 1, 1)),
    ]
    january = spread.iloc[0]
    assert january["cities"] == 3
    assert (january["min_price_inr_per_t"], january["max_price_inr_per_t"]) == (6800.0, 7400.0)
    assert january["spread_inr_per_t"] == 600.0
    assert january["spread_pct"] == pytest.approx(600 / (21400 / 3) * 100)  # 8.41121
    assert (january["cheapest_city"], january["dearest_city"]) == ("Jaipur", "Chandigarh")
    south = spread.iloc[2]
    assert (south["cities"], south["spread_inr_per_t"], south["spread_pct"]) == (1, 0.0, 0.0)
    assert south["cheapest_city"] == south["dearest_city"] == "Chennai"


# ---- Pandera checks ---------------------------------------------------------------------------


def test_plausibility_warns_on_900_a_bag_and_a_30pct_jump() -> None:
    table, _ = parse_prices(
        [
            price_record("Delhi", "2026-01-01", "350"),
            price_record("Delhi", "2026-02-01", "455"),  # +30 %
            price_record("Delhi", "2026-03-01", "460"),
            price_record("Jaipur", "2026-01-01", "900"),
            price_record("Jaipur", "2026-03-01", "340"),  # no February: not compared
        ]
    )

    problems = price_problems(table, "feed")

    assert all(p.severity == "WARN" and p.rule == "plausibility" for p in problems)
    by_rule = {(p.row, p.column): p for p in problems}
    assert set(by_rule) == {(4, "price_inr_per_bag"), (2, "price_inr_per_t")}
    assert "outside 200..700" in by_rule[(4, "price_inr_per_bag")].message
    jump = by_rule[(2, "price_inr_per_t")]
    assert jump.message.startswith("Delhi 2026-02-01: price moved +30.0% from Jan 2026")
    assert jump.value == "+30.0%"


def test_history_concatenated_from_runs_is_checked_row_by_row() -> None:
    """Two runs' tables concatenated repeat index labels (0, 0): each row is still found."""
    january, _ = parse_prices([price_record("Delhi", "2026-01-01", "350")])
    february, _ = parse_prices([price_record("Delhi", "2026-02-01", "460")])
    history = pd.concat([january, february]).drop(columns="source_row")

    [jump] = price_problems(history, "history")

    assert jump.row == 2  # position in the table, since there is no source_row
    assert jump.message.startswith("Delhi 2026-02-01: price moved +31.4% from Jan 2026")


def test_structure_errors() -> None:
    table, _ = parse_prices(
        [price_record("Delhi", "2026-01-01", "350"), price_record("Jaipur", "2026-01-01", "340")]
    )
    broken = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    broken.loc[1, "price_date"] = None
    broken["price_inr_per_t"] = broken["price_inr_per_t"].astype(float)
    broken.loc[2, "price_inr_per_t"] = -1.0

    problems = [p for p in price_problems(broken, "history") if p.rule == "schema"]

    assert problems and all(p.severity == "ERROR" for p in problems)
    found = {(p.column, p.message.split(" ")[0]) for p in problems}
    assert ("price_date", "not_nullable") in found
    assert ("price_inr_per_t", "greater_than(0)") in found
    assert any(p.message.startswith("multiple_fields_uniqueness") for p in problems)


# ---- sample mode ------------------------------------------------------------------------------


def test_sample_mode_reads_every_page_through_the_same_code() -> None:
    client = MarketPriceClient.sample()

    fetch = client.fetch()

    assert [p.name for p in client.transport.served] == [
        "cement_prices.offset=0.json",
        "cement_prices.offset=200.json",
    ]
    assert (fetch.format, fetch.pages, fetch.total, len(fetch.records)) == (OGD_JSON, 2, 276, 276)
    assert all(isinstance(v, str) for r in fetch.records for v in r.values())
    table, problems = parse_prices(fetch.records, source="sample")
    assert problems == [] and len(table) == 276
    assert price_problems(table, "sample") == []
    stats = market_stats(table)
    assert len(stats) == 12
    assert set(stats["observations"]) == {23}
    assert set(stats["last_date"]) == {date(2026, 10, 1)}
    assert stats["volatility_pct"].notna().all() and stats["trend_pct_per_month"].notna().all()
    mean_by_region = table.groupby("region")["price_inr_per_bag"].mean()
    assert mean_by_region["South"] > max(mean_by_region["North"], mean_by_region["Central"])
    assert table["price_inr_per_bag"].between(320, 420).all()
    spread = regional_spread(table)
    assert len(spread) == 5 * 23
    assert (spread.loc[spread["region"] == "South", "cities"] == 3).all()


def test_sample_csv_holds_the_same_records() -> None:
    json_fetch = MarketPriceClient.sample().fetch()
    csv_fetch = MarketPriceClient.sample(fmt=CSV).fetch()

    assert csv_fetch.format == CSV
    assert csv_fetch.records == json_fetch.records


def test_sample_payloads_served_over_http_read_the_same(server: Any) -> None:
    """The bundled files are what a live OGD server sends: a loopback server serving them by
    offset gives the live client exactly the sample-mode records."""
    calls: list[str] = []

    def serve(request: Request) -> Response:
        offset = request.args["offset"]
        calls.append(offset)
        body = (SAMPLE_DIR / f"cement_prices.offset={offset}.json").read_text(encoding="utf-8")
        return Response(body, 200, content_type="application/json")

    server.expect_request(RESOURCE).respond_with_handler(serve)

    fetch = live(server, page_limit=200).fetch()

    assert calls == ["0", "200"]
    assert fetch.records == MarketPriceClient.sample().fetch().records


def test_sample_missing_page_is_source_unavailable(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_DIR / "cement_prices.offset=0.json", tmp_path)

    with pytest.raises(SourceUnavailable) as info:
        MarketPriceClient.sample(tmp_path).fetch()

    assert "cement_prices.offset=200.json" in raised(info)
