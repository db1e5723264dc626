"""Structure (ERROR) and plausibility (WARN) rules of the FX table.

Structure is what a cost conversion cannot survive: a missing or non-positive rate, two rates
for one day. Plausibility is what is probably a typo or an upstream glitch but could be real, so
the row is kept and shown: USD/INR outside 60..120, a move of more than 3 % between two
consecutive published days (a crisis-sized move for the rupee, far more often a wrong base or a
shifted decimal).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.defs.feeds.fx.parse import FX_TABLE
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import (
    equals,
    has_columns,
    pandera_problems,
    plausibility_problems,
)

#: Plausible rate range per (base, quote); pairs not listed get no range check.
FX_PLAUSIBLE_RANGES: dict[tuple[str, str], tuple[float, float]] = {("USD", "INR"): (60.0, 120.0)}
#: Largest plausible move, in %, between two consecutive published days of one pair.
FX_MAX_DAILY_MOVE_PCT = 3.0

_CODE = pa.Check.str_matches(r"^[A-Z]{3}$", error="must be a 3-letter ISO code")

FX_STRUCTURE = pa.DataFrameSchema(
    {
        "date": pa.Column(pa.Date),
        "base": pa.Column(pd.StringDtype(), _CODE),
        "quote": pa.Column(pd.StringDtype(), _CODE),
        "rate": pa.Column(float, pa.Check.gt(0, error="rate must be > 0")),
        "source_row": pa.Column(pd.Int64Dtype(), nullable=True),
    },
    unique=["base", "quote", "date"],
    name=FX_TABLE,
)


def fx_problems(df: pd.DataFrame, source: str) -> list[Problem]:
    """Structure problems (ERROR) and plausibility problems (WARN) of an FX table.

    The day-on-day move is computed per pair between consecutive published days (a Monday is
    compared with the Friday before); it is reported in an extra column `move_pct`.
    """
    problems = pandera_problems(FX_STRUCTURE, df, table_name=FX_TABLE, source=source)
    if df.empty or not has_columns(df, "date", "base", "quote", "rate"):
        return problems
    rate = pd.to_numeric(df["rate"], errors="coerce")
    checked = df.assign(rate=rate, move_pct=_moves_pct(df, rate))
    for (base, quote), (low, high) in FX_PLAUSIBLE_RANGES.items():
        rows = checked[equals(checked["base"], base) & equals(checked["quote"], quote)]
        rule = pa.Check.in_range(
            low, high, error=f"{base}/{quote} outside the plausible range {low:g}..{high:g}"
        )
        schema = pa.DataFrameSchema({"rate": pa.Column(None, rule, nullable=True)})
        problems += plausibility_problems(schema, rows, FX_TABLE, source)
    move = pa.Check.in_range(
        -FX_MAX_DAILY_MOVE_PCT,
        FX_MAX_DAILY_MOVE_PCT,
        error=f"moved more than {FX_MAX_DAILY_MOVE_PCT:g} % since the previous published day",
    )
    schema = pa.DataFrameSchema({"move_pct": pa.Column(None, move, nullable=True)})
    return problems + plausibility_problems(schema, checked, FX_TABLE, source)


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
