"""OpenWeatherMap payloads -> forecast steps, daily weather and road availability per period.

Pure functions: raw payloads in, tables and Problems out. A step that cannot be placed in time
or whose temperature or wind is not a number is quarantined as a Problem carrying the raw step,
never dropped silently and never guessed.

Road-closure rule (per 3-hour step): roads to and from a plant are taken as closed when the step
brings heavy rain, `rain >= HEAVY_RAIN_MM_PER_3H` (7.5 mm in 3 h, i.e. 60 mm if sustained over a
day, just under IMD's "heavy rain" class that starts at 64.5 mm/day: the flooding of rural
district roads that stops trucks starts below IMD's daily threshold when the rain is that
intense), or a gale, `wind_speed >= GALE_WIND_MS` (17.2 m/s, Beaufort 8, where high-sided
trucks are stopped). Gusts are reported but do not close roads on their own: OWM's gust field is
missing on many steps, and a rule that depends on it would change with the field's presence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.calendar import PeriodWindow

HEAVY_RAIN_MM_PER_3H = 7.5
GALE_WIND_MS = 17.2
STEP_HOURS = 3.0
IST_OFFSET_S = 19800

FORECAST_TABLE = "weather_forecast"
DAILY_TABLE = "weather_daily"

STEP_COLUMNS: dict[str, str] = {
    "plant_code": "object",
    "step_start_utc": "datetime64[ns, UTC]",
    "step_hours": "float64",
    "rain_mm": "float64",
    "snow_mm": "float64",
    "temp_c": "float64",
    "wind_speed_ms": "float64",
    "wind_gust_ms": "float64",
    "pop": "float64",
    "weather_main": "object",
    "road_closed": "bool",
    "source_row": "Int64",
}
DAILY_COLUMNS: tuple[str, ...] = (
    "plant_code",
    "day",
    "rain_mm",
    "snow_mm",
    "wind_max_ms",
    "gust_max_ms",
    "temp_min_c",
    "temp_max_c",
    "temp_mean_c",
    "heavy_rain_hours",
    "closed_hours",
    "hours_covered",
)
AVAILABILITY_COLUMNS: tuple[str, ...] = (
    "plant_code",
    "time_period",
    "availability",
    "closed_hours",
    "forecast_hours",
    "period_hours",
)


class _Bad(ValueError):
    """One field of a step that makes the step unusable."""

    def __init__(self, column: str, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


def closes_road(rain_mm: float, wind_speed_ms: float, step_hours: float = STEP_HOURS) -> bool:
    """The closure rule of the module docstring; rain is compared as a 3-hour rate."""
    heavy = rain_mm * STEP_HOURS / step_hours >= HEAVY_RAIN_MM_PER_3H if step_hours > 0 else False
    return bool(heavy or wind_speed_ms >= GALE_WIND_MS)


# ---- 2.5 forecast -----------------------------------------------------------------------------


def empty_steps() -> pd.DataFrame:
    """A steps table with no rows and the exact column types (for plants without data)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in STEP_COLUMNS.items()})


