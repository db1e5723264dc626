"""Pandera schemas of the weekly diesel tables (USD per gallon, then INR per litre).

Structure (ERROR) is what the fuel index cannot use: a week missing or repeated, a price that is
not positive, an FX date after the week it priced (a look-ahead join). Plausibility (WARN) keeps
the row but shows it: US retail diesel has stayed within about 1.5..8 $/gal and rarely moves
more than 15 % in a week, so a value outside that is more likely a unit or feed error (cents,
a different series) than the market. The week-on-week check runs on the whole frame because it
compares neighbours; its Problems name the week and both prices.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.diesel.parse import INR_TABLE, TABLE
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import pandera_problems

PLAUSIBLE_USD_PER_GAL = (1.5, 8.0)
PLAUSIBLE_INR_PER_LITRE = (40.0, 200.0)
MAX_WEEKLY_CHANGE = 0.15

WEEK_ON_WEEK_CHECK = f"week-on-week price change within ±{MAX_WEEKLY_CHANGE:.0%}"
FX_DATE_CHECK = "FX rate dated on or before the week it prices"

_is_date = pa.Check(
    lambda s: s.map(lambda v: isinstance(v, date)),
    error="week is a datetime.date",
)


def _week_on_week_ok(df: pd.DataFrame) -> pd.Series:
    change = _weekly_change(df)
    return (change.abs() <= MAX_WEEKLY_CHANGE) | change.isna()


def _weekly_change(df: pd.DataFrame) -> pd.Series:
    """Relative change from the previous week present (NaN for the first week)."""
    ordered = df.sort_values("week", kind="stable")
    price = ordered["usd_per_gal"].astype("float64")
    return (price / price.shift(1) - 1.0).reindex(df.index)


def _week_column() -> pa.Column:
    return pa.Column(object, nullable=False, unique=True, checks=_is_date)


diesel_structure = pa.DataFrameSchema(
    {
        "week": _week_column(),
        "usd_per_gal": pa.Column("float64", nullable=False, checks=pa.Check.gt(0)),
        "series": pa.Column("string", nullable=True),
        "units": pa.Column("string", nullable=True),
        "source_row": pa.Column("Int64", nullable=True),
    },
    strict=False,
    name="diesel_prices structure",
)

diesel_plausibility = pa.DataFrameSchema(
    {
        "usd_per_gal": pa.Column(
            "float64", nullable=True, checks=pa.Check.in_range(*PLAUSIBLE_USD_PER_GAL)
        ),
    },
    checks=[pa.Check(_week_on_week_ok, error=WEEK_ON_WEEK_CHECK)],
    strict=False,
    name="diesel_prices plausibility",
)


def _fx_not_after_week(df: pd.DataFrame) -> pd.Series:
    fx = pd.to_datetime(df["fx_date"], errors="coerce")
    return fx.isna() | (fx <= pd.to_datetime(df["week"], errors="coerce"))


diesel_inr_structure = pa.DataFrameSchema(
    {
        "week": _week_column(),
        "usd_per_gal": pa.Column("float64", nullable=False, checks=pa.Check.gt(0)),
        "usd_inr": pa.Column("float64", nullable=True, checks=pa.Check.gt(0)),
        "fx_date": pa.Column(object, nullable=True),
        "inr_per_litre": pa.Column("float64", nullable=True, checks=pa.Check.gt(0)),
    },
    checks=[pa.Check(_fx_not_after_week, error=FX_DATE_CHECK)],
    strict=False,
    name="diesel_prices_inr structure",
)

diesel_inr_plausibility = pa.DataFrameSchema(
    {
        "inr_per_litre": pa.Column(
            "float64", nullable=True, checks=pa.Check.in_range(*PLAUSIBLE_INR_PER_LITRE)
        ),
    },
    strict=False,
    name="diesel_prices_inr plausibility",
)


def diesel_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure (ERROR, rule "schema") then plausibility (WARN, rule "plausibility") findings."""
    found = pandera_problems(diesel_structure, df, table_name=TABLE, source=source)
    plausible = pandera_problems(
        diesel_plausibility,
        df,
        table_name=TABLE,
        source=source,
        severity="WARN",
        rule="plausibility",
    )
    return found + _name_week_on_week(plausible, df)


def diesel_inr_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """The same two levels for the INR table; weeks with no FX rate are not reported here."""
    found = _one_column(
        pandera_problems(diesel_inr_structure, df, table_name=INR_TABLE, source=source),
        FX_DATE_CHECK,
        "fx_date",
    )
    return found + pandera_problems(
        diesel_inr_plausibility,
        df,
        table_name=INR_TABLE,
        source=source,
        severity="WARN",
        rule="plausibility",
    )


def _one_column(problems: list[Problem], check: str, column: str) -> list[Problem]:
    """Pandera reports a failing frame-level check once per column; keep the telling one."""
    return [p for p in problems if not p.message.startswith(check) or p.column == column]


def _name_week_on_week(problems: list[Problem], df: pd.DataFrame) -> list[Problem]:
    """One Problem per jump, naming both weeks and prices (the row is found by source_row)."""
    jumps = _jump_details(df)
    out: list[Problem] = []
    for problem in _one_column(problems, WEEK_ON_WEEK_CHECK, "week"):
        detail = jumps.get(problem.row) if problem.message.startswith(WEEK_ON_WEEK_CHECK) else None
        out.append(
            dataclasses.replace(problem, message=f"{WEEK_ON_WEEK_CHECK}: {detail}")
            if detail
            else problem
        )
    return out


def _jump_details(df: pd.DataFrame) -> dict[int | None, str]:
    if df.empty or "week" not in df.columns or "usd_per_gal" not in df.columns:
        return {}
    ordered = df.assign(_change=_weekly_change(df)).sort_values("week", kind="stable")
    previous = ordered[["week", "usd_per_gal"]].shift(1)
    details: dict[int | None, str] = {}
    for position, (index, r) in enumerate(ordered.iterrows()):
        change = r["_change"]
        if pd.isna(change) or abs(change) <= MAX_WEEKLY_CHANGE:
            continue
        if "source_row" in df.columns and not pd.isna(r["source_row"]):
            row: int | None = int(r["source_row"])
        else:
            row = int(df.index.get_loc(index)) + 1
        before = previous.iloc[position]
        details[row] = (
            f"week {r['week']} at {r['usd_per_gal']:.3f} $/gal is {change:+.1%} on "
            f"{before['week']} at {before['usd_per_gal']:.3f} $/gal"
        )
    return details
