"""Validation of a whole planning instance: Pandera per table, then the cross-table rules.

Every finding is a Problem located by file, row and column. ERROR means the model cannot take
the instance (nothing is solved); WARN means a row is left out of the model on purpose and the
planner should know (self-lanes, lanes to unknown nodes, vacuous constraint rows).
"""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.instance.network import build_network
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.schema import INSTANCE_SCHEMAS
from clinker_pipeline.instance.tables import TABLES_BY_NAME, TableSpec

_CHECK_TEXT = [
    (re.compile(r"greater_than_or_equal_to\((.+)\)"), "must be >= {0}"),
    (re.compile(r"less_than_or_equal_to\((.+)\)"), "must be <= {0}"),
    (re.compile(r"isin\((.+)\)"), "must be one of {0}"),
    (re.compile(r"str_length\((.+)\)"), "must not be empty"),
    (re.compile(r"not_nullable"), "blank; a value is required"),
    (re.compile(r".*uniqueness"), "duplicate key"),
]


def schema_problems(name: str, table: pd.DataFrame, source: str) -> list[Problem]:
    """Run the table's Pandera model (lazily, so every failure is reported)."""
    spec = TABLES_BY_NAME[name]
    try:
        INSTANCE_SCHEMAS[name].validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _from_failure_cases(spec, table, source, exc.failure_cases)
    return []


def _from_failure_cases(
    spec: TableSpec, table: pd.DataFrame, source: str, cases: pd.DataFrame
) -> list[Problem]:
    problems: dict[tuple, Problem] = {}
    key_dupes = table.duplicated(list(spec.key), keep="first") if len(table) else pd.Series()
    for case in cases.itertuples(index=False):
        check = str(case.check)
        index = case.index
        if index is None or pd.isna(index):
            # a whole-column failure (wrong dtype, missing column): report it once
            problems[(None, case.column, check)] = Problem(
                spec.name, source, None, _header(spec, case.column), f"{check}: {case.failure_case}"
            )
            continue
        index = int(index)
        row = _row(table, index)
        if "uniqueness" in check:
            if not key_dupes.get(index, False):
                continue  # the first occurrence is the row to keep; flag the repeats
            keys = ", ".join(f"{_header(spec, k)}={table.at[index, k]}" for k in spec.key)
            problems[(row, "key", check)] = Problem(
                spec.name,
                source,
                row,
                None,
                f"duplicate key ({keys}); an earlier row has the same key",
            )
            continue
        if case.schema_context == "DataFrameSchema":
            # A row-wise rule over several columns (MIN <= MAX): Pandera lists every column of
            # the failing row (source_row included); report the row once, on the first column
            # the rule names, with the values of the columns it names.
            named = [c for c in spec.columns if c.header in check and c.name in table.columns]
            first = named[0] if named else None
            shown = ", ".join(f"{c.header}={table.at[index, c.name]}" for c in named)
            problems[(row, "row", check)] = Problem(
                spec.name,
                source,
                row,
                first.header if first else None,
                f"{check} ({shown})" if shown else check,
                value=None if first is None else str(table.at[index, first.name]),
            )
            continue
        message = check
        for pattern, text in _CHECK_TEXT:
            m = pattern.fullmatch(check)
            if m:
                message = text.format(*(_number_text(g) for g in m.groups()))
                break
        column = case.column if case.column in table.columns else None
        value = None if pd.isna(case.failure_case) else str(case.failure_case)
        if value is not None and "blank" not in message and "whole" not in message:
            message = f"{message}, got {value}"
        problems[(row, column, check)] = Problem(
            spec.name, source, row, _header(spec, column), message, value=value
        )
    return list(problems.values())


