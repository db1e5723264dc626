"""The tables of a planning instance: file names, headers and internal column names.

One place describes the public dataset's layout so that the file reader, the template writer,
the generator and the ERP mappers agree on it. Internal names are snake_case so analysts can
query them in DuckDB without quoting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["code", "text", "int", "float"]


@dataclass(frozen=True)
class Column:
    header: str
    name: str
    kind: Kind
    required: bool = True  # the header must be present in the file
    nullable: bool = False  # a blank cell is allowed


@dataclass(frozen=True)
class TableSpec:
    name: str  # internal table name; also the Dagster asset and DuckDB table name
    sheet: str  # workbook sheet name and canonical CSV stem
    aliases: tuple[str, ...]  # other file stems seen in the wild (e.g. the toy dataset)
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return f"{self.sheet}.csv"

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PLANTS = TableSpec(
    name="plants",
    sheet="IUGUType",
    aliases=("IUGU master",),
    columns=(
        Column("IUGU CODE", "iugu_code", "code"),
        Column("PLANT TYPE", "plant_type", "code"),
        Column("# Source", "n_source", "float", nullable=True),
        # Optional master data (the bundled sample carries it; the public dataset does not).
        Column("PLANT NAME", "plant_name", "text", required=False, nullable=True),
        Column("CITY", "city", "text", required=False, nullable=True),
        Column("STATE", "state", "text", required=False, nullable=True),
        Column("LATITUDE", "latitude", "float", required=False, nullable=True),
        Column("LONGITUDE", "longitude", "float", required=False, nullable=True),
    ),
    key=("iugu_code",),
)

DEMAND = TableSpec(
    name="clinker_demand",
    sheet="ClinkerDemand",
    aliases=("Demand",),
    columns=(
        Column("IUGU CODE", "iugu_code", "code"),
        Column("TIME PERIOD", "time_period", "int"),
        Column("DEMAND", "demand", "float"),
        Column("MIN FULFILLMENT (%)", "min_fulfillment_pct", "float", nullable=True),
    ),
    key=("iugu_code", "time_period"),
)

CAPACITY = TableSpec(
    name="clinker_capacity",
    sheet="ClinkerCapacity",
    aliases=("Capacity",),
    columns=(
        Column("IU CODE", "iu_code", "code"),
        Column("TIME PERIOD", "time_period", "int"),
        Column("CAPACITY", "capacity", "float"),
    ),
    key=("iu_code", "time_period"),
)

PRODUCTION_COST = TableSpec(
    name="production_cost",
    sheet="ProductionCost",
    aliases=("Production cost",),
    columns=(
        Column("IU CODE", "iu_code", "code"),
        Column("TIME PERIOD", "time_period", "int"),
        Column("PRODUCTION COST", "production_cost", "float"),
    ),
    key=("iu_code", "time_period"),
)

LOGISTICS = TableSpec(
    name="logistics_lanes",
    sheet="LogisticsIUGU",
    aliases=("Logistics",),
    columns=(
        Column("FROM IU CODE", "from_code", "code"),
        Column("TO IUGU CODE", "to_code", "code"),
        Column("TRANSPORT CODE", "transport_code", "code"),
        Column("TIME PERIOD", "time_period", "int"),
        Column("FREIGHT COST", "freight_cost", "float"),
        Column("HANDLING COST", "handling_cost", "float"),
        Column("QUANTITY MULTIPLIER", "quantity_multiplier", "float"),
    ),
    key=("from_code", "to_code", "transport_code", "time_period"),
)

CONSTRAINTS = TableSpec(
    name="flow_constraints",
    sheet="IUGUConstraint",
    aliases=("Constraints",),
    columns=(
        Column("IU CODE", "iu_code", "code"),
        Column("TRANSPORT CODE", "transport_code", "code", nullable=True),
        Column("IUGU CODE", "iugu_code", "code", nullable=True),
        Column("TIME PERIOD", "time_period", "int"),
        Column("BOUND TYPEID", "bound_typeid", "code"),
        Column("VALUE TYPEID", "value_typeid", "code"),
        Column("Value", "value", "float"),
    ),
    key=("iu_code", "transport_code", "iugu_code", "time_period", "bound_typeid"),
)

OPENING_STOCK = TableSpec(
    name="opening_stock",
    sheet="IUGUOpeningStock",
    aliases=("Opening stock",),
    columns=(
        Column("IUGU CODE", "iugu_code", "code"),
        Column("OPENING STOCK", "opening_stock", "float"),
    ),
    key=("iugu_code",),
)

CLOSING_STOCK = TableSpec(
    name="closing_stock_bounds",
    sheet="IUGUClosingStock",
    aliases=("Closing stock",),
    columns=(
        Column("IUGU CODE", "iugu_code", "code"),
        Column("TIME PERIOD", "time_period", "int"),
        Column("MIN CLOSE STOCK", "min_close_stock", "float"),
        Column("MAX CLOSE STOCK", "max_close_stock", "float", nullable=True),
    ),
    key=("iugu_code", "time_period"),
)

HUB_OPENING_STOCK = TableSpec(
    name="hub_opening_stock",
    sheet="HubOpeningStock",
    aliases=("Hub opening stock",),
    columns=(
        Column("IU", "iu_code", "code"),
        Column("IUGU", "hub_code", "code"),
        Column("Opening Stock", "opening_stock", "float"),
    ),
    key=("iu_code", "hub_code"),
)

TABLES: tuple[TableSpec, ...] = (
    PLANTS,
    DEMAND,
    CAPACITY,
    PRODUCTION_COST,
    LOGISTICS,
    CONSTRAINTS,
    OPENING_STOCK,
    CLOSING_STOCK,
    HUB_OPENING_STOCK,
)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
# HubOpeningStock is informational: the public CSV export lacks it, so a directory may omit it.
OPTIONAL_TABLES = frozenset({HUB_OPENING_STOCK.name})

# Magnitudes no plant has: a value above these is a unit or typing error (t instead of kt, a
# spreadsheet's 1e308), and far above them the solver's tolerances (1e-6 relative, |c| >= 1e20 is
# infinity) make the plan meaningless. Largest kilns burn ~10 Mt a year; costs are a few 1,000
# INR/t; a rake carries ~4,000 t and a ship ~80,000 t. README "Limits" states them.
MAX_TONNES = 1e8  # demand, capacity, stock, stock bounds, constraint values (t per period)
MAX_INR_PER_T = 1e6  # production, freight and handling cost
MAX_TRIP_T = 1e5  # QUANTITY MULTIPLIER (t per trip)

BOUND_TYPES = ("L", "G", "E")
VALUE_TYPES = ("C",)
PLANT_TYPES = ("IU", "GU")
