"""How the capacity asset reaches Oracle ERP: live with a host, bundled rows without."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, SourceResource


class OracleResource(SourceResource):
    """Oracle ERP production capacity; with no host, the bundled rows in the driver's shape."""

    ENV: ClassVar = {
        **RETRY_ENV,
        "host": Env("ORACLE_HOST"),
        "port": Env("ORACLE_PORT", 1521),
        "service_name": Env("ORACLE_SERVICE_NAME"),
        "username": Env("ORACLE_USERNAME", secret=True),
        "password": Env("ORACLE_PASSWORD", secret=True),
    }
    host: str | None = None
    port: int | None = None
    service_name: str | None = None
    username: str | None = None
    password: str | None = None
    wait_timeout_ms: int = 10_000
    call_timeout_ms: int = 60_000

    @property
    def sample_mode(self) -> bool:
        return not self.setting("host")

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
                    host=self.setting("host"),
                    port=self.setting("port"),
                    service_name=self.setting("service_name"),
                    username=self.setting("username"),
                    password=self.setting("password"),
                    wait_timeout_ms=self.wait_timeout_ms,
                    call_timeout_ms=self.call_timeout_ms,
                )
            )
        try:
            fetched = source.fetch(period_from, period_to)
        finally:
            source.close()
        return list(fetched.rows), list(fetched.bad_rows)
