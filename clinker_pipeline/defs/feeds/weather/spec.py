"""The weather feed, declared once (see `defs/feeds/spec.py` for what is derived from it)."""

from datetime import timedelta

from clinker_pipeline.defs.feeds.spec import FeedSpec, HealthProbe
from clinker_pipeline.defs.feeds.weather.resource import WeatherResource

SPEC = FeedSpec(
    name="weather",
    asset="weather_forecast",
    what="weather",
    description="OpenWeatherMap 5-day/3-hour forecast for every plant with coordinates; daily "
    "weather and road availability per plant and period (heavy rain and gales close roads).",
    kinds=frozenset({"openweathermap"}),
    resources={"weather": WeatherResource},
    cron="15 */3 * * *",
    cron_reason="every 3 hours (OWM's forecast steps are 3-hourly), 15 min past the step",
    max_age=timedelta(hours=7),
    tables=("weather_forecast", "weather_daily", "road_availability", "weather_outlook"),
    probe=HealthProbe(
        "Weather",
        "weather",
        "/data/2.5/forecast",
        {"lat": "19.96", "lon": "79.3", "cnt": "1", "units": "metric"},
    ),
    plan_input=True,
    ins=("plants",),
)
