"""Structure (ERROR) and plausibility (WARN) rules of the FX, CPI and manual indicator tables.

Structure is what a cost conversion cannot survive: a missing or non-positive rate, a PMI above
100, a freight index in the wrong unit, two rates for one day. Plausibility is what is probably a
typo or an upstream glitch but could be real, so the row is kept and shown: USD/INR outside
60..120, a move of more than 3 % between two consecutive published days (a crisis-sized move
for the rupee, far more often a wrong base or a shifted decimal), CPI inflation outside -2..25 %,
a PMI outside 35..70.

Ranges that only make sense for one series (USD/INR, CPI, each manual indicator) are applied to
that series' rows only, so a table holding several series is checked row by row against its own
bounds.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.indicators.parse import (
    CPI_INFLATION,
    FX_TABLE,
    MANUAL_INDICATORS,
    MANUAL_TABLE,
    WORLDBANK_TABLE,
    ManualIndicator,
)
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import pandera_problems

#: Plausible rate range per (base, quote); pairs not listed get no range check.
FX_PLAUSIBLE_RANGES: dict[tuple[str, str], tuple[float, float]] = {("USD", "INR"): (60.0, 120.0)}
#: Largest plausible move, in %, between two consecutive published days of one pair.
FX_MAX_DAILY_MOVE_PCT = 3.0
#: Plausible value range per World Bank indicator; indicators not listed get no range check.
WORLDBANK_PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {CPI_INFLATION: (-2.0, 25.0)}

_ROW = pa.Column(pd.Int64Dtype(), nullable=True)
_CODE = pa.Check.str_matches(r"^[A-Z]{3}$", error="must be a 3-letter ISO code")


def _first_of_month(series: pd.Series) -> pd.Series:
    return series.map(lambda d: isinstance(d, date) and d.day == 1)


FX_STRUCTURE = pa.DataFrameSchema(
    {
        "date": pa.Column(pa.Date),
        "base": pa.Column(pd.StringDtype(), _CODE),
        "quote": pa.Column(pd.StringDtype(), _CODE),
        "rate": pa.Column(float, pa.Check.gt(0, error="rate must be > 0")),
        "source_row": _ROW,
    },
    unique=["base", "quote", "date"],
    name=FX_TABLE,
)

WORLDBANK_STRUCTURE = pa.DataFrameSchema(
    {
        "indicator": pa.Column(pd.StringDtype(), pa.Check.str_length(min_value=1)),
        "indicator_name": pa.Column(pd.StringDtype(), nullable=True),
        "country": pa.Column(
            pd.StringDtype(), pa.Check.str_matches(r"^[A-Z0-9]{3}$", error="ISO3 country code")
        ),
        "year": pa.Column("int64", pa.Check.in_range(1960, 2100)),
        "value": pa.Column(float),
        "source_row": _ROW,
    },
    unique=["indicator", "country", "year"],
    name=WORLDBANK_TABLE,
)

MANUAL_STRUCTURE = pa.DataFrameSchema(
    {
        "indicator": pa.Column(
            pd.StringDtype(),
            pa.Check.isin(sorted(MANUAL_INDICATORS), error="unknown manual indicator"),
        ),
        "month": pa.Column(
            pa.Date, pa.Check(_first_of_month, error="month must be the first day of a month")
        ),
        "value": pa.Column(float),
        "unit": pa.Column(pd.StringDtype()),
        "source": pa.Column(
            pd.StringDtype(),
            pa.Check.str_length(min_value=1, error="source must say where the figure was read"),
        ),
        "source_row": _ROW,
    },
    unique=["indicator", "month"],
    name=MANUAL_TABLE,
)


def fx_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure problems (ERROR) and plausibility problems (WARN) of an FX table.

    The day-on-day move is computed per pair between consecutive published days (a Monday is
    compared with the Friday before); it is reported in an extra column `move_pct`.
    """
    problems = pandera_problems(FX_STRUCTURE, df, table_name=FX_TABLE, source=source)
    if df.empty or not _has(df, "date", "base", "quote", "rate"):
        return problems
    rate = pd.to_numeric(df["rate"], errors="coerce")
    checked = df.assign(rate=rate, move_pct=_moves_pct(df, rate))
    for (base, quote), (low, high) in FX_PLAUSIBLE_RANGES.items():
        rows = checked[_equals(checked["base"], base) & _equals(checked["quote"], quote)]
        rule = pa.Check.in_range(
            low, high, error=f"{base}/{quote} outside the plausible range {low:g}..{high:g}"
        )
        schema = pa.DataFrameSchema({"rate": pa.Column(None, rule, nullable=True)})
        problems += _plausibility(schema, rows, FX_TABLE, source)
    move = pa.Check.in_range(
        -FX_MAX_DAILY_MOVE_PCT,
        FX_MAX_DAILY_MOVE_PCT,
        error=f"moved more than {FX_MAX_DAILY_MOVE_PCT:g} % since the previous published day",
    )
    schema = pa.DataFrameSchema({"move_pct": pa.Column(None, move, nullable=True)})
    return problems + _plausibility(schema, checked, FX_TABLE, source)