def parse_forecast(payload: Mapping, plant_code: str) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per 3-hour step of a 2.5 forecast payload, and the steps that could not be used.

    `rain`/`snow` are absent on dry steps (OWM sends them only when non-zero): absent means 0.0.
    `wind.gust` is often absent: NaN. `pop` absent: NaN. A step without `dt`, or whose `dt`,
    temperature, wind speed, gust, rain, snow or pop is present but not a number, becomes a
    Problem with the raw step as its record; the other steps are kept.
    """
    source = f"OpenWeatherMap forecast {plant_code}"
    steps = payload.get("list") if isinstance(payload, Mapping) else None
    if not isinstance(steps, list):
        cod = payload.get("cod") if isinstance(payload, Mapping) else None
        return empty_steps(), [
            Problem(
                FORECAST_TABLE,
                source,
                None,
                "list",
                f"payload has no 'list' of 3-hour steps (cod {cod!r}); no weather for the plant",
                record=_raw(payload),
            )
        ]
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for position, step in enumerate(steps, start=1):
        try:
            rows.append(_step_row(step, plant_code, position))
        except _Bad as bad:
            problems.append(
                Problem(
                    FORECAST_TABLE,
                    source,
                    position,
                    bad.column,
                    f"step {position} not used: {bad}",
                    value=None if bad.value is None else str(bad.value),
                    record=_raw(step),
                )
            )
    if not rows:
        return empty_steps(), problems
    table = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    table["step_start_utc"] = pd.to_datetime(table["step_start_utc"], unit="s", utc=True)
    return table.astype(STEP_COLUMNS), problems


def _step_row(step: Any, plant_code: str, position: int) -> dict[str, Any]:
    if not isinstance(step, Mapping):
        raise _Bad("list", f"is a JSON {type(step).__name__}, not an object", step)
    if "dt" not in step or step["dt"] is None:
        raise _Bad("dt", "has no 'dt' (Unix time of the step start), so it cannot be placed")
    dt = _number(step["dt"], "dt")
    main = step.get("main") if isinstance(step.get("main"), Mapping) else {}
    wind = step.get("wind") if isinstance(step.get("wind"), Mapping) else {}
    temp = _required(main, "temp", "main.temp")
    speed = _required(wind, "speed", "wind.speed")
    gust = _optional(wind, "gust", "wind.gust")
    rain = _precipitation(step, "rain")
    snow = _precipitation(step, "snow")
    pop = _optional(step, "pop", "pop")
    weather = step.get("weather")
    first = weather[0] if isinstance(weather, list) and weather else {}
    label = first.get("main") if isinstance(first, Mapping) else None
    return {
        "plant_code": plant_code,
        "step_start_utc": int(dt),
        "step_hours": STEP_HOURS,
        "rain_mm": rain,
        "snow_mm": snow,
        "temp_c": temp,
        "wind_speed_ms": speed,
        "wind_gust_ms": gust,
        "pop": pop,
        "weather_main": label if isinstance(label, str) else "",
        "road_closed": closes_road(rain, speed),
        "source_row": position,
    }


def _number(value: Any, column: str) -> float:
    """A finite JSON number (numeric strings too: some proxies re-serialise numbers as text)."""
    if isinstance(value, bool):
        raise _Bad(column, f"{column} is not a number: {value!r}", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(column, f"{column} is not a number: {value!r}", value) from None
    if not math.isfinite(number):
        raise _Bad(column, f"{column} is not a finite number: {value!r}", value)
    return number


def _required(block: Mapping, key: str, column: str) -> float:
    if block.get(key) is None:
        raise _Bad(column, f"has no {column}")
    return _number(block[key], column)


def _optional(block: Mapping, key: str, column: str) -> float:
    value = block.get(key)
    return math.nan if value is None else _number(value, column)


def _precipitation(step: Mapping, key: str) -> float:
    """`rain`/`snow`: absent (dry step) or {"3h": mm}; a null or empty block also means none."""
    block = step.get(key)
    if block is None:
        return 0.0
    if not isinstance(block, Mapping):
        raise _Bad(f"{key}.3h", f"{key} is {block!r}, expected an object with '3h'", block)
    value = block.get("3h")
    return 0.0 if value is None else _number(value, f"{key}.3h")


def _raw(value: Any) -> dict | None:
    if isinstance(value, Mapping):
        return dict(value)
    return None if value is None else {"value": value}


# ---- daily aggregation ------------------------------------------------------------------------


def daily_weather(steps: pd.DataFrame, utc_offset_s: int = IST_OFFSET_S) -> pd.DataFrame:
    """Per plant and local day: totals, extremes and hours of heavy rain and closed roads.

    A step belongs to the local day that holds its midpoint (so the 23:30-02:30 IST step counts
    for the day it mostly falls in); `hours_covered` tells a full day (24) from the ragged ends
    of the forecast. The mean temperature is weighted by step length.
    """
    if steps.empty:
        return _empty_daily()
    frame = steps.copy()
    hours = frame["step_hours"].astype(float)
    midpoint = _utc(frame["step_start_utc"]) + pd.to_timedelta(hours * 1800.0, unit="s")
    local = midpoint.dt.tz_localize(None) + pd.Timedelta(seconds=utc_offset_s)
    frame["day"] = local.dt.date
    rain = frame["rain_mm"].astype(float)
    frame["_heavy_h"] = np.where(rain * STEP_HOURS / hours >= HEAVY_RAIN_MM_PER_3H, hours, 0.0)
    frame["_closed_h"] = np.where(frame["road_closed"].astype(bool), hours, 0.0)
    frame["_temp_h"] = frame["temp_c"].astype(float) * hours
    frame["_hours"] = hours
    grouped = frame.groupby(["plant_code", "day"], sort=True)
    out = grouped.agg(
        rain_mm=("rain_mm", "sum"),
        snow_mm=("snow_mm", "sum"),
        wind_max_ms=("wind_speed_ms", "max"),
        gust_max_ms=("wind_gust_ms", "max"),
        temp_min_c=("temp_c", "min"),
        temp_max_c=("temp_c", "max"),
        _temp_h=("_temp_h", "sum"),
        heavy_rain_hours=("_heavy_h", "sum"),
        closed_hours=("_closed_h", "sum"),
        hours_covered=("_hours", "sum"),
    ).reset_index()
    out["temp_mean_c"] = out["_temp_h"] / out["hours_covered"]
    out = out[list(DAILY_COLUMNS)]
    return out.astype({c: "float64" for c in DAILY_COLUMNS[2:]})


def _empty_daily(extra: Sequence[str] = ()) -> pd.DataFrame:
    columns = [*DAILY_COLUMNS, *extra]
    return pd.DataFrame(
        {c: pd.Series(dtype="object" if c in ("plant_code", "day") else "float64") for c in columns}
    ).astype({"alerts": "int64"} if "alerts" in extra else {})


# ---- One Call 3.0 daily ------------------------------------------------------------------------


def parse_onecall_daily(payload: Mapping, plant_code: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Daily rows from One Call 3.0 `daily`, in `daily_weather`'s columns plus `alerts`.

    Differences from the 2.5 steps handled here: `daily[].rain`/`snow` are plain numbers (mm for
    the day), wind is flat (`wind_speed`, `wind_gust`), `temp` is a block (min, max, and morn/day/
    eve/night whose mean is `temp_mean_c`). The day is the local date of `dt` using the payload's
    `timezone_offset`, else its `timezone` name; a payload with neither is refused (no rows, one
    WARN: the outlook informs planners, the plan does not depend on it), never read as IST. Only daily totals are known, so the closure rule is applied to the day's
    mean 3-hour rate: a day with rain >= 8 x 7.5 mm, or a mean wind at gale force, counts 24
    closed hours; heavy-rain hours likewise. `alerts` counts the alerts whose [start, end)
    overlaps the local day.
    """
    source = f"OpenWeatherMap One Call {plant_code}"
    days = payload.get("daily") if isinstance(payload, Mapping) else None
    if not isinstance(days, list):
        return _empty_daily(["alerts"]), [
            Problem(
                DAILY_TABLE,
                source,
                None,
                "daily",
                "payload has no 'daily' list; no daily weather for the plant",
                record=_raw(payload),
            )
        ]
    zone = _payload_zone(payload)
    if isinstance(zone, _Bad):
        return _empty_daily(["alerts"]), [
            Problem(
                DAILY_TABLE,
                source,
                None,
                zone.column,
                f"{zone}; days cannot be placed in local time, so no daily weather for the plant",
                severity="WARN",  # One Call only informs weather_outlook: the plan goes on
                value=None if zone.value is None else str(zone.value),
                record=_raw({k: v for k, v in payload.items() if k != "daily"}),
            )
        ]
    problems: list[Problem] = []
    alerts = _alert_windows(payload.get("alerts"), source, problems)
    rows = []
    for position, entry in enumerate(days, start=1):
        try:
            rows.append(_daily_row(entry, plant_code, zone, alerts))
        except _Bad as bad:
            problems.append(
                Problem(
                    DAILY_TABLE,
                    source,
                    position,
                    bad.column,
                    f"day {position} not used: {bad}",
                    value=None if bad.value is None else str(bad.value),
                    record=_raw(entry),
                )
            )
    if not rows:
        return _empty_daily(["alerts"]), problems
    table = pd.DataFrame(rows, columns=[*DAILY_COLUMNS, "alerts"])
    return table.astype({**{c: "float64" for c in DAILY_COLUMNS[2:]}, "alerts": "int64"}), problems


