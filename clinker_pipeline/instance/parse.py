"""Turn raw text tables into typed internal tables, reporting every bad cell.

Parsing never drops a row: a cell that cannot be read becomes a null plus a Problem naming the
file, row and column, so validation can block the plan while the row stays visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clinker_pipeline.instance.io import RawTable
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.tables import TABLES, Column, TableSpec

FIRST_DATA_ROW = 2  # line 1 of a CSV (or sheet) is the header


def empty_table(spec: TableSpec) -> pd.DataFrame:
    data = {c.name: pd.Series(dtype=_dtype(c)) for c in spec.columns}
    data["source_row"] = pd.Series(dtype="Int64")
    return pd.DataFrame(data)


def parse_table(raw: RawTable) -> tuple[pd.DataFrame, list[Problem]]:
    spec = raw.spec
    if raw.frame is None:
        return empty_table(spec), []
    frame = raw.frame
    headers = {str(h).strip().lower(): h for h in frame.columns}
    problems: list[Problem] = []
    missing = [c.header for c in spec.columns if c.required and c.header.lower() not in headers]
    if missing:
        found = ", ".join(repr(str(h)) for h in frame.columns)
        for header in missing:
            problems.append(
                Problem(
                    spec.name,
                    raw.source,
                    None,
                    header,
                    f"column missing (found columns: {found})",
                )
            )
        return empty_table(spec), problems

    out: dict[str, pd.Series] = {}
    rows = pd.RangeIndex(len(frame)) + FIRST_DATA_ROW
    for col in spec.columns:
        original = headers.get(col.header.lower())
        if original is None:  # optional column absent
            out[col.name] = pd.Series([None] * len(frame), dtype=_dtype(col))
            continue
        text = frame[original].astype(str).str.strip().reset_index(drop=True)
        series, cell_problems = _parse_column(col, text, rows, raw)
        out[col.name] = series
        problems.extend(cell_problems)
    table = pd.DataFrame(out)
    table["source_row"] = pd.array(rows, dtype="Int64")
    return table, problems


def _parse_column(
    col: Column, text: pd.Series, rows: pd.Index, raw: RawTable
) -> tuple[pd.Series, list[Problem]]:
    problems: list[Problem] = []

    def flag(mask: pd.Series, describe) -> None:
        for i in mask[mask].index:
            value = text[i] or None
            problems.append(
                Problem(
                    raw.spec.name,
                    raw.source,
                    int(rows[i]),
                    col.header,
                    describe(text[i]),
                    value=value,
                )
            )

    lowered = text.str.lower()
    if col.kind in ("code", "text"):
        blank = text.eq("") | lowered.isin(["nan", "none", "null"])
        if not col.nullable:
            flag(blank, lambda _: "blank; a value is required")
        return text.mask(blank, pd.NA).astype("string"), problems

    # A number cell is blank only when empty: "NaN" or "inf" typed into a number column is a
    # value the model cannot take, reported as written (not as "blank").
    blank = text.eq("") | lowered.isin(["none", "null"])
    if not col.nullable:
        flag(blank, lambda _: "blank; a value is required")
    numbers = pd.to_numeric(text.mask(blank, None), errors="coerce")
    non_finite = ~blank & (
        lowered.str.lstrip("+-").eq("nan") | (numbers.notna() & ~np.isfinite(numbers))
    )
    flag(non_finite, lambda v: f"not a finite number: {v!r}")
    numbers = numbers.mask(non_finite)
    flag(numbers.isna() & ~blank & ~non_finite, lambda v: f"not a number: {v!r}")
    if col.kind == "int":
        fractional = numbers.notna() & (numbers != numbers.round())
        flag(fractional, lambda v: f"not a whole number: {v!r}")
        return numbers.mask(fractional).round().astype("Int64"), problems
    return numbers.astype("float64"), problems


def _dtype(col: Column) -> str:
    return {"code": "string", "text": "string", "int": "Int64", "float": "float64"}[col.kind]


def coerce_table(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Give one table built elsewhere (storage, ERP mapping, generator) the internal dtypes."""
    frame = frame.copy()
    for col in spec.columns:
        if col.name not in frame:
            frame[col.name] = pd.Series([None] * len(frame), dtype=_dtype(col), index=frame.index)
        elif col.kind == "int":
            frame[col.name] = pd.to_numeric(frame[col.name]).astype("Int64")
        else:
            frame[col.name] = frame[col.name].astype(_dtype(col))
    if "source_row" in frame:
        frame["source_row"] = pd.to_numeric(frame["source_row"]).astype("Int64")
    return frame.reset_index(drop=True)


def coerce_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Give tables read back from storage (DuckDB, parquet) the internal dtypes again."""
    return {
        spec.name: empty_table(spec)
        if tables.get(spec.name) is None
        else coerce_table(spec, tables[spec.name])
        for spec in TABLES
    }
