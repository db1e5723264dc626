"""FX (Frankfurter), World Bank CPI and manual CSV indicators: clients on loopback, parsers, schemas.

The HTTP tests run real servers on 127.0.0.1 (pytest-httpserver) that answer in each provider's
wire format, including its error shapes (Frankfurter's 404/422 JSON messages, the World Bank's
HTTP-200 error array and `[meta, null]`) and paging. An autouse fixture fails any test in which
the FX mirror's API key reaches a log record (DEBUG, urllib3 included); `raised` checks
exception texts and tracebacks for it.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from werkzeug import Request, Response

from clinker_pipeline.defs.feeds.fx.client import FxClient
from clinker_pipeline.defs.feeds.fx.parse import (
    FX_COLUMNS,
    latest_rate,
    parse_fx_latest,
    parse_fx_timeseries,
)
from clinker_pipeline.defs.feeds.fx.schema import fx_problems
from clinker_pipeline.defs.feeds.indicators.client import CPI_INFLATION, WorldBankClient
from clinker_pipeline.defs.feeds.indicators.parse import (
    MANUAL_COLUMNS,
    MANUAL_SAMPLE_DIR,
    WORLDBANK_COLUMNS,
    parse_manual_csv,
    parse_worldbank,
)
from clinker_pipeline.defs.feeds.indicators.schema import manual_problems, worldbank_problems
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline_tests.helpers import FAST_POLICY, hermetic_http

API_KEY = "fx-M1rr0r-k3y!/+="
FAST = FAST_POLICY
WB_PATH = f"/v2/country/IND/indicator/{CPI_INFLATION}"


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No proxy between us and 127.0.0.1; no log record may carry the API key."""
    yield from hermetic_http(monkeypatch, caplog, (API_KEY, "fx-M1rr0r"))


@pytest.fixture
def server(httpserver_ipv4: Any) -> Any:
    return httpserver_ipv4


def base_url(server: Any) -> str:
    return server.url_for("/").rstrip("/")


def fx_live(server: Any, api_key: str = "") -> FxClient:
    return FxClient.live(base_url(server), api_key=api_key, policy=FAST)


def wb_live(server: Any, per_page: int = 100) -> WorldBankClient:
    return WorldBankClient.live(base_url(server), policy=FAST, per_page=per_page)


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, headers=headers, content_type="application/json")


class Recorder:
    """Answers from a list of callables (the last one repeats) and remembers every request."""

    def __init__(self, *answers: Callable[[Request], Response]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append({"t": time.monotonic(), "path": request.path, "args": dict(request.args)})
        return self.answers[min(len(self.calls), len(self.answers)) - 1](request)


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The exception's message, after checking that no form of it carries the API key."""
    exc = excinfo.value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        assert API_KEY not in text
        assert "fx-M1rr0r" not in text
    return str(exc)


def timeseries_payload(rates: dict[str, Any], base: str = "USD") -> dict[str, Any]:
    days = sorted(rates)
    return {
        "amount": 1.0,
        "base": base,
        "start_date": days[0] if days else None,
        "end_date": days[-1] if days else None,
        "rates": rates,
    }


def wb_row(year: int, value: Any, **extra: Any) -> dict[str, Any]:
    row = {
        "indicator": {"id": CPI_INFLATION, "value": "Inflation, consumer prices (annual %)"},
        "country": {"id": "IN", "value": "India"},
        "countryiso3code": "IND",
        "date": str(year),
        "value": value,
        "unit": "",
        "obs_status": "",
        "decimal": 1,
    }
    row.update(extra)
    return row


def wb_meta(page: int, pages: int, per_page: int, total: int) -> dict[str, Any]:
    return {
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "total": total,
        "sourceid": "2",
        "lastupdated": "2026-10-15",
    }


def fx_frame(rows: list[tuple[date, float]], base: str = "USD", quote: str = "INR") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series([d for d, _ in rows], dtype=object),
            "base": pd.array([base] * len(rows), dtype="string"),
            "quote": pd.array([quote] * len(rows), dtype="string"),
            "rate": pd.array([r for _, r in rows], dtype="float64"),
            "source_row": pd.array(range(1, len(rows) + 1), dtype="Int64"),
        }
    )


