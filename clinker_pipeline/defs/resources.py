"""Resources: how assets reach files, DuckDB and (later) the ERP and external feeds.

Paths are not secrets, so they are read from the environment at load time with defaults that
make the quick start work with no configuration at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from clinker_pipeline import settings
from clinker_pipeline.defs.erp.mapping import ErpMapping, sample_mapping_path
from clinker_pipeline.instance import Instance, load_instance, sample_instance_path

SAMPLE_MANUAL_DIR = Path(__file__).resolve().parent / "feeds" / "indicators" / "samples" / "manual"


class InstanceFiles(dg.ConfigurableResource):
    """A planning instance stored as files: a directory of CSVs or an xlsx workbook."""

    path: str = ""  # empty: the bundled sample network

    def resolved_path(self) -> str:
        return self.path or str(sample_instance_path())

    def load(self) -> Instance:
        return load_instance(self.resolved_path())


class SapResource(dg.ConfigurableResource):
    """SAP S/4HANA and IBP over OData; with no base URL, the bundled wire-format payloads."""

    base_url: str = ""
    username: str = ""
    password: str = ""
    sap_client: str = "100"  # the sap-client number
    verify_tls: bool = True
    timeout_s: float = 60.0
    deadline_s: float = 180.0

    @property
    def sample_mode(self) -> bool:
        return not self.base_url

    def client(self) -> Any:  # -> SapODataClient (imported lazily: requests stack)
        from clinker_pipeline.defs.erp.sap.client import SapODataClient

        if self.sample_mode:
            return SapODataClient.sample()
        return SapODataClient(
            self.base_url,
            self.username,
            self.password,
            client=self.sap_client or None,
            verify=self.verify_tls,
            timeout=(10.0, self.timeout_s),
            deadline_s=self.deadline_s,
        )


class OracleResource(dg.ConfigurableResource):
    """Oracle ERP production capacity; with no host, the bundled rows in the driver's shape."""

    host: str = ""
    port: int = 1521
    service_name: str = ""
    username: str = ""
    password: str = ""
    wait_timeout_ms: int = 10_000
    call_timeout_ms: int = 60_000

    @property
    def sample_mode(self) -> bool:
        return not self.host

    def fetch_capacity(self, period_from: date, period_to: date) -> tuple[list, list]:
        """Good rows and bad rows (each with a reason) for `period_from <= month < period_to`."""
        from clinker_pipeline.defs.erp.oracle.client import (
            OracleCapacitySource,
            OracleSettings,
            SampleCapacitySource,
        )

        if self.sample_mode:
            source = SampleCapacitySource()
        else:
            source = OracleCapacitySource(
                OracleSettings(
                    host=self.host,
                    port=self.port,
                    service_name=self.service_name,
                    username=self.username,
                    password=self.password,
                    wait_timeout_ms=self.wait_timeout_ms,
                    call_timeout_ms=self.call_timeout_ms,
                )
            )
        try:
            fetched = source.fetch(period_from, period_to)
        finally:
            source.close()
        return list(fetched.rows), list(fetched.bad_rows)


class ErpSettings(dg.ConfigurableResource):
    """Where the ERP mapping (SAP plant -> node, clinker material, IBP key figure) lives."""

    mapping_path: str = ""  # empty: the bundled sample mapping

    def mapping(self) -> ErpMapping:
        return ErpMapping.load(self.mapping_path or sample_mapping_path())


