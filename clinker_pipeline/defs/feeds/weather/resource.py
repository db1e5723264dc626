"""How the weather asset reaches OpenWeatherMap: live with an API key, bundled payloads without."""

from __future__ import annotations

from typing import Any, ClassVar

from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, HttpFeedResource


class WeatherResource(HttpFeedResource):
    """OpenWeatherMap forecasts for every plant; with no API key, the bundled payloads."""

    KEY_PARAM: ClassVar = "appid"
    ENV: ClassVar = {
        **RETRY_ENV,
        "base_url": Env("OPENWEATHER_BASE_URL", "https://api.openweathermap.org"),
        "api_key": Env("WEATHER_API_KEY", secret=True),
        "onecall": Env("OPENWEATHER_ONECALL", False),
    }
    base_url: str | None = None
    api_key: str | None = None
    onecall: bool | None = None  # also fetch One Call 3.0 daily (needs its own subscription)
    max_workers: int = 4

    def client(self) -> Any:  # -> OpenWeatherClient
        from clinker_pipeline.defs.feeds.weather.client import DEFAULT_POLICY, OpenWeatherClient

        if self.sample_mode:
            return OpenWeatherClient.sample()
        return OpenWeatherClient.live(
            self.setting("base_url"),
            self.setting("api_key"),
            onecall=self.setting("onecall"),
            policy=self.policy(DEFAULT_POLICY),
            max_workers=self.max_workers,
        )