PMI_HEADER = "month,value,unit,source\n"
PMI_SOURCE = "HSBC India Manufacturing PMI press release"


def pmi_csv(*lines: str) -> str:
    return PMI_HEADER + "".join(f"{line}\n" for line in lines)


# ---- Frankfurter: requests and parsing --------------------------------------------------------


def test_fx_timeseries_sends_v1_range_path_and_params_and_parses(server: Any) -> None:
    rates = {
        "2024-01-03": {"INR": 83.21},
        "2023-12-29": {"INR": 83.12},  # start snapped back before the requested 2024-01-01
        "2024-01-02": {"INR": 83.3},
    }
    handler = Recorder(lambda r: reply(timeseries_payload(rates)))
    server.expect_request("/v1/2024-01-01..2024-01-03").respond_with_handler(handler)

    payload = fx_live(server).timeseries(date(2024, 1, 1), date(2024, 1, 3))
    frame, problems = parse_fx_timeseries(payload)

    assert [c["args"] for c in handler.calls] == [{"base": "USD", "symbols": "INR"}]
    assert payload["rates"] == rates
    assert problems == []
    assert list(frame.columns) == list(FX_COLUMNS)
    assert list(frame["date"]) == [date(2023, 12, 29), date(2024, 1, 2), date(2024, 1, 3)]
    assert list(frame["rate"]) == [83.12, 83.3, 83.21]
    assert list(frame["source_row"]) == [2, 3, 1]  # position in the payload, kept after sorting
    assert set(frame["base"]) == {"USD"} and set(frame["quote"]) == {"INR"}
    assert str(frame["source_row"].dtype) == "Int64" and frame["rate"].dtype == "float64"
    assert fx_problems(frame, "FX USD/INR") == []


def test_fx_latest_sends_base_and_symbols_and_keeps_lagging_date(server: Any) -> None:
    handler = Recorder(
        lambda r: reply(
            {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"INR": 84.62}}
        )
    )
    server.expect_request("/v1/latest").respond_with_handler(handler)

    payload = fx_live(server).latest()
    frame, problems = parse_fx_latest(payload)

    assert handler.calls[0]["path"] == "/v1/latest"
    assert handler.calls[0]["args"] == {"base": "USD", "symbols": "INR"}
    assert problems == []
    assert frame.to_dict("records") == [
        {"date": date(2026, 11, 26), "base": "USD", "quote": "INR", "rate": 84.62, "source_row": 1}
    ]
    assert latest_rate(frame) == (date(2026, 11, 26), 84.62)


def test_fx_404_not_found_message_surfaces_without_retry(server: Any) -> None:
    handler = Recorder(lambda r: reply({"message": "not found"}, status=404))
    server.expect_request("/v1/latest").respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        fx_live(server).latest(quote="XYZ")

    text = raised(excinfo)
    assert "HTTP 404" in text and "not found" in text and "XYZ" in text
    assert excinfo.value.status == 404 and not excinfo.value.retryable
    assert len(handler.calls) == 1


def test_fx_422_json_message_surfaces(server: Any) -> None:
    message = "invalid currency code: USX"
    server.expect_request("/v1/latest").respond_with_json({"message": message}, status=422)

    with pytest.raises(SourceUnavailable) as excinfo:
        fx_live(server).latest(base="USX")

    text = raised(excinfo)
    assert message in text and "HTTP 422" in text
    assert excinfo.value.status == 422


def test_fx_quote_silently_absent_is_invalid_payload(server: Any) -> None:
    server.expect_request("/v1/2024-01-01..2024-01-03").respond_with_json(
        timeseries_payload({"2024-01-02": {}, "2024-01-03": {}})
    )
    server.expect_request("/v1/latest").respond_with_json(
        {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {}}
    )
    client = fx_live(server)

    with pytest.raises(InvalidPayload) as series_exc:
        client.timeseries(date(2024, 1, 1), date(2024, 1, 3))
    with pytest.raises(InvalidPayload) as latest_exc:
        client.latest()

    for excinfo in (series_exc, latest_exc):
        text = raised(excinfo)
        assert "INR is absent" in text and "does not publish USD/INR" in text