def worldbank_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure problems (ERROR) and plausibility problems (WARN) of World Bank indicator rows."""
    problems = pandera_problems(WORLDBANK_STRUCTURE, df, table_name=WORLDBANK_TABLE, source=source)
    if df.empty or not _has(df, "indicator", "value"):
        return problems
    for indicator, (low, high) in WORLDBANK_PLAUSIBLE_RANGES.items():
        rows = df[_equals(df["indicator"], indicator)]
        rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"))
        rule = pa.Check.in_range(
            low, high, error=f"{indicator} outside the plausible range {low:g}..{high:g}"
        )
        schema = pa.DataFrameSchema({"value": pa.Column(None, rule, nullable=True)})
        problems += _plausibility(schema, rows, WORLDBANK_TABLE, source)
    return problems


def manual_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure problems (ERROR: unit, what the number can be at all) and plausibility (WARN)."""
    problems = pandera_problems(MANUAL_STRUCTURE, df, table_name=MANUAL_TABLE, source=source)
    if df.empty or not _has(df, "indicator", "value", "unit"):
        return problems
    for name, spec in MANUAL_INDICATORS.items():
        rows = df[_equals(df["indicator"], name)]
        if rows.empty:
            continue
        rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"))
        problems += pandera_problems(
            _manual_limits(name, spec), rows, table_name=MANUAL_TABLE, source=source
        )
        low, high = spec.plausible
        rule = pa.Check.in_range(
            low, high, error=f"{name} outside the plausible range {low:g}..{high:g}"
        )
        schema = pa.DataFrameSchema({"value": pa.Column(None, rule, nullable=True)})
        problems += _plausibility(schema, rows, MANUAL_TABLE, source)
    return problems


def _manual_limits(name: str, spec: ManualIndicator) -> pa.DataFrameSchema:
    if spec.upper is None:
        bound = pa.Check.ge if spec.lower_inclusive else pa.Check.gt
        op = ">=" if spec.lower_inclusive else ">"
        value = bound(spec.lower, error=f"{name} must be {op} {spec.lower:g}")
    else:
        value = pa.Check.in_range(
            spec.lower,
            spec.upper,
            include_min=spec.lower_inclusive,
            error=f"{name} must lie in {spec.lower:g}..{spec.upper:g}",
        )
    unit = pa.Check.isin([spec.unit], error=f"{name} is recorded in unit '{spec.unit}'")
    return pa.DataFrameSchema(
        {
            "value": pa.Column(None, value, nullable=True),
            "unit": pa.Column(None, unit, nullable=True),
        }
    )


def _has(df: pd.DataFrame, *columns: str) -> bool:
    """Whether the range rules can run at all (a missing column is already a structure ERROR)."""
    return all(column in df.columns for column in columns)


def _equals(series: pd.Series, value: str) -> pd.Series:
    """Plain bool mask (a missing code is simply not equal, rather than an NA mask)."""
    return series.eq(value).fillna(False).astype(bool)


def _moves_pct(df: pd.DataFrame, rate: pd.Series) -> pd.Series:
    """% change of each rate from the previous published day of the same pair (NaN for the first).

    Rows that fail structure (no date, no positive rate) are left out of the chain, so one bad
    row does not turn its neighbours into false alarms.
    """
    usable = rate.gt(0) & df["date"].map(lambda d: type(d) is date)
    moves = pd.Series(float("nan"), index=df.index, dtype="float64")
    chain = df.loc[usable, ["base", "quote", "date"]].assign(rate=rate[usable])
    if chain.empty:
        return moves
    chain = chain.astype({"base": object, "quote": object}).fillna({"base": "", "quote": ""})
    chain = chain.sort_values(["base", "quote", "date"], kind="stable")
    previous = chain.groupby(["base", "quote"], sort=False)["rate"].shift()
    moves.loc[chain.index] = ((chain["rate"] / previous - 1.0) * 100.0).round(2)
    return moves


def _plausibility(
    schema: pa.DataFrameSchema, rows: pd.DataFrame, table: str, source: str
) -> list[Problem]:
    if rows.empty:
        return []
    return pandera_problems(
        schema, rows, table_name=table, source=source, severity="WARN", rule="plausibility"
    )
