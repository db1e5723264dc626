"""The weather asset: forecasts per plant, daily weather and road availability per period.

Weather changes the plan (road availability caps, see `optimization.scenarios`).
"""

from datetime import date, datetime  # noqa: F401

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.feeds.spec import feed_asset
from clinker_pipeline.defs.feeds.weather.resource import WeatherResource
from clinker_pipeline.defs.feeds.weather.spec import SPEC
from clinker_pipeline.defs.resources import ErpSettings
from clinker_pipeline.lib.calendar import monthly_periods
from clinker_pipeline.lib.feed_runtime import FeedOutcome, StoredTable, drop_error_rows, utc_now
from clinker_pipeline.lib.markdown import to_markdown


@feed_asset(SPEC)
def weather_forecast(
    context: dg.AssetExecutionContext,
    plants: pd.DataFrame,
    weather: WeatherResource,
    erp: ErpSettings,
    duckdb: DuckDBResource,
):
    from clinker_pipeline.defs.feeds.weather.client import PlantLocation
    from clinker_pipeline.defs.feeds.weather.parse import (
        daily_weather,
        parse_forecast,
        parse_onecall_daily,
        road_availability,
    )
    from clinker_pipeline.defs.feeds.weather.schema import daily_problems, steps_problems

    def fetch() -> FeedOutcome:
        located = plants.dropna(subset=["latitude", "longitude"])
        missing = {
            str(code): "no coordinates in the plant master: no forecast"
            for code in plants.loc[~plants.index.isin(located.index), "iugu_code"]
        }
        locations = [
            PlantLocation(str(r.iugu_code), float(r.latitude), float(r.longitude))
            for r in located.itertuples(index=False)
        ]
        if not locations:
            # Not an outage but a fact about this instance (the public datasets carry no
            # coordinates): no retry can fix it, and the plan goes on without road caps.
            return FeedOutcome(
                tables={},
                problems=[],
                fetched=0,
                kept=0,
                missing_parts={
                    "all plants": "no plant of the instance has coordinates "
                    "(LATITUDE/LONGITUDE): no forecast, road availability not applied"
                },
                metadata={"plants_forecast": 0, "plants_failed": 0},
            )
        with weather.client() as client:
            fetched = client.fetch_all(locations)
        frames, problems, daily_extra = [], [], []
        for code, payload in fetched.forecasts.items():
            steps, found = parse_forecast(payload, code)
            frames.append(steps)
            problems += found
        for code, payload in fetched.onecall.items():
            days, found = parse_onecall_daily(payload, code)
            daily_extra.append(days)
            problems += found
        steps = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        problems += steps_problems(steps, "OpenWeatherMap forecast")
        steps = drop_error_rows(steps, problems, ("plant_code", "source_row"))
        daily = daily_weather(steps)
        problems += daily_problems(daily, "OpenWeatherMap forecast (daily)")
        mapping = erp.mapping()
        periods = monthly_periods(mapping.plan_start, mapping.periods)
        availability = road_availability(steps, periods)
        fetched_at = utc_now()
        tables = {
            "weather_forecast": StoredTable(steps.assign(fetched_at=fetched_at)),
            "weather_daily": StoredTable(daily.assign(fetched_at=fetched_at)),
            "road_availability": StoredTable(availability.assign(fetched_at=fetched_at)),
        }
        if daily_extra:
            outlook = pd.concat(daily_extra, ignore_index=True).assign(fetched_at=fetched_at)
            tables["weather_outlook"] = StoredTable(outlook)
        low = availability.sort_values("availability").head(8)
        return FeedOutcome(
            tables=tables,
            problems=problems,
            fetched=len(steps) + sum(p.rule == "schema" for p in problems),
            kept=len(steps),
            data_as_of=str(steps["step_start_utc"].max()) if len(steps) else None,
            missing_parts={**missing, **fetched.failures},
            metadata={
                "plants_forecast": len(fetched.forecasts),
                "plants_failed": len(fetched.failures),
                "min_road_availability": float(availability["availability"].min())
                if len(availability)
                else 1.0,
                "lowest_road_availability": dg.MetadataValue.md(
                    to_markdown(low, float_format="{:,.3f}")
                ),
            },
        )

    yield from SPEC.run(context, duckdb, source=weather, fetch=fetch)
