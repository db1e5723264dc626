"""EIA weekly diesel feed: client against a real HTTP server on 127.0.0.1, parsing, INR
conversion, fuel index, schemas, and sample mode through the same client and parser.

An autouse fixture captures every log record at DEBUG (urllib3 included) and fails the test if
the API key shows up; `raised` checks exception text and traceback the same way.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from werkzeug import Request, Response

from clinker_pipeline.defs.feeds.diesel import client as eia
from clinker_pipeline.defs.feeds.diesel.client import (
    DIESEL_SERIES,
    ROUTE,
    SAMPLE_DIR,
    EiaClient,
    EiaFetch,
)
from clinker_pipeline.defs.feeds.diesel.parse import (
    LITRES_PER_US_GALLON,
    diesel_in_inr,
    fuel_index,
    latest_price,
    missing_fx_problems,
    parse_diesel,
)
from clinker_pipeline.defs.feeds.diesel.schema import diesel_inr_problems, diesel_problems
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.http import HttpPolicy
from clinker_pipeline_tests.helpers import FAST_POLICY, hermetic_http

API_KEY = "eiaK3y-7f3a9c0d1e2b4a5968778695a4b3c2d1"
SECRETS = (API_KEY, quote(API_KEY, safe=""))
FAST = FAST_POLICY
INCOMPLETE = {
    "warning": "incomplete return",
    "description": "The API can only return 5000 rows in JSON format.  Please consider "
    "constraining your request with facet, start, or end, or using offset to paginate results.",
}


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No proxy between us and 127.0.0.1; every log record checked for the key afterwards."""
    yield from hermetic_http(monkeypatch, caplog, SECRETS)


@pytest.fixture
def server(httpserver_ipv4: Any) -> Any:
    return httpserver_ipv4


def client_for(server: Any, *, page_length: int = 5000, policy: HttpPolicy = FAST) -> EiaClient:
    return EiaClient.live(
        server.url_for("/").rstrip("/"), API_KEY, policy=policy, page_length=page_length
    )


def row(period: str, value: Any = "3.712", **extra: Any) -> dict[str, Any]:
    return {
        "period": period,
        "duoarea": "NUS",
        "area-name": "U.S.",
        "product": "EPD2D",
        "product-name": "No 2 Diesel",
        "process": "PTE",
        "process-name": "Retail Sales",
        "series": DIESEL_SERIES,
        "series-description": "U.S. No 2 Diesel Retail Prices (Dollars per Gallon)",
        "value": value,
        "units": "$/GAL",
        **extra,
    }


def weeks(n: int, last: date = date(2026, 11, 23)) -> list[dict[str, Any]]:
    """n rows, newest first, as EIA sends them under sort desc."""
    return [
        row((last - timedelta(days=7 * k)).isoformat(), f"{3.7 + 0.01 * k:.3f}") for k in range(n)
    ]


def envelope(data: list, total: Any, **extra: Any) -> dict[str, Any]:
    return {
        "response": {
            "total": total,
            "dateFormat": "YYYY-MM-DD",
            "frequency": "weekly",
            "data": data,
            "description": "EIA weekly, monthly, and annual average retail prices.",
            **extra,
        },
        "request": {"command": ROUTE, "params": {"frequency": "weekly"}},
        "apiVersion": "2.1.12",
        "ExcelAddInVersion": "2.1.0",
    }


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, headers=headers, content_type="application/json")


