"""Pandera models of the planning-instance tables (internal snake_case columns).

These carry the single-table rules (types, signs, allowed codes, unique keys, MIN <= MAX).
Rules that span tables (unknown codes, lanes to unknown nodes, constraint rows that match no
lane) need the whole instance and live in `clinker_pipeline.instance.validate`.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from clinker_pipeline.instance.tables import (
    BOUND_TYPES,
    MAX_INR_PER_T,
    MAX_TONNES,
    MAX_TRIP_T,
    PLANT_TYPES,
    VALUE_TYPES,
)

Code = Series[pd.StringDtype]
OptionalCode = Series[pd.StringDtype]
Period = Series[pd.Int64Dtype]
Row = Series[pd.Int64Dtype]


class _Base(pa.DataFrameModel):
    source_row: Row = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = False


class PlantsSchema(_Base):
    iugu_code: Code = pa.Field(str_length={"min_value": 1})
    plant_type: Code = pa.Field(isin=list(PLANT_TYPES))
    n_source: Series[float] = pa.Field(nullable=True, ge=0, le=1000)
    plant_name: Series[pd.StringDtype] = pa.Field(nullable=True)
    city: Series[pd.StringDtype] = pa.Field(nullable=True)
    state: Series[pd.StringDtype] = pa.Field(nullable=True)
    latitude: Series[float] = pa.Field(nullable=True, ge=-90, le=90)
    longitude: Series[float] = pa.Field(nullable=True, ge=-180, le=180)

    class Config:
        unique = ["iugu_code"]


class DemandSchema(_Base):
    iugu_code: Code
    time_period: Period = pa.Field(ge=1)
    demand: Series[float] = pa.Field(ge=0, le=MAX_TONNES)
    min_fulfillment_pct: Series[float] = pa.Field(nullable=True, ge=0, le=100)

    class Config:
        unique = ["iugu_code", "time_period"]


class CapacitySchema(_Base):
    iu_code: Code
    time_period: Period = pa.Field(ge=1)
    capacity: Series[float] = pa.Field(ge=0, le=MAX_TONNES)

    class Config:
        unique = ["iu_code", "time_period"]


class ProductionCostSchema(_Base):
    iu_code: Code
    time_period: Period = pa.Field(ge=1)
    production_cost: Series[float] = pa.Field(ge=0, le=MAX_INR_PER_T)

    class Config:
        unique = ["iu_code", "time_period"]


class LogisticsSchema(_Base):
    from_code: Code
    to_code: Code
    transport_code: Code
    time_period: Period = pa.Field(ge=1)
    freight_cost: Series[float] = pa.Field(ge=0, le=MAX_INR_PER_T)
    handling_cost: Series[float] = pa.Field(ge=0, le=MAX_INR_PER_T)
    quantity_multiplier: Series[float] = pa.Field(ge=1, le=MAX_TRIP_T)

    @pa.check(
        "quantity_multiplier", name="whole_trips", error="must be a whole number of tonnes per trip"
    )
    def _multiplier_integral(cls, s: Series[float]) -> Series[bool]:
        return s.isna() | (s == s.round())

    class Config:
        unique = ["from_code", "to_code", "transport_code", "time_period"]


class ConstraintsSchema(_Base):
    iu_code: Code
    transport_code: OptionalCode = pa.Field(nullable=True)
    iugu_code: OptionalCode = pa.Field(nullable=True)
    time_period: Period = pa.Field(ge=1)
    bound_typeid: Code = pa.Field(isin=list(BOUND_TYPES))
    value_typeid: Code = pa.Field(isin=list(VALUE_TYPES))
    value: Series[float] = pa.Field(ge=0, le=MAX_TONNES)

    class Config:
        unique = ["iu_code", "transport_code", "iugu_code", "time_period", "bound_typeid"]


class OpeningStockSchema(_Base):
    iugu_code: Code
    opening_stock: Series[float] = pa.Field(ge=0, le=MAX_TONNES)

    class Config:
        unique = ["iugu_code"]


class ClosingStockSchema(_Base):
    iugu_code: Code
    time_period: Period = pa.Field(ge=1)
    min_close_stock: Series[float] = pa.Field(ge=0, le=MAX_TONNES)
    max_close_stock: Series[float] = pa.Field(nullable=True, ge=0, le=MAX_TONNES)

    @pa.dataframe_check(name="min_le_max", error="MIN CLOSE STOCK is above MAX CLOSE STOCK")
    def _min_le_max(cls, df: pd.DataFrame) -> Series[bool]:
        return (
            df["max_close_stock"].isna()
            | df["min_close_stock"].isna()
            | (df["min_close_stock"] <= df["max_close_stock"])
        )

    class Config:
        unique = ["iugu_code", "time_period"]


class HubOpeningStockSchema(_Base):
    iu_code: Code
    hub_code: Code
    opening_stock: Series[float] = pa.Field(ge=0, le=MAX_TONNES)

    class Config:
        unique = ["iu_code", "hub_code"]


INSTANCE_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "plants": PlantsSchema,
    "clinker_demand": DemandSchema,
    "clinker_capacity": CapacitySchema,
    "production_cost": ProductionCostSchema,
    "logistics_lanes": LogisticsSchema,
    "flow_constraints": ConstraintsSchema,
    "opening_stock": OpeningStockSchema,
    "closing_stock_bounds": ClosingStockSchema,
    "hub_opening_stock": HubOpeningStockSchema,
}
