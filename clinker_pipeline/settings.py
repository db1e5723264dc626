"""Non-secret settings read from the environment, with the defaults the quick start relies on."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DUCKDB_PATH = "clinker.duckdb"


def duckdb_path() -> str:
    """The analysts' DuckDB file, shared by the pipeline and `clinker optimize`."""
    return os.getenv("CLINKER_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)


def input_source() -> str:
    """Where the plan's plants, stock, demand and capacity come from: "files" or "erp"."""
    value = os.getenv("CLINKER_INPUT_SOURCE", "files").strip().lower()
    if value not in ("files", "erp"):
        raise ValueError(f"CLINKER_INPUT_SOURCE must be 'files' or 'erp', got {value!r}")
    return value


def telemetry_dir() -> str:
    """The MQTT ingestor's landing store (Parquet batches), shared with the telemetry assets.

    With the DuckLake store it defaults to a folder beside the lake's data files, which every
    worker reaches."""
    lake_data = os.getenv("CLINKER_DUCKLAKE_DATA_PATH", "").strip()
    if os.getenv("CLINKER_STORE", "").strip().lower() == "ducklake" and lake_data:
        default = str(Path(lake_data) / "telemetry_landing")
    else:
        default = "telemetry_landing"
    return os.getenv("CLINKER_TELEMETRY_DIR", default)


def duckdb_lock_wait_s() -> float:
    """How long a writer waits for another process's lock on the DuckDB file before failing."""
    return float(os.getenv("CLINKER_DUCKDB_LOCK_WAIT_S", "30"))


def ensure_parent(path: str) -> str:
    if path and path != ":memory:":
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    return path
