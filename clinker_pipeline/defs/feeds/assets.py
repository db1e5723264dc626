"""External feeds as assets: weather, diesel, FX, economic indicators, cement market prices.

Weather and diesel change the plan (road availability caps and fuel-indexed road freight, see
`optimization.scenarios`); FX converts diesel to INR; indicators and market prices do not enter
the model but are kept, checked and shown for the planners who read the plan next to them.
Every asset goes through `feed_runtime.run_feed`: same checks, quarantine, last-good fallback.
"""

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.resources import (
    DieselResource,
    ErpSettings,
    FxResource,
    ManualInputs,
    MarketResource,
    WeatherResource,
    WorldBankResource,
)
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.calendar import monthly_periods
from clinker_pipeline.lib.feed_runtime import (
    FeedOutcome,
    StoredTable,
    feed_checks,
    feed_retry_policy,
    run_feed,
)
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.feeds import read_table

GROUP = "external"
OWNERS = ["team:planning"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def drop_error_rows(
    frame: pd.DataFrame, problems: list[Problem], keys: tuple[str, ...]
) -> pd.DataFrame:
    """Rows named by an ERROR problem (matched on `keys` of its record) leave the stored table;
    they are in the quarantine, and a value the planner cannot trust must not wait in a
    snapshot for a later run."""
    bad = {
        tuple(str(p.record.get(k)) for k in keys)
        for p in problems
        if p.severity == "ERROR" and p.record and all(k in p.record for k in keys)
    }
    if not bad or frame.empty:
        return frame
    mine = frame[list(keys)].astype(str).apply(tuple, axis=1)
    return frame[~mine.isin(bad)].reset_index(drop=True)


def _asset(name: str, kinds: set[str], what: str, description: str, **kwargs):
    return dg.asset(
        name=name,
        group_name=GROUP,
        kinds=kinds | {"duckdb"},
        owners=OWNERS,
        check_specs=feed_checks(name, what),
        retry_policy=feed_retry_policy(),
        description=description,
        **kwargs,
    )


@_asset(
    "weather_forecast",
    {"openweathermap"},
    "weather",
    "OpenWeatherMap 5-day/3-hour forecast for every plant with coordinates; daily weather and "
    "road availability per plant and period (heavy rain and gales close roads).",
    ins={"plants": dg.AssetIn()},
)
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
        fetched_at = _now()
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

    yield from run_feed(
        context,
        duckdb,
        asset="weather_forecast",
        feed="weather",
        main_table="weather_forecast",
        sample_mode=weather.sample_mode,
        fetch=fetch,
    )


@_asset(
    "fx_rates",
    {"frankfurter"},
    "FX",
    "USD/INR reference rates (ECB via Frankfurter JSON), kept as history by date.",
)
def fx_rates(context: dg.AssetExecutionContext, fx: FxResource, duckdb: DuckDBResource):
    from clinker_pipeline.defs.feeds.indicators.parse import parse_fx_timeseries
    from clinker_pipeline.defs.feeds.indicators.schema import fx_problems

    def fetch() -> FeedOutcome:
        with fx.client() as client:
            payload = client.timeseries(
                date.fromisoformat(fx.history_start), datetime.now(UTC).date()
            )
        table, problems = parse_fx_timeseries(payload, "INR")
        problems += fx_problems(table, "FX USD/INR")
        table = drop_error_rows(table, problems, ("date",))
        latest = table.iloc[-1] if len(table) else None
        return FeedOutcome(
            tables={
                "fx_rates": StoredTable(
                    table.drop(columns="source_row").assign(fetched_at=_now()),
                    keys=("date", "base", "quote"),
                )
            },
            problems=problems,
            fetched=len(table) + sum(p.severity == "ERROR" for p in problems),
            kept=len(table),
            data_as_of=str(latest["date"]) if latest is not None else None,
            metadata={"latest_usd_inr": float(latest["rate"]) if latest is not None else 0.0},
        )

    yield from run_feed(
        context,
        duckdb,
        asset="fx_rates",
        feed="fx",
        main_table="fx_rates",
        sample_mode=fx.sample_mode,
        fetch=fetch,
    )


@_asset(
    "diesel_prices",
    {"eia"},
    "diesel price",
    "EIA weekly US No 2 diesel retail price, converted to INR per litre with the FX history; "
    "the latest week sets the fuel index of road freight.",
    deps=["fx_rates"],
)
def diesel_prices(
    context: dg.AssetExecutionContext, diesel: DieselResource, duckdb: DuckDBResource
):
    from clinker_pipeline.defs.feeds.diesel.parse import (
        diesel_in_inr,
        missing_fx_problems,
        parse_diesel,
    )
    from clinker_pipeline.defs.feeds.diesel.schema import diesel_inr_problems, diesel_problems

    def fetch() -> FeedOutcome:
        with diesel.client() as client:
            fetched = client.weekly_diesel(start=date.fromisoformat(diesel.history_start))
        table, problems = parse_diesel(fetched.rows)
        problems += diesel_problems(table, "EIA weekly diesel")
        problems += [
            Problem("diesel_prices", "EIA weekly diesel", None, None, w, severity="WARN")
            for w in fetched.warnings
        ]
        table = drop_error_rows(table, problems, ("week",))
        with duckdb.get_connection() as con:
            fx = read_table(con, "fx_rates")
        if fx is None or fx.empty:
            raise InvalidPayload("diesel: no USD/INR rates stored yet; materialize fx_rates")
        fx = fx[(fx["base"] == "USD") & (fx["quote"] == "INR")][["date", "rate"]]
        fx["date"] = pd.to_datetime(fx["date"]).dt.date
        inr = diesel_in_inr(table, fx)
        problems += missing_fx_problems(inr, "EIA weekly diesel (INR)")
        problems += diesel_inr_problems(inr, "EIA weekly diesel (INR)")
        latest = inr.dropna(subset=["inr_per_litre"]).tail(1)
        return FeedOutcome(
            tables={
                "diesel_prices": StoredTable(
                    inr.drop(columns="source_row").assign(fetched_at=_now()), keys=("week",)
                )
            },
            problems=problems,
            fetched=len(fetched.rows),
            kept=len(inr),
            data_as_of=str(latest["week"].iloc[0]) if len(latest) else None,
            metadata={
                "pages": fetched.pages,
                "latest_week": str(latest["week"].iloc[0]) if len(latest) else "",
                "latest_usd_per_gal": float(latest["usd_per_gal"].iloc[0]) if len(latest) else 0.0,
                "latest_inr_per_litre": float(latest["inr_per_litre"].iloc[0])
                if len(latest)
                else 0.0,
            },
        )

    yield from run_feed(
        context,
        duckdb,
        asset="diesel_prices",
        feed="diesel",
        main_table="diesel_prices",
        sample_mode=diesel.sample_mode,
        fetch=fetch,
    )


MANUAL = ("manufacturing_pmi", "road_freight_index")


@_asset(
    "economic_indicators",
    {"worldbank", "csv"},
    "indicator",
    "India CPI inflation (World Bank API v2) and the manual monthly inputs with no public API "
    "(manufacturing PMI, road freight index), kept as history.",
)
def economic_indicators(
    context: dg.AssetExecutionContext,
    worldbank: WorldBankResource,
    manual_inputs: ManualInputs,
    duckdb: DuckDBResource,
):
    from clinker_pipeline.defs.feeds.indicators.parse import parse_manual_csv, parse_worldbank
    from clinker_pipeline.defs.feeds.indicators.schema import manual_problems, worldbank_problems

    def fetch() -> FeedOutcome:
        frames, problems, missing, fetched_rows = [], [], {}, 0
        try:
            with worldbank.client() as client:
                rows = client.indicator(worldbank.country, date_range=worldbank.date_range)
            fetched_rows += len(rows)
            cpi, found = parse_worldbank(rows)
            found += worldbank_problems(cpi, "World Bank CPI")
            problems += found
            cpi = drop_error_rows(cpi, found, ("indicator", "year"))
            frames.append(
                pd.DataFrame(
                    {
                        "indicator": cpi["indicator"],
                        "period": [date(int(y), 1, 1) for y in cpi["year"]],
                        "frequency": "annual",
                        "value": cpi["value"],
                        "unit": "% per year",
                        "country": cpi["country"],
                        "source": "World Bank " + cpi["indicator_name"].astype(str),
                    }
                )
            )
        except (SourceUnavailable, InvalidPayload) as exc:
            missing["worldbank"] = str(exc)
        for name in MANUAL:
            path = manual_inputs.path(name)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                missing[name] = f"cannot read {path}: {exc.strerror}"
                continue
            table, found = parse_manual_csv(text, name)
            found += manual_problems(table, path.name)
            problems += found
            table = drop_error_rows(table, found, ("indicator", "month"))
            fetched_rows += len(table)
            frames.append(
                pd.DataFrame(
                    {
                        "indicator": table["indicator"],
                        "period": table["month"],
                        "frequency": "monthly",
                        "value": table["value"],
                        "unit": table["unit"],
                        "country": "IND",
                        "source": table["source"],
                    }
                )
            )
        if not frames:
            raise SourceUnavailable(
                "economic indicators: no source answered: "
                + "; ".join(f"{k}: {v}" for k, v in missing.items())
            )
        table = pd.concat(frames, ignore_index=True)
        latest = table.sort_values("period").groupby("indicator").tail(1)
        return FeedOutcome(
            tables={
                "economic_indicators": StoredTable(
                    table.assign(fetched_at=_now()), keys=("indicator", "period")
                )
            },
            problems=problems,
            fetched=fetched_rows,
            kept=len(table),
            data_as_of=str(table["period"].max()),
            missing_parts=missing,
            metadata={
                "latest": dg.MetadataValue.md(
                    to_markdown(
                        latest[["indicator", "period", "value", "unit"]], float_format="{:,.2f}"
                    )
                )
            },
        )

    yield from run_feed(
        context,
        duckdb,
        asset="economic_indicators",
        feed="indicators",
        main_table="economic_indicators",
        sample_mode=worldbank.sample_mode and manual_inputs.sample_mode,
        fetch=fetch,
    )


@_asset(
    "cement_prices",
    {"json", "csv"},
    "cement price",
    "City cement prices from the configured market feed (OGD `records` JSON or CSV), kept as "
    "history; volatility, trend and regional spread recomputed over the whole history.",
)
def cement_prices(
    context: dg.AssetExecutionContext, market: MarketResource, duckdb: DuckDBResource
):
    from clinker_pipeline.defs.feeds.market.parse import (
        DEFAULT_FIELDS,
        market_stats,
        parse_prices,
        regional_spread,
    )
    from clinker_pipeline.defs.feeds.market.schema import price_problems

    def fetch() -> FeedOutcome:
        with market.client() as client:
            fetched = client.fetch()
        table, problems = parse_prices(
            fetched.records,
            {**DEFAULT_FIELDS, **market.field_map()},
            source="cement market prices",
            first_row=fetched.first_row,
        )
        problems += price_problems(table, "cement market prices")
        table = drop_error_rows(table, problems, ("city", "price_date"))
        table = table.drop(columns="source_row").assign(fetched_at=_now())
        with duckdb.get_connection() as con:
            kept = read_table(con, "cement_prices")
        history = table
        if kept is not None and len(kept):
            kept["price_date"] = pd.to_datetime(kept["price_date"]).dt.date
            merged = pd.concat([kept, table], ignore_index=True)
            history = merged.drop_duplicates(["city", "price_date"], keep="last")
        stats = market_stats(history)
        spread = regional_spread(history)
        return FeedOutcome(
            tables={
                "cement_prices": StoredTable(table, keys=("city", "price_date")),
                "cement_market_stats": StoredTable(stats.assign(computed_at=_now())),
                "cement_regional_spread": StoredTable(spread.assign(computed_at=_now())),
            },
            problems=problems,
            fetched=len(fetched.records),
            kept=len(table),
            data_as_of=str(table["price_date"].max()) if len(table) else None,
            metadata={
                "format": fetched.format,
                "cities": int(history["city"].nunique()),
                "market_stats": dg.MetadataValue.md(
                    to_markdown(
                        stats[
                            [
                                "city",
                                "latest_price_inr_per_t",
                                "volatility_pct",
                                "trend_pct_per_month",
                            ]
                        ],
                        float_format="{:,.2f}",
                    )
                ),
            },
        )

    yield from run_feed(
        context,
        duckdb,
        asset="cement_prices",
        feed="market",
        main_table="cement_prices",
        sample_mode=market.sample_mode,
        fetch=fetch,
    )


EXTERNAL_ASSETS = [weather_forecast, fx_rates, diesel_prices, economic_indicators, cement_prices]
