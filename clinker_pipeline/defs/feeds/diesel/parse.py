"""Weekly US diesel prices from EIA rows to INR per litre and a fuel-cost index (pure).

Why the care: `value` arrives as a string on this route and as a number on others, and a week
with no survey comes back as null; a price that cannot be read must be quarantined with its raw
record, not turned into NaN that later averages away. Duplicate weeks (overlapping pages, a
revised row) keep the first one EIA sent, which under the client's newest-first sort is the
one EIA listed first, and the repeat is reported.

The INR conversion joins each week to the latest exchange rate published on or before it, never
a later one: using a rate from the future would make history change when the FX feed catches up.
A week older than every rate gets NaN, and the caller reports it (see `missing_fx_problems`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import plain_value

LITRES_PER_US_GALLON = 3.785411784

TABLE = "diesel_prices"
INR_TABLE = "diesel_prices_inr"
SOURCE_NAME = "EIA weekly diesel"
COLUMNS = ("week", "usd_per_gal", "series", "units", "source_row")
DERIVED_COLUMNS = ("usd_inr", "fx_date", "inr_per_litre")

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_diesel(rows: Sequence[Mapping]) -> tuple[pd.DataFrame, list[Problem]]:
    """EIA `response.data` rows -> one row per week, sorted ascending, plus Problems.

    `source_row` is the record's 1-based position in `rows` (all pages, as fetched).
    """
    problems: list[Problem] = []
    kept: list[dict[str, Any]] = []
    first_of_week: dict[date, tuple[int, float]] = {}
    for n, raw in enumerate(rows, start=1):
        record = dict(raw) if isinstance(raw, Mapping) else {"value": raw}
        if not isinstance(raw, Mapping):
            problems.append(
                _problem(n, record, None, f"record is a {type(raw).__name__}, not an object", raw)
            )
            continue
        week, week_error = _week(raw.get("period"))
        price, price_error = _price(raw, "value")
        if week_error:
            problems.append(_problem(n, record, "period", week_error, raw.get("period")))
        if price_error:
            problems.append(_problem(n, record, "value", price_error, raw.get("value")))
        if week is None or price is None:
            continue
        if week in first_of_week:
            first_n, first_price = first_of_week[week]
            same = "same price" if math.isclose(price, first_price) else f"{first_price:g} kept"
            problems.append(
                Problem(
                    TABLE,
                    SOURCE_NAME,
                    n,
                    "period",
                    f"week {week} repeats row {first_n} ({price:g} $/gal here, {same}); "
                    "repeat ignored",
                    severity="WARN",
                    rule="dropped",
                    value=str(raw.get("period")),
                    record=record,
                )
            )
            continue
        first_of_week[week] = (n, price)
        kept.append(
            {
                "week": week,
                "usd_per_gal": price,
                "series": _text(raw.get("series")),
                "units": _text(raw.get("units")),
                "source_row": n,
            }
        )
    frame = pd.DataFrame(kept, columns=list(COLUMNS))
    frame = frame.sort_values("week", kind="stable").reset_index(drop=True)
    frame = frame.astype(
        {
            "week": object,
            "usd_per_gal": "float64",
            "series": "string",
            "units": "string",
            "source_row": "Int64",
        }
    )
    return frame, problems


def diesel_in_inr(diesel: pd.DataFrame, fx: pd.DataFrame) -> pd.DataFrame:
    """Adds `usd_inr`, `fx_date` and `inr_per_litre` from the latest FX rate on or before each week.

    `fx` has `date` (datetime.date) and `rate` (INR per USD); null or non-positive rates are
    skipped, so the previous good rate applies. Rows keep the order of `diesel` sorted by week.
    """
    missing = [c for c in ("date", "rate") if c not in fx.columns]
    if missing:
        raise ValueError(f"fx table lacks column(s) {missing}; expected 'date' and 'rate'")
    for column in ("week", "usd_per_gal"):
        if column not in diesel.columns:
            raise ValueError(f"diesel table lacks column '{column}'")

    rates = fx[["date", "rate"]].copy()
    rates["rate"] = pd.to_numeric(rates["rate"], errors="coerce")
    rates = rates[rates["date"].notna() & (rates["rate"] > 0)]
    rates = rates.assign(_at=pd.to_datetime(rates["date"]).astype("datetime64[ns]"))
    rates = rates.sort_values("_at", kind="stable").drop_duplicates("_at", keep="last")

    derived = [c for c in DERIVED_COLUMNS if c in diesel.columns]
    left = diesel.drop(columns=derived).sort_values("week", kind="stable").reset_index(drop=True)
    left = left.assign(_at=pd.to_datetime(left["week"]).astype("datetime64[ns]"))
    joined = pd.merge_asof(
        left,
        rates.rename(columns={"date": "fx_date", "rate": "usd_inr"})[["_at", "fx_date", "usd_inr"]],
        on="_at",
        direction="backward",
        allow_exact_matches=True,
    ).drop(columns="_at")
    joined["usd_inr"] = joined["usd_inr"].astype("float64")
    joined["fx_date"] = joined["fx_date"].astype(object).where(joined["fx_date"].notna(), None)
    joined["inr_per_litre"] = (
        joined["usd_per_gal"].astype("float64") * joined["usd_inr"] / LITRES_PER_US_GALLON
    )
    return joined[[c for c in joined.columns if c not in DERIVED_COLUMNS] + list(DERIVED_COLUMNS)]


def missing_fx_problems(diesel_inr: pd.DataFrame, source: str = SOURCE_NAME) -> list[Problem]:
    """One WARN per week that has a price but no FX rate on or before it (so no INR price)."""
    out = []
    gaps = diesel_inr[diesel_inr["usd_per_gal"].notna() & diesel_inr["inr_per_litre"].isna()]
    for _, r in gaps.iterrows():
        row = r.get("source_row")
        out.append(
            Problem(
                INR_TABLE,
                source,
                None if row is None or pd.isna(row) else int(row),
                "usd_inr",
                f"week {r['week']}: no USD/INR rate on or before this week; no INR price",
                severity="WARN",
                rule="reference",
                value=str(r["week"]),
                record={k: plain_value(v) for k, v in r.items()},
            )
        )
    return out


def fuel_index(
    diesel_now_inr_per_l: float, diesel_base_inr_per_l: float, fuel_share: float = 0.35
) -> float:
    """Transport cost multiplier: only the fuel share of a freight rate moves with diesel.

    1 + fuel_share * (now / base - 1); 1.0 at the base price.
    """
    for name, value in (
        ("diesel_now_inr_per_l", diesel_now_inr_per_l),
        ("diesel_base_inr_per_l", diesel_base_inr_per_l),
        ("fuel_share", fuel_share),
    ):
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"{name} must be a finite number (got {value!r})")
    if diesel_base_inr_per_l <= 0:
        raise ValueError(f"diesel_base_inr_per_l must be > 0 (got {diesel_base_inr_per_l})")
    if diesel_now_inr_per_l < 0:
        raise ValueError(f"diesel_now_inr_per_l must be >= 0 (got {diesel_now_inr_per_l})")
    if not 0 <= fuel_share <= 1:
        raise ValueError(f"fuel_share must be within 0..1 (got {fuel_share})")
    return 1.0 + fuel_share * (diesel_now_inr_per_l / diesel_base_inr_per_l - 1.0)


def latest_price(diesel_inr: pd.DataFrame) -> pd.Series:
    """The row of the most recent week that has an INR price."""
    priced = diesel_inr[diesel_inr["inr_per_litre"].notna()]
    if priced.empty:
        raise ValueError("no week has an INR diesel price (no prices, or no FX rate before them)")
    position = pd.to_datetime(priced["week"]).to_numpy().argmax()
    return priced.iloc[int(position)]


def _problem(n: int, record: dict, column: str | None, message: str, value: Any) -> Problem:
    return Problem(
        TABLE,
        SOURCE_NAME,
        n,
        column,
        message,
        value=None if value is None else str(value),
        record=record,
    )


def _week(value: Any) -> tuple[date | None, str | None]:
    if value is None or value == "":
        return None, "no period"
    if not isinstance(value, str) or not _ISO_DAY.match(value.strip()):
        return None, f"period {value!r} is not a YYYY-MM-DD week"
    try:
        return date.fromisoformat(value.strip()), None
    except ValueError:
        return None, f"period {value!r} is not a calendar date"


def _price(raw: Mapping, key: str) -> tuple[float | None, str | None]:
    if key not in raw:
        return None, "no value field (was data[0]=value sent?)"
    value = raw[key]
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "no price for this week (value is null)"
    if isinstance(value, bool):
        return None, f"value {value!r} is not a number"
    if isinstance(value, int | float):
        price = float(value)
    elif isinstance(value, str):
        try:
            price = float(value.strip())
        except ValueError:
            return None, f"value {value!r} is not a number"
    else:
        return None, f"value {value!r} is not a number"
    if not math.isfinite(price):
        return None, f"value {value!r} is not a finite number"
    if price < 0:
        return None, f"negative price {price:g} $/gal"
    return price, None


def _text(value: Any) -> str:
    return "" if value is None else str(value)
