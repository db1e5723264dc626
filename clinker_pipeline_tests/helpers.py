"""Shared test helpers: where the public dataset is, and copies of instances to corrupt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.getenv("CLINKER_SHARED_DIR", REPO.parent / "shared"))


def dataset(name: str) -> Path:
    """A public dataset folder from ../shared/datasets; skips with the reason when absent."""
    path = shared_dir() / "datasets" / name
    if not path.exists():
        pytest.skip(
            f"../shared/datasets/{name} not found at {path}: the public dataset is not here"
        )
    return path


def copy_instance(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
