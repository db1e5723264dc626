"""USD/INR rates, India CPI inflation and manually keyed indicators as typed tables.

Pure functions: payloads in (already fetched by `feeds.fx.client` / `feeds.indicators.client`, or a
CSV someone typed from a press release), DataFrames and Problems out. The choices:

* A record that cannot be read (bad date, non-numeric or non-positive rate, a month typed as
  "Oct-26") is not kept, but it is never dropped silently either: it becomes an ERROR Problem
  carrying the raw record, so the quarantine table shows exactly what arrived.
* World Bank rows with `"value": null` are normal (the newest year is published months later).
  They are not data, so they are not kept; they come back as WARN Problems with rule "dropped",
  which makes "the 2025 figure is not out yet" visible instead of looking like a lost row.
* Frankfurter serves ECB reference rates (USD/INR as a cross through EUR) on TARGET working days
  only; the tables keep the publication date, so `latest_rate` tells the caller how old the rate
  is instead of pretending it is today's. These are not RBI/FBIL rates.
* Manual CSVs carry a `source` column on purpose: PMI and freight figures are licensed or
  surveyed numbers typed in by a person, and a planner must be able to trace each one.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from clinker_pipeline.instance.problems import Problem, Rule, Severity

#: World Bank indicator id of "Inflation, consumer prices (annual %)".
CPI_INFLATION = "FP.CPI.TOTL.ZG"

FX_TABLE = "fx_rates"
WORLDBANK_TABLE = "worldbank_indicators"
MANUAL_TABLE = "manual_indicators"

FX_COLUMNS: tuple[str, ...] = ("date", "base", "quote", "rate", "source_row")
WORLDBANK_COLUMNS: tuple[str, ...] = (
    "indicator",
    "indicator_name",
    "country",
    "year",
    "value",
    "source_row",
)
MANUAL_COLUMNS: tuple[str, ...] = ("indicator", "month", "value", "unit", "source", "source_row")
#: Header a manual CSV must carry (any order, case and surrounding blanks ignored).
MANUAL_CSV_HEADER: tuple[str, ...] = ("month", "value", "unit", "source")

#: Bundled example files for the manual feed, `<indicator>.csv` (see its README.md).
MANUAL_SAMPLE_DIR = Path(__file__).resolve().parent / "samples" / "manual"


@dataclass(frozen=True)
class ManualIndicator:
    """What one manual CSV holds and which values make sense.

    `lower`/`upper` bound what the number can be at all (a PMI is a diffusion index in 0..100; a
    freight index is a ratio, > 0): outside is a typing error (ERROR). `plausible` is where the
    series has lived in practice: outside is kept but flagged (WARN), since it may be real.
    """

    label: str
    unit: str
    lower: float
    upper: float | None
    plausible: tuple[float, float]
    lower_inclusive: bool = True
    typical_source: str = ""


MANUAL_INDICATORS: dict[str, ManualIndicator] = {
    "manufacturing_pmi": ManualIndicator(
        label="India manufacturing PMI (50 = no change on the month)",
        unit="index",
        lower=0.0,
        upper=100.0,
        plausible=(35.0, 70.0),
        typical_source="HSBC India Manufacturing PMI press release (S&P Global)",
    ),
    "road_freight_index": ManualIndicator(
        label="Road freight rate index for clinker/cement lanes",
        unit="index",
        lower=0.0,
        upper=None,
        plausible=(50.0, 300.0),
        lower_inclusive=False,
        typical_source="logistics team survey of transporter quotes",
    ),
}

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEAR = re.compile(r"\d{4}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def fx_source(base: str, quote: str) -> str:
    """The Problem `source` of an FX table, as a planner names it ("FX USD/INR")."""
    return f"FX {base}/{quote}"


def worldbank_source(indicator: str) -> str:
    """The Problem `source` of World Bank rows ("World Bank FP.CPI.TOTL.ZG")."""
    return f"World Bank {indicator}"


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
    for position, (day, entry) in enumerate(rates.items(), start=1):
        row, found = _fx_row(day, entry, base, quote, position, {"date": day, "rates": entry})
        problems += found
        if row is not None:
            rows.append(row)
    return _fx_frame(rows), problems


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
    return _fx_frame([row] if row is not None else []), problems + found


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
    parsed = _iso_date(day)
    if parsed is None:
        found.append(problem("date", f"date {day!r} is not a YYYY-MM-DD day", day))
    rate: float | None = None
    if not isinstance(entry, Mapping):
        found.append(problem("rate", "the day's rates are not a JSON object", entry))
    elif quote not in entry:
        found.append(problem("rate", f"no {quote} rate on this day", None))
    else:
        rate = _number(entry[quote])
        if rate is None:
            found.append(
                problem("rate", f"{quote} rate {entry[quote]!r} is not a number", entry[quote])
            )
        elif rate <= 0:
            found.append(problem("rate", f"{quote} rate must be > 0", entry[quote]))
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
    return _sorted(frame, ["date"])


# ---- World Bank Indicators API v2 ---------------------------------------------------------------


def parse_worldbank(rows: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, list[Problem]]:
    """The `rows` half of `[meta, rows]` pages (all pages concatenated), one row per year.

    The API sends newest first; the table is sorted oldest first. `source_row` is the row's
    1-based position in `rows`. Annual data only: a date like "2024M01" is an ERROR, since it
    means a different (monthly) series was asked for.
    """
    kept: list[dict[str, Any]] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str, int], int] = {}
    for position, raw in enumerate(rows, start=1):
        row, found = _worldbank_row(position, raw)
        if row is not None:
            key = (row["indicator"], row["country"], row["year"])
            if key in seen:
                found = [
                    _worldbank_problem(
                        position,
                        raw,
                        "date",
                        f"{row['year']} given twice (first at row {seen[key]})",
                        row["year"],
                    )
                ]
                row = None
            else:
                seen[key] = position
        problems += found
        if row is not None:
            kept.append(row)
    frame = pd.DataFrame(
        {
            "indicator": pd.array([r["indicator"] for r in kept], dtype="string"),
            "indicator_name": pd.array([r["indicator_name"] for r in kept], dtype="string"),
            "country": pd.array([r["country"] for r in kept], dtype="string"),
            "year": pd.array([r["year"] for r in kept], dtype="int64"),
            "value": pd.array([r["value"] for r in kept], dtype="float64"),
            "source_row": pd.array([r["source_row"] for r in kept], dtype="Int64"),
        }
    )
    return _sorted(frame, ["indicator", "country", "year"]), problems


def _worldbank_row(position: int, raw: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    if not isinstance(raw, Mapping):
        message = f"row is a {type(raw).__name__}, not a JSON object"
        return None, [_worldbank_problem(position, raw, None, message)]
    found: list[Problem] = []
    indicator = raw.get("indicator")
    ind_id = indicator.get("id") if isinstance(indicator, Mapping) else None
    if not isinstance(ind_id, str) or not ind_id:
        found.append(_worldbank_problem(position, raw, "indicator", "no indicator id", ind_id))
    name = indicator.get("value") if isinstance(indicator, Mapping) else None
    country = raw.get("countryiso3code")
    if not isinstance(country, str) or not re.fullmatch(r"[A-Z0-9]{3}", country):
        found.append(
            _worldbank_problem(position, raw, "countryiso3code", "no ISO3 country code", country)
        )
    year_text = raw.get("date")
    if not (isinstance(year_text, str) and _YEAR.fullmatch(year_text)):
        message = f"date {year_text!r} is not a calendar year"
        found.append(_worldbank_problem(position, raw, "date", message, year_text))
    if found:
        return None, found
    year = int(year_text)  # type: ignore[arg-type]
    value = raw.get("value")
    if value is None:
        message = f"no value published yet for {year}"
        return None, [
            _worldbank_problem(position, raw, "value", message, severity="WARN", rule="dropped")
        ]
    number = _number(value)
    if number is None:
        message = f"value {value!r} is not a number"
        return None, [_worldbank_problem(position, raw, "value", message, value)]
    row = {
        "indicator": ind_id,
        "indicator_name": name if isinstance(name, str) else None,
        "country": country,
        "year": year,
        "value": number,
        "source_row": position,
    }
    return row, []


def _worldbank_problem(
    position: int,
    raw: Any,
    column: str | None,
    message: str,
    value: Any = None,
    *,
    severity: Severity = "ERROR",
    rule: Rule = "schema",
) -> Problem:
    indicator = raw.get("indicator") if isinstance(raw, Mapping) else None
    ind_id = indicator.get("id") if isinstance(indicator, Mapping) else None
    return Problem(
        WORLDBANK_TABLE,
        worldbank_source(ind_id if isinstance(ind_id, str) and ind_id else "?"),
        position,
        column,
        message,
        severity=severity,
        rule=rule,
        value=None if value is None else str(value),
        record=dict(raw) if isinstance(raw, Mapping) else {"row": raw},
    )


# ---- manual CSV indicators ----------------------------------------------------------------------


def parse_manual_csv(
    text: str, indicator: str, *, source_name: str | None = None
) -> tuple[pd.DataFrame, list[Problem]]:
    """A hand-kept CSV `month,value,unit,source` (month "YYYY-MM") for one manual indicator.

    Lines are numbered as in the file (header = 1) so the person who typed them can find them.
    A missing column rejects the file (one ERROR); an unreadable month or value, or a month given
    twice, rejects that line (the first occurrence of a month is kept). Blank lines, a UTF-8 BOM
    (Excel) and extra columns (notes) are ignored. Range and unit rules are in
    `schema.manual_problems`, which sees the kept rows.
    """
    if indicator not in MANUAL_INDICATORS:
        known = ", ".join(sorted(MANUAL_INDICATORS))
        raise ValueError(f"unknown manual indicator {indicator!r} (known: {known})")
    source = source_name or f"{indicator}.csv"
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        return empty_manual(), [Problem(MANUAL_TABLE, source, None, None, "file is empty")]
    names = [cell.strip().lower() for cell in header]
    missing = [c for c in MANUAL_CSV_HEADER if c not in names]
    if missing:
        found = ", ".join(repr(cell) for cell in header)
        message = (
            f"missing column(s) {', '.join(missing)}: the header must be "
            f"{','.join(MANUAL_CSV_HEADER)} (found {found})"
        )
        return empty_manual(), [
            Problem(
                MANUAL_TABLE, source, None, ", ".join(missing), message, record={"header": header}
            )
        ]
    at = {name: names.index(name) for name in MANUAL_CSV_HEADER}
    kept: list[dict[str, Any]] = []
    problems: list[Problem] = []
    first_line: dict[date, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        record: dict[str, Any] = {
            header[i].strip(): (cells[i] if i < len(cells) else None) for i in range(len(header))
        }
        if len(cells) > len(header):
            record["_extra"] = cells[len(header) :]
        text_of = {name: (cells[i].strip() if i < len(cells) else "") for name, i in at.items()}
        found: list[tuple[str, str]] = []  # (column, message)
        month = _month(text_of["month"])
        if month is None:
            found.append(("month", f"month {text_of['month']!r} is not YYYY-MM"))
        elif month in first_line:
            found.append(
                ("month", f"month {text_of['month']} already given on line {first_line[month]}")
            )
        value = _number(text_of["value"])
        if value is None:
            found.append(
                (
                    "value",
                    f"value {text_of['value']!r} is not a number (use a dot for decimals, "
                    "no thousands separator)",
                )
            )
        if found or month is None:
            problems += [
                Problem(
                    MANUAL_TABLE,
                    source,
                    line,
                    column,
                    message,
                    value=text_of[column] or None,
                    record=record,
                )
                for column, message in found
            ]
            continue
        first_line[month] = line
        kept.append(
            {
                "indicator": indicator,
                "month": month,
                "value": value,
                "unit": text_of["unit"],
                "source": text_of["source"],
                "source_row": line,
            }
        )
    return _manual_frame(kept), problems


def empty_manual() -> pd.DataFrame:
    return _manual_frame([])


def _manual_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "indicator": pd.array([r["indicator"] for r in rows], dtype="string"),
            "month": pd.Series([r["month"] for r in rows], dtype=object),
            "value": pd.array([r["value"] for r in rows], dtype="float64"),
            "unit": pd.array([r["unit"] for r in rows], dtype="string"),
            "source": pd.array([r["source"] for r in rows], dtype="string"),
            "source_row": pd.array([r["source_row"] for r in rows], dtype="Int64"),
        }
    )
    return _sorted(frame, ["indicator", "month"])


# ---- small readers ------------------------------------------------------------------------------


def _iso_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _month(value: str) -> date | None:
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or a plain decimal string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            return None
    elif not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
