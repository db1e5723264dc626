"""How the cement price asset reaches the configured market feed (OGD JSON or CSV)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from clinker_pipeline.errors import InvalidSetting
from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, HttpFeedResource


class MarketResource(HttpFeedResource):
    """City cement prices from a configured JSON (OGD `records`) or CSV feed, else the sample."""

    LIVE_WHEN: ClassVar = "url"
    URL_FIELD: ClassVar = "url"
    KEY_PARAM: ClassVar = "api-key"
    ENV: ClassVar = {
        **RETRY_ENV,
        "url": Env("MARKET_DATA_URL"),
        "api_key": Env("MARKET_DATA_API_KEY", secret=True),
        "format": Env("MARKET_DATA_FORMAT", "auto"),  # auto | ogd-json | csv
        # JSON object: our field -> the feed's field id (OGD ids are dataset-specific), e.g.
        # {"price": "modal_price", "date": "arrival_date"}; unset fields keep the defaults
        "fields": Env("MARKET_DATA_FIELDS"),
    }
    url: str | None = None
    api_key: str | None = None
    format: str | None = None
    fields: str | None = None

    def field_map(self) -> dict[str, str]:
        fields = self.setting("fields")
        if not fields:
            return {}
        try:
            value = json.loads(fields)
        except ValueError as exc:
            raise InvalidSetting(f"MARKET_DATA_FIELDS is not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidSetting("MARKET_DATA_FIELDS must be a JSON object of field ids")
        return {str(k): str(v) for k, v in value.items()}

    def client(self) -> Any:  # -> MarketPriceClient
        from clinker_pipeline.defs.feeds.market.client import MarketPriceClient

        if self.sample_mode:
            return MarketPriceClient.sample()
        fmt = {"ogd-json": "json"}.get(self.setting("format"), self.setting("format"))
        return MarketPriceClient.live(
            self.setting("url"), api_key=self.setting("api_key"), fmt=fmt, policy=self.policy()
        )
