"""The ERP mapping: which SAP plant is which planning node, and how ERP figures become tables.

Plant numbers, the clinker material, counted stock types and the IBP key figure differ per
company, so they live in a mapping file (JSON) instead of code. Every transform returns the
internal table plus a Problem for each record it could not use: nothing is dropped silently,
and the caller writes the problems to the quarantine with the raw record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from clinker_pipeline.instance.parse import coerce_table
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.tables import TABLES_BY_NAME

# units accepted for tonnes, and their factor to tonnes
TONNE_UNITS = {"TO": Decimal(1), "T": Decimal(1), "TON": Decimal(1), "KG": Decimal("0.001")}


@dataclass(frozen=True)
class PlantMap:
    sap_plant: str
    iugu_code: str
    plant_type: str  # IU or GU
    ibp_location: str | None = None  # IBP LOCID, when it differs from the SAP plant
    oracle_plant: str | None = None  # plant code in the Oracle capacity table, when different
    city: str | None = None
    state: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class ErpMapping:
    clinker_material: str
    stock_types: tuple[str, ...]
    plan_start: date  # first day of period 1; periods are calendar months
    periods: int
    ibp_planning_area: str
    ibp_key_figure: str
    ibp_uom: str
    ibp_period_field: str
    ibp_location_field: str
    ibp_product_field: str
    clinker_factors: dict[str, float]  # IBP product -> tonnes of clinker per tonne
    plants: tuple[PlantMap, ...]

    @classmethod
    def load(cls, path: str | Path) -> ErpMapping:
        raw = json.loads(Path(path).read_text())
        ibp = raw["ibp"]
        return cls(
            clinker_material=raw["clinker_material"],
            stock_types=tuple(raw.get("stock_types", ["01"])),
            plan_start=date.fromisoformat(raw["plan_start"]),
            periods=int(raw["periods"]),
            ibp_planning_area=ibp["planning_area"],
            ibp_key_figure=ibp["key_figure"],
            ibp_uom=ibp.get("uom", "TO"),
            ibp_period_field=ibp.get("period_field", "PERIODID3_TSTAMP"),
            ibp_location_field=ibp.get("location_field", "LOCID"),
            ibp_product_field=ibp.get("product_field", "PRDID"),
            clinker_factors={k: float(v) for k, v in ibp.get("clinker_factors", {}).items()},
            plants=tuple(PlantMap(**p) for p in raw["plants"]),
        )

    def by_sap(self) -> dict[str, PlantMap]:
        return {p.sap_plant: p for p in self.plants}

    def by_ibp(self) -> dict[str, PlantMap]:
        return {(p.ibp_location or p.sap_plant): p for p in self.plants}

    def by_oracle(self) -> dict[str, PlantMap]:
        return {(p.oracle_plant or p.sap_plant): p for p in self.plants}

    def horizon_start(self) -> datetime:
        return datetime(self.plan_start.year, self.plan_start.month, 1, tzinfo=UTC)

    def horizon_end(self) -> datetime:
        """First instant after the last period (exclusive end of the horizon)."""
        months = self.plan_start.year * 12 + self.plan_start.month - 1 + self.periods
        return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)

    def period_of(self, day: date | datetime) -> int | None:
        """Calendar month of `day` as a 1-based period, or None outside the horizon."""
        if isinstance(day, datetime):
            day = day.date()
        k = (day.year - self.plan_start.year) * 12 + day.month - self.plan_start.month + 1
        return k if 1 <= k <= self.periods else None


def sample_mapping_path() -> Path:
    return Path(str(resources.files("clinker_pipeline") / "sample_data" / "erp" / "mapping.json"))


class _Collector:
    """Problems of one feed, each with its raw record and 1-based position in the feed."""

    def __init__(self, table: str, source: str) -> None:
        self.table, self.source = table, source
        self.problems: list[Problem] = []

    def add(
        self, n: int | None, record: Any, column: str | None, message: str, severity: str = "ERROR"
    ):
        raw = record if isinstance(record, dict) else getattr(record, "__dict__", {"value": record})
        self.problems.append(
            Problem(
                self.table,
                self.source,
                n,
                column,
                message,
                severity=severity,  # type: ignore[arg-type]
                rule="schema" if severity == "ERROR" else "dropped",
                record=_jsonable(raw),
            )
        )


def map_plants(records: Iterable[dict], mapping: ErpMapping) -> tuple[pd.DataFrame, list[Problem]]:
    """SAP A_Plant records -> the `plants` table (IUGUType) for every mapped plant found."""
    out = _Collector("plants", "SAP API_PLANT_SRV/A_Plant")
    known = mapping.by_sap()
    rows, seen = [], set()
    for n, rec in enumerate(records, start=1):
        plant = _text(rec.get("Plant"))
        if not plant:
            out.add(n, rec, "Plant", "record has no Plant key")
            continue
        pm = known.get(plant)
        if pm is None:
            out.add(
                n, rec, "Plant", f"SAP plant {plant} is not in the plant mapping: left out", "WARN"
            )
            continue
        if plant in seen:
            out.add(n, rec, "Plant", f"SAP plant {plant} appears twice")
            continue
        seen.add(plant)
        rows.append(
            {
                "iugu_code": pm.iugu_code,
                "plant_type": pm.plant_type,
                "n_source": None,
                "plant_name": _text(rec.get("PlantName")) or None,
                "city": pm.city,
                "state": pm.state,
                "latitude": pm.latitude,
                "longitude": pm.longitude,
                "source_row": n,
            }
        )
    for pm in mapping.plants:
        if pm.sap_plant not in seen:
            out.add(
                None,
                {"Plant": pm.sap_plant},
                "Plant",
                f"mapped plant {pm.sap_plant} ({pm.iugu_code}) was not returned by SAP",
            )
    return _frame(rows, "plants"), out.problems


def map_stock(records: Iterable[dict], mapping: ErpMapping) -> tuple[pd.DataFrame, list[Problem]]:
    """SAP stock records of the clinker material -> `opening_stock`, summed per node.

    Only the mapping's stock types count (unrestricted use by default); quality-inspection and
    blocked stock are not usable clinker, so they are skipped on purpose, not quarantined.
    """
    out = _Collector("opening_stock", "SAP API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod")
    known = mapping.by_sap()
    totals: dict[str, Decimal] = {}
    first_row: dict[str, int] = {}
    for n, rec in enumerate(records, start=1):
        plant, material = _text(rec.get("Plant")), _text(rec.get("Material"))
        if not plant or not material:
            out.add(
                n, rec, "Plant" if not plant else "Material", "record has no Plant/Material key"
            )
            continue
        if material != mapping.clinker_material:
            continue
        if _text(rec.get("InventoryStockType")) not in mapping.stock_types:
            continue
        pm = known.get(plant)
        if pm is None:
            out.add(
                n, rec, "Plant", f"SAP plant {plant} is not in the plant mapping: left out", "WARN"
            )
            continue
        qty = _tonnes(rec.get("MatlWrhsStkQtyInMatlBaseUnit"), rec.get("MaterialBaseUnit"))
        if isinstance(qty, str):
            out.add(n, rec, "MatlWrhsStkQtyInMatlBaseUnit", qty)
            continue
        if qty < 0:
            out.add(n, rec, "MatlWrhsStkQtyInMatlBaseUnit", f"negative stock {qty}")
            continue
        totals[pm.iugu_code] = totals.get(pm.iugu_code, Decimal(0)) + qty
        first_row.setdefault(pm.iugu_code, n)
    rows = [
        {"iugu_code": code, "opening_stock": float(q), "source_row": first_row[code]}
        for code, q in sorted(totals.items())
    ]
    return _frame(rows, "opening_stock"), out.problems


def map_demand(records: Iterable[dict], mapping: ErpMapping) -> tuple[pd.DataFrame, list[Problem]]:
    """IBP key-figure records -> `clinker_demand` per node and monthly period.

    Cement demand is turned into clinker with the product's clinker factor; a product with no
    factor cannot be converted, so its rows are quarantined rather than guessed.
    """
    out = _Collector("clinker_demand", f"SAP IBP {mapping.ibp_planning_area}")
    known = mapping.by_ibp()
    totals: dict[tuple[str, int], Decimal] = {}
    first_row: dict[tuple[str, int], int] = {}
    kf, loc_f, per_f, prd_f = (
        mapping.ibp_key_figure,
        mapping.ibp_location_field,
        mapping.ibp_period_field,
        mapping.ibp_product_field,
    )
    for n, rec in enumerate(records, start=1):
        loc = _text(rec.get(loc_f))
        when = rec.get(per_f)
        if not loc or when is None:
            out.add(n, rec, loc_f if not loc else per_f, f"record has no {loc_f}/{per_f}")
            continue
        pm = known.get(loc)
        if pm is None:
            out.add(
                n, rec, loc_f, f"IBP location {loc} is not in the plant mapping: left out", "WARN"
            )
            continue
        uom = _text(rec.get("UOMTOID"))
        if uom and uom != mapping.ibp_uom:
            out.add(n, rec, "UOMTOID", f"unit {uom} is not the mapped {mapping.ibp_uom}")
            continue
        if not isinstance(when, date | datetime):
            out.add(n, rec, per_f, f"not a date: {when!r}")
            continue
        period = mapping.period_of(when)
        if period is None:
            out.add(n, rec, per_f, f"{when:%Y-%m} is outside the planning horizon", "WARN")
            continue
        product = _text(rec.get(prd_f))
        factor = mapping.clinker_factors.get(product) if mapping.clinker_factors else 1.0
        if factor is None:
            out.add(n, rec, prd_f, f"no clinker factor for product {product!r} in the mapping")
            continue
        qty = _decimal(rec.get(kf))
        if qty is None:
            out.add(n, rec, kf, f"{kf} is not a number: {rec.get(kf)!r}")
            continue
        if qty < 0:
            out.add(n, rec, kf, f"negative demand {qty}")
            continue
        key = (pm.iugu_code, period)
        totals[key] = totals.get(key, Decimal(0)) + qty * Decimal(str(factor))
        first_row.setdefault(key, n)
    rows = [
        {
            "iugu_code": c,
            "time_period": t,
            "demand": float(q),
            "min_fulfillment_pct": None,
            "source_row": first_row[(c, t)],
        }
        for (c, t), q in sorted(totals.items())
    ]
    return _frame(rows, "clinker_demand"), out.problems


def map_capacity(
    rows_in: Iterable[Any], bad_rows: Iterable[Any], mapping: ErpMapping
) -> tuple[pd.DataFrame, list[Problem]]:
    """Oracle capacity rows (plant, month, tonnes) -> `clinker_capacity` per IU and period."""
    out = _Collector("clinker_capacity", "Oracle ERP capacity")
    known = mapping.by_oracle()
    n = 0
    for n, bad in enumerate(bad_rows, start=1):
        out.add(n, getattr(bad, "raw", bad), None, getattr(bad, "reason", "unreadable row"))
    offset = n
    totals: dict[tuple[str, int], Decimal] = {}
    first_row: dict[tuple[str, int], int] = {}
    for n, row in enumerate(rows_in, start=offset + 1):
        pm = known.get(str(row.plant_code))
        if pm is None:
            out.add(
                n,
                row,
                "PLANT_CODE",
                f"Oracle plant {row.plant_code} is not in the plant mapping: left out",
                "WARN",
            )
            continue
        if pm.plant_type != "IU":
            out.add(n, row, "PLANT_CODE", f"{pm.iugu_code} is a GU; only IUs have clinker capacity")
            continue
        period = mapping.period_of(row.period_start)
        if period is None:
            out.add(
                n,
                row,
                "PERIOD_START",
                f"{row.period_start:%Y-%m} is outside the planning horizon",
                "WARN",
            )
            continue
        key = (pm.iugu_code, period)
        totals[key] = totals.get(key, Decimal(0)) + Decimal(row.capacity_t)
        first_row.setdefault(key, n)
    rows = [
        {"iu_code": c, "time_period": t, "capacity": float(q), "source_row": first_row[(c, t)]}
        for (c, t), q in sorted(totals.items())
    ]
    return _frame(rows, "clinker_capacity"), out.problems


def _frame(rows: list[dict], table: str) -> pd.DataFrame:
    """Rows in the internal schema of `table`, with its dtypes (absent columns are null)."""
    spec = TABLES_BY_NAME[table]
    return coerce_table(spec, pd.DataFrame(rows, columns=[*spec.column_names, "source_row"]))


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _decimal(v: Any) -> Decimal | None:
    if isinstance(v, Decimal):
        return v
    try:
        return Decimal(str(v).strip()) if v is not None else None
    except InvalidOperation:
        return None


def _tonnes(qty: Any, unit: Any) -> Decimal | str:
    value = _decimal(qty)
    if value is None:
        return f"quantity is not a number: {qty!r}"
    factor = TONNE_UNITS.get(_text(unit).upper())
    if factor is None:
        return f"unit {unit!r} cannot be converted to tonnes"
    return value * factor


def _jsonable(record: Any) -> dict:
    def conv(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, date | datetime):
            return v.isoformat()
        return v

    if not isinstance(record, dict):
        return {"value": str(record)}
    return {k: conv(v) for k, v in record.items()}
