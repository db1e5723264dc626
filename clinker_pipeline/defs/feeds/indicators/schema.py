"""Structure (ERROR) and plausibility (WARN) rules of the CPI and manual indicator tables.

Structure is what a planner cannot use: a PMI above 100, a freight index in the wrong unit, two
values for one month. Plausibility is what is probably a typo or an upstream glitch but could be
real, so the row is kept and shown: CPI inflation outside -2..25 %, a PMI outside 35..70.

Ranges that only make sense for one series (CPI, each manual indicator) are applied to
that series' rows only, so a table holding several series is checked row by row against its own
bounds.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.indicators.parse import (
    CPI_INFLATION,
    MANUAL_INDICATORS,
    MANUAL_TABLE,
    WORLDBANK_TABLE,
    ManualIndicator,
)
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import (
    equals as _equals,
)
from clinker_pipeline.lib.feed_checks import (
    has_columns as _has,
)
from clinker_pipeline.lib.feed_checks import (
    pandera_problems,
)
from clinker_pipeline.lib.feed_checks import (
    plausibility_problems as _plausibility,
)

#: Plausible value range per World Bank indicator; indicators not listed get no range check.
WORLDBANK_PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {CPI_INFLATION: (-2.0, 25.0)}

_ROW = pa.Column(pd.Int64Dtype(), nullable=True)
_CODE = pa.Check.str_matches(r"^[A-Z]{3}$", error="must be a 3-letter ISO code")


def _first_of_month(series: pd.Series) -> pd.Series:
    return series.map(lambda d: isinstance(d, date) and d.day == 1)


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
