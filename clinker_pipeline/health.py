"""Health of every configured source: reachable or not, latency, and the last good data time.

Operators run `clinker health` before blaming the plan: it says which feed is down and since
when the data is stale. A source that is not configured runs in sample mode and is reported as
such, never as down; the MQTT broker has a documented default, which is probed but does not fail
the command. Output names hosts and ports only, never credentials, one line per source.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from clinker_pipeline import settings

if TYPE_CHECKING:  # paho is imported by the probe only: `clinker --help` stays fast
    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings


@dataclass
class SourceHealth:
    name: str
    configured: bool  # False: sample mode / not in use
    required: bool  # a required source that is down makes `clinker health` exit non-zero
    ok: bool
    latency_ms: float | None
    endpoint: str  # host:port or path, never credentials
    detail: str
    last_good_at: str | None = None  # ISO time of the newest good data from this source

    def to_dict(self) -> dict:
        return asdict(self)


def _timed(probe: Callable[[], str]) -> tuple[bool, float, str]:
    start = time.perf_counter()
    try:
        detail = probe()
        return True, (time.perf_counter() - start) * 1000, detail
    except Exception as exc:  # any failure of a probe is "down", with its reason
        from clinker_pipeline.lib.http import scrub

        said = scrub(f"{type(exc).__name__}: {exc}")
        return False, (time.perf_counter() - start) * 1000, _one_line(said)


def _one_line(text: str) -> str:
    """A driver's multi-line error as one table cell: libpq adds "Is the server running on that
    host...?" on a second line and SQLAlchemy a "(Background on this error at: ...)" link, and
    either would break the one-line-per-source table."""
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith("(Background on this error")]
    return " / ".join(kept)


def _tcp(host: str, port: int, timeout: float) -> Callable[[], str]:
    def probe() -> str:
        with socket.create_connection((host, port), timeout=timeout):
            return "TCP connect ok"

    return probe


def check_sap(timeout: float) -> SourceHealth:
    base = os.getenv("SAP_BASE_URL", "").strip()
    if not base:
        return SourceHealth("SAP", False, False, True, None, "bundled payloads", "sample mode")
    from clinker_pipeline.defs.erp.sap.client import HttpTransport
    from clinker_pipeline.lib.http import HttpPolicy

    parts = urlsplit(base)
    endpoint = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    def probe() -> str:
        transport = HttpTransport(
            base,
            os.getenv("SAP_USERNAME"),
            os.getenv("SAP_PASSWORD"),
            timeout=(timeout, timeout),
            deadline_s=timeout,
            policy=HttpPolicy(retries=0),
        )
        try:
            client = os.getenv("SAP_CLIENT", "100")
            transport.get_json(
                f"{parts.path.rstrip('/')}/sap/opu/odata/sap/API_PLANT_SRV/A_Plant",
                f"$top=1&$format=json&sap-client={client}",
            )
        finally:
            transport.close()
        return "A_Plant answered"

    ok, ms, detail = _timed(probe)
    return SourceHealth("SAP", True, True, ok, ms, endpoint, detail)


def check_oracle(timeout: float) -> SourceHealth:
    host = os.getenv("ORACLE_HOST", "").strip()
    if not host:
        return SourceHealth("Oracle", False, False, True, None, "bundled rows", "sample mode")
    port = int(os.getenv("ORACLE_PORT", "1521"))
    service = os.getenv("ORACLE_SERVICE_NAME", "")
    ok, ms, detail = _timed(_tcp(host, port, timeout))
    return SourceHealth("Oracle", True, True, ok, ms, f"{host}:{port}/{service}", detail)


def check_mqtt(timeout: float) -> SourceHealth:
    """An MQTT CONNECT answered by a CONNACK that accepts it, not just an open port: a port that
    something else listens on, a broker that refuses our credentials and one too busy to answer
    are all "down" with their reason.

    The broker is the ingestor's: IOT_BROKER_URL, else the documented default
    mqtt://127.0.0.1:1883, with IOT_USERNAME/IOT_PASSWORD/IOT_CA_FILE. The default is probed too,
    but only an explicitly configured broker that is down makes `clinker health` fail.
    """
    from clinker_pipeline.defs.telemetry.mqtt import DEFAULT_BROKER_URL, BrokerSettings

    explicit = bool(os.getenv("IOT_BROKER_URL", "").strip())
    try:
        broker = BrokerSettings.from_env()
    except ValueError as exc:
        from clinker_pipeline.lib.http import scrub

        return SourceHealth("MQTT broker", True, True, False, None, "-", scrub(str(exc)))
    endpoint = f"{broker.host}:{broker.port}"
    ok, ms, detail = _timed(lambda: _mqtt_connack(broker, timeout))
    if not explicit:
        detail = f"{detail}; the default broker {DEFAULT_BROKER_URL} (IOT_BROKER_URL unset)"
    return SourceHealth("MQTT broker", True, explicit, ok, ms, endpoint, detail)


def _mqtt_connack(broker: BrokerSettings, timeout: float) -> str:
    """CONNECT with a unique client id and a clean session, wait for the CONNACK, DISCONNECT."""
    import uuid

    import paho.mqtt.client as mqtt

    from clinker_pipeline.defs.telemetry.mqtt import make_client

    client = make_client(broker, client_id=f"clinker-health-{uuid.uuid4().hex[:12]}")
    client.connect_timeout = timeout
    answer: dict[str, Any] = {}
    client.on_connect = lambda _c, _u, _flags, reason, _props: answer.setdefault("reason", reason)
    deadline = time.monotonic() + timeout
    client.connect(broker.host, broker.port, keepalive=max(5, int(timeout) + 5))
    try:
        while "reason" not in answer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no CONNACK within {timeout:g} s: the port is open but nothing answered "
                    "the MQTT CONNECT (not an MQTT broker, or one too busy to answer)"
                )
            if client.loop(timeout=min(0.1, left)) != mqtt.MQTT_ERR_SUCCESS and not answer:
                raise ConnectionError(
                    "the connection closed before a CONNACK (not an MQTT broker, or TLS expected?)"
                )
        if answer["reason"].is_failure:
            raise ConnectionError(f"the broker refused the CONNECT: {answer['reason']}")
        return "MQTT CONNECT accepted (CONNACK)"
    finally:
        client.disconnect()
        client.loop(timeout=0.05)


#: External feeds: (name, feed in feed_status, env of the key, env of the base URL, default base
#: URL or "" when the feed is keyless and goes live only with a URL, probe path, probe query,
#: query parameter carrying the key)
EXTERNAL_FEEDS = (
    (
        "Weather",
        "weather",
        "WEATHER_API_KEY",
        "OPENWEATHER_BASE_URL",
        "https://api.openweathermap.org",
        "/data/2.5/forecast",
        {"lat": "19.96", "lon": "79.3", "cnt": "1", "units": "metric"},
        "appid",
    ),
    (
        "EIA diesel",
        "diesel",
        "FUEL_PRICE_API_KEY",
        "EIA_BASE_URL",
        "https://api.eia.gov",
        "/v2/petroleum/pri/gnd/",
        {},
        "api_key",
    ),
    ("FX", "fx", "FX_API_KEY", "FX_BASE_URL", "", "/v1/latest", {"base": "USD"}, "api_key"),
    (
        "World Bank",
        "indicators",
        "",
        "WORLDBANK_BASE_URL",
        "",
        "/v2/country/IND/indicator/FP.CPI.TOTL.ZG",
        {"format": "json", "per_page": "1"},
        "",
    ),
    (
        "Market",
        "market",
        "MARKET_DATA_API_KEY",
        "MARKET_DATA_URL",
        "",
        "",
        {"limit": "1"},
        "api-key",
    ),
)


def check_feed(
    name: str,
    key_env: str,
    url_env: str,
    default_url: str,
    path: str,
    query: dict[str, str],
    key_param: str,
    timeout: float,
) -> SourceHealth:
    """One cheap GET through the feed's own HTTP layer (no retries, the timeout as deadline)."""
    key = os.getenv(key_env, "").strip() if key_env else ""
    url = os.getenv(url_env, "").strip()
    live = bool(url) or (bool(key) and bool(default_url))
    if not live:
        return SourceHealth(name, False, False, True, None, "bundled payloads", "sample mode")
    base = url or default_url
    parts = urlsplit(base)
    endpoint = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    def probe() -> str:
        from clinker_pipeline.lib.feed_transport import HttpFeedTransport
        from clinker_pipeline.lib.http import HttpPolicy

        transport = HttpFeedTransport(
            name,
            base,
            secret_params={key_param: key} if key and key_param else None,
            policy=HttpPolicy(
                retries=0, connect_timeout=timeout, read_timeout=timeout, deadline_s=timeout
            ),
        )
        try:
            if base.lower().endswith(".csv"):
                transport.get_text(path, query)
            else:
                transport.get_json(path, query)
        finally:
            transport.close()
        return "answered"

    ok, ms, detail = _timed(probe)
    return SourceHealth(name, True, True, ok, ms, endpoint, detail)