class _FeedResource(dg.ConfigurableResource):
    """Per-source HTTP knobs; unset ones keep the client's defaults for that provider (OWM backs
    off for a minute after a 429, EIA paces bursts below 5/s, the rest pace at 2 calls/s)."""

    retries: int | None = None  # per request, by urllib3 with backoff and Retry-After
    backoff_factor: float | None = None
    deadline_s: float | None = None  # whole call, retries included
    min_interval_s: float | None = None  # the client-side rate limit of this source

    def policy(self, default: Any = None) -> Any:  # -> HttpPolicy
        from clinker_pipeline.lib.http import HttpPolicy

        base = default or HttpPolicy(deadline_s=120.0, min_interval_s=0.5)
        fields = ("retries", "backoff_factor", "deadline_s", "min_interval_s")
        return replace(
            base, **{f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        )


class WeatherResource(_FeedResource):
    """OpenWeatherMap forecasts for every plant; with no API key, the bundled payloads."""

    base_url: str = "https://api.openweathermap.org"
    api_key: str = ""
    onecall: bool = False  # also fetch One Call 3.0 daily (needs its own subscription)
    max_workers: int = 4

    @property
    def sample_mode(self) -> bool:
        return not self.api_key

    def client(self) -> Any:  # -> OpenWeatherClient
        from clinker_pipeline.defs.feeds.weather.client import DEFAULT_POLICY, OpenWeatherClient

        if self.sample_mode:
            return OpenWeatherClient.sample()
        return OpenWeatherClient.live(
            self.base_url,
            self.api_key,
            onecall=self.onecall,
            policy=self.policy(DEFAULT_POLICY),
            max_workers=self.max_workers,
        )


class DieselResource(_FeedResource):
    """EIA weekly US retail diesel (API v2); with no API key, the bundled payloads."""

    base_url: str = "https://api.eia.gov"
    api_key: str = ""
    history_start: str = "2024-01-01"

    @property
    def sample_mode(self) -> bool:
        return not self.api_key

    def client(self) -> Any:  # -> EiaClient
        from clinker_pipeline.defs.feeds.diesel.client import DEFAULT_POLICY, EiaClient

        if self.sample_mode:
            return EiaClient.sample()
        return EiaClient.live(self.base_url, self.api_key, policy=self.policy(DEFAULT_POLICY))


class FxResource(_FeedResource):
    """USD/INR reference rates (Frankfurter JSON); keyless, so live only when a URL is set."""

    base_url: str = ""
    api_key: str = ""  # only for a private mirror that wants one
    history_start: str = "2024-01-01"

    @property
    def sample_mode(self) -> bool:
        return not self.base_url

    def client(self) -> Any:  # -> FxClient
        from clinker_pipeline.defs.feeds.fx.client import FxClient

        if self.sample_mode:
            return FxClient.sample()
        return FxClient.live(self.base_url, api_key=self.api_key, policy=self.policy())


class WorldBankResource(_FeedResource):
    """World Bank indicators API v2 (India CPI inflation); keyless, live when a URL is set."""

    base_url: str = ""
    country: str = "IND"
    date_range: str = "2010:2026"

    @property
    def sample_mode(self) -> bool:
        return not self.base_url

    def client(self) -> Any:  # -> WorldBankClient
        from clinker_pipeline.defs.feeds.indicators.client import WorldBankClient

        if self.sample_mode:
            return WorldBankClient.sample()
        return WorldBankClient.live(self.base_url, policy=self.policy())


class MarketResource(_FeedResource):
    """City cement prices from a configured JSON (OGD `records`) or CSV feed, else the sample."""

    url: str = ""
    api_key: str = ""
    format: str = "auto"  # auto | ogd-json | csv
    # JSON object: our field -> the feed's field id (OGD ids are dataset-specific), e.g.
    # {"price": "modal_price", "date": "arrival_date"}; unset fields keep the defaults
    fields: str = ""

    def field_map(self) -> dict[str, str]:
        if not self.fields:
            return {}
        try:
            value = json.loads(self.fields)
        except ValueError as exc:
            raise ValueError(f"MARKET_DATA_FIELDS is not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("MARKET_DATA_FIELDS must be a JSON object of field ids")
        return {str(k): str(v) for k, v in value.items()}

    @property
    def sample_mode(self) -> bool:
        return not self.url

    def client(self) -> Any:  # -> MarketPriceClient
        from clinker_pipeline.defs.feeds.market.client import MarketPriceClient

        if self.sample_mode:
            return MarketPriceClient.sample()
        fmt = {"ogd-json": "json"}.get(self.format, self.format)
        return MarketPriceClient.live(self.url, api_key=self.api_key, fmt=fmt, policy=self.policy())


class ManualInputs(dg.ConfigurableResource):
    """Indicators with no public API (manufacturing PMI, road freight index) as CSV files."""

    directory: str = ""  # empty: the bundled sample CSVs

    @property
    def sample_mode(self) -> bool:
        return not self.directory

    def path(self, indicator: str) -> Path:
        base = Path(self.directory) if self.directory else SAMPLE_MANUAL_DIR
        return base / f"{indicator}.csv"


class TelemetrySettings(dg.ConfigurableResource):
    """Where the MQTT ingestor lands its batches, and the threshold rules file."""

    landing_dir: str = "telemetry_landing"
    rules_path: str = ""  # empty: the bundled rules

    def store(self) -> Any:  # -> LandingStore
        from clinker_pipeline.defs.telemetry.landing import LandingStore

        return LandingStore(self.landing_dir)

    def rules(self) -> Any:  # -> RuleSet
        from clinker_pipeline.defs.telemetry.rules import RuleSet

        return RuleSet.load(self.rules_path or None)


class ScenarioSettings(dg.ConfigurableResource):
    """The named scenario set (and the feed adjustments' constants) as a JSON file."""

    path: str = ""  # empty: the bundled sample set

    def load(self) -> Any:  # -> ScenarioSet
        from clinker_pipeline.optimization.scenarios import ScenarioSet

        return ScenarioSet.load(self.path or None)


class _KeepEmptyTables(DuckDBPandasTypeHandler):
    """dagster-duckdb-pandas skips an empty DataFrame, so the table never exists and the asset
    downstream cannot load it (the toy dataset's HubOpeningStock has no rows). An empty instance
    table is data ("none"), so it is stored as an empty table with its columns."""

    def handle_output(self, context, table_slice, obj, connection) -> None:  # type: ignore[override]
        if obj.empty and not table_slice.partition_dimensions:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table_slice.schema}.{table_slice.table} "
                "AS SELECT * FROM obj"
            )
        super().handle_output(context, table_slice, obj, connection)


