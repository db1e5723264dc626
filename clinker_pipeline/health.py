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
from clinker_pipeline.defs.feeds.spec import FeedSpec, discover_feeds

if TYPE_CHECKING:
    from clinker_pipeline.defs.erp.oracle.resource import OracleResource
    from clinker_pipeline.defs.erp.sap.resource import SapResource
    from clinker_pipeline.lib.source_resource import SourceResource
    from clinker_pipeline.lib.store.backend import StoreSettings

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


def _endpoint(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def check_sap(timeout: float, sap: SapResource | None = None) -> SourceHealth:
    """SAP's mode comes from the pipeline's own resource: live exactly when its assets are."""
    from clinker_pipeline.defs.erp.sap.resource import SapResource

    sap = sap or SapResource()
    if sap.sample_mode:
        return SourceHealth("SAP", False, False, True, None, "bundled payloads", "sample mode")
    from clinker_pipeline.lib.http import HttpPolicy

    def probe() -> str:
        with sap.client(
            timeout=(timeout, timeout), deadline_s=timeout, http_policy=HttpPolicy(retries=0)
        ) as client:
            client.transport.get_json(
                f"{client.prefix}/sap/opu/odata/sap/API_PLANT_SRV/A_Plant",
                f"$top=1&$format=json&sap-client={client.client or '100'}",
            )
        return "A_Plant answered"

    ok, ms, detail = _timed(probe)
    return SourceHealth("SAP", True, True, ok, ms, _endpoint(sap.setting("base_url")), detail)


def check_oracle(timeout: float, oracle: OracleResource | None = None) -> SourceHealth:
    from clinker_pipeline.defs.erp.oracle.resource import OracleResource

    oracle = oracle or OracleResource()
    if oracle.sample_mode:
        return SourceHealth("Oracle", False, False, True, None, "bundled rows", "sample mode")
    host, port = oracle.setting("host"), oracle.setting("port")
    service = oracle.setting("service_name")
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


def check_feed(spec: FeedSpec, resource: SourceResource, timeout: float) -> SourceHealth:
    """One cheap GET through the feed's own HTTP layer (no retries, the timeout as deadline).

    The feed's mode is its resource's (`resource.sample_mode`), the very object the pipeline uses.
    """
    name = spec.probe.title
    target = resource.probe_target()
    if resource.sample_mode or target is None:
        return SourceHealth(name, False, False, True, None, "bundled payloads", "sample mode")

    def probe() -> str:
        from clinker_pipeline.lib.feed_transport import HttpFeedTransport
        from clinker_pipeline.lib.http import HttpPolicy

        transport = HttpFeedTransport(
            name,
            target.base_url,
            secret_params=target.secret_params or None,
            policy=HttpPolicy(
                retries=0, connect_timeout=timeout, read_timeout=timeout, deadline_s=timeout
            ),
        )
        try:
            if target.base_url.lower().endswith(".csv"):
                transport.get_text(spec.probe.path, spec.probe.query)
            else:
                transport.get_json(spec.probe.path, spec.probe.query)
        finally:
            transport.close()
        return "answered"

    ok, ms, detail = _timed(probe)
    return SourceHealth(name, True, True, ok, ms, _endpoint(target.base_url), detail)


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


def _store(path: str | None) -> StoreSettings:
    """The analysts' store as the pipeline opens it: the DuckDB file, or the lake when
    `CLINKER_STORE=ducklake`."""
    from clinker_pipeline.lib.store.backend import StoreSettings

    return StoreSettings.from_env(path or settings.duckdb_path())


def check_duckdb(path: str | None = None) -> SourceHealth:
    store = _store(path)
    name, endpoint = ("DuckLake", store.describe()) if store.is_lake else ("DuckDB", store.database)
    if not store.is_lake and not os.path.exists(store.database):
        return SourceHealth(
            name, True, True, True, None, endpoint, "no file yet: created by the first run"
        )
    last: dict[str, str | None] = {"at": None}

    def probe() -> str:
        import duckdb

        from clinker_pipeline.lib.store.backend import StoreConfigError, connect

        try:
            con = connect(store, read_only=True)
        except (duckdb.Error, StoreConfigError) as exc:
            if "creating a new DuckLake is explicitly disabled" not in str(exc):
                raise
            return "no lake yet: created by the first run"  # the catalog database is reachable
        try:
            try:
                rows = con.execute("SELECT created_at, status FROM latest_plan_run").fetchall()
            except duckdb.CatalogException:
                return "readable; no plan yet"
        finally:
            con.close()
        if not rows:
            return "readable; no successful plan yet"
        at, status = rows[0]
        last["at"] = at.isoformat() if isinstance(at, datetime) else str(at)
        return f"readable; latest plan {status}"

    ok, ms, detail = _timed(probe)
    return SourceHealth(name, True, True, ok, ms, endpoint, detail, last["at"])


def _last_good_feeds(path: str | None) -> dict[str, str]:
    """Last good fetch per external feed, from the store's feed_status (when there is a store)."""
    store = _store(path)
    if not store.is_lake and not os.path.exists(store.database):
        return {}
    try:
        from clinker_pipeline.lib.store.backend import connect
        from clinker_pipeline.lib.store.feeds import last_good

        con = connect(store, read_only=True)
        try:
            out = {}
            for spec in discover_feeds():
                good = last_good(con, spec.name)
                if good is not None and good.last_good_at is not None:
                    out[spec.name] = good.last_good_at.isoformat()
            return out
        finally:
            con.close()
    except Exception:  # a locked or damaged store is reported by check_duckdb, not here
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
    from clinker_pipeline.defs.resources import source_resources

    resources = source_resources()  # what the pipeline's definitions use, settings resolved now
    feeds_good = _last_good_feeds(duckdb_path)
    external = []
    for spec in discover_feeds():
        health = check_feed(spec, resources[spec.probe.resource_key], timeout)
        health.last_good_at = feeds_good.get(spec.name)
        external.append(health)
    results = [
        check_sap(timeout, resources["sap"]),
        check_oracle(timeout, resources["oracle"]),
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
