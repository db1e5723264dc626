"""How the diesel asset reaches EIA API v2: live with an API key, bundled payloads without."""

from __future__ import annotations

from typing import Any, ClassVar

from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, HttpFeedResource


class DieselResource(HttpFeedResource):
    """EIA weekly US retail diesel (API v2); with no API key, the bundled payloads."""

    KEY_PARAM: ClassVar = "api_key"
    ENV: ClassVar = {
        **RETRY_ENV,
        "base_url": Env("EIA_BASE_URL", "https://api.eia.gov"),
        "api_key": Env("FUEL_PRICE_API_KEY", secret=True),
    }
    base_url: str | None = None
    api_key: str | None = None
    history_start: str = "2024-01-01"

    def client(self) -> Any:  # -> EiaClient
        from clinker_pipeline.defs.feeds.diesel.client import DEFAULT_POLICY, EiaClient

        if self.sample_mode:
            return EiaClient.sample()
        return EiaClient.live(
            self.setting("base_url"), self.setting("api_key"), policy=self.policy(DEFAULT_POLICY)
        )
