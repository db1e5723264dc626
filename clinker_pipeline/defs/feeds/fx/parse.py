"""USD/INR reference rates (Frankfurter v1 JSON) as a typed table.

Pure functions: payloads in (already fetched by `feeds.fx.client`), a DataFrame and Problems out.
A record that cannot be read (bad date, non-numeric rate) is not kept, but it becomes an ERROR
Problem carrying the raw record. Value rules (a rate must be > 0) are the Pandera schema's
(`feeds.fx.schema`), written once. Frankfurter serves ECB reference rates (USD/INR as a cross
through EUR) on TARGET working days only; the table keeps the publication date, so `latest_rate`
tells the caller how old the rate is instead of pretending it is today's. These are not RBI/FBIL
rates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import RAW_RECORDS
from clinker_pipeline.lib.values import iso_date, number, sorted_by

FX_TABLE = "fx_rates"
FX_COLUMNS: tuple[str, ...] = ("date", "base", "quote", "rate", "source_row")
_CURRENCY = re.compile(r"[A-Z]{3}")


def fx_source(base: str, quote: str) -> str:
    """The Problem `source` of an FX table, as a planner names it ("FX USD/INR")."""
    return f"FX {base}/{quote}"


# ---- FX (Frankfurter v1) ----------------------------------------------------------------------


def parse_fx_timeseries(
    payload: Mapping[str, Any], quote: str = "INR"
) -> tuple[pd.DataFrame, list[Problem]]:
    """A v1 time series (`{"base", "start_date", "end_date", "rates": {day: {quote: rate}}}`).

    `start_date` may lie before the requested start (Frankfurter snaps back to the last published
    day); that row is kept, it is the rate in force on the requested start. Rows come out sorted
    by date; `source_row` is the day's position in `rates`.
    """
    base, problems = _fx_base(payload, quote)
    if base is None:
        return empty_fx(), problems
    rates = payload.get("rates")
    if not isinstance(rates, Mapping):
        return empty_fx(), [_fx_whole(base, quote, "rates", "payload has no 'rates' object")]
    rows: list[dict[str, Any]] = []
    raw: dict[int, dict[str, Any]] = {}
    for position, (day, entry) in enumerate(rates.items(), start=1):
        raw[position] = {"date": day, "rates": entry}
        row, found = _fx_row(day, entry, base, quote, position, raw[position])
        problems += found
        if row is not None:
            rows.append(row)
    frame = _fx_frame(rows)
    frame.attrs[RAW_RECORDS] = raw  # the schema's problems quarantine what arrived
    return frame, problems


def parse_fx_latest(
    payload: Mapping[str, Any], quote: str = "INR"
) -> tuple[pd.DataFrame, list[Problem]]:
    """A v1 `latest` answer (`{"base", "date", "rates": {quote: rate}}`): one row.

    Its date is the last ECB working day, often 1-4 days before today; it is kept as published.
    """
    base, problems = _fx_base(payload, quote)
    if base is None:
        return empty_fx(), problems
    rates = payload.get("rates")
    if not isinstance(rates, Mapping):
        return empty_fx(), [_fx_whole(base, quote, "rates", "payload has no 'rates' object")]
    row, found = _fx_row(payload.get("date"), rates, base, quote, 1, dict(payload))
    frame = _fx_frame([row] if row is not None else [])
    frame.attrs[RAW_RECORDS] = {1: dict(payload)}
    return frame, problems + found


def latest_rate(fx: pd.DataFrame, on: date | None = None) -> tuple[date, float]:
    """The last published rate on or before `on` (default: the newest), with its date.

    The date is returned on purpose: ECB rates skip weekends and TARGET holidays, so the rate
    that applies "on" a Sunday is Friday's, and a caller should see how old it is.
    Raises ValueError when the table is empty, mixes currency pairs, or starts after `on`.
    """
    if fx.empty:
        raise ValueError("no FX rates to choose from")
    pairs = fx[["base", "quote"]].drop_duplicates()
    if len(pairs) > 1:
        named = ", ".join(f"{b}/{q}" for b, q in pairs.itertuples(index=False))
        raise ValueError(f"FX table mixes currency pairs ({named}); filter one pair first")
    table = fx if on is None else fx[fx["date"].map(lambda d: d <= on)]
    if table.empty:
        raise ValueError(f"no FX rate on or before {on} (first rate is {min(fx['date'])})")
    day, rate = max(zip(table["date"], table["rate"], strict=True), key=lambda pair: pair[0])
    return day, float(rate)


def empty_fx() -> pd.DataFrame:
    return _fx_frame([])


def _fx_base(payload: Any, quote: str) -> tuple[str | None, list[Problem]]:
    if not isinstance(payload, Mapping):
        problem = Problem(
            FX_TABLE,
            fx_source("?", quote),
            None,
            None,
            f"payload is a {type(payload).__name__}, not a JSON object",
        )
        return None, [problem]
    base = payload.get("base")
    if not isinstance(base, str) or not _CURRENCY.fullmatch(base):
        problem = Problem(
            FX_TABLE,
            fx_source("?", quote),
            None,
            "base",
            f"base currency {base!r} is not a 3-letter ISO code",
            value=None if base is None else str(base),
            record={k: v for k, v in payload.items() if k != "rates"},
        )
        return None, [problem]
    return base, []


def _fx_whole(base: str, quote: str, column: str, message: str) -> Problem:
    return Problem(FX_TABLE, fx_source(base, quote), None, column, message)


def _fx_row(
    day: Any, entry: Any, base: str, quote: str, position: int, record: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[Problem]]:
    source = fx_source(base, quote)

    def problem(column: str, message: str, value: Any) -> Problem:
        shown = None if value is None else str(value)
        return Problem(FX_TABLE, source, position, column, message, value=shown, record=record)

    found: list[Problem] = []
    parsed = iso_date(day)
    if parsed is None:
        found.append(problem("date", f"date {day!r} is not a YYYY-MM-DD day", day))
    rate: float | None = None
    if not isinstance(entry, Mapping):
        found.append(problem("rate", "the day's rates are not a JSON object", entry))
    elif quote not in entry:
        found.append(problem("rate", f"no {quote} rate on this day", None))
    else:
        rate = number(entry[quote])
        if rate is None:
            found.append(
                problem("rate", f"{quote} rate {entry[quote]!r} is not a number", entry[quote])
            )
    if found:
        return None, found
    return {"date": parsed, "base": base, "quote": quote, "rate": rate, "source_row": position}, []


def _fx_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "date": pd.Series([r["date"] for r in rows], dtype=object),
            "base": pd.array([r["base"] for r in rows], dtype="string"),
            "quote": pd.array([r["quote"] for r in rows], dtype="string"),
            "rate": pd.array([r["rate"] for r in rows], dtype="float64"),
            "source_row": pd.array([r["source_row"] for r in rows], dtype="Int64"),
        }
    )
    return sorted_by(frame, ["date"])
