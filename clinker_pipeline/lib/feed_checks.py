"""Pandera failures of a feed table as Problems, the one currency of quarantine and checks.

Each external feed has two schemas: a structure schema (types, keys, required values: what the
planner cannot use, ERROR) and a plausibility schema (values outside their usual range: WARN,
the row is kept and shown). Both are run lazily so every failing row is reported at once.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.instance.problems import Problem, Rule, Severity

#: `frame.attrs` key of {source_row: the raw record as it arrived}: a parser that leaves value
#: rules to Pandera sets it, so a quarantined row still shows exactly what the source sent.
RAW_RECORDS = "raw_records"


def pandera_problems(
    schema: pa.DataFrameSchema | type[pa.DataFrameModel],
    table: pd.DataFrame,
    *,
    table_name: str,
    source: str,
    severity: Severity = "ERROR",
    rule: Rule = "schema",
) -> list[Problem]:
    """Every failure case of `schema` on `table`, one Problem per (row, column, check).

    The row is the table's `source_row` when it has one (the record's position in the payload),
    else the 1-based position in the table; whole-column failures carry no row.
    """
    # failure cases name index labels: make them unique positions (a concat of several
    # payloads repeats labels, and a repeated label would match several rows)
    raw = table.attrs.get(RAW_RECORDS, {})
    table = table.reset_index(drop=True)
    try:
        schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    found: dict[tuple, Problem] = {}
    for case in cases.itertuples(index=False):
        index = case.index
        column = None if pd.isna(case.column) else str(case.column)
        row: int | None = None
        record: dict | None = None
        if index is not None and not pd.isna(index) and index in table.index:
            if "source_row" in table.columns and not pd.isna(table.at[index, "source_row"]):
                row = int(table.at[index, "source_row"])
            else:
                row = int(index) + 1
            record = raw.get(row) if row in raw else None
            if record is None:
                record = {k: plain_value(v) for k, v in table.loc[index].to_dict().items()}
        key = (row, column, str(case.check))
        if key in found:
            continue
        value = None if pd.isna(case.failure_case) else str(case.failure_case)
        found[key] = Problem(
            table_name,
            source,
            row,
            column,
            f"{case.check}" + (f" (got {value})" if value is not None else ""),
            severity=severity,
            rule=rule,
            value=value,
            record=record,
        )
    return list(found.values())


def plain_value(value: object) -> object:
    """A cell as a JSON-safe value for a quarantined record (NaN/NA -> None, numpy -> Python)."""
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def has_columns(df: pd.DataFrame, *columns: str) -> bool:
    """Whether the range rules can run at all (a missing column is already a structure ERROR)."""
    return all(column in df.columns for column in columns)


def equals(series: pd.Series, value: str) -> pd.Series:
    """Plain bool mask (a missing code is simply not equal, rather than an NA mask)."""
    return series.eq(value).fillna(False).astype(bool)


def plausibility_problems(
    schema: pa.DataFrameSchema, rows: pd.DataFrame, table: str, source: str
) -> list[Problem]:
    """WARN problems of `rows` (one series of a table) under a plausibility `schema`."""
    if rows.empty:
        return []
    return pandera_problems(
        schema, rows, table_name=table, source=source, severity="WARN", rule="plausibility"
    )