def reference_problems(tables: dict[str, pd.DataFrame], sources: dict[str, str]) -> list[Problem]:
    """Cross-table rules of the model contract (codes, capacity vs cost, lanes, constraint rows)."""
    out: list[Problem] = []
    plants = tables["plants"]
    nodes = set(plants["iugu_code"].dropna())
    ius = set(plants.loc[plants["plant_type"] == "IU", "iugu_code"].dropna())

    def flag(
        name: str, mask: pd.Series, column: str, text: str, severity="ERROR", rule="reference"
    ):
        frame = tables[name]
        spec = TABLES_BY_NAME[name]
        for idx in frame.index[mask.fillna(False).astype(bool)]:
            value = frame.at[idx, column] if column in frame else None
            out.append(
                Problem(
                    name,
                    sources[name],
                    _row(frame, idx),
                    _header(spec, column),
                    text.format(value=value),
                    severity=severity,
                    rule=rule,
                    value=None if value is None or pd.isna(value) else str(value),
                )
            )

    def unknown(name: str, column: str, allowed: set, what: str = "plant code"):
        frame = tables[name]
        col = frame[column]
        flag(name, col.notna() & ~col.isin(allowed), column, f"unknown {what} '{{value}}'")

    for name in ("clinker_demand", "opening_stock", "closing_stock_bounds"):
        unknown(name, "iugu_code", nodes)
    for name in ("clinker_capacity", "production_cost"):
        frame = tables[name]
        col = frame["iu_code"]
        flag(name, col.notna() & ~col.isin(nodes), "iu_code", "unknown plant code '{value}'")
        flag(
            name,
            col.isin(nodes) & ~col.isin(ius),
            "iu_code",
            "'{value}' is a GU; only IUs produce clinker",
        )
    cap, cost = tables["clinker_capacity"], tables["production_cost"]
    costed = cost.set_index(["iu_code", "time_period"]).index
    # only for known IUs: an unknown code was reported above and needs no second message
    no_cost = (
        (cap["capacity"] > 0)
        & cap["iu_code"].isin(ius)
        & ~cap.set_index(["iu_code", "time_period"]).index.isin(costed)
    )
    flag(
        "clinker_capacity",
        pd.Series(no_cost, index=cap.index),
        "iu_code",
        "'{value}' has capacity but no PRODUCTION COST row for this period",
    )

    cons = tables["flow_constraints"]
    unknown("flow_constraints", "iugu_code", nodes)
    flag(
        "flow_constraints",
        cons["iu_code"].notna() & ~cons["iu_code"].isin(ius),
        "iu_code",
        "'{value}' is not an IU in IUGUType; constraint rows bound an IU's dispatch",
    )

    hub = tables["hub_opening_stock"]
    flag(
        "hub_opening_stock",
        hub["iu_code"].notna() & ~hub["iu_code"].isin(ius),
        "iu_code",
        "unknown IU code '{value}'",
    )
    unknown("hub_opening_stock", "hub_code", nodes)
    opening = tables["opening_stock"].set_index("iugu_code")["opening_stock"]
    opening = opening[~opening.index.duplicated()]
    hub_total = hub.groupby("hub_code")["opening_stock"].transform("sum")
    over = hub_total > hub["hub_code"].map(opening).fillna(0) + 1e-6
    flag(
        "hub_opening_stock",
        over,
        "opening_stock",
        "hub rows of this hub add up to more than its IUGUOpeningStock",
        severity="WARN",
    )

    network = build_network(tables)
    lanes = tables["logistics_lanes"]
    for idx, r in network.dropped_lanes.iterrows():
        out.append(
            Problem(
                "logistics_lanes",
                sources["logistics_lanes"],
                _row(lanes, idx),
                None,
                f"{r['from_code']} -> {r['to_code']} {r['transport_code']}: {r['reason']}",
                severity="WARN",
                rule="by_design" if r["from_code"] == r["to_code"] else "dropped",
            )
        )
    for frame, severity, text in (
        (
            network.vacuous_constraints,
            "WARN",
            "matches no lane; the row is vacuous and skipped",
        ),
        (
            network.unmatched_constraints,
            "ERROR",
            "requires flow ({bound} {value:g} t) but matches no lane: infeasible as written",
        ),
    ):
        for r in frame.itertuples(index=False):
            scope = f"{r.iu_code} -> {r.iugu_code if pd.notna(r.iugu_code) else 'any'}"
            scope += f" mode {r.transport_code if pd.notna(r.transport_code) else 'any'}"
            out.append(
                Problem(
                    "flow_constraints",
                    sources["flow_constraints"],
                    int(r.source_row) if pd.notna(r.source_row) else None,
                    None,
                    f"{scope}, period {r.time_period}: "
                    + text.format(bound=r.bound_typeid, value=r.value),
                    severity=severity,
                    rule="dropped" if severity == "WARN" else "reference",
                )
            )
    return out


def _number_text(text: str) -> str:
    """Pandera names bounds as floats (`100000000.0`); a planner reads `100,000,000`."""
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{value:,.0f}" if value.is_integer() else f"{value:g}"


PERIOD_TABLES = (
    "clinker_demand",
    "clinker_capacity",
    "production_cost",
    "logistics_lanes",
    "flow_constraints",
    "closing_stock_bounds",
)


def horizon_problems(tables: dict[str, pd.DataFrame], sources: dict[str, str]) -> list[Problem]:
    """Whole-instance rules: something to plan (plants, demand) and one horizon for all tables.

    An empty instance would solve to "optimal, 100 % served" and a period that only one table
    knows is usually a typo (period 4 in one file of a 3-period plan) that the model would quietly
    turn into an extra period eating the opening stock.
    """
    out: list[Problem] = []

    def whole(name: str, message: str, severity="ERROR", rule="reference") -> None:
        out.append(Problem(name, sources[name], None, None, message, severity=severity, rule=rule))

    if tables["plants"].empty:
        whole("plants", "no plants: an instance needs at least one IU", rule="schema")
    demand = tables["clinker_demand"]
    if demand.empty or not (demand["demand"].fillna(0) > 0).any():
        whole("clinker_demand", "no demand: every DEMAND is 0 or the file has no rows")
    known = {
        name: set(tables[name]["time_period"].dropna().astype(int))
        for name in PERIOD_TABLES
        if not tables[name].empty
    }
    if len(known) > 1:
        for period in sorted(set().union(*known.values())):
            holders = [name for name, periods in known.items() if period in periods]
            if len(holders) == 1:
                whole(
                    holders[0],
                    f"period {period} appears only in {sources[holders[0]]}; "
                    "no other table has rows for it",
                    severity="WARN",
                )
    served = demand.loc[demand["demand"].fillna(0) > 0, "time_period"].dropna().astype(int)
    for period in sorted(set(served)):
        for name, what in (
            ("clinker_capacity", "capacity"),
            ("logistics_lanes", "lane"),
            ("closing_stock_bounds", "closing stock bound"),
        ):
            if period not in known.get(name, set()) and (
                name != "closing_stock_bounds" or name in known
            ):
                whole(
                    name,
                    f"period {period} has demand but no {what} row: only stock can serve it",
                    severity="WARN",
                )
    return out


def _row(table: pd.DataFrame, index: int) -> int | None:
    if "source_row" in table and index in table.index and pd.notna(table.at[index, "source_row"]):
        return int(table.at[index, "source_row"])
    return None


def _header(spec: TableSpec, column: str | None) -> str | None:
    if column is None:
        return None
    try:
        return spec.column(column).header
    except StopIteration:
        return column
