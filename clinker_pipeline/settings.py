"""Non-secret settings read from the environment, with the defaults the quick start relies on."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DUCKDB_PATH = "clinker.duckdb"


def duckdb_path() -> str:
    """The analysts' DuckDB file, shared by the pipeline and `clinker optimize`."""
    return os.getenv("CLINKER_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)


def instance_path() -> str:
    """Instance files to plan from; empty means the bundled sample network."""
    return os.getenv("CLINKER_INSTANCE_PATH", "")


def ensure_parent(path: str) -> str:
    if path and path != ":memory:":
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    return path
