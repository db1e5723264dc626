"""The `cement_prices` table: what the planner cannot use (ERROR) and what looks wrong (WARN).

Structure is what statistics break on: a price without a city or a date cannot be placed, a
non-positive price cannot be logged, and two prices for one city and date make "the latest price"
ambiguous. Plausibility is what a channel check rarely reports and a typo often does: a bag price
outside 200..700 INR (a per-tonne figure typed into the per-bag column, a missing digit) or a
month-on-month move beyond 15 % in one city (Indian cement prices move a few percent a month;
a bigger jump is a data error more often than a market event). Those rows are kept and shown.
"""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.market.parse import TABLE
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import pandera_problems

#: Usual range of a 50 kg bag in India (INR); press channel checks quote about 330..420.
BAG_PRICE_MIN = 200.0
BAG_PRICE_MAX = 700.0
#: Largest plausible change of one city's price from one month to the next.
MAX_MONTHLY_MOVE = 0.15

MONTHLY_MOVE_CHECK = "month_on_month_move_within_15pct"


def _is_date(value: object) -> bool:
    return isinstance(value, date | pd.Timestamp) and not pd.isna(value)


STRUCTURE = pa.DataFrameSchema(
    {
        "city": pa.Column(
            pd.StringDtype(),
            pa.Check.str_length(min_value=1),
            nullable=False,
        ),
        "state": pa.Column(pd.StringDtype(), nullable=True),
        "region": pa.Column(pd.StringDtype(), nullable=True),
        "price_date": pa.Column(
            None,
            pa.Check(_is_date, element_wise=True, error="price_date must be a date"),
            nullable=False,
        ),
        "price_inr_per_bag": pa.Column(
            float, pa.Check.gt(0, error="price must be positive"), nullable=False
        ),
        "price_inr_per_t": pa.Column(float, pa.Check.gt(0), nullable=False),
        "source_row": pa.Column("Int64", nullable=True, required=False),
    },
    unique=["city", "price_date"],
    report_duplicates="all",
    name="cement_prices",
)


def _months(value: object) -> int | None:
    if not _is_date(value):
        return None
    day = value.date() if isinstance(value, datetime | pd.Timestamp) else value
    return day.year * 12 + day.month - 1  # type: ignore[union-attr]


def monthly_moves(df: pd.DataFrame) -> pd.Series:
    """Per row: its price change vs the same city's latest price of the previous calendar month.

    NaN where there is no such price (the first month, a gap month, an unusable row), so a city
    that skipped a month is not compared across the gap. Works by position, so a table whose
    index repeats (history concatenated from runs) is handled too.
    """
    moves = np.full(len(df), np.nan)
    frame = pd.DataFrame(
        {
            "city": df["city"].to_numpy(dtype=object),
            "month": df["price_date"].map(_months).to_numpy(dtype=object),
            "key": [pd.Timestamp(d) if _is_date(d) else pd.NaT for d in df["price_date"]],
            "price": pd.to_numeric(df["price_inr_per_t"], errors="coerce").to_numpy(),
        }
    ).reset_index(drop=True)
    frame = frame[frame["city"].notna() & frame["month"].notna() & (frame["price"] > 0)]
    last = frame.sort_values("key", kind="stable").groupby(["city", "month"]).tail(1)
    previous = {
        (c, int(m)): p for c, m, p in zip(last["city"], last["month"], last["price"], strict=True)
    }
    for position, city, month, price in zip(
        frame.index, frame["city"], frame["month"], frame["price"], strict=True
    ):
        before = previous.get((city, int(month) - 1))
        if before is not None:
            moves[position] = price / before - 1.0
    return pd.Series(moves, index=df.index, dtype="float64")


def _move_ok(df: pd.DataFrame) -> pd.Series:
    moves = monthly_moves(df)
    return moves.isna() | (moves.abs() <= MAX_MONTHLY_MOVE + 1e-12)


PLAUSIBILITY = pa.DataFrameSchema(
    {
        "price_inr_per_bag": pa.Column(
            float,
            pa.Check.in_range(
                BAG_PRICE_MIN,
                BAG_PRICE_MAX,
                error=f"price per 50 kg bag outside {BAG_PRICE_MIN:g}..{BAG_PRICE_MAX:g} INR",
            ),
            nullable=True,
        ),
    },
    checks=[pa.Check(_move_ok, name=MONTHLY_MOVE_CHECK, error=MONTHLY_MOVE_CHECK)],
    name="cement_prices_plausibility",
)


def price_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure failures (ERROR, rule "schema") then plausibility findings (WARN).

    The month-on-month finding is reworded to name the city, both dates and the move, since the
    generic check name tells a planner nothing about which price to look at. The index is
    renumbered first: history concatenated from several runs repeats index labels, which
    would make a failing row ambiguous.
    """
    df = df.reset_index(drop=True)
    found = pandera_problems(STRUCTURE, df, table_name=TABLE, source=source)
    warnings = pandera_problems(
        PLAUSIBILITY,
        df,
        table_name=TABLE,
        source=source,
        severity="WARN",
        rule="plausibility",
    )
    moves = monthly_moves(df) if warnings else None
    seen: set[tuple] = set()
    for item in warnings:
        if moves is not None and item.message.startswith(MONTHLY_MOVE_CHECK):
            # A frame-wide check fails once per column of the row: report the row once.
            item = _describe_move(item, df, moves)
            key = (item.row, item.message)
            if key in seen:
                continue
            seen.add(key)
        found.append(item)
    return found


def _describe_move(item: Problem, df: pd.DataFrame, moves: pd.Series) -> Problem:
    position = _row_position(df, item.row, moves)
    if position is None:
        return item
    move = float(moves.iloc[position])
    city = df["city"].iloc[position]
    day = _as_day(df["price_date"].iloc[position])
    return replace(
        item,
        column="price_inr_per_t",
        value=f"{move * 100:+.1f}%",
        message=(
            f"{city} {day.isoformat()}: price moved {move * 100:+.1f}% from "
            f"{_previous_month_name(day)}, more than ±{MAX_MONTHLY_MOVE * 100:g}% in a month"
        ),
    )


def _row_position(df: pd.DataFrame, row: int | None, moves: pd.Series) -> int | None:
    """The position of the row a Problem names (numbered as pandera_problems numbers rows:
    `source_row`, else position + 1) whose move is out of range."""
    if row is None:
        return None
    numbers = df["source_row"] if "source_row" in df.columns else pd.Series([pd.NA] * len(df))
    for position, (number, move) in enumerate(zip(numbers, moves, strict=True)):
        if (position + 1 if pd.isna(number) else int(number)) != row:
            continue
        if not pd.isna(move) and abs(move) > MAX_MONTHLY_MOVE:
            return position
    return None


def _as_day(value: object) -> date:
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    return value  # type: ignore[return-value]


def _previous_month_name(day: date) -> str:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return f"{calendar.month_abbr[month]} {year}"
