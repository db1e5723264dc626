"""Secrets stay out of messages by construction, masking is per client, and a password too short
to be searched for (`data`, `P`) rewrites nobody's messages.

Clients run against real HTTP servers on 127.0.0.1 answering in their providers' wire formats;
the Oracle case uses the real driver against a closed loopback port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import pytest

from clinker_pipeline.defs.erp.oracle.client import OracleCapacitySource, OracleSettings
from clinker_pipeline.defs.erp.sap.client import SapODataClient
from clinker_pipeline.defs.feeds.diesel.client import ROUTE as EIA_ROUTE
from clinker_pipeline.defs.feeds.diesel.client import EiaClient
from clinker_pipeline.defs.feeds.fx.client import FxClient
from clinker_pipeline.errors import SourceUnavailable
from clinker_pipeline.lib.http import MIN_SECRET_LENGTH, JsonHttpSession, scrub
from clinker_pipeline_tests.helpers import FAST_POLICY, hermetic_http

PLANT_PATH = "/sap/opu/odata/sap/API_PLANT_SRV/A_Plant"
EIA_KEY = "eiaK3y-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield from hermetic_http(monkeypatch, caplog, (EIA_KEY,))


@pytest.fixture
def server(httpserver_ipv4: Any) -> Any:
    return httpserver_ipv4


def sap(server: Any, password: str) -> SapODataClient:
    return SapODataClient(
        server.url_for("/").rstrip("/"),
        "CLINKER_COMM",
        password,
        client="100",
        timeout=(1.0, 3.0),
        deadline_s=5.0,
        http_policy=FAST_POLICY,
    )


def eia(server: Any) -> EiaClient:
    return EiaClient.live(server.url_for("/").rstrip("/"), EIA_KEY, policy=FAST_POLICY)


def gateway_404(server: Any, path: str) -> None:
    server.expect_request(path).respond_with_json(
        {"error": {"code": "/IWFND/CM_MGW/020", "message": {"lang": "en", "value": "not found"}}},
        status=404,
    )


def test_a_short_password_leaves_every_other_feeds_messages_alone(server: Any) -> None:
    """Two SAP systems with the passwords `data` and `P` exist in the process; EIA's and FX's
    error messages afterwards still read "HTTP", "SAP"-free, ".../data/" in full."""
    for password in ("data", "P"):
        sap(server, password)  # builds its HTTP session (and, before, registered the password)
    server.expect_request(EIA_ROUTE).respond_with_json(
        {"error": "Not found.", "code": 404}, status=404
    )
    server.expect_request("/v1/latest").respond_with_json({"message": "not found"}, status=404)

    with pytest.raises(SourceUnavailable) as eia_error:
        eia(server).weekly_diesel()
    with pytest.raises(SourceUnavailable) as fx_error:
        FxClient.live(server.url_for("/").rstrip("/"), policy=FAST_POLICY).latest()

    eia_text, fx_text = str(eia_error.value), str(fx_error.value)
    assert eia_text.startswith(f"EIA: GET {EIA_ROUTE} failed with HTTP 404")
    assert fx_text.startswith("FX: GET /v1/latest failed with HTTP 404")
    assert "***" not in eia_text + fx_text


@pytest.mark.parametrize("password", ["data", "P", "password"])
def test_a_common_word_password_does_not_mark_its_own_clients_messages(
    server: Any, password: str
) -> None:
    """Neither the path (`/sap/opu/odata/...`), the status (`HTTP`), the source (`SAP`) nor our
    own hint ("check the user and password") may turn into `***`: the stars would spell out
    where the password's letters are."""
    server.expect_request(PLANT_PATH).respond_with_data(
        "<html><head><title>Logon failed</title></head></html>",
        status=401,
        content_type="text/html",
    )

    with pytest.raises(SourceUnavailable) as excinfo:
        sap(server, password).plants()

    text = str(excinfo.value)
    assert text.startswith(f"SAP: GET {PLANT_PATH} failed with HTTP 401")
    assert "check the user and password" in text and "Logon failed" in text
    assert "***" not in text