def check_postgres(timeout: float) -> SourceHealth:
    from clinker_pipeline.instance_storage import postgres_url

    url = postgres_url()
    if not url:
        return SourceHealth(
            "PostgreSQL", False, False, True, None, "-", "not configured (Dagster uses SQLite)"
        )
    parts = urlsplit(url)
    endpoint = f"{parts.hostname}:{parts.port or 5432}{parts.path}"

    def probe() -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))})
        try:
            with engine.connect() as con:
                con.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
        return "SELECT 1 ok"

    ok, ms, detail = _timed(probe)
    return SourceHealth("PostgreSQL", True, True, ok, ms, endpoint, detail)


def check_duckdb(path: str | None = None) -> SourceHealth:
    path = path or settings.duckdb_path()
    if not os.path.exists(path):
        return SourceHealth(
            "DuckDB", True, True, True, None, path, "no file yet: created by the first run"
        )
    last: dict[str, str | None] = {"at": None}

    def probe() -> str:
        import duckdb

        with duckdb.connect(path, read_only=True) as con:
            tables = {
                r[0]
                for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
            if "latest_plan_run" not in tables:
                return "readable; no plan yet"
            row = con.execute("SELECT created_at, status FROM latest_plan_run").fetchone()
        if row is None:
            return "readable; no successful plan yet"
        last["at"] = row[0].isoformat() if isinstance(row[0], datetime) else str(row[0])
        return f"readable; latest plan {row[1]}"

    ok, ms, detail = _timed(probe)
    return SourceHealth("DuckDB", True, True, ok, ms, path, detail, last["at"])


def _last_good_feeds(path: str | None) -> dict[str, str]:
    """Last good fetch per external feed, from DuckDB's feed_status (when the file exists)."""
    path = path or settings.duckdb_path()
    if not os.path.exists(path):
        return {}
    try:
        import duckdb

        from clinker_pipeline.lib.store.feeds import last_good

        with duckdb.connect(path, read_only=True) as con:
            out = {}
            for spec in EXTERNAL_FEEDS:
                good = last_good(con, spec[1])
                if good is not None and good.last_good_at is not None:
                    out[spec[1]] = good.last_good_at.isoformat()
            return out
    except Exception:  # a locked or damaged file is reported by check_duckdb, not here
        return {}


def _last_materializations() -> dict[str, str]:
    """Newest materialization time of each feed asset, from the Dagster instance if there is one."""
    if not os.getenv("DAGSTER_HOME"):
        return {}
    try:
        import dagster as dg

        instance = dg.DagsterInstance.get()
        out = {}
        for key in ("erp_plants", "erp_inventory", "erp_demand_forecast", "erp_capacity"):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            if event is not None:
                out[key] = datetime.fromtimestamp(event.timestamp).astimezone().isoformat()
        return out
    except Exception:  # health must report, not crash, when the instance itself is down
        return {}


def check_all(timeout: float = 5.0, duckdb_path: str | None = None) -> list[SourceHealth]:
    feeds_good = _last_good_feeds(duckdb_path)
    external = []
    for name, feed, key_env, url_env, default, path, query, param in EXTERNAL_FEEDS:
        health = check_feed(name, key_env, url_env, default, path, query, param, timeout)
        health.last_good_at = feeds_good.get(feed)
        external.append(health)
    results = [
        check_sap(timeout),
        check_oracle(timeout),
        *external,
        check_mqtt(timeout),
        check_postgres(timeout),
        check_duckdb(duckdb_path),
    ]
    times = _last_materializations()
    feeds = {
        "SAP": ("erp_plants", "erp_inventory", "erp_demand_forecast"),
        "Oracle": ("erp_capacity",),
    }
    for r in results:
        stamps = [times[k] for k in feeds.get(r.name, ()) if k in times]
        if stamps:
            r.last_good_at = max(stamps)
    return results