def _payload_zone(payload: Mapping) -> tzinfo | _Bad:
    """The zone that makes One Call's `daily[].dt` local days: `timezone_offset` (seconds east of
    UTC), else the IANA `timezone` name, else a _Bad saying why neither can be used.

    Never a default: a plant outside India read as IST gets its days shifted (local noon in
    California is 01:30 the next day in IST) and its alerts counted on the wrong days.
    """
    offset = payload.get("timezone_offset")
    name = payload.get("timezone")
    has_name = isinstance(name, str) and bool(name.strip())
    if offset is not None:
        try:
            seconds = _number(offset, "timezone_offset")
            if abs(seconds) >= 86400:
                raise _Bad("timezone_offset", "is a day or more", offset)
            return timezone(timedelta(seconds=int(seconds)))
        except _Bad:
            if not has_name:
                return _Bad(
                    "timezone_offset",
                    f"timezone_offset {offset!r} is not a number of seconds east of UTC and "
                    "there is no 'timezone' name",
                    offset,
                )
    if has_name:
        try:
            return ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            return _Bad("timezone", f"unknown time zone {name!r} and no 'timezone_offset'", name)
    return _Bad("timezone_offset", "payload has neither 'timezone_offset' nor a 'timezone' name")


def _daily_row(
    entry: Any, plant_code: str, zone: tzinfo, alerts: list[tuple[float, float]]
) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise _Bad("daily", f"is a JSON {type(entry).__name__}, not an object", entry)
    if entry.get("dt") is None:
        raise _Bad("dt", "has no 'dt', so it cannot be placed")
    dt = _number(entry["dt"], "dt")
    temp = entry.get("temp") if isinstance(entry.get("temp"), Mapping) else {}
    t_min = _required(temp, "min", "temp.min")
    t_max = _required(temp, "max", "temp.max")
    parts = [_optional(temp, k, f"temp.{k}") for k in ("morn", "day", "eve", "night")]
    known = [p for p in parts if not math.isnan(p)]
    t_mean = sum(known) / len(known) if known else (t_min + t_max) / 2
    speed = _required(entry, "wind_speed", "wind_speed")
    gust = _optional(entry, "wind_gust", "wind_gust")
    rain = _optional(entry, "rain", "rain")
    snow = _optional(entry, "snow", "snow")
    rain = 0.0 if math.isnan(rain) else rain
    snow = 0.0 if math.isnan(snow) else snow
    day = datetime.fromtimestamp(dt, zone).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    start = midnight.timestamp()
    end = (midnight + timedelta(days=1)).timestamp()  # wall-clock day: 23/25 h across DST
    heavy = 24.0 if closes_road(rain, 0.0, 24.0) else 0.0
    closed = 24.0 if closes_road(rain, speed, 24.0) else 0.0
    return {
        "plant_code": plant_code,
        "day": day,
        "rain_mm": rain,
        "snow_mm": snow,
        "wind_max_ms": speed,
        "gust_max_ms": gust,
        "temp_min_c": t_min,
        "temp_max_c": t_max,
        "temp_mean_c": t_mean,
        "heavy_rain_hours": heavy,
        "closed_hours": closed,
        "hours_covered": 24.0,
        "alerts": sum(1 for a_start, a_end in alerts if a_start < end and a_end > start),
    }