def test_fx_latest_shaped_answer_at_a_series_path_is_one_day(server: Any) -> None:
    """Frankfurter mirrors answer a range that holds one published day (or a proxy rewrites the
    range to `latest`) with `{"date": ..., "rates": {"INR": ...}}`: that is USD/INR, one day."""
    handler = Recorder(
        lambda r: reply(
            {"amount": 1.0, "base": "USD", "date": "2024-01-02", "rates": {"INR": 83.3}}
        )
    )
    server.expect_request("/v1/2024-01-01..2024-01-03").respond_with_handler(handler)

    payload = fx_live(server).timeseries(date(2024, 1, 1), date(2024, 1, 3))
    frame, problems = parse_fx_timeseries(payload)

    assert problems == []
    assert frame.to_dict("records") == [
        {"date": date(2024, 1, 2), "base": "USD", "quote": "INR", "rate": 83.3, "source_row": 1}
    ]
    assert (payload["start_date"], payload["end_date"]) == ("2024-01-02", "2024-01-02")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"amount": 1.0, "base": "USD", "date": "2024-02-09", "rates": {"INR": 83.0}},
            "dated 2024-02-09, after the requested end 2024-01-03",
        ),
        (
            {"amount": 1.0, "base": "USD", "rates": {"INR": 83.0}},
            "one day's rates without a valid 'date'",
        ),
        (
            {"amount": 1.0, "base": "USD", "date": "2024-01-02", "rates": {"GBP": 0.79}},
            "INR is absent from every day's rates: the source does not publish USD/INR",
        ),
    ],
    ids=["after-end", "no-date", "no-inr"],
)
def test_fx_latest_shaped_answer_that_cannot_be_used_says_why(
    server: Any, body: Any, expected: str
) -> None:
    server.expect_request("/v1/2024-01-01..2024-01-03").respond_with_json(body)

    with pytest.raises(InvalidPayload) as excinfo:
        fx_live(server).timeseries(date(2024, 1, 1), date(2024, 1, 3))

    assert expected in raised(excinfo)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"amount": 1.0, "base": "USD", "date": "2026-11-26"}, "no 'rates' object"),
        ({"amount": 1.0, "base": "EUR", "date": "2026-11-26", "rates": {"INR": 90.1}}, "'EUR'"),
        ({"amount": 100, "base": "USD", "date": "2026-11-26", "rates": {"INR": 8462}}, "amount"),
        ([{"INR": 84.62}], "expected a JSON object"),
    ],
)
def test_fx_2xx_without_usable_rates_is_invalid_payload(
    server: Any, body: Any, expected: str
) -> None:
    server.expect_request("/v1/latest").respond_with_json(body)

    with pytest.raises(InvalidPayload) as excinfo:
        fx_live(server).latest()

    assert expected in raised(excinfo)


def test_fx_5xx_is_retried_then_succeeds(server: Any) -> None:
    ok = {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"INR": 84.62}}
    handler = Recorder(
        lambda r: Response("<html><title>502 Bad Gateway</title></html>", status=502),
        lambda r: reply({"message": "upstream busy"}, status=503),
        lambda r: reply(ok),
    )
    server.expect_request("/v1/latest").respond_with_handler(handler)

    assert fx_live(server).latest()["rates"] == {"INR": 84.62}
    assert len(handler.calls) == 3


def test_fx_429_retry_after_is_honoured(server: Any) -> None:
    ok = {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"INR": 84.62}}
    handler = Recorder(
        lambda r: reply({"message": "slow down"}, status=429, headers={"Retry-After": "1"}),
        lambda r: reply(ok),
    )
    server.expect_request("/v1/latest").respond_with_handler(handler)

    assert fx_live(server).latest()["date"] == "2026-11-26"
    first, second = handler.calls
    assert second["t"] - first["t"] >= 0.9  # the policy's own backoff is at most 0.05 s