def gateway(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class Recorder:
    """A handler that answers from a list of callables and remembers what it was asked."""

    def __init__(self, *answers: Callable[[Request], Response]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append(
            {"t": time.monotonic(), "args": dict(request.args), "headers": dict(request.headers)}
        )
        return self.answers[min(len(self.calls), len(self.answers)) - 1](request)


def serve(server: Any, *answers: Callable[[Request], Response]) -> Recorder:
    handler = Recorder(*answers)
    server.expect_request(ROUTE).respond_with_handler(handler)
    return handler


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The exception's message, after checking no form of it carries the key."""
    exc = excinfo.value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        for secret in SECRETS:
            assert secret not in text
    return str(exc)


# ---- client: paging and request shape ---------------------------------------------------------


def test_pages_by_offset_until_string_total(server: Any) -> None:
    data = weeks(5)
    handler = serve(
        server,
        lambda r: answer(envelope(data[0:2], "5")),
        lambda r: answer(envelope(data[2:4], "5")),
        lambda r: answer(envelope(data[4:5], "5")),
    )

    with client_for(server, page_length=2) as client:
        fetch = client.weekly_diesel(start=date(2026, 1, 1), end=date(2026, 11, 30))

    assert isinstance(fetch, EiaFetch)
    assert fetch.rows == data
    assert (fetch.total, fetch.pages, fetch.warnings) == (5, 3, [])
    assert [c["args"]["offset"] for c in handler.calls] == ["0", "2", "4"]
    first = handler.calls[0]["args"]
    assert first["length"] == "2"
    assert first["frequency"] == "weekly"
    assert first["data[0]"] == "value"
    assert first["facets[series][]"] == "EMD_EPD2D_PTE_NUS_DPG"
    assert first["sort[0][column]"] == "period"
    assert first["sort[0][direction]"] == "desc"
    assert (first["start"], first["end"]) == ("2026-01-01", "2026-11-30")


def test_no_start_or_end_sent_when_not_given(server: Any) -> None:
    handler = serve(server, lambda r: answer(envelope(weeks(1), "1")))

    fetch = client_for(server).weekly_diesel()

    assert len(fetch.rows) == 1 and fetch.pages == 1
    assert "start" not in handler.calls[0]["args"] and "end" not in handler.calls[0]["args"]
    assert handler.calls[0]["args"]["length"] == "5000"


def test_api_key_only_in_query_string(server: Any) -> None:
    handler = serve(server, lambda r: answer(envelope(weeks(1), "1")))

    client = client_for(server)
    client.weekly_diesel()

    call = handler.calls[0]
    assert call["args"]["api_key"] == API_KEY
    assert not any(API_KEY in value for value in call["headers"].values())
    assert API_KEY not in repr(client)


def test_page_empty_before_total_stops_with_a_warning(server: Any) -> None:
    handler = serve(
        server,
        lambda r: answer(envelope(weeks(2), "6")),
        lambda r: answer(envelope([], "6")),
    )

    fetch = client_for(server, page_length=2).weekly_diesel()

    assert len(fetch.rows) == 2 and fetch.total == 6 and fetch.pages == 2
    assert len(handler.calls) == 2
    assert any("6 rows but only 2" in w for w in fetch.warnings)


def test_endless_paging_hits_the_safety_cap(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eia, "MAX_PAGES", 3)
    history = weeks(20)

    def page(request: Request) -> Response:  # fresh rows at every offset, a total never reached
        offset = int(request.args["offset"])
        return answer(envelope(history[offset : offset + 2], "100000"))

    handler = serve(server, page)

    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server, page_length=2).weekly_diesel()

    assert "after 3 pages" in raised(excinfo)
    assert len(handler.calls) == 3


def test_more_rows_than_total_is_an_error_naming_the_source(server: Any) -> None:
    handler = serve(server, lambda r: answer(envelope(weeks(5), "3")))

    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).weekly_diesel()

    message = raised(excinfo)
    assert message.startswith(f"EIA: GET {ROUTE} failed")
    assert "5 rows" in message and "response.total is 3" in message
    assert len(handler.calls) == 1


@pytest.mark.parametrize("total", ["6", None], ids=["with-total", "without-total"])
def test_same_page_for_every_offset_is_an_error_not_a_loop(server: Any, total: str | None) -> None:
    """A server (or caching proxy) that ignores `offset` answers page 1 again and again."""
    body = envelope(weeks(2), total)
    if total is None:
        del body["response"]["total"]
    handler = serve(server, lambda r: answer(body))

    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server, page_length=2).weekly_diesel()

    message = raised(excinfo)
    assert message.startswith(f"EIA: GET {ROUTE} failed")
    assert "page at offset 2 repeats 2" in message and "offset 0" in message
    assert "`offset`" in message
    assert len(handler.calls) == 2


def test_page_longer_than_asked_is_an_error(server: Any) -> None:
    """A server that ignores `length` would make `offset += length` re-read or skip rows."""
    handler = serve(server, lambda r: answer(envelope(weeks(5), "5")))

    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server, page_length=2).weekly_diesel()

    message = raised(excinfo)
    assert "asked for at most 2 rows" in message and "got 5" in message
    assert len(handler.calls) == 1


def test_unknown_facet_is_zero_rows_not_an_error(server: Any) -> None:
    handler = serve(server, lambda r: answer(envelope([], "0")))

    fetch = client_for(server).weekly_diesel(series="EMD_EPD2D_PTE_NUS_DPX")

    assert fetch.rows == [] and fetch.total == 0 and fetch.pages == 1
    assert handler.calls[0]["args"]["facets[series][]"] == "EMD_EPD2D_PTE_NUS_DPX"
    frame, problems = parse_diesel(fetch.rows)
    assert frame.empty and problems == []
    assert list(frame.columns) == ["week", "usd_per_gal", "series", "units", "source_row"]


