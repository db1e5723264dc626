"""Shared fixtures: the public dataset lives in ../shared and is never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Run-level feed retries (RetryPolicy) wait 60 s by default; tests keep the retries but not
# the wait. Set before any test imports the definitions (subprocesses inherit it).
os.environ.setdefault("CLINKER_FEED_RETRY_DELAY_S", "0.2")

from clinker_pipeline_tests.helpers import dataset


@pytest.fixture(scope="session")
def dummy_dir() -> Path:
    """dummy_3mplan/: the 9 CSV exports of the hackathon workbook (and the workbook itself)."""
    return dataset("dummy_3mplan")


@pytest.fixture(scope="session")
def dummy_xlsx(dummy_dir: Path) -> Path:
    path = dummy_dir / "Dataset_Dummy_Clinker_3MPlan.xlsx"
    if not path.exists():
        pytest.skip(f"../shared/datasets not found: {path} does not exist")
    return path


@pytest.fixture(scope="session")
def toy_dir() -> Path:
    """toy_2iu3gu/: the small dataset with the alias file names ("Capacity.csv", ...)."""
    return dataset("toy_2iu3gu")


@pytest.fixture(autouse=True)
def _own_defs_state_storage():
    """Dagster keeps the entered instance's defs-state storage in a context variable, and an
    instance entered by a sensor or schedule context is never left: a later test would reach
    the PostgreSQL database an earlier test dropped. Each test starts and ends with none."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield
