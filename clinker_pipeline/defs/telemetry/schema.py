"""Pandera schemas of the telemetry families: structure (ERROR) and plausibility (WARN).

Structure is what a downstream number cannot survive (a negative production rate, a silo over
100 %, a position off the globe). Plausibility is what a sensor may really report but a person
should look at (a kiln at 1,700 °C, a truck at 140 km/h); such rows are kept. Threshold breaches
that matter to operations (kiln overheating, silo above 95 %) are alerts, not checks: see
`telemetry.rules`.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_checks import pandera_problems


def _num(*checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(float, list(checks), nullable=nullable)


_KEYS = {
    "message_id": pa.Column("string", nullable=False, unique=True),
    "ts": pa.Column("datetime64[ns, UTC]", nullable=False),
}
_PLANT = {"plant": pa.Column("string", nullable=False), "sensor": pa.Column("string")}

STRUCTURE: dict[str, pa.DataFrameSchema] = {
    "line": pa.DataFrameSchema(
        {
            **_KEYS,
            **_PLANT,
            "production_tph": _num(pa.Check.ge(0), nullable=False),
            "kiln_temp_c": _num(pa.Check.ge(-50)),
            "running": pa.Column("boolean", nullable=False),
        },
        strict=False,
    ),
    "silo": pa.DataFrameSchema(
        {
            **_KEYS,
            **_PLANT,
            "level_pct": _num(pa.Check.in_range(0, 100), nullable=False),
            "level_t": _num(pa.Check.ge(0), nullable=False),
            "capacity_t": _num(pa.Check.gt(0)),
        },
        strict=False,
    ),
    "quality": pa.DataFrameSchema(
        {
            **_KEYS,
            **_PLANT,
            "free_lime_pct": _num(pa.Check.in_range(0, 100), nullable=False),
            "lsf": _num(pa.Check.gt(0)),
            "c3s_pct": _num(pa.Check.in_range(0, 100)),
        },
        strict=False,
    ),
    "energy": pa.DataFrameSchema(
        {
            **_KEYS,
            **_PLANT,
            "power_kw": _num(pa.Check.ge(0), nullable=False),
            "interval_s": _num(pa.Check.gt(0), nullable=False),
            "thermal_kcal_per_kg": _num(pa.Check.ge(0)),
        },
        strict=False,
    ),
    "fleet": pa.DataFrameSchema(
        {
            **_KEYS,
            "vehicle": pa.Column("string", nullable=False),
            "lat": _num(pa.Check.in_range(-90, 90), nullable=False),
            "lon": _num(pa.Check.in_range(-180, 180), nullable=False),
            "speed_kmh": _num(pa.Check.ge(0), nullable=False),
            "load_t": _num(pa.Check.ge(0)),
            "capacity_t": _num(pa.Check.gt(0)),
            "fuel_l": _num(pa.Check.ge(0)),
        },
        strict=False,
    ),
}

PLAUSIBLE: dict[str, pa.DataFrameSchema] = {
    "line": pa.DataFrameSchema(
        {
            "production_tph": _num(pa.Check.le(1000)),
            "kiln_temp_c": _num(pa.Check.in_range(0, 1700)),
        },
        strict=False,
    ),
    "silo": pa.DataFrameSchema({"level_t": _num(pa.Check.le(500_000))}, strict=False),
    "quality": pa.DataFrameSchema(
        {"free_lime_pct": _num(pa.Check.le(10)), "lsf": _num(pa.Check.in_range(0.8, 1.1))},
        strict=False,
    ),
    "energy": pa.DataFrameSchema(
        {
            "power_kw": _num(pa.Check.le(100_000)),
            "thermal_kcal_per_kg": _num(pa.Check.in_range(500, 1200)),
        },
        strict=False,
    ),
    "fleet": pa.DataFrameSchema(
        {
            # India and its neighbourhood: a fix far outside is a receiver fault
            "lat": _num(pa.Check.in_range(5, 38)),
            "lon": _num(pa.Check.in_range(66, 98)),
            "speed_kmh": _num(pa.Check.le(120)),
        },
        strict=False,
    ),
}


def family_problems(family: str, table: pd.DataFrame, table_name: str) -> list[Problem]:
    """Structure failures as ERROR (rule schema), plausibility ones as WARN."""
    source = f"MQTT {family}"
    return pandera_problems(
        STRUCTURE[family], table, table_name=table_name, source=source
    ) + pandera_problems(
        PLAUSIBLE[family],
        table,
        table_name=table_name,
        source=source,
        severity="WARN",
        rule="plausibility",
    )