def test_warnings_in_a_200_are_recorded_and_paging_continues(server: Any) -> None:
    data = weeks(3)
    handler = serve(
        server,
        lambda r: answer({**envelope(data[:2], "3"), "warnings": [INCOMPLETE]}),
        lambda r: answer({**envelope(data[2:], "3"), "warnings": [INCOMPLETE]}),
    )

    fetch = client_for(server, page_length=2).weekly_diesel()

    assert fetch.rows == data and len(handler.calls) == 2
    assert fetch.warnings == [f"incomplete return: {INCOMPLETE['description']}"]


def test_bad_arguments_are_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="API key"):
        EiaClient.live("https://api.eia.gov", "  ")
    with pytest.raises(ValueError, match="page_length"):
        EiaClient.live("https://api.eia.gov", API_KEY, page_length=5001)
    with pytest.raises(ValueError, match="after end"):
        EiaClient.sample().weekly_diesel(start=date(2026, 2, 1), end=date(2026, 1, 1))


def test_default_policy_paces_bursts_below_five_per_second() -> None:
    client = EiaClient.live("https://api.eia.gov", API_KEY)
    try:
        assert client.transport.http.policy.min_interval_s >= 0.2
    finally:
        client.close()


# ---- client: errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("API_KEY_INVALID", "An invalid api_key was supplied. Get one at api.data.gov"),
        (
            "API_KEY_MISSING",
            "No api_key was supplied.  Please register for one at "
            "https://www.eia.gov/opendata/register.php",
        ),
    ],
)
def test_403_message_carries_the_gateway_code(server: Any, code: str, text: str) -> None:
    handler = serve(server, lambda r: answer(gateway(code, text), status=403))

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).weekly_diesel()

    message = raised(excinfo)
    assert excinfo.value.status == 403 and not excinfo.value.retryable
    assert f"{code}: " in message and "HTTP 403" in message
    assert ROUTE.rstrip("/") in message
    assert len(handler.calls) == 1


def test_429_over_rate_limit_is_retried(server: Any) -> None:
    handler = serve(
        server,
        lambda r: answer(gateway("OVER_RATE_LIMIT", "You have exceeded your rate limit."), 429),
        lambda r: answer(envelope(weeks(2), "2")),
    )

    fetch = client_for(server).weekly_diesel()

    assert len(fetch.rows) == 2
    assert len(handler.calls) == 2


def test_429_retry_after_is_honoured(server: Any) -> None:
    handler = serve(
        server,
        lambda r: answer(
            gateway("OVER_RATE_LIMIT", "You have exceeded your rate limit."),
            429,
            headers={"Retry-After": "1"},
        ),
        lambda r: answer(envelope(weeks(1), "1")),
    )

    fetch = client_for(server).weekly_diesel()

    assert len(fetch.rows) == 1
    waited = handler.calls[1]["t"] - handler.calls[0]["t"]
    assert 0.9 <= waited < 2.5


def test_429_that_never_clears_names_the_code(server: Any) -> None:
    handler = serve(
        server, lambda r: answer(gateway("OVER_RATE_LIMIT", "Rate limit exceeded."), 429)
    )

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).weekly_diesel()

    assert "OVER_RATE_LIMIT: Rate limit exceeded." in raised(excinfo)
    assert excinfo.value.status == 429 and excinfo.value.retryable
    assert len(handler.calls) == FAST.retries + 1


def test_500_until_retries_are_spent(server: Any) -> None:
    handler = serve(server, lambda r: answer({"error": "Internal error.", "code": 500}, 500))

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).weekly_diesel()

    message = raised(excinfo)
    assert excinfo.value.status == 500
    assert "HTTP 500" in message and "Internal error." in message
    assert len(handler.calls) == FAST.retries + 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {
                "error": "Invalid frequency 'hourly' provided. The only valid frequencies are "
                "'weekly', 'monthly', and 'annual'.",
                "code": 400,
            },
            "Invalid frequency 'hourly' provided",
        ),
        (404, {"error": "Not found.", "code": 404}, "Not found."),
    ],
)
def test_api_errors_show_their_text(server: Any, status: int, body: Any, expected: str) -> None:
    handler = serve(server, lambda r: answer(body, status))

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).weekly_diesel()

    message = raised(excinfo)
    assert excinfo.value.status == status
    assert f"HTTP {status}" in message and expected in message
    assert len(handler.calls) == 1


