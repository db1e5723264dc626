"""Resources: how assets reach files, DuckDB and (later) the ERP and external feeds.

Paths are not secrets, so they are read from the environment at load time with defaults that
make the quick start work with no configuration at all.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from clinker_pipeline import settings
from clinker_pipeline.erp.mapping import ErpMapping, sample_mapping_path
from clinker_pipeline.instance import Instance, load_instance, sample_instance_path


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
        from clinker_pipeline.sources.sap import SapODataClient

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
        from clinker_pipeline.sources.oracle import (
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


def _secret(name: str) -> Any:
    """A secret from the environment as an EnvVar (Dagster never shows its value), or ""."""
    return dg.EnvVar(name) if os.getenv(name) else ""


def build_resources() -> dict[str, object]:
    database = settings.ensure_parent(settings.duckdb_path())
    return {
        "instance_files": InstanceFiles(path=settings.instance_path()),
        "duckdb": DuckDBResource(database=database),
        "duckdb_io_manager": DuckDBPandasIOManager(database=database, schema="instance"),
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
    }