def test_fx_api_key_is_sent_to_mirror_but_never_shown(server: Any) -> None:
    handler = Recorder(
        lambda r: reply(
            {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"INR": 84.6}}
        ),
        lambda r: reply({"message": "not found"}, status=404),
        lambda r: reply({"message": f"key {API_KEY} over quota"}, status=503),
    )
    server.expect_request("/mirror/v1/latest").respond_with_handler(handler)
    client = FxClient.live(f"{base_url(server)}/mirror", api_key=API_KEY, policy=FAST)

    client.latest()
    with pytest.raises(SourceUnavailable) as not_found:
        client.latest()
    with pytest.raises(SourceUnavailable) as busy:  # the server even echoes the key back
        client.latest()

    assert handler.calls[0]["args"] == {"base": "USD", "symbols": "INR", "api_key": API_KEY}
    assert "not found" in raised(not_found)
    busy_text = raised(busy)
    assert "HTTP 503" in busy_text and "over quota" in busy_text
    assert len(handler.calls) == 2 + 1 + FAST.retries
    assert "api_key" not in repr(client)


def test_fx_without_key_sends_no_key_param(server: Any) -> None:
    handler = Recorder(
        lambda r: reply(
            {"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"INR": 84.6}}
        )
    )
    server.expect_request("/v1/latest").respond_with_handler(handler)

    fx_live(server, api_key="").latest()

    assert "api_key" not in handler.calls[0]["args"]


def test_parse_fx_quarantines_bad_days_with_the_raw_record() -> None:
    payload = timeseries_payload(
        {
            "2024-01-02": {"INR": 83.3},
            "2024-13-01": {"INR": 83.1},
            "2024-01-04": {"INR": "n/a"},
            "2024-01-05": {"INR": 0},
            "2024-01-08": {"INR": -83.0},
            "2024-01-09": {"EUR": 0.91},
            "2024-01-10": {"INR": True},
        }
    )

    frame, problems = parse_fx_timeseries(payload)

    # what cannot be read is the parser's; a readable but non-positive rate is left to the one
    # Pandera rule (rate > 0), so that rule is written once
    assert list(frame["date"]) == [date(2024, 1, 2), date(2024, 1, 5), date(2024, 1, 8)]
    assert [(p.row, p.column, p.severity) for p in problems] == [
        (2, "date", "ERROR"),
        (3, "rate", "ERROR"),
        (6, "rate", "ERROR"),
        (7, "rate", "ERROR"),
    ]
    assert all(p.table == "fx_rates" and p.source == "FX USD/INR" for p in problems)
    assert problems[0].record == {"date": "2024-13-01", "rates": {"INR": 83.1}}
    assert "not a number" in problems[1].message
    assert "no INR rate" in problems[2].message
    schema = [p for p in fx_problems(frame, "FX USD/INR") if p.severity == "ERROR"]
    assert sorted((p.row, p.column) for p in schema) == [(4, "rate"), (5, "rate")]
    assert all("> 0" in p.message for p in schema)
    assert [p.record for p in schema] == [
        {"date": "2024-01-05", "rates": {"INR": 0}},
        {"date": "2024-01-08", "rates": {"INR": -83.0}},
    ]


def test_fx_sample_mode_runs_the_same_client_and_parsers() -> None:
    with FxClient.sample() as client:
        series, series_problems = parse_fx_timeseries(
            client.timeseries(date(2024, 1, 1), date(2026, 11, 27))
        )
        latest, latest_problems = parse_fx_latest(client.latest())

    assert [f.name for f in client.transport.served] == ["timeseries.json", "latest.json"]
    assert series_problems == [] and latest_problems == []
    assert fx_problems(series, "FX USD/INR") == [] and fx_problems(latest, "FX USD/INR") == []
    days = list(series["date"])
    assert len(days) > 700 and all(d.weekday() < 5 for d in days)
    assert days[0] == date(2023, 12, 29) and days[-1] == date(2026, 11, 26)
    assert date(2024, 12, 25) not in days and date(2025, 5, 1) not in days
    assert 82.0 < series["rate"].iloc[0] < 83.5 and 84.0 < series["rate"].iloc[-1] < 85.2
    assert latest_rate(series) == latest_rate(latest) == (date(2026, 11, 26), 84.62)
    assert latest_rate(series, on=date(2026, 11, 22)) == (  # a Sunday: Friday's rate
        date(2026, 11, 20),
        float(series.loc[series["date"] == date(2026, 11, 20), "rate"].iloc[0]),
    )


def test_fx_sample_mode_applies_the_live_checks(tmp_path: Path) -> None:
    (tmp_path / "latest.json").write_text(
        json.dumps({"amount": 1.0, "base": "USD", "date": "2026-11-26", "rates": {"EUR": 0.95}})
    )

    with pytest.raises(InvalidPayload, match="INR is absent"):
        FxClient.sample(tmp_path).latest()
    with pytest.raises(SourceUnavailable, match=r"no sample file timeseries\.json"):
        FxClient.sample(tmp_path).timeseries(date(2024, 1, 1), date(2024, 1, 31))


# ---- World Bank -------------------------------------------------------------------------------


def test_worldbank_follows_every_page(server: Any) -> None:
    years = [2024, 2023, 2022, 2021, 2020]

    def page(request: Request) -> Response:
        n = int(request.args["page"])
        return reply(
            [wb_meta(n, 3, 2, 5), [wb_row(y, 5.0 + y % 7) for y in years[(n - 1) * 2 : n * 2]]]
        )

    handler = Recorder(page)
    server.expect_request(WB_PATH).respond_with_handler(handler)

    rows = wb_live(server, per_page=2).indicator("IND", CPI_INFLATION, "2020:2024")

    assert [c["args"]["page"] for c in handler.calls] == ["1", "2", "3"]
    assert all(
        c["args"]
        == {"format": "json", "per_page": "2", "page": c["args"]["page"], "date": "2020:2024"}
        for c in handler.calls
    )
    assert [r["date"] for r in rows] == ["2024", "2023", "2022", "2021", "2020"]
    frame, problems = parse_worldbank(rows)
    assert problems == [] and list(frame["year"]) == [2020, 2021, 2022, 2023, 2024]


def test_worldbank_null_value_is_a_warn_dropped_problem(server: Any) -> None:
    server.expect_request(WB_PATH).respond_with_json(
        [wb_meta(1, 1, 100, 3), [wb_row(2025, None), wb_row(2024, 4.95), wb_row(2023, 5.65)]]
    )

    rows = wb_live(server).indicator()
    frame, problems = parse_worldbank(rows)

    assert list(frame.columns) == list(WORLDBANK_COLUMNS)
    assert frame[["year", "value"]].values.tolist() == [[2023, 5.65], [2024, 4.95]]
    assert list(frame["country"]) == ["IND", "IND"] and list(frame["source_row"]) == [3, 2]
    assert len(problems) == 1
    (warn,) = problems
    assert (warn.severity, warn.rule, warn.row, warn.column) == ("WARN", "dropped", 1, "value")
    assert warn.message == "no value published yet for 2025"
    assert warn.record == wb_row(2025, None)


def test_worldbank_http_200_error_array_is_source_unavailable(server: Any) -> None:
    handler = Recorder(
        lambda r: reply(
            [
                {
                    "message": [
                        {
                            "id": "120",
                            "key": "Invalid value",
                            "value": "The provided parameter value is not valid",
                        }
                    ]
                }
            ]
        )
    )
    server.expect_request("/v2/country/IND/indicator/FP.CPI.TOTL.ZX").respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        wb_live(server).indicator(indicator="FP.CPI.TOTL.ZX")

    text = raised(excinfo)
    assert "120 Invalid value: The provided parameter value is not valid" in text
    assert "HTTP 200" in text
    assert excinfo.value.status == 400 and not excinfo.value.retryable
    assert len(handler.calls) == 1


def test_worldbank_empty_result_meta_null_is_empty_list(server: Any) -> None:
    server.expect_request(WB_PATH).respond_with_json([wb_meta(0, 0, 50, 0), None])

    assert wb_live(server).indicator(date_range="1900:1901") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"page":1,"pages":1,"per_page":100,"total":2},[{"indicator":', "not valid JSON"),
        ({"page": 1, "rows": []}, "expected [meta, rows]"),
        ([wb_meta(1, 1, 100, 3), None], "no rows although total is 3"),
        ([wb_meta(1, 1, 100, 1), {"2024": 4.95}], "not a list of objects"),
        ([{"page": "x", "pages": 1, "total": 1}, [wb_row(2024, 4.95)]], "meta.page"),
        ([wb_meta(1, 1, 100, 4), [wb_row(2024, 4.95)]], "got 1 rows over 1 page(s) but total"),
    ],
)
def test_worldbank_malformed_answers_are_invalid_payload(
    server: Any, body: Any, expected: str
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    server.expect_request(WB_PATH).respond_with_data(text, content_type="application/json")

    with pytest.raises(InvalidPayload) as excinfo:
        wb_live(server).indicator()

    assert expected in raised(excinfo)


def test_worldbank_server_ignoring_page_is_caught(server: Any) -> None:
    handler = Recorder(lambda r: reply([wb_meta(1, 2, 1, 2), [wb_row(2024, 4.95)]]))
    server.expect_request(WB_PATH).respond_with_handler(handler)

    with pytest.raises(InvalidPayload, match="asked for page 2, got page 1"):
        wb_live(server, per_page=1).indicator()
    assert [c["args"]["page"] for c in handler.calls] == ["1", "2"]


def test_parse_worldbank_reports_bad_values_and_years_as_errors() -> None:
    rows = [
        wb_row(2024, "4,95"),
        wb_row(2023, 5.65),
        {**wb_row(2022, 6.7), "date": "2022M01"},
        wb_row(2023, 5.7),
    ]

    frame, problems = parse_worldbank(rows)

    assert list(frame["year"]) == [2023] and list(frame["value"]) == [5.65]
    assert [(p.row, p.column, p.severity, p.rule) for p in problems] == [
        (1, "value", "ERROR", "schema"),
        (3, "date", "ERROR", "schema"),
        (4, "date", "ERROR", "schema"),
    ]
    assert problems[0].record["value"] == "4,95"
    assert "given twice (first at row 2)" in problems[2].message


def test_worldbank_plausibility_flags_cpi_outside_range() -> None:
    frame, _ = parse_worldbank([wb_row(2024, 30.5), wb_row(2023, 5.65), wb_row(2022, -3.0)])

    problems = worldbank_problems(frame, "World Bank FP.CPI.TOTL.ZG")

    assert sorted((p.row, p.severity, p.rule) for p in problems) == [
        (1, "WARN", "plausibility"),
        (3, "WARN", "plausibility"),
    ]
    assert "-2..25" in problems[0].message


def test_worldbank_sample_mode_pages_through_the_same_client() -> None:
    with WorldBankClient.sample() as client:
        rows = client.indicator()
    frame, problems = parse_worldbank(rows)

    assert [f.name for f in client.transport.served] == [
        "FP.CPI.TOTL.ZG.page=1.json",
        "FP.CPI.TOTL.ZG.page=2.json",
    ]
    assert len(rows) == 16 and rows[0]["date"] == "2025"
    assert list(frame["year"]) == list(range(2010, 2025))
    values = dict(zip(frame["year"], frame["value"], strict=True))
    assert values[2010] == pytest.approx(11.99) and values[2024] == pytest.approx(4.95)
    assert [(p.severity, p.rule, p.message) for p in problems] == [
        ("WARN", "dropped", "no value published yet for 2025")
    ]
    assert worldbank_problems(frame, "World Bank FP.CPI.TOTL.ZG") == []


# ---- manual CSV indicators --------------------------------------------------------------------


def test_manual_csv_good_file_with_bom_crlf_extra_column_and_blank_tail() -> None:
    text = (
        "\ufeffMonth, Value ,unit,source,note\r\n"
        f'2026-09,57.4,index,"{PMI_SOURCE}, 2026-10-01",\r\n'
        f'2026-10,58.1,index,"{PMI_SOURCE}, 2026-11-02",typed by AK\r\n'
        "\r\n,,,\r\n"
    )

    frame, problems = parse_manual_csv(text, "manufacturing_pmi")

    assert problems == []
    assert list(frame.columns) == list(MANUAL_COLUMNS)
    assert frame.to_dict("records") == [
        {
            "indicator": "manufacturing_pmi",
            "month": date(2026, 9, 1),
            "value": 57.4,
            "unit": "index",
            "source": f"{PMI_SOURCE}, 2026-10-01",
            "source_row": 2,
        },
        {
            "indicator": "manufacturing_pmi",
            "month": date(2026, 10, 1),
            "value": 58.1,
            "unit": "index",
            "source": f"{PMI_SOURCE}, 2026-11-02",
            "source_row": 3,
        },
    ]
    assert manual_problems(frame, "manufacturing_pmi.csv") == []


def test_manual_csv_missing_column_rejects_the_file() -> None:
    text = "month,value,source\n2026-10,58.1,press release\n"

    frame, problems = parse_manual_csv(text, "manufacturing_pmi")

    assert frame.empty and list(frame.columns) == list(MANUAL_COLUMNS)
    assert len(problems) == 1
    (problem,) = problems
    assert problem.severity == "ERROR" and problem.row is None and problem.column == "unit"
    assert "missing column(s) unit" in problem.message
    assert problem.source == "manufacturing_pmi.csv"


def test_manual_csv_bad_lines_are_errors_with_their_line_numbers() -> None:
    text = pmi_csv(
        f"2026-07,57.1,index,{PMI_SOURCE}",
        f"Aug-26,57.9,index,{PMI_SOURCE}",
        f"2026-13,57.9,index,{PMI_SOURCE}",
        f"2026-08,n/a,index,{PMI_SOURCE}",
        f"2026-09,58.2,index,{PMI_SOURCE}",
        f"2026-09,58.4,index,{PMI_SOURCE}",
        f'2026-10,"1,058.0",index,{PMI_SOURCE}',
    )

    frame, problems = parse_manual_csv(text, "manufacturing_pmi", source_name="manual/pmi.csv")

    assert list(frame["month"]) == [date(2026, 7, 1), date(2026, 9, 1)]
    assert list(frame["value"]) == [57.1, 58.2]
    assert [(p.row, p.column, p.value) for p in problems] == [
        (3, "month", "Aug-26"),
        (4, "month", "2026-13"),
        (5, "value", "n/a"),
        (7, "month", "2026-09"),
        (8, "value", "1,058.0"),
    ]
    assert all(p.severity == "ERROR" and p.source == "manual/pmi.csv" for p in problems)
    assert "already given on line 6" in problems[3].message
    assert problems[2].record == {
        "month": "2026-08",
        "value": "n/a",
        "unit": "index",
        "source": PMI_SOURCE,
    }


def test_manual_pmi_ranges_unit_and_source_rules() -> None:
    text = pmi_csv(
        f"2026-06,120,index,{PMI_SOURCE}",
        f"2026-07,75,index,{PMI_SOURCE}",
        f"2026-08,57.9,points,{PMI_SOURCE}",
        "2026-09,58.2,index,",
        f"2026-10,58.4,index,{PMI_SOURCE}",
    )
    frame, parse_problems = parse_manual_csv(text, "manufacturing_pmi")

    problems = manual_problems(frame, "manufacturing_pmi.csv")

    assert parse_problems == [] and len(frame) == 5
    found = sorted((p.row, p.column, p.severity, p.rule) for p in problems)
    assert found == [
        (2, "value", "ERROR", "schema"),  # 120: a PMI cannot exceed 100
        (2, "value", "WARN", "plausibility"),
        (3, "value", "WARN", "plausibility"),  # 75: possible, never seen
        (4, "unit", "ERROR", "schema"),
        (5, "source", "ERROR", "schema"),
    ]


def test_manual_freight_index_must_be_positive_and_plausible() -> None:
    text = (
        "month,value,unit,source\n"
        "2026-08,0,index,survey\n2026-09,320,index,survey\n2026-10,112.3,index,survey\n"
    )
    frame, _ = parse_manual_csv(text, "road_freight_index")

    problems = manual_problems(frame, "road_freight_index.csv")

    assert sorted((p.row, p.severity) for p in problems) == [
        (2, "ERROR"),
        (2, "WARN"),
        (3, "WARN"),
    ]


def test_manual_unknown_indicator_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown manual indicator"):
        parse_manual_csv(PMI_HEADER, "cement_price")


@pytest.mark.parametrize("indicator", ["manufacturing_pmi", "road_freight_index"])
def test_manual_sample_files_parse_clean(indicator: str) -> None:
    frame, problems = parse_manual_csv(
        (MANUAL_SAMPLE_DIR / f"{indicator}.csv").read_text(encoding="utf-8"), indicator
    )

    assert problems == [] and manual_problems(frame, f"{indicator}.csv") == []
    assert len(frame) == 24
    assert frame["month"].iloc[0] == date(2024, 11, 1)
    assert frame["month"].iloc[-1] == date(2026, 10, 1)
    assert frame["source"].str.len().min() > 5
    if indicator == "manufacturing_pmi":
        assert frame["value"].between(55, 59).all()


# ---- FX schemas and latest_rate ---------------------------------------------------------------


def test_fx_schema_rate_must_be_positive_and_plausible() -> None:
    frame = fx_frame(
        [(date(2026, 11, 23), 300.0), (date(2026, 11, 24), 0.0), (date(2026, 11, 25), -1.0)]
    )

    problems = fx_problems(frame, "FX USD/INR")

    by_row = {(p.row, p.severity, p.rule) for p in problems if p.column == "rate"}
    assert (1, "WARN", "plausibility") in by_row and (1, "ERROR", "schema") not in by_row
    assert (2, "ERROR", "schema") in by_row and (3, "ERROR", "schema") in by_row
    assert any("60..120" in p.message for p in problems if p.row == 1)


def test_fx_schema_flags_a_five_percent_daily_jump_only_on_that_day() -> None:
    frame = fx_frame(
        [
            (date(2026, 11, 20), 84.0),
            (date(2026, 11, 23), 84.5),  # Friday to Monday: +0.6 %
            (date(2026, 11, 24), 88.725),  # +5.0 %
            (date(2026, 11, 25), 88.9),
        ]
    )

    problems = fx_problems(frame.iloc[::-1], "FX USD/INR")  # row order must not matter

    assert [(p.row, p.column, p.severity, p.rule) for p in problems] == [
        (3, "move_pct", "WARN", "plausibility")
    ]
    assert "more than 3 %" in problems[0].message and problems[0].value == "5.0"


def test_fx_schema_other_pairs_get_no_usd_inr_range() -> None:
    assert fx_problems(fx_frame([(date(2026, 11, 26), 0.95)], "USD", "EUR"), "FX USD/EUR") == []


def test_latest_rate_picks_the_last_published_day_on_or_before() -> None:
    frame = fx_frame(
        [(date(2026, 11, 19), 84.5), (date(2026, 11, 26), 84.62), (date(2026, 11, 20), 84.55)]
    )

    assert latest_rate(frame) == (date(2026, 11, 26), 84.62)
    assert latest_rate(frame, on=date(2026, 11, 22)) == (date(2026, 11, 20), 84.55)
    with pytest.raises(ValueError, match="no FX rate on or before 2026-11-01"):
        latest_rate(frame, on=date(2026, 11, 1))
    with pytest.raises(ValueError, match="no FX rates"):
        latest_rate(frame.iloc[0:0])
