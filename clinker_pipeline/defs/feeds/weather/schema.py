"""Pandera schemas of the weather tables: what the road-availability factor can rely on.

Structure (ERROR): types, keys present, one row per plant and step (a duplicated step would be
counted twice as closed hours), precipitation and wind non-negative, `pop` a probability.
Plausibility (WARN): values a forecast for India should not produce (-40..55 degC, more than
150 mm in 3 hours, wind above 60 m/s); the row is kept and shown, since a real cyclone can
break a range that a units mix-up (Kelvin, mph) breaks too.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.weather.parse import DAILY_TABLE, FORECAST_TABLE
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import pandera_problems

TEMP_RANGE_C = (-40.0, 55.0)
MAX_RAIN_MM_PER_3H = 150.0
MAX_WIND_MS = 60.0
#: The daily table sums eight 3-hour steps.
MAX_RAIN_MM_PER_DAY = MAX_RAIN_MM_PER_3H * 8

_NON_NEGATIVE = pa.Check.ge(0)


def _non_blank() -> pa.Check:
    return pa.Check.str_length(min_value=1, name="non_blank")


def _is_date() -> pa.Check:
    return pa.Check(
        lambda v: isinstance(v, date) and not isinstance(v, datetime),
        element_wise=True,
        name="is_date",
        error="day must be a calendar date",
    )


STEPS_SCHEMA = pa.DataFrameSchema(
    {
        "plant_code": pa.Column(str, _non_blank(), nullable=False),
        "step_start_utc": pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=False),
        "step_hours": pa.Column(float, pa.Check.gt(0), nullable=False),
        "rain_mm": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "snow_mm": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "temp_c": pa.Column(float, nullable=False),
        "wind_speed_ms": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "wind_gust_ms": pa.Column(float, _NON_NEGATIVE, nullable=True),
        "pop": pa.Column(float, pa.Check.in_range(0, 1), nullable=True),
        "weather_main": pa.Column(str, nullable=False),
        "road_closed": pa.Column(bool, nullable=False),
        "source_row": pa.Column("Int64", pa.Check.ge(1), nullable=True),
    },
    unique=["plant_code", "step_start_utc"],
    name="weather_forecast",
)

STEPS_PLAUSIBILITY = pa.DataFrameSchema(
    {
        "temp_c": pa.Column(checks=pa.Check.in_range(*TEMP_RANGE_C), nullable=True),
        "rain_mm": pa.Column(checks=pa.Check.le(MAX_RAIN_MM_PER_3H), nullable=True),
        "wind_speed_ms": pa.Column(checks=pa.Check.le(MAX_WIND_MS), nullable=True),
        "wind_gust_ms": pa.Column(checks=pa.Check.le(MAX_WIND_MS), nullable=True),
    },
    name="weather_forecast_plausibility",
)

#: Row checks across columns: pandera reports them once per column of the failing row, so only
#: the cells the check is about are kept (error text -> columns).
_CROSS_CHECKS: dict[str, tuple[str, ...]] = {
    "temp_min_c must not exceed temp_max_c": ("temp_min_c", "temp_max_c"),
    "closed_hours must not exceed hours_covered": ("closed_hours", "hours_covered"),
}

DAILY_SCHEMA = pa.DataFrameSchema(
    {
        "plant_code": pa.Column(str, _non_blank(), nullable=False),
        "day": pa.Column(object, _is_date(), nullable=False),
        "rain_mm": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "snow_mm": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "wind_max_ms": pa.Column(float, _NON_NEGATIVE, nullable=False),
        "gust_max_ms": pa.Column(float, _NON_NEGATIVE, nullable=True),
        "temp_min_c": pa.Column(float, nullable=False),
        "temp_max_c": pa.Column(float, nullable=False),
        "temp_mean_c": pa.Column(float, nullable=False),
        "heavy_rain_hours": pa.Column(float, pa.Check.in_range(0, 24), nullable=False),
        "closed_hours": pa.Column(float, pa.Check.in_range(0, 24), nullable=False),
        "hours_covered": pa.Column(float, pa.Check.in_range(0, 24), nullable=False),
        # Only One Call daily rows carry alerts.
        "alerts": pa.Column(int, _NON_NEGATIVE, nullable=False, required=False),
    },
    checks=[
        pa.Check(
            lambda df: df["temp_min_c"] <= df["temp_max_c"],
            name="temp_min_not_above_max",
            error="temp_min_c must not exceed temp_max_c",
            ignore_na=True,
        ),
        pa.Check(
            lambda df: df["closed_hours"] <= df["hours_covered"],
            name="closed_within_covered",
            error="closed_hours must not exceed hours_covered",
            ignore_na=True,
        ),
    ],
    unique=["plant_code", "day"],
    name="weather_daily",
)

DAILY_PLAUSIBILITY = pa.DataFrameSchema(
    {
        "temp_min_c": pa.Column(checks=pa.Check.in_range(*TEMP_RANGE_C), nullable=True),
        "temp_max_c": pa.Column(checks=pa.Check.in_range(*TEMP_RANGE_C), nullable=True),
        "rain_mm": pa.Column(checks=pa.Check.le(MAX_RAIN_MM_PER_DAY), nullable=True),
        "wind_max_ms": pa.Column(checks=pa.Check.le(MAX_WIND_MS), nullable=True),
        "gust_max_ms": pa.Column(checks=pa.Check.le(MAX_WIND_MS), nullable=True),
    },
    name="weather_daily_plausibility",
)


def steps_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure failures (ERROR, rule "schema") then plausibility ones (WARN)."""
    return _problems(df, source, FORECAST_TABLE, STEPS_SCHEMA, STEPS_PLAUSIBILITY)


def daily_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure failures (ERROR, rule "schema") then plausibility ones (WARN)."""
    return _problems(df, source, DAILY_TABLE, DAILY_SCHEMA, DAILY_PLAUSIBILITY)


def _problems(
    df: pd.DataFrame,
    source: str,
    table: str,
    structure: pa.DataFrameSchema,
    plausibility: pa.DataFrameSchema,
) -> list[Problem]:
    problems = [
        p
        for p in pandera_problems(structure, df, table_name=table, source=source)
        if all(
            p.column in columns or not p.message.startswith(error)
            for error, columns in _CROSS_CHECKS.items()
        )
    ]
    # Plausibility looks at numbers only: a column that is missing or not numeric is already a
    # structure ERROR above and must not come back as a second, confusing range failure.
    present = [c for c in plausibility.columns if c in df.columns]
    numeric = df.copy()
    for column in present:
        numeric[column] = pd.to_numeric(numeric[column], errors="coerce").astype("float64")
    schema = plausibility.select_columns(present) if present else None
    if schema is not None:
        problems += pandera_problems(
            schema,
            numeric,
            table_name=table,
            source=source,
            severity="WARN",
            rule="plausibility",
        )
    return problems
