"""How the indicators asset reaches the World Bank API and the manually kept monthly CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from clinker_pipeline.defs.feeds.indicators.parse import MANUAL_SAMPLE_DIR
from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, FeedResource, HttpFeedResource


class WorldBankResource(HttpFeedResource):
    """World Bank indicators API v2 (India CPI inflation); keyless, live when a URL is set."""

    LIVE_WHEN: ClassVar = "base_url"
    ENV: ClassVar = {**RETRY_ENV, "base_url": Env("WORLDBANK_BASE_URL")}
    base_url: str | None = None
    country: str = "IND"
    date_range: str = "2010:2026"

    def client(self) -> Any:  # -> WorldBankClient
        from clinker_pipeline.defs.feeds.indicators.client import WorldBankClient

        if self.sample_mode:
            return WorldBankClient.sample()
        return WorldBankClient.live(self.setting("base_url"), policy=self.policy())


class ManualInputs(FeedResource):
    """Indicators with no public API (manufacturing PMI, road freight index) as CSV files."""

    ENV: ClassVar = {**RETRY_ENV, "directory": Env("CLINKER_MANUAL_INPUTS_DIR")}
    directory: str | None = None  # unset: the bundled sample CSVs

    @property
    def sample_mode(self) -> bool:
        return not self.setting("directory")

    def path(self, indicator: str) -> Path:
        directory = self.setting("directory")
        return (Path(directory) if directory else MANUAL_SAMPLE_DIR) / f"{indicator}.csv"