@pytest.mark.parametrize(
    ("body", "expected", "status"),
    [
        (gateway("API_KEY_INVALID", "An invalid api_key was supplied."), "API_KEY_INVALID", 403),
        (
            {"error": "Invalid frequency 'hourly' provided.", "code": 400},
            "Invalid frequency 'hourly' provided.",
            400,
        ),
    ],
)
def test_200_with_an_error_body_raises(server: Any, body: Any, expected: str, status: int) -> None:
    serve(server, lambda r: answer(body, 200))

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).weekly_diesel()

    message = raised(excinfo)
    assert expected in message and "HTTP 200" in message
    assert excinfo.value.status == status


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"response": {"total": "3", "data": [{"period": "2026-11-23"', "not valid JSON"),
        ({"response": {"total": "3", "dateFormat": "YYYY-MM-DD"}}, "no response.data"),
        ({"request": {"command": ROUTE}, "apiVersion": "2.1.12"}, "no response.data"),
        (envelope(weeks(1), "many"), "not a count"),
    ],
)
def test_malformed_answers_are_invalid_payload(server: Any, body: Any, expected: str) -> None:
    serve(server, lambda r: answer(body))

    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).weekly_diesel()

    assert expected in raised(excinfo)


# ---- parsing ----------------------------------------------------------------------------------


def test_value_as_string_and_as_number_both_parse() -> None:
    frame, problems = parse_diesel(
        [row("2026-11-23", "3.712"), row("2026-11-16", 3.745), row("2026-11-09", 4)]
    )

    assert problems == []
    assert [d.isoformat() for d in frame["week"]] == ["2026-11-09", "2026-11-16", "2026-11-23"]
    assert frame["usd_per_gal"].tolist() == [4.0, 3.745, 3.712]
    assert frame["source_row"].tolist() == [3, 2, 1]
    assert str(frame["source_row"].dtype) == "Int64"
    assert all(isinstance(d, date) for d in frame["week"])
    assert set(frame["units"]) == {"$/GAL"} and set(frame["series"]) == {DIESEL_SERIES}


@pytest.mark.parametrize(
    ("bad", "column", "reason"),
    [
        (row("2026-11-16", None), "value", "null"),
        ({k: v for k, v in row("2026-11-16").items() if k != "value"}, "value", "no value"),
        (row("2026-11-16", "abc"), "value", "not a number"),
        (row("2026-11-16", "NaN"), "value", "not a finite"),
        (row("2026-11-16", "-3.1"), "value", "negative"),
        (row("2026-11", "3.7"), "period", "not a YYYY-MM-DD"),
        (row("2026-02-30", "3.7"), "period", "not a calendar date"),
    ],
)
def test_bad_rows_become_problems_with_the_raw_record(bad: dict, column: str, reason: str) -> None:
    rows = [row("2026-11-23", "3.712"), bad, row("2026-11-09", "3.80")]

    frame, problems = parse_diesel(rows)

    assert [d.isoformat() for d in frame["week"]] == ["2026-11-09", "2026-11-23"]
    [problem] = problems
    assert problem.severity == "ERROR" and problem.table == "diesel_prices"
    assert problem.source == "EIA weekly diesel"
    assert (problem.row, problem.column) == (2, column)
    assert reason in problem.message
    assert problem.record == bad


def test_non_object_record_is_a_problem() -> None:
    frame, problems = parse_diesel([row("2026-11-23"), "3.7"])  # type: ignore[list-item]

    assert len(frame) == 1
    assert problems[0].row == 2 and problems[0].record == {"value": "3.7"}


def test_duplicate_week_keeps_the_first_and_warns() -> None:
    first = row("2026-11-16", "3.745")
    repeat = row("2026-11-16", "3.750")

    frame, problems = parse_diesel([row("2026-11-23"), first, repeat])

    assert len(frame) == 2
    assert frame.loc[frame["week"] == date(2026, 11, 16), "usd_per_gal"].item() == 3.745
    [problem] = problems
    assert problem.severity == "WARN" and problem.row == 3
    assert "2026-11-16" in problem.message and "row 2" in problem.message
    assert problem.record == repeat


# ---- INR conversion, fuel index ---------------------------------------------------------------


