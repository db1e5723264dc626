"""SAP OData client against a real HTTP server on 127.0.0.1, and in sample mode.

Every failure test also proves the secret never leaks: an autouse fixture captures all log
records at DEBUG (urllib3 included) and fails the test if the password or the Basic header value
shows up, and `raised` checks the exception text and its formatted traceback.
"""

from __future__ import annotations

import base64
import csv
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug import Request, Response

from clinker_pipeline.defs.erp.sap.client import SampleTransport, SapODataClient
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.http import HttpPolicy, JsonHttpSession, failure_message, scrub
from clinker_pipeline.lib.odata import (
    ODataRecord,
    edm_datetime,
    edm_decimal,
    gateway_error,
    parse_page,
)
from clinker_pipeline_tests.helpers import hermetic_http

USER = "CLINKER_COMM"
PASSWORD = "Sup3r-Secret!pw#42"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, BASIC, quote(PASSWORD, safe=""))

PLANT_PATH = "/sap/opu/odata/sap/API_PLANT_SRV/A_Plant"
STOCK_PATH = "/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod"
IBP_PATH = "/sap/opu/odata/IBP/PLANNING_DATA_API_SRV/ZCEMPA"
IBP_SELECT = ["PRDID", "LOCID", "UOMTOID", "PERIODID3_TSTAMP", "CONSENSUSDEMAND"]
INSTANCE = Path(__file__).resolve().parents[1] / "clinker_pipeline" / "sample_data" / "instance"