def _alert_windows(raw: Any, source: str, problems: list[Problem]) -> list[tuple[float, float]]:
    """[start, end) of each alert; an alert that cannot be placed is a WARN, not a lost day."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(
            Problem(DAILY_TABLE, source, None, "alerts", "alerts is not a list", "WARN")
        )
        return []
    windows = []
    for position, alert in enumerate(raw, start=1):
        try:
            if not isinstance(alert, Mapping):
                raise _Bad("alerts", "is not an object", alert)
            start = _number(alert.get("start"), "alerts.start")
            end = _number(alert.get("end"), "alerts.end")
        except _Bad as bad:
            problems.append(
                Problem(
                    DAILY_TABLE,
                    source,
                    position,
                    bad.column,
                    f"alert {position} not counted: {bad}",
                    severity="WARN",
                    value=None if bad.value is None else str(bad.value),
                    record=_raw(alert),
                )
            )
            continue
        windows.append((start, max(end, start)))
    return windows


# ---- road availability per planning period ----------------------------------------------------


def road_availability(
    steps: pd.DataFrame,
    periods: Sequence[PeriodWindow],
    *,
    beyond_forecast_closure: float | Mapping[str, float] = 0.0,
) -> pd.DataFrame:
    """Share of each period in which a plant's roads are open, per plant and period.

        availability = 1 - (closed_hours + c * (period_hours - forecast_hours)) / period_hours

    `closed_hours` are the hours of road-closing steps inside the period and `forecast_hours`
    the hours of the period the forecast covers at all; each step counts by its overlap with the
    period, so a step straddling a period boundary is split. The forecast reaches 5 days ahead
    while a period is a month: `c` is the closure share assumed for the rest of the period (0 by
    default, "no news is open roads"; a monsoon scenario sets e.g. 0.5). A mapping gives `c` per
    plant code, missing plants 0. Every plant in `steps` gets a row for every period, also where
    the forecast does not reach (availability 1 - c). The result is clipped to [0, 1]; hours of
    overlapping duplicate steps are capped at the period length (the steps schema rejects such
    duplicates upstream).
    """
    closure = _closure(beyond_forecast_closure)
    plants = sorted(steps["plant_code"].dropna().astype(str).unique()) if len(steps) else []
    if not plants or not periods:
        return pd.DataFrame(
            {c: pd.Series(dtype=_AVAILABILITY_DTYPES[c]) for c in AVAILABILITY_COLUMNS}
        )
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    start_h = ((_utc(steps["step_start_utc"]) - epoch) / pd.Timedelta(hours=1)).to_numpy(float)
    end_h = start_h + steps["step_hours"].astype(float).to_numpy()
    closed = steps["road_closed"].astype(bool).to_numpy()
    codes = steps["plant_code"].astype(str).to_numpy()
    rows = []
    for window in periods:
        lo = (_timestamp(window.start) - epoch) / pd.Timedelta(hours=1)
        hi = (_timestamp(window.end) - epoch) / pd.Timedelta(hours=1)
        period_hours = window.hours
        overlap = np.clip(np.minimum(end_h, hi) - np.maximum(start_h, lo), 0.0, None)
        for plant in plants:
            mine = codes == plant
            covered = min(float(overlap[mine].sum()), period_hours)
            shut = min(float(overlap[mine & closed].sum()), covered)
            c = closure(plant)
            share = (shut + c * (period_hours - covered)) / period_hours if period_hours else 0.0
            rows.append(
                {
                    "plant_code": plant,
                    "time_period": int(window.period),
                    "availability": min(max(1.0 - share, 0.0), 1.0),
                    "closed_hours": shut,
                    "forecast_hours": covered,
                    "period_hours": period_hours,
                }
            )
    return pd.DataFrame(rows, columns=list(AVAILABILITY_COLUMNS)).astype(_AVAILABILITY_DTYPES)


_AVAILABILITY_DTYPES = {
    "plant_code": "object",
    "time_period": "int64",
    "availability": "float64",
    "closed_hours": "float64",
    "forecast_hours": "float64",
    "period_hours": "float64",
}


def _closure(value: float | Mapping[str, float]) -> Any:
    def check(share: Any, who: str) -> float:
        number = float(share)
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"beyond_forecast_closure{who} must be within 0..1, got {share!r}")
        return number

    if isinstance(value, Mapping):
        shares = {str(k): check(v, f" for {k}") for k, v in value.items()}
        return lambda plant: shares.get(plant, 0.0)
    share = check(value, "")
    return lambda plant: share


def _utc(series: pd.Series) -> pd.Series:
    values = pd.to_datetime(series)
    return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")


def _timestamp(value: datetime | date) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