def _diesel(*pairs: tuple[str, float]) -> pd.DataFrame:
    frame, problems = parse_diesel([row(week, str(value)) for week, value in pairs])
    assert problems == []
    return frame


def test_diesel_in_inr_uses_latest_rate_on_or_before_each_week() -> None:
    diesel = _diesel(
        ("2026-01-05", 3.0), ("2026-01-12", 4.0), ("2026-01-19", 3.5), ("2026-01-26", 4.2)
    )
    fx = pd.DataFrame(
        {
            "date": [date(2026, 1, 9), date(2026, 1, 12), date(2026, 1, 16), date(2026, 1, 23)],
            "rate": [80.0, 82.0, None, 85.0],
        }
    )

    out = diesel_in_inr(diesel, fx)

    assert list(out.columns)[-3:] == ["usd_inr", "fx_date", "inr_per_litre"]
    # 2026-01-05: the first rate is 2026-01-09, after the week -> not used
    assert math.isnan(out.loc[0, "usd_inr"]) and math.isnan(out.loc[0, "inr_per_litre"])
    assert out.loc[0, "fx_date"] is None
    # 2026-01-12: a rate dated the same day counts; 4.0 * 82 / 3.785411784 = 86.6484...
    assert out.loc[1, "fx_date"] == date(2026, 1, 12) and out.loc[1, "usd_inr"] == 82.0
    assert out.loc[1, "inr_per_litre"] == pytest.approx(86.64843, abs=1e-4)
    # 2026-01-19: the 01-16 rate is null, so 01-12's 82.0 still applies: 3.5 * 82 / 3.7854... = 75.8174...
    assert out.loc[2, "fx_date"] == date(2026, 1, 12)
    assert out.loc[2, "inr_per_litre"] == pytest.approx(75.81738, abs=1e-4)
    # 2026-01-26: 4.2 * 85 / 3.785411784 = 94.3094...
    assert out.loc[3, "inr_per_litre"] == pytest.approx(94.30942, abs=1e-4)
    assert out.loc[3, "inr_per_litre"] == pytest.approx(4.2 * 85.0 / LITRES_PER_US_GALLON)

    [gap] = missing_fx_problems(out)
    assert gap.severity == "WARN" and "2026-01-05" in gap.message
    assert latest_price(out)["week"] == date(2026, 1, 26)


def test_latest_price_skips_weeks_without_inr_and_fails_when_none() -> None:
    diesel = _diesel(("2026-01-05", 3.0), ("2026-01-12", 4.0))
    fx = pd.DataFrame({"date": [date(2026, 1, 6)], "rate": [80.0]})
    out = diesel_in_inr(diesel, fx)
    out.loc[out["week"] == date(2026, 1, 12), "inr_per_litre"] = float("nan")
    out.loc[out["week"] == date(2026, 1, 5), "inr_per_litre"] = 60.0

    assert latest_price(out)["week"] == date(2026, 1, 5)
    with pytest.raises(ValueError, match="no week"):
        latest_price(diesel_in_inr(diesel, fx.iloc[0:0]))


def test_fuel_index_formula_and_validation() -> None:
    assert fuel_index(90.0, 90.0) == pytest.approx(1.0)
    assert fuel_index(99.0, 90.0) == pytest.approx(1.035)  # +10 % diesel, 35 % share
    assert fuel_index(81.0, 90.0, fuel_share=0.5) == pytest.approx(0.95)
    assert fuel_index(120.0, 80.0, fuel_share=1.0) == pytest.approx(1.5)
    assert fuel_index(120.0, 80.0, fuel_share=0.0) == pytest.approx(1.0)
    for args in ((90.0, 0.0), (90.0, -5.0), (90.0, 90.0, 1.2), (90.0, 90.0, -0.1)):
        with pytest.raises(ValueError):
            fuel_index(*args)
    with pytest.raises(ValueError):
        fuel_index(float("nan"), 90.0)


# ---- schemas ----------------------------------------------------------------------------------


def test_sample_like_history_is_clean() -> None:
    diesel = _diesel(("2026-11-09", 3.80), ("2026-11-16", 3.745), ("2026-11-23", 3.712))
    assert diesel_problems(diesel, "EIA weekly diesel") == []