FAST = HttpPolicy(retries=3, backoff_factor=0.01, backoff_jitter=0.01, backoff_max=0.05)


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No proxy between us and 127.0.0.1; every log record checked for secrets afterwards."""
    yield from hermetic_http(monkeypatch, caplog, SECRETS)


@pytest.fixture
def server(httpserver_ipv4: Any) -> Any:
    return httpserver_ipv4


def client_for(
    server: Any,
    *,
    policy: HttpPolicy = FAST,
    deadline_s: float = 5.0,
    timeout: tuple[float, float] = (1.0, 3.0),
    page_size: int = 5000,
    base_url: str | None = None,
) -> SapODataClient:
    return SapODataClient(
        base_url or server.url_for("/").rstrip("/"),
        USER,
        PASSWORD,
        client="100",
        page_size=page_size,
        timeout=timeout,
        deadline_s=deadline_s,
        http_policy=policy,
    )


def odata(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def plant(number: str, **extra: Any) -> dict[str, Any]:
    uri = f"https://s4.example.in:44300{PLANT_PATH}('{number}')"
    return {
        "__metadata": {"id": uri, "uri": uri, "type": "API_PLANT_SRV.A_PlantType"},
        "Plant": number,
        "PlantName": f"Plant {number}",
        "CompanyCode": "1000",
        "CompanyCodeName": "Bharat Clinker Ltd",
        **extra,
    }


def gateway_envelope(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {"transactionid": "6A1F3C2B9E0D4A7FB8C5D2E1F0A9B8C7", "errordetails": []},
        }
    }


class Recorder:
    """A handler that answers from a list of callables and remembers what it was asked."""

    def __init__(self, *answers: Callable[[Request], Response]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append(
            {
                "t": time.monotonic(),
                "args": dict(request.args),
                "query": request.query_string.decode(),
                "path": request.path,
                "headers": dict(request.headers),
            }
        )
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return answer(request)


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The exception's message, after checking no form of it carries a secret."""
    exc = excinfo.value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        for secret in SECRETS:
            assert secret not in text
    return str(exc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- paging -----------------------------------------------------------------------------------


def test_pages_follow_next_and_keep_sap_client(server: Any) -> None:
    next_url = (
        "https://internal-gw.example:44300/sap/opu/odata/sap/API_PLANT_SRV/A_Plant"
        "?$orderby=Plant&$inlinecount=allpages&$skiptoken=2"
    )
    handler = Recorder(
        lambda r: odata(
            {"d": {"__count": "3", "results": [plant("1101"), plant("1102")], "__next": next_url}}
        ),
        lambda r: odata({"d": {"__count": "3", "results": [plant("1103")]}}),
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    rows = client_for(server).plants()

    assert [r["Plant"] for r in rows] == ["1101", "1102", "1103"]
    assert all(isinstance(r, ODataRecord) and r.ok and "__metadata" not in r for r in rows)
    first, second = handler.calls
    assert first["args"]["$top"] == "5000"
    assert first["args"]["$orderby"] == "Plant"
    assert first["args"]["$inlinecount"] == "allpages"
    assert first["args"]["$format"] == "json"
    assert first["args"]["sap-client"] == "100"
    assert first["headers"]["Accept"] == "application/json"
    assert first["headers"]["Authorization"] == f"Basic {BASIC}"
    # The __next link named another host and had no sap-client: the host is ignored (the
    # request reached this loopback server) and sap-client is added.
    assert second["args"]["$skiptoken"] == "2"
    assert second["args"]["sap-client"] == "100"


def test_empty_result(server: Any) -> None:
    handler = Recorder(lambda r: odata({"d": {"__count": "0", "results": []}}))
    server.expect_request(STOCK_PATH).respond_with_handler(handler)

    assert client_for(server).material_stock("CLK-OPC") == []
    assert len(handler.calls) == 1


def test_stock_filter_encoding_and_exact_decimal(server: Any) -> None:
    row = {
        "__metadata": {"type": "API_MATERIAL_STOCK_SRV.A_MatlStkInAcctModType"},
        "Material": "CLK-OPC",
        "Plant": "1101",
        "StorageLocation": "CS01",
        "Batch": "",
        "Supplier": "",
        "Customer": "",
        "WBSElementInternalID": "00000000",
        "SDDocument": "",
        "SDDocumentItem": "000000",
        "InventorySpecialStockType": "",
        "InventoryStockType": "01",
        "MaterialBaseUnit": "TO",
        "MatlWrhsStkQtyInMatlBaseUnit": "12345678901234567.12345678901234",
        "to_MaterialStock": {"__deferred": {"uri": "https://s4.example.in/x/to_MaterialStock"}},
    }
    handler = Recorder(lambda r: odata({"d": {"results": [row]}}))
    server.expect_request(STOCK_PATH).respond_with_handler(handler)

    [record] = client_for(server).material_stock("CLK-OPC", plants=["1101", "1102"])

    qty = record["MatlWrhsStkQtyInMatlBaseUnit"]
    assert isinstance(qty, Decimal)
    assert qty == Decimal("12345678901234567.12345678901234")
    assert str(qty) == "12345678901234567.12345678901234"
    assert "to_MaterialStock" not in record and record.ok
    call = handler.calls[0]
    assert call["args"]["$filter"] == (
        "Material eq 'CLK-OPC' and (Plant eq '1101' or Plant eq '1102')"
    )
    assert "%20" in call["query"] and "+" not in call["query"]
    assert call["args"]["$orderby"].startswith("Material,Plant,StorageLocation,Batch")


def test_record_missing_key_is_returned_flagged(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broken = plant("1102")
    del broken["Plant"]
    server.expect_request(PLANT_PATH).respond_with_handler(
        Recorder(lambda r: odata({"d": {"results": [plant("1101"), broken]}}))
    )

    rows = client_for(server).plants()

    assert len(rows) == 2
    assert rows[0].ok
    assert rows[1]["Plant"] is None
    assert rows[1]["PlantName"] == "Plant 1102"
    assert rows[1].missing_keys == ("Plant",)
    assert not rows[1].ok
    assert any("flagged for quarantine" in r.getMessage() for r in caplog.records)


def test_datetimeoffset_with_minutes_offset_is_parsed_not_quarantined(server: Any) -> None:
    """OData v2 writes an Edm.DateTimeOffset's offset in minutes (`+0060` is UTC+01:00, `+0330`
    is UTC+05:30), as SAP's pyodata does; the milliseconds are UTC either way."""
    stamped = [
        plant("1101", LastChangeDateTime="/Date(217567986010+0060)/"),
        plant("1102", LastChangeDateTime="/Date(1793491200000+0330)/"),
        plant("1103", LastChangeDateTime="/Date(1793491200000-0300)/"),
    ]
    server.expect_request(PLANT_PATH).respond_with_handler(
        Recorder(lambda r: odata({"d": {"results": stamped}}))
    )

    rows = client_for(server).plants()

    assert [r.ok for r in rows] == [True, True, True]
    assert rows[0]["LastChangeDateTime"] == datetime(1976, 11, 23, 3, 33, 6, 10000, tzinfo=UTC)
    assert rows[1]["LastChangeDateTime"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert rows[2]["LastChangeDateTime"] == datetime(2026, 11, 1, tzinfo=UTC)


def test_paging_loop_is_stopped(server: Any) -> None:
    loop = f"http://127.0.0.1{PLANT_PATH}?$skiptoken=1&sap-client=100"
    server.expect_request(PLANT_PATH).respond_with_handler(
        Recorder(lambda r: odata({"d": {"results": [plant("1101")], "__next": loop}}))
    )
    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).plants()
    assert "paging loop" in raised(excinfo)


# ---- IBP --------------------------------------------------------------------------------------


def _ibp_handler(rows: list[dict[str, Any]]) -> Callable[[Request], Response]:
    def answer(request: Request) -> Response:
        if "UOMTOID" not in request.args.get("$filter", ""):
            return odata(
                gateway_envelope(
                    "/IBP/CX_ALERT_MESSAGES",
                    "Key figure '(CONSENSUSDEMAND)Consensus Demand' requires conversion "
                    "attribute '(UOMTOID)Target UoM' to be filled.",
                ),
                status=400,
            )
        top = int(request.args["$top"])
        skip = int(request.args.get("$skip", "0"))
        return odata({"d": {"__count": str(len(rows)), "results": rows[skip : skip + top]}})

    return answer


def _ibp_row(loc: str, millis: int, qty: str) -> dict[str, Any]:
    return {
        "__metadata": {"type": "IBP.ZCEMPAType"},
        "PRDID": "CLK-OPC",
        "LOCID": loc,
        "UOMTOID": "TO",
        "PERIODID3_TSTAMP": f"/Date({millis})/",
        "CONSENSUSDEMAND": qty,
    }


def test_ibp_skip_paging_window_and_dates(server: Any) -> None:
    rows = [
        _ibp_row("1101", 1796083200000, "190807.000000"),
        _ibp_row("1101", 1798761600000, "194153.000000"),
        _ibp_row("1102", 1796083200000, "132883.500000"),
        _ibp_row("1102", 1798761600000, "135186.000000"),
        _ibp_row("1103", 1796083200000, "121609.000000"),
    ]
    handler = Recorder(_ibp_handler(rows))
    server.expect_request(IBP_PATH).respond_with_handler(handler)

    records = client_for(server, page_size=2).ibp_planning_data(
        "ZCEMPA",
        IBP_SELECT,
        "TO",
        "CONSENSUSDEMAND",
        "PERIODID3_TSTAMP",
        datetime(2026, 12, 1),
        datetime(2027, 3, 1, tzinfo=UTC),
    )

    assert len(records) == 5
    assert records[0]["PERIODID3_TSTAMP"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert records[1]["PERIODID3_TSTAMP"] == datetime(2027, 1, 1, tzinfo=UTC)
    assert records[2]["CONSENSUSDEMAND"] == Decimal("132883.5")
    assert all(r.ok for r in records)
    assert [c["args"].get("$skip", "0") for c in handler.calls] == ["0", "2", "4"]
    args = handler.calls[0]["args"]
    assert args["$select"] == "PRDID,LOCID,UOMTOID,PERIODID3_TSTAMP,CONSENSUSDEMAND"
    assert args["$orderby"] == "PRDID,LOCID,UOMTOID,PERIODID3_TSTAMP"
    assert args["$filter"] == (
        "UOMTOID eq 'TO' and PERIODID3_TSTAMP ge datetime'2026-12-01T00:00:00' "
        "and PERIODID3_TSTAMP lt datetime'2027-03-01T00:00:00'"
    )


def test_ibp_400_when_uom_missing(server: Any) -> None:
    handler = Recorder(_ibp_handler([]))
    server.expect_request(IBP_PATH).respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).ibp_planning_data(
            "ZCEMPA", IBP_SELECT, None, "CONSENSUSDEMAND", "PERIODID3_TSTAMP", None, None
        )

    message = raised(excinfo)
    assert "HTTP 400" in message
    assert "/IBP/CX_ALERT_MESSAGES" in message
    assert "requires conversion attribute '(UOMTOID)Target UoM'" in message
    assert IBP_PATH in message
    assert len(handler.calls) == 1


# ---- errors -----------------------------------------------------------------------------------


LOGON_PAGE = """<!DOCTYPE html><html><head><title>Logon Error Message</title></head>
<body><h1>Logon failed</h1><p>Name or password is incorrect (repeat logon)</p></body></html>"""


def test_401_html_logon_page(server: Any) -> None:
    handler = Recorder(
        lambda r: Response(
            LOGON_PAGE,
            status=401,
            content_type="text/html; charset=utf-8",
            headers={
                "WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'
            },
        )
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).plants()

    message = raised(excinfo)
    assert message.startswith(f"SAP: GET {PLANT_PATH} failed with HTTP 401")
    assert "check the user and password" in message
    assert "Logon Error Message" in message
    assert "<html" not in message and "$top" not in message
    assert len(handler.calls) == 1


def test_gateway_400_error_envelope(server: Any) -> None:
    handler = Recorder(
        lambda r: odata(
            gateway_envelope("/IWBEP/CM_MGW_RT/021", "Invalid filter expression: 'Plant eq 1100'"),
            status=400,
        )
    )
    server.expect_request(STOCK_PATH).respond_with_handler(handler)

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).material_stock("CLK-OPC")

    message = raised(excinfo)
    assert "HTTP 400" in message
    assert "/IWBEP/CM_MGW_RT/021: Invalid filter expression: 'Plant eq 1100'" in message
    assert "6A1F3C2B9E0D4A7FB8C5D2E1F0A9B8C7" in message
    assert len(handler.calls) == 1


def test_429_retry_after_is_honoured(server: Any) -> None:
    handler = Recorder(
        lambda r: odata(
            gateway_envelope("429", "Rate limit quota violation"),
            status=429,
            headers={"Retry-After": "1"},
        ),
        lambda r: odata({"d": {"results": [plant("1101")]}}),
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    rows = client_for(server).plants()

    assert [r["Plant"] for r in rows] == ["1101"]
    assert len(handler.calls) == 2
    waited = handler.calls[1]["t"] - handler.calls[0]["t"]
    assert 0.9 <= waited < 2.0


def test_429_retry_after_beyond_deadline_fails_fast(server: Any) -> None:
    handler = Recorder(
        lambda r: odata(
            gateway_envelope("429", "Spike arrest violation"),
            status=429,
            headers={"Retry-After": "30"},
        )
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server, deadline_s=3.0).plants()
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    message = raised(excinfo)
    assert "HTTP 429" in message
    assert "Spike arrest violation" in message
    assert "retry after 30 s" in message and "3 s deadline" in message
    assert len(handler.calls) == 1


def test_503_then_success(server: Any) -> None:
    handler = Recorder(
        lambda r: Response("<html><title>Service Unavailable</title></html>", status=503),
        lambda r: odata({"d": {"results": [plant("1101")]}}),
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    assert [r["Plant"] for r in client_for(server).plants()] == ["1101"]
    assert len(handler.calls) == 2


def test_persistent_503_gives_up_after_bounded_retries(server: Any) -> None:
    handler = Recorder(
        lambda r: Response(
            "<html><head><title>503 Service Unavailable</title></head>"
            "<body>ICM: system maintenance</body></html>",
            status=503,
            content_type="text/html",
        )
    )
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server, deadline_s=5.0).plants()

    assert time.monotonic() - started < 5.0
    message = raised(excinfo)
    assert "HTTP 503" in message and "503 Service Unavailable" in message
    assert "gave up after 4 attempts" in message
    assert len(handler.calls) == 1 + FAST.retries


def test_persistent_503_stops_at_the_deadline(server: Any) -> None:
    slow_backoff = HttpPolicy(retries=50, backoff_factor=0.2, backoff_jitter=0.0, backoff_max=5.0)
    handler = Recorder(lambda r: Response("busy", status=503))
    server.expect_request(PLANT_PATH).respond_with_handler(handler)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server, policy=slow_backoff, deadline_s=1.5).plants()

    # Sleeps are planned inside the deadline; the slack covers the last attempt's round trip.
    assert time.monotonic() - started < 1.5 + 0.2
    message = raised(excinfo)
    assert "HTTP 503" in message and "the next retry would not fit" in message
    assert 2 <= len(handler.calls) < 10


def test_read_timeout_is_cut_to_the_deadline(server: Any) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.8)
        return odata({"d": {"results": []}})

    server.expect_request(PLANT_PATH).respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server, timeout=(1.0, 10.0), deadline_s=0.3).plants()

    assert time.monotonic() - started < 0.7
    message = raised(excinfo)
    assert "read timeout" in message and "0.3 s deadline" in message