class InstanceIOManager(DuckDBPandasIOManager):
    """The DuckDB pandas I/O manager of the instance tables, keeping empty tables."""

    @staticmethod
    def type_handlers() -> list:
        return [_KeepEmptyTables()]


def _secret(name: str) -> Any:
    """A secret from the environment as an EnvVar (Dagster never shows its value), or ""."""
    return dg.EnvVar(name) if os.getenv(name) else ""


def build_resources() -> dict[str, object]:
    database = settings.ensure_parent(settings.duckdb_path())
    return {
        "instance_files": InstanceFiles(path=settings.instance_path()),
        "duckdb": DuckDBResource(database=database),
        "duckdb_io_manager": InstanceIOManager(database=database, schema="instance"),
        "sap": SapResource(
            base_url=os.getenv("SAP_BASE_URL", ""),
            username=_secret("SAP_USERNAME"),
            password=_secret("SAP_PASSWORD"),
            sap_client=os.getenv("SAP_CLIENT", "100"),
        ),
        "oracle": OracleResource(
            host=os.getenv("ORACLE_HOST", ""),
            port=int(os.getenv("ORACLE_PORT", "1521")),
            service_name=os.getenv("ORACLE_SERVICE_NAME", ""),
            username=_secret("ORACLE_USERNAME"),
            password=_secret("ORACLE_PASSWORD"),
        ),
        "erp": ErpSettings(mapping_path=os.getenv("CLINKER_ERP_MAPPING", "")),
        "weather": WeatherResource(
            base_url=os.getenv("OPENWEATHER_BASE_URL", "https://api.openweathermap.org"),
            api_key=_secret("WEATHER_API_KEY"),
            onecall=os.getenv("OPENWEATHER_ONECALL", "").lower() in ("1", "true", "yes"),
        ),
        "diesel": DieselResource(
            base_url=os.getenv("EIA_BASE_URL", "https://api.eia.gov"),
            api_key=_secret("FUEL_PRICE_API_KEY"),
        ),
        "fx": FxResource(base_url=os.getenv("FX_BASE_URL", ""), api_key=_secret("FX_API_KEY")),
        "worldbank": WorldBankResource(base_url=os.getenv("WORLDBANK_BASE_URL", "")),
        "market": MarketResource(
            url=os.getenv("MARKET_DATA_URL", ""),
            api_key=_secret("MARKET_DATA_API_KEY"),
            format=os.getenv("MARKET_DATA_FORMAT", "auto"),
            fields=os.getenv("MARKET_DATA_FIELDS", ""),
        ),
        "manual_inputs": ManualInputs(directory=os.getenv("CLINKER_MANUAL_INPUTS_DIR", "")),
        "scenarios": ScenarioSettings(path=os.getenv("CLINKER_SCENARIOS_PATH", "")),
        "telemetry": TelemetrySettings(
            landing_dir=settings.telemetry_dir(),
            rules_path=os.getenv("CLINKER_TELEMETRY_RULES", ""),
        ),
    }
