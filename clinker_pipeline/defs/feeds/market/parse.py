"""Cement market prices as a table, and the figures the planner reads from their history.

There is no public cement price API: prices arrive from a configured feed (an OGD `records`
payload or a CSV export of broker channel checks) whose field ids, date formats and units vary by
publisher. This module is where that variety ends:

* field ids are a mapping (`DEFAULT_FIELDS`), because OGD field ids are dataset-specific;
* values usually arrive as strings ("365", "₹ 3,650", "7300.00"): they are parsed strictly, and
  a value that is not a clean number is a Problem, never a guess;
* dates come as "YYYY-MM-DD", "YYYY-MM" (a monthly series: the first of the month) or
  "DD-MM-YYYY" (the Indian day-first convention; "/" is accepted as separator too). A day-first
  date is never read month-first: "03-04-2026" is 3 April;
* prices are per 50 kg bag unless the unit says per tonne; both are kept (INR/t is what the
  planner compares with production and freight cost, INR/bag is what the trade quotes);
* a bad record is quarantined as a Problem carrying the raw record; a duplicate (city, date)
  keeps the last one and reports the dropped one as a WARN, since a corrected re-publication
  usually comes later in the feed.

Statistics (all on `price_inr_per_t`, per city, observations ordered by date):

* volatility_pct = 100 * sample standard deviation (ddof=1) of r_i = ln(p_i / p_(i-1)) over
  consecutive observations; not annualised, so for a monthly feed it is a monthly volatility.
  NaN with fewer than 3 observations (fewer than 2 returns say nothing about dispersion).
* trend_inr_per_t_per_month = least-squares slope b of p = a + b * x, x the observation time in
  calendar months (month index + (day - 1) / days in that month, so first-of-month dates are
  exactly one apart); trend_pct_per_month = 100 * b / mean(p). NaN with fewer than 2 dates.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import RAW_RECORDS

#: Kilograms in one bag: the unit Indian cement prices are quoted in.
BAG_KG = 50.0

TABLE = "cement_prices"

#: Logical field -> the record's field id in the feed. Override per feed: OGD ids are chosen by
#: each publisher (e.g. "centre_name", "rate_rs_per_bag"). A falsy id means the feed lacks it.
DEFAULT_FIELDS: dict[str, str] = {
    "city": "city",
    "state": "state",
    "region": "region",
    "date": "date",
    "price": "price_inr_per_bag",
    "unit": "unit",
}

#: Set by the client on a CSV row whose cell count differs from the header's: its values may be
#: shifted (an unquoted "3,650" splits into two cells), so the row is quarantined, not read.
MALFORMED_KEY = "_malformed"

PRICE_COLUMNS: tuple[str, ...] = (
    "city",
    "state",
    "region",
    "price_date",
    "price_inr_per_bag",
    "price_inr_per_t",
    "source_row",
)

STATS_COLUMNS: tuple[str, ...] = (
    "city",
    "region",
    "observations",
    "first_date",
    "last_date",
    "latest_price_inr_per_t",
    "volatility_pct",
    "trend_inr_per_t_per_month",
    "trend_pct_per_month",
)

SPREAD_COLUMNS: tuple[str, ...] = (
    "region",
    "price_date",
    "cities",
    "min_price_inr_per_t",
    "max_price_inr_per_t",
    "spread_inr_per_t",
    "spread_pct",
    "cheapest_city",
    "dearest_city",
)

_YMD = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$")
_YM = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_DMY = re.compile(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})$")
_CURRENCY = re.compile(r"^(?:₹|rs\.?|inr)\s*|\s*(?:₹|rs\.?|inr)$", re.IGNORECASE)
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
#: Thousands separators as written in India (3,65,000) or elsewhere (365,000); anything else with
#: a comma (a decimal comma "365,50") is refused rather than read as 36550.
_GROUPED_NUMBER = re.compile(r"^\d{1,3}(?:(?:,\d{2})*,\d{3}|(?:,\d{3})+)(?:\.\d+)?$")
_PER_BAG = re.compile(r"^(?:50kg)?bags?(?:\(?(?:of)?50kgs?\)?)?$")
_PER_TONNE = re.compile(r"^(?:t|mt|tonnes?|tons?|metrictonnes?|metrictons?)$")


def parse_prices(
    records: Sequence[Mapping[str, Any]],
    fields: Mapping[str, str] = DEFAULT_FIELDS,
    *,
    source: str = "market prices",
    first_row: int = 1,
) -> tuple[pd.DataFrame, list[Problem]]:
    """The feed's records as a `cement_prices` table, and a Problem for every record not kept.

    `fields` may name only the ids that differ from DEFAULT_FIELDS. `source_row` (and a
    Problem's row) is `first_row` + the record's position: 1 numbers OGD records across pages,
    2 makes CSV rows match file lines (header = line 1). A missing unit means per 50 kg bag.
    """
    ids = {**DEFAULT_FIELDS, **dict(fields)}
    problems: list[Problem] = []
    kept: dict[tuple[str, date], tuple[int, dict[str, Any], Mapping[str, Any]]] = {}

    def problem(row: int, column: str | None, message: str, record: Mapping, value: Any = None):
        problems.append(
            Problem(
                TABLE,
                source,
                row,
                column,
                message,
                value=None if value is None else str(value),
                record=dict(record),
            )
        )

    for position, record in enumerate(records):
        row = first_row + position
        if not isinstance(record, Mapping):
            problems.append(
                Problem(TABLE, source, row, None, f"record is not an object: {record!r:.80}")
            )
            continue
        if record.get(MALFORMED_KEY):
            problem(row, None, f"malformed row: {record[MALFORMED_KEY]}", record)
            continue
        city = _text(_get(record, ids["city"]))
        if city is None:
            problem(row, ids["city"], "city is missing", record)
            continue
        raw_date = _get(record, ids["date"])
        if _text(raw_date) is None:
            problem(row, ids["date"], "date is missing", record)
            continue
        price_date = parse_price_date(raw_date)
        if price_date is None:
            problem(
                row,
                ids["date"],
                "date is not YYYY-MM-DD, YYYY-MM or DD-MM-YYYY",
                record,
                raw_date,
            )
            continue
        raw_price = _get(record, ids["price"])
        if _text(raw_price) is None:
            problem(row, ids["price"], "price is missing", record)
            continue
        price = parse_number(raw_price)
        if price is None:
            problem(row, ids["price"], "price is not a number", record, raw_price)
            continue
        raw_unit = _get(record, ids["unit"])
        unit = unit_kind(raw_unit)
        if unit is None:
            problem(
                row,
                ids["unit"],
                "unknown unit: expected per 50 kg bag or per tonne",
                record,
                raw_unit,
            )
            continue
        if unit == "bag":
            per_bag, per_t = price, price * 1000.0 / BAG_KG
        else:
            per_bag, per_t = price * BAG_KG / 1000.0, price
        key = (city, price_date)
        if key in kept:
            old_row, _, old_record = kept.pop(key)
            problems.append(
                Problem(
                    TABLE,
                    source,
                    old_row,
                    ids["date"],
                    f"duplicate price for {city} on {price_date.isoformat()}: "
                    f"row {row} replaces this one",
                    severity="WARN",
                    rule="dropped",
                    value=price_date.isoformat(),
                    record=dict(old_record),
                )
            )
        kept[key] = (
            row,
            {
                "city": city,
                "state": _text(_get(record, ids["state"])),
                "region": _text(_get(record, ids["region"])),
                "price_date": price_date,
                "price_inr_per_bag": per_bag,
                "price_inr_per_t": per_t,
                "source_row": row,
            },
            record,
        )

    table = _price_frame([entry for _, entry, _ in kept.values()])
    # value rules (a price must be positive) are the Pandera schema's; its problems quarantine
    # the record as it arrived
    table.attrs[RAW_RECORDS] = {row: dict(record) for row, _, record in kept.values()}
    problems.sort(key=lambda p: (p.row is None, p.row or 0))
    return table, problems


def parse_price_date(value: Any) -> date | None:
    """A price date from the three accepted spellings (or a date/datetime), else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    for pattern, order in ((_YMD, "ymd"), (_YM, "ym"), (_DMY, "dmy")):
        match = pattern.match(text)
        if not match:
            continue
        parts = [int(g) for g in match.groups()]
        year, month, day = {
            "ymd": lambda p: (p[0], p[1], p[2]),
            "ym": lambda p: (p[0], p[1], 1),
            "dmy": lambda p: (p[2], p[1], p[0]),
        }[order](parts)
        try:
            return date(year, month, day)
        except ValueError:
            return None
    return None


def parse_number(value: Any) -> float | None:
    """A finite float from a number or a numeric string ("365", "₹ 3,65,000.50"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = _text(value)
        if text is None:
            return None
        text = _CURRENCY.sub("", text).strip()
        if "," in text:
            if not _GROUPED_NUMBER.match(text):
                return None
            text = text.replace(",", "")
        if not _PLAIN_NUMBER.match(text):
            return None
        number = float(text)
    return number if math.isfinite(number) else None


def unit_kind(value: Any) -> str | None:
    """ "bag" (50 kg), "tonne", or None for a unit this feed cannot be read in.

    A missing unit is a bag: that is how the trade quotes cement. "INR/50kg bag", "Rs per bag",
    "₹/t", "INR per MT" are understood; "per kg" or "40 kg bag" are not, since reading them as
    a 50 kg bag would silently misprice.
    """
    text = _text(value)
    if text is None:
        return "bag"
    text = text.lower()
    text = re.sub(r"₹|\binr\b|\brs\b\.?", " ", text)
    text = re.sub(r"\bper\b", "/", text)
    text = re.sub(r"[\s/.-]+", "", text)
    if _PER_BAG.match(text):
        return "bag"
    if _PER_TONNE.match(text):
        return "tonne"
    return None


def market_stats(history: pd.DataFrame, *, as_of: date | None = None) -> pd.DataFrame:
    """One row per city: how many prices, the latest, their volatility and trend.

    `as_of` keeps only prices dated on or before it (what was known then), so a back-dated
    planning run is not informed by later prices. Formulas in the module docstring.
    """
    frame = _usable(history)
    if as_of is not None:
        frame = frame[frame["price_date"].map(lambda d: d <= as_of)]
    rows = []
    for city, group in frame.groupby("city", sort=True):
        group = group.sort_values("price_date", kind="stable")
        prices = group["price_inr_per_t"].to_numpy(dtype=float)
        dates = list(group["price_date"])
        n = len(prices)
        volatility = float("nan")
        if n >= 3:
            returns = np.diff(np.log(prices))
            volatility = float(np.std(returns, ddof=1) * 100.0)
        slope = _slope([month_position(d) for d in dates], prices)
        mean = float(prices.mean())
        rows.append(
            {
                "city": city,
                "region": group["region"].iloc[-1],
                "observations": n,
                "first_date": dates[0],
                "last_date": dates[-1],
                "latest_price_inr_per_t": float(prices[-1]),
                "volatility_pct": volatility,
                "trend_inr_per_t_per_month": slope,
                "trend_pct_per_month": slope / mean * 100.0 if mean else float("nan"),
            }
        )
    out = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    out["observations"] = out["observations"].astype("int64")
    for column in STATS_COLUMNS[5:]:
        out[column] = out[column].astype("float64")
    out["region"] = out["region"].astype(pd.StringDtype())
    out["city"] = out["city"].astype(pd.StringDtype())
    return out


def regional_spread(history: pd.DataFrame) -> pd.DataFrame:
    """Per region and month: how far apart its cities' prices are, and who is cheapest/dearest.

    Each city contributes its latest price in the month; `price_date` is the latest of the
    contributing dates (the day the comparison is as of). Cities without a region are left out
    (they belong to no comparison). Ties go to the alphabetically first city.
    """
    frame = _usable(history)
    frame = frame[frame["region"].notna()]
    frame = frame.assign(_month=[(d.year, d.month) for d in frame["price_date"]])
    latest = (
        frame.sort_values(["city", "price_date"], kind="stable")
        .groupby(["city", "_month"], sort=False)
        .tail(1)
    )
    rows = []
    for (region, _), group in latest.groupby(["region", "_month"], sort=True):
        group = group.sort_values(["price_inr_per_t", "city"], kind="stable")
        prices = group["price_inr_per_t"].to_numpy(dtype=float)
        low, high = float(prices[0]), float(prices[-1])
        dearest = group[group["price_inr_per_t"] == high]["city"].min()
        spread = high - low
        rows.append(
            {
                "region": region,
                "price_date": max(group["price_date"]),
                "cities": len(group),
                "min_price_inr_per_t": low,
                "max_price_inr_per_t": high,
                "spread_inr_per_t": spread,
                "spread_pct": spread / float(prices.mean()) * 100.0,
                "cheapest_city": group["city"].iloc[0],
                "dearest_city": dearest,
            }
        )
    out = pd.DataFrame(rows, columns=list(SPREAD_COLUMNS))
    out["cities"] = out["cities"].astype("int64")
    for column in SPREAD_COLUMNS[3:7]:
        out[column] = out[column].astype("float64")
    for column in ("region", "cheapest_city", "dearest_city"):
        out[column] = out[column].astype(pd.StringDtype())
    return out.sort_values(["region", "price_date"], kind="stable").reset_index(drop=True)


def month_position(day: date) -> float:
    """Time in calendar months: first-of-month dates are whole numbers one month apart."""
    days = calendar.monthrange(day.year, day.month)[1]
    return day.year * 12 + (day.month - 1) + (day.day - 1) / days


def _slope(x: Sequence[float], y: np.ndarray) -> float:
    xs = np.asarray(x, dtype=float)
    if len(xs) < 2:
        return float("nan")
    dx = xs - xs.mean()
    denominator = float((dx * dx).sum())
    if denominator == 0:
        return float("nan")
    return float((dx * (y - y.mean())).sum() / denominator)


def _usable(history: pd.DataFrame) -> pd.DataFrame:
    """Rows a statistic can use: a city, a date and a positive per-tonne price."""
    missing = {"city", "region", "price_date", "price_inr_per_t"} - set(history.columns)
    if missing:
        raise ValueError(f"price history lacks column(s) {sorted(missing)}")
    frame = history[
        history["city"].notna()
        & history["price_date"].notna()
        & (pd.to_numeric(history["price_inr_per_t"], errors="coerce") > 0)
    ].copy()
    frame["price_date"] = frame["price_date"].map(_as_date)
    frame["price_inr_per_t"] = frame["price_inr_per_t"].astype(float)
    return frame


def _as_date(value: Any) -> date:
    """History read back from storage may hold Timestamps instead of dates."""
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    return value


def _price_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(PRICE_COLUMNS))
    for column in ("city", "state", "region"):
        frame[column] = frame[column].astype(pd.StringDtype())
    frame["price_date"] = frame["price_date"].astype(object)
    for column in ("price_inr_per_bag", "price_inr_per_t"):
        frame[column] = frame[column].astype("float64")
    frame["source_row"] = frame["source_row"].astype("Int64")
    return frame.sort_values(["city", "price_date"], kind="stable").reset_index(drop=True)


def _get(record: Mapping[str, Any], field_id: str | None) -> Any:
    return record.get(field_id) if field_id else None


def _text(value: Any) -> str | None:
    """Stripped text with inner whitespace collapsed; None for missing, blank or NaN."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = " ".join(str(value).split())
    return text or None