def test_truncated_json_body(server: Any) -> None:
    server.expect_request(PLANT_PATH).respond_with_data(
        '{"d": {"results": [{"Plant": "1101", "PlantName": "Chandr', content_type="application/json"
    )
    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).plants()
    message = raised(excinfo)
    assert message.startswith(f"SAP: GET {PLANT_PATH} failed")
    assert "not valid JSON, looks truncated" in message


def test_html_page_with_200_is_invalid_payload(server: Any) -> None:
    server.expect_request(PLANT_PATH).respond_with_data(
        "<html><head><title>SAP Web Dispatcher: maintenance</title></head></html>",
        content_type="text/html",
    )
    with pytest.raises(InvalidPayload) as excinfo:
        client_for(server).plants()
    assert "HTTP 200: expected JSON, got an HTML page (SAP Web Dispatcher: maintenance)" in raised(
        excinfo
    )


def test_body_cut_off_mid_transfer() -> None:
    """Content-Length promises more than arrives: the connection dropped mid-body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n"
                b'\r\n{"d": {"results": [{"Plant": "1101"'
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = client_for(None, base_url=f"http://127.0.0.1:{port}")
        with pytest.raises(InvalidPayload) as excinfo:
            client.plants()
        assert "body cut off" in raised(excinfo)
    finally:
        thread.join(timeout=2)
        listener.close()


def test_connection_refused_names_sap_and_endpoint() -> None:
    port = free_port()
    client = client_for(None, base_url=f"http://127.0.0.1:{port}", deadline_s=2.0)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as excinfo:
        client.plants()

    assert time.monotonic() - started < 2.0
    message = raised(excinfo)
    assert message.startswith(f"SAP: GET {PLANT_PATH} failed: cannot connect")
    assert "refused" in message.lower()
    assert "sap-client" not in message and "$top" not in message and "object at 0x" not in message


def test_secrets_echoed_by_a_proxy_are_scrubbed(server: Any) -> None:
    echo = f"Forbidden. Request had Authorization: Basic {BASIC} and password={PASSWORD}"
    server.expect_request(PLANT_PATH).respond_with_data(echo, status=403, content_type="text/plain")

    with pytest.raises(SourceUnavailable) as excinfo:
        client_for(server).plants()

    message = raised(excinfo)
    assert "HTTP 403" in message and "Forbidden" in message and "***" in message


def test_client_side_rate_limit(server: Any) -> None:
    handler = Recorder(lambda r: odata({"d": {"results": [plant("1101")]}}))
    server.expect_request(PLANT_PATH).respond_with_handler(handler)
    paced = HttpPolicy(retries=1, backoff_factor=0.01, min_interval_s=0.3)

    client = client_for(server, policy=paced)
    client.plants()
    client.plants()

    assert handler.calls[1]["t"] - handler.calls[0]["t"] >= 0.28


def test_repr_and_messages_hold_no_password() -> None:
    client = SapODataClient("https://s4.example.in:44300", USER, PASSWORD, client="100")
    assert PASSWORD not in repr(client) and BASIC not in repr(client)
    assert client.transport.http.session.verify is True  # TLS verification on by default
    text = failure_message(
        "SAP",
        f"https://{USER}:{quote(PASSWORD, safe='')}@s4.example.in/sap/x?apikey=abc123&sap-client=100",
        detail=f"echo {PASSWORD}",
        redact=[PASSWORD],
    )
    assert text == "SAP: GET /sap/x failed - echo ***"
    assert scrub("GET /forecast?lat=1&appid=abc123 200") == "GET /forecast?lat=1&appid=*** 200"


def test_query_keys_are_masked_in_urllib3_debug_log(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The layer is reused by feeds that put API keys in the query string (OWM `appid`)."""
    server.expect_request("/data/2.5/forecast").respond_with_json({"cod": "200", "list": []})

    with JsonHttpSession("OpenWeatherMap", policy=FAST) as http:
        body = http.get_json(server.url_for("/data/2.5/forecast") + "?lat=19.96&appid=k3y-0wm-77")

    assert body == {"cod": "200", "list": []}
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/data/2.5/forecast" in line for line in urllib3_lines)
    client_side = [r for r in caplog.records if r.name != "werkzeug"]  # werkzeug = the fake server
    assert all("k3y-0wm-77" not in r.getMessage() for r in client_side)


