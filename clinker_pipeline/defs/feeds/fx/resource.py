"""How the FX asset reaches a Frankfurter-style API: keyless, so live only when a URL is set."""

from __future__ import annotations

from typing import Any, ClassVar

from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, HttpFeedResource


class FxResource(HttpFeedResource):
    """USD/INR reference rates (Frankfurter JSON); keyless, so live only when a URL is set."""

    LIVE_WHEN: ClassVar = "base_url"
    KEY_PARAM: ClassVar = "api_key"
    ENV: ClassVar = {
        **RETRY_ENV,
        "base_url": Env("FX_BASE_URL"),
        "api_key": Env("FX_API_KEY", secret=True),  # only for a private mirror that wants one
    }
    base_url: str | None = None
    api_key: str | None = None
    history_start: str = "2024-01-01"

    def client(self) -> Any:  # -> FxClient
        from clinker_pipeline.defs.feeds.fx.client import FxClient

        if self.sample_mode:
            return FxClient.sample()
        return FxClient.live(
            self.setting("base_url"), api_key=self.setting("api_key"), policy=self.policy()
        )
