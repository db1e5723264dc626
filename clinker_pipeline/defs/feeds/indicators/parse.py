"""India CPI inflation and manually keyed indicators as typed tables.

Pure functions: payloads in (already fetched by `feeds.indicators.client`, or a CSV someone
typed from a press release), DataFrames and Problems out. The choices:

* A record that cannot be read (bad date, non-numeric or non-positive rate, a month typed as
  "Oct-26") is not kept, but it is never dropped silently either: it becomes an ERROR Problem
  carrying the raw record, so the quarantine table shows exactly what arrived.
* World Bank rows with `"value": null` are normal (the newest year is published months later).
  They are not data, so they are not kept; they come back as WARN Problems with rule "dropped",
  which makes "the 2025 figure is not out yet" visible instead of looking like a lost row.
* Manual CSVs carry a `source` column on purpose: PMI and freight figures are licensed or
  surveyed numbers typed in by a person, and a planner must be able to trace each one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from clinker_pipeline.instance.problems import Problem, Rule, Severity
from clinker_pipeline.lib.values import number as read_number
from clinker_pipeline.lib.values import sorted_by

#: World Bank indicator id of "Inflation, consumer prices (annual %)".
CPI_INFLATION = "FP.CPI.TOTL.ZG"

WORLDBANK_TABLE = "worldbank_indicators"
MANUAL_TABLE = "manual_indicators"

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

_YEAR = re.compile(r"\d{4}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def worldbank_source(indicator: str) -> str:
    """The Problem `source` of World Bank rows ("World Bank FP.CPI.TOTL.ZG")."""
    return f"World Bank {indicator}"


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
    return sorted_by(frame, ["indicator", "country", "year"]), problems


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
    number = read_number(value)
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
        value = read_number(text_of["value"])
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
    return sorted_by(frame, ["indicator", "month"])


def _month(value: str) -> date | None:
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)