# ---- pure parsing -----------------------------------------------------------------------------


def test_edm_datetime_forms() -> None:
    assert edm_datetime("/Date(1793491200000)/") == datetime(2026, 11, 1, tzinfo=UTC)
    assert edm_datetime("/Date(1793491200000+0000)/") == datetime(2026, 11, 1, tzinfo=UTC)
    assert edm_datetime("/Date(1796083200123)/").microsecond == 123000
    assert edm_datetime("/Date(-86400000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert edm_datetime("/Date(1793491200000+0060)/") == datetime(2026, 11, 1, tzinfo=UTC)
    assert edm_datetime("/Date(1793491200000-0720)/") == datetime(2026, 11, 1, tzinfo=UTC)
    # minutes beyond UTC-12:00 / UTC+14:00 (0841 min = 14:01) are no real offset
    for bad in ("2026-11-01", "/Date(abc)/", "/Date(1+99)/", "/Date(1+2500)/", "/Date(1+0841)/"):
        with pytest.raises(ValueError):
            edm_datetime(bad)


def test_edm_decimal() -> None:
    assert edm_decimal("12345678901234567.12345678901234") == Decimal(
        "12345678901234567.12345678901234"
    )
    assert edm_decimal(" 1250.000 ") == Decimal("1250.000")
    for bad in ("NaN", "Infinity", "1,5", ""):
        with pytest.raises(ValueError):
            edm_decimal(bad)


def test_parse_page_shapes() -> None:
    rows, next_url, count = parse_page(
        {"d": {"results": [plant("1101")], "__count": "24", "__next": "https://h/x?$skiptoken=1"}}
    )
    assert rows == [
        {
            "Plant": "1101",
            "PlantName": "Plant 1101",
            "CompanyCode": "1000",
            "CompanyCodeName": "Bharat Clinker Ltd",
        }
    ]
    assert (next_url, count) == ("https://h/x?$skiptoken=1", 24)

    single, next_url, count = parse_page(
        {"d": {**plant("1101"), "to_Items": {"results": [{"__metadata": {}, "Item": "10"}]}}}
    )
    assert single[0]["to_Items"] == [{"Item": "10"}]
    assert (next_url, count) == (None, None)

    for bad in ([], {"value": []}, {"d": "x"}, {"d": {"results": [], "__count": "many"}}):
        with pytest.raises(InvalidPayload):
            parse_page(bad)


def test_gateway_error_shapes() -> None:
    envelope = json.dumps(gateway_envelope("/IWBEP/CM_MGW_RT/021", "Invalid filter"))
    assert gateway_error(envelope, "application/json").startswith(
        "/IWBEP/CM_MGW_RT/021: Invalid filter"
    )
    assert gateway_error(LOGON_PAGE, "text/html") == "Logon Error Message"
    xml = (
        '<?xml version="1.0"?><error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/'
        'metadata"><code>/IWFND/CM_MGW/004</code><message xml:lang="en">Resource not found for '
        "segment 'A_Plantx'</message></error>"
    )
    assert gateway_error(xml, "application/xml") == (
        "/IWFND/CM_MGW/004: Resource not found for segment 'A_Plantx'"
    )
    assert gateway_error("CSRF token validation failed", "text/plain") == (
        "CSRF token validation failed"
    )


# ---- sample mode ------------------------------------------------------------------------------


def _instance(name: str) -> list[dict[str, str]]:
    with (INSTANCE / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _plant_no(code: str) -> str:
    kind, number = code.split("_")
    return f"{11 if kind == 'IU' else 12}{int(number):02d}"


def test_sample_mode_plants_match_the_sample_network() -> None:
    client = SapODataClient.sample()
    plants = client.plants()

    expected = {_plant_no(r["IUGU CODE"]): r["PLANT NAME"] for r in _instance("IUGUType.csv")}
    assert {p["Plant"]: p["PlantName"] for p in plants} == expected
    assert len(plants) == 24 and all(p.ok for p in plants)
    assert [f.name for f in client.transport.served] == [
        "A_Plant.json",
        "A_Plant.skiptoken=12.json",
    ]


def test_sample_mode_stock_matches_opening_stock() -> None:
    client = SapODataClient.sample()
    stock = client.material_stock("CLK-OPC")

    assert len(stock) == 35 and all(s.ok for s in stock)
    assert {s["InventoryStockType"] for s in stock} == {"01", "02", "07"}
    unrestricted: dict[str, Decimal] = {}
    for s in stock:
        assert isinstance(s["MatlWrhsStkQtyInMatlBaseUnit"], Decimal)
        if s["InventoryStockType"] == "01":
            unrestricted[s["Plant"]] = (
                unrestricted.get(s["Plant"], Decimal(0)) + s["MatlWrhsStkQtyInMatlBaseUnit"]
            )
    expected = {
        _plant_no(r["IUGU CODE"]): Decimal(r["OPENING STOCK"])
        for r in _instance("IUGUOpeningStock.csv")
    }
    assert unrestricted == expected
    assert [f.name for f in client.transport.served] == [
        "A_MatlStkInAcctMod.json",
        "A_MatlStkInAcctMod.skiptoken=20.json",
    ]


def test_sample_mode_demand_matches_clinker_demand() -> None:
    demand = SapODataClient.sample().ibp_planning_data(
        "ZCEMPA",
        IBP_SELECT,
        "TO",
        "CONSENSUSDEMAND",
        "PERIODID3_TSTAMP",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 3, 1, tzinfo=UTC),
    )
    months = {
        datetime(2026, 12, 1, tzinfo=UTC): "1",
        datetime(2027, 1, 1, tzinfo=UTC): "2",
        datetime(2027, 2, 1, tzinfo=UTC): "3",
    }
    got = {(d["LOCID"], months[d["PERIODID3_TSTAMP"]]): d["CONSENSUSDEMAND"] for d in demand}
    expected = {
        (_plant_no(r["IUGU CODE"]), r["TIME PERIOD"]): Decimal(r["DEMAND"])
        for r in _instance("ClinkerDemand.csv")
    }
    assert len(demand) == 72 and got == expected
    assert all(d["UOMTOID"] == "TO" and d.ok for d in demand)


def test_sample_transport_lookup_rule_and_missing_file(tmp_path: Path) -> None:
    transport = SampleTransport(tmp_path)
    assert transport.file_for(PLANT_PATH, "$top=5000&sap-client=100") == (
        tmp_path / "API_PLANT_SRV" / "A_Plant.json"
    )
    assert transport.file_for(PLANT_PATH, "$orderby=Plant&$skiptoken=12") == (
        tmp_path / "API_PLANT_SRV" / "A_Plant.skiptoken=12.json"
    )
    assert transport.file_for(IBP_PATH, "$top=2&$skip=4") == (
        tmp_path / "PLANNING_DATA_API_SRV" / "ZCEMPA.skip=4.json"
    )
    with pytest.raises(SourceUnavailable) as excinfo:
        SapODataClient.sample(tmp_path).plants()
    assert "no sample file API_PLANT_SRV/A_Plant.json" in raised(excinfo)
