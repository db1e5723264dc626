"""From files (or typed tables from any feed) to a validated planning Instance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from clinker_pipeline.instance.io import read_raw
from clinker_pipeline.instance.parse import empty_table, parse_table
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.tables import TABLES, TABLES_BY_NAME
from clinker_pipeline.instance.validate import (
    horizon_problems,
    reference_problems,
    schema_problems,
)


@dataclass
class Instance:
    tables: dict[str, pd.DataFrame]
    sources: dict[str, str]
    origin: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "ERROR"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "WARN"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def fingerprint(self) -> str:
        return fingerprint(self.tables)

    @property
    def name(self) -> str:
        return instance_name(self.origin)


def instance_name(origin: str | Path) -> str:
    """What analysts call an instance: its folder or workbook name ("dummy_3mplan"), "sample"
    for the bundled network. Stored on every plan run with the fingerprint, so runs of different
    instances in one DuckDB file are never mixed."""
    path = Path(origin)
    try:
        if path.resolve() == sample_instance_path().resolve():
            return "sample"
    except OSError:
        pass
    return path.stem if path.suffix.lower() in (".xlsx", ".xlsm") else path.name or str(origin)


def fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    """A content hash of the model-relevant tables, stable across file order and formats."""
    digest = hashlib.sha256()
    for spec in TABLES:
        frame = tables.get(spec.name)
        if frame is None:
            continue
        cols = [c for c in spec.column_names if c in frame]
        canon = frame[cols].sort_values(list(spec.key), na_position="first", kind="stable")
        digest.update(spec.name.encode())
        digest.update(canon.to_csv(index=False, float_format="%.6f").encode())
    return digest.hexdigest()[:16]


def sample_instance_path() -> Path:
    """The bundled sample network (Indian cement plants), shipped inside the package."""
    return Path(str(resources.files("clinker_pipeline") / "sample_data" / "instance"))


def load_instance(path: str | Path) -> Instance:
    raw, problems = read_raw(path)
    tables: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for name, raw_table in raw.items():
        table, parse_problems = parse_table(raw_table)
        tables[name] = table
        sources[name] = raw_table.source
        problems.extend(parse_problems)
    return validate_instance(tables, sources, origin=str(path), read_problems=problems)


def validate_instance(
    tables: dict[str, pd.DataFrame],
    sources: dict[str, str] | None = None,
    origin: str = "tables",
    read_problems: list[Problem] | None = None,
) -> Instance:
    """Validate typed tables from any feed (files, ERP, generator) against the model contract."""
    sources = {spec.name: spec.file_name for spec in TABLES} | (sources or {})
    tables = {spec.name: tables.get(spec.name, empty_table(spec)) for spec in TABLES}
    # Feeds other than files (ERP, generator) may carry no file line numbers: add a blank column
    # so that validation and the optimizer, which report rows by it, can still run.
    tables = {
        name: t if "source_row" in t else t.assign(source_row=pd.array([pd.NA] * len(t), "Int64"))
        for name, t in tables.items()
    }
    problems = list(read_problems or [])
    structural = {p.table for p in problems if p.row is None and p.severity == "ERROR"}
    seen_cells = {(p.table, p.row, p.column) for p in problems}
    for name, table in tables.items():
        if name in structural:
            continue
        for p in schema_problems(name, table, sources[name]):
            if (p.table, p.row, p.column) not in seen_cells:
                problems.append(p)
    if not structural:
        problems.extend(reference_problems(tables, sources))
        problems.extend(horizon_problems(tables, sources))
    order = {spec.name: i for i, spec in enumerate(TABLES)}
    problems.sort(key=lambda p: (order.get(p.table, 99), p.row or 0, p.column or ""))
    return Instance(tables=tables, sources=sources, origin=origin, problems=problems)


__all__ = [
    "TABLES_BY_NAME",
    "Instance",
    "fingerprint",
    "instance_name",
    "load_instance",
    "sample_instance_path",
    "validate_instance",
]
