"""Reading and writing instance files: a directory of CSVs or one xlsx workbook.

Only I/O lives here; every cell is handed on as text so that `parse` can report a bad value
with its file, row and column instead of pandas guessing a dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clinker_pipeline.errors import InvalidInstance
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.tables import OPTIONAL_TABLES, TABLES, TableSpec


@dataclass
class RawTable:
    spec: TableSpec
    source: str  # file name or "workbook.xlsx[Sheet]"
    frame: pd.DataFrame | None  # all cells as str ("" for blank); None when unreadable


def read_raw(path: str | Path) -> tuple[dict[str, RawTable], list[Problem]]:
    """Read every table of an instance as text.

    Raises InvalidInstance when the path itself is unusable; per-table trouble (a missing file,
    an empty file, a wrong sheet name) comes back as problems so all of it is reported at once.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInstance(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_directory(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_workbook(path)
    raise InvalidInstance(
        f"{path}: expected a directory of CSV files or an .xlsx workbook, got '{path.suffix}'"
    )


def _read_directory(path: Path) -> tuple[dict[str, RawTable], list[Problem]]:
    files = {p.stem.strip().lower(): p for p in path.glob("*.csv")}
    tables: dict[str, RawTable] = {}
    problems: list[Problem] = []
    for spec in TABLES:
        found = next(
            (files[s.lower()] for s in (spec.sheet, *spec.aliases) if s.lower() in files), None
        )
        if found is None:
            if spec.name not in OPTIONAL_TABLES:
                problems.append(
                    Problem(spec.name, spec.file_name, None, None, f"file missing in {path}")
                )
            tables[spec.name] = RawTable(spec, spec.file_name, _empty(spec))
            continue
        tables[spec.name] = RawTable(spec, found.name, None)
        try:
            frame = pd.read_csv(
                found,
                dtype=str,
                keep_default_na=False,
                skipinitialspace=False,
                encoding="utf-8-sig",
            )
        except pd.errors.EmptyDataError:
            problems.append(Problem(spec.name, found.name, None, None, "file is empty (no header)"))
            continue
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            problems.append(
                Problem(spec.name, found.name, None, None, f"not a readable CSV: {exc}")
            )
            continue
        tables[spec.name].frame = frame
    return tables, problems


def _read_workbook(path: Path) -> tuple[dict[str, RawTable], list[Problem]]:
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=object, header=0)
    except Exception as exc:  # openpyxl raises many types for a corrupt file
        raise InvalidInstance(f"{path.name}: not a readable xlsx workbook ({exc})") from exc
    by_name = {name.strip().lower(): (name, frame) for name, frame in sheets.items()}
    tables: dict[str, RawTable] = {}
    problems: list[Problem] = []
    for spec in TABLES:
        hit = next(
            (by_name[s.lower()] for s in (spec.sheet, *spec.aliases) if s.lower() in by_name), None
        )
        if hit is None:
            if spec.name not in OPTIONAL_TABLES:
                problems.append(
                    Problem(
                        spec.name,
                        f"{path.name}[{spec.sheet}]",
                        None,
                        None,
                        f"sheet '{spec.sheet}' missing; the workbook has: "
                        + ", ".join(repr(n) for n in sheets),
                    )
                )
            tables[spec.name] = RawTable(spec, f"{path.name}[{spec.sheet}]", _empty(spec))
            continue
        name, frame = hit
        frame = frame.map(_cell_text)
        frame.columns = [str(c) for c in frame.columns]
        tables[spec.name] = RawTable(spec, f"{path.name}[{name}]", frame)
    return tables, problems


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _empty(spec: TableSpec) -> pd.DataFrame:
    return pd.DataFrame({h: pd.Series(dtype=str) for h in spec.headers})


def write_tables(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, all_columns: bool = False
) -> list[Path]:
    """Write internal tables in the dataset's CSV layout (headers as in the files).

    Optional columns are written when they hold data, or always with `all_columns`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in TABLES:
        frame = tables.get(spec.name)
        cols = [
            c
            for c in spec.columns
            if c.required
            or all_columns
            or (frame is not None and c.name in frame and frame[c.name].notna().any())
        ]
        if frame is None:
            frame = pd.DataFrame(columns=[c.name for c in cols])
        out_frame = pd.DataFrame({c.header: frame[c.name] for c in cols})
        target = out / spec.file_name
        out_frame.to_csv(target, index=False)
        written.append(target)
    return written