def test_plausibility_warns_on_a_30_percent_jump_naming_the_week() -> None:
    diesel = _diesel(("2026-11-09", 3.80), ("2026-11-16", 3.75), ("2026-11-23", 4.875))

    problems = diesel_problems(diesel, "EIA weekly diesel")

    [jump] = problems
    assert (jump.severity, jump.rule, jump.column) == ("WARN", "plausibility", "week")
    assert "2026-11-23" in jump.message and "2026-11-16" in jump.message
    assert "+30.0%" in jump.message
    assert jump.row == 3  # source_row of the 2026-11-23 record


def test_plausibility_warns_on_12_dollars_per_gallon() -> None:
    diesel = _diesel(("2026-11-16", 3.75), ("2026-11-23", 12.0), ("2026-11-30", 3.7))

    problems = diesel_problems(diesel, "EIA weekly diesel")

    assert all(p.severity == "WARN" and p.rule == "plausibility" for p in problems)
    ranges = [p for p in problems if p.column == "usd_per_gal"]
    assert len(ranges) == 1 and ranges[0].value == "12.0" and ranges[0].row == 2
    assert {p.row for p in problems if p.column == "week"} == {2, 3}


def test_structure_errors_on_duplicate_week_and_zero_price() -> None:
    diesel = _diesel(("2026-11-16", 3.75), ("2026-11-23", 3.7))
    diesel.loc[1, "week"] = date(2026, 11, 16)
    diesel.loc[0, "usd_per_gal"] = 0.0

    problems = [p for p in diesel_problems(diesel, "EIA") if p.severity == "ERROR"]

    assert all(p.rule == "schema" for p in problems)
    assert {p.column for p in problems} == {"week", "usd_per_gal"}


def test_inr_table_checks() -> None:
    diesel = _diesel(("2026-11-16", 3.75), ("2026-11-23", 3.7))
    out = diesel_in_inr(diesel, pd.DataFrame({"date": [date(2026, 11, 1)], "rate": [84.0]}))
    assert diesel_inr_problems(out, "EIA") == []

    cents = out.copy()
    cents.loc[1, "inr_per_litre"] = 8210.0
    [warn] = diesel_inr_problems(cents, "EIA")
    assert (warn.severity, warn.rule, warn.column) == ("WARN", "plausibility", "inr_per_litre")

    ahead = out.copy()
    ahead.loc[0, "fx_date"] = date(2026, 11, 20)
    errors = [p for p in diesel_inr_problems(ahead, "EIA") if p.severity == "ERROR"]
    [error] = errors
    assert (error.row, error.column) == (1, "fx_date")  # source_row of 2026-11-16
    assert error.value == "2026-11-20"


# ---- sample mode ------------------------------------------------------------------------------


def test_sample_mode_pages_through_both_files() -> None:
    with EiaClient.sample() as client:
        fetch = client.weekly_diesel()
        served = [p.name for p in client.transport.served]

    assert served == ["diesel_weekly.offset=0.json", "diesel_weekly.offset=100.json"]
    assert client.page_length == 100
    assert (fetch.total, fetch.pages, len(fetch.rows), fetch.warnings) == (152, 2, 152, [])
    frame, problems = parse_diesel(fetch.rows)
    assert problems == []
    assert len(frame) == 152
    assert frame["week"].iloc[0] == date(2024, 1, 1)
    assert frame["week"].iloc[-1] == date(2026, 11, 23)
    assert all(d.weekday() == 0 for d in frame["week"])
    assert frame["usd_per_gal"].between(3.4, 4.6).all()
    assert diesel_problems(frame, "EIA sample") == []
    fx = pd.DataFrame({"date": [date(2023, 12, 29)], "rate": [83.2]})
    inr = diesel_in_inr(frame, fx)
    assert diesel_inr_problems(inr, "EIA sample") == []
    assert latest_price(inr)["inr_per_litre"] == pytest.approx(3.712 * 83.2 / LITRES_PER_US_GALLON)


def test_sample_files_are_the_wire_format() -> None:
    first = json.loads((SAMPLE_DIR / "diesel_weekly.offset=0.json").read_text())
    assert first["response"]["total"] == "152"
    assert first["response"]["dateFormat"] == "YYYY-MM-DD"
    assert "api_key" not in first["request"]["params"]
    record = first["response"]["data"][0]
    assert isinstance(record["value"], str)
    assert record["period"] == "2026-11-23" and record["series"] == DIESEL_SERIES


def test_sample_mode_missing_page_is_source_unavailable(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_DIR / "diesel_weekly.offset=0.json", tmp_path)

    with pytest.raises(SourceUnavailable, match=r"diesel_weekly\.offset=100\.json"):
        EiaClient.sample(tmp_path).weekly_diesel()