def test_a_key_echoed_in_a_2xx_error_body_is_masked_by_its_own_client(server: Any) -> None:
    """EIA before v2.1.10 sent errors with HTTP 200; a gateway that quotes the key is masked
    with the key of the client that sent it."""
    server.expect_request(EIA_ROUTE).respond_with_json(
        {"error": {"code": "API_KEY_INVALID", "message": f"the key {EIA_KEY} is not valid"}}
    )

    with pytest.raises(SourceUnavailable) as excinfo:
        eia(server).weekly_diesel()

    text = str(excinfo.value)
    assert "API_KEY_INVALID: the key *** is not valid" in text
    assert EIA_KEY not in text and quote(EIA_KEY, safe="") not in text


def test_one_session_does_not_mask_with_another_sessions_secrets() -> None:
    """Per client: a session's message is masked with its own secrets, never another's."""
    other_secret = "0ther-feeds-Passw0rd"
    with (
        JsonHttpSession("A", redact=[other_secret]),
        JsonHttpSession("B", redact=["b-feeds-own-key-123"]) as b,
    ):
        text = b.message("http://127.0.0.1/x", detail="Plant 0ther-feeds-Passw0rd-like code")
        own = b.message("http://127.0.0.1/x", detail="echo b-feeds-own-key-123")
    assert text == "B: GET /x failed - Plant 0ther-feeds-Passw0rd-like code"
    assert own == "B: GET /x failed - echo ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic dTpQ", "Authorization: Basic ***"),
        (
            "sent {'Authorization': 'Bearer x1', 'Accept': 'json'}",
            "sent {'Authorization': '***', 'Accept': 'json'}",
        ),
        ('{"user": "u", "password": "data"}', '{"user": "u", "password": "***"}'),
        ("logon with password=P refused", "logon with password=*** refused"),
        ("X-API-Key: k1", "X-API-Key: ***"),
        (
            "GET /f?lat=1&appid=a1&api_key=b2&api-key=c3&apikey=d4&key=e5&token=f6&password=g7 200",
            "GET /f?lat=1&appid=***&api_key=***&api-key=***&apikey=***&key=***&token=***&password=*** 200",
        ),
        ("mqtt://ingest:pw@broker:1883 refused", "mqtt://***@broker:1883 refused"),
        ("monkey=1&keys=2&sort[0][column]=period", "monkey=1&keys=2&sort[0][column]=period"),
    ],
)
def test_credentials_are_masked_by_name_whatever_their_length(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_values_too_short_to_be_secrets_are_not_searched_for() -> None:
    assert scrub("SAP: GET /sap/opu/odata/x failed with HTTP 503", ["data", "P"]) == (
        "SAP: GET /sap/opu/odata/x failed with HTTP 503"
    )
    long_enough = "x" * (MIN_SECRET_LENGTH - 1) + "!"
    assert scrub(f"echo {long_enough} and {quote(long_enough, safe='')}", [long_enough]) == (
        "echo *** and ***"
    )
    # whole tokens only: a secret inside a longer word or number is not what was echoed
    assert scrub("order 9912345678 for 12345678", ["12345678"]) == "order 9912345678 for ***"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_oracle_short_password_does_not_blank_the_drivers_text() -> None:
    """The real driver says "cannot connect to database"; a password `data` must not make it
    "cannot connect to ***base"."""
    settings = OracleSettings(
        host="127.0.0.1",
        port=free_port(),
        service_name="ERPPDB1",
        username="erp_ro",
        password="data",
        wait_timeout_ms=2000,
    )
    with OracleCapacitySource(settings) as source, pytest.raises(SourceUnavailable) as excinfo:
        source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))

    text = str(excinfo.value)
    assert "DPY-6005" in text and "cannot connect to database" in text
    assert "***" not in text
