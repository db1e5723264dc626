"""Shared test helpers: where the public dataset is, and copies of instances to corrupt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path:
    """`../shared/datasets` next to the repo, or `$CLINKER_SHARED_DIR/datasets` when set.

    CLINKER_SHARED_DIR may also point straight at the datasets folder.
    """
    env = os.environ.get("CLINKER_SHARED_DIR")
    if env:
        base = Path(env).expanduser().resolve()
        return base / "datasets" if (base / "datasets").is_dir() else base
    return REPO.parent / "shared" / "datasets"


def dataset(name: str) -> Path:
    """A public dataset folder; skips the test with the reason when it is absent."""
    path = shared_datasets_dir() / name
    if not path.exists():
        pytest.skip(f"../shared/datasets not found: {path} does not exist")
    return path


def copy_instance(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
